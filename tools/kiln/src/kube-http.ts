/** A minimal Kubernetes REST client over node:https with the local cluster's admin certificate. */
import { request } from 'node:https';

export interface KubeAuth {
  readonly server: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly token?: string;
  readonly insecure?: boolean;
}

export interface KubeResponse {
  readonly status: number;
  readonly body: unknown;
}

export function kube(auth: KubeAuth, method: string, path: string, body?: unknown, timeoutMs = 10_000, contentType = 'application/json'): Promise<KubeResponse> {
  const url = new URL(path, auth.server);
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ...(auth.ca ? { ca: auth.ca } : {}),
        ...(auth.cert ? { cert: auth.cert, key: auth.key } : {}),
        ...(auth.insecure ? { rejectUnauthorized: false } : {}),
        headers: {
          accept: 'application/json',
          ...(auth.token ? { authorization: `Bearer ${auth.token}` } : {}),
          ...(data ? { 'content-type': contentType, 'content-length': Buffer.byteLength(data) } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* plain text, e.g. /readyz */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${path}`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

/** GETs an https health endpoint of a component that serves a self-signed certificate on loopback. */
export function healthz(port: number, path = '/healthz', timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
