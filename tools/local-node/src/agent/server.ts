/**
 * The kubelet HTTPS API of the local node, as much of it as `kubectl logs` needs: GET /healthz and
 * GET /containerLogs/{namespace}/{pod}/{container} with follow, tailLines, limitBytes, previous and sinceSeconds
 * (timestamps=true is refused: the runtime keeps raw bytes, not timed lines). TLS with a serving certificate of the
 * cluster CA; clients must present a certificate of that CA in group system:masters (the API server's kubelet
 * client) — there is no SubjectAccessReview. exec, attach, port-forward, /pods, /stats and /metrics answer 404.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { V1Pod } from '@kubernetes/client-node';
import type { ContainerRecord } from '../runtime/types.ts';

/** What the server needs of the agent. */
export interface LogSource {
  pod(namespace: string, name: string): V1Pod | undefined;
  containerRecord(pod: V1Pod, container: string, previous: boolean): ContainerRecord | undefined;
  logFile(id: string): string;
}

export interface LogQuery {
  readonly follow: boolean;
  readonly tailLines?: number;
  readonly limitBytes?: number;
  readonly previous: boolean;
  readonly sinceSeconds?: number;
  readonly timestamps: boolean;
}

export function parseLogQuery(q: URLSearchParams): LogQuery {
  const num = (k: string) => {
    const v = q.get(k);
    if (v === null || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${k}=${v} is not a non-negative integer`);
    return n;
  };
  const bool = (k: string) => q.get(k) === 'true' || q.get(k) === '1';
  const tailLines = num('tailLines');
  const limitBytes = num('limitBytes');
  const sinceSeconds = num('sinceSeconds');
  return { follow: bool('follow'), previous: bool('previous'), timestamps: bool('timestamps'), ...(tailLines !== undefined ? { tailLines } : {}), ...(limitBytes !== undefined ? { limitBytes } : {}), ...(sinceSeconds !== undefined ? { sinceSeconds } : {}) };
}

/** The start offset of the last `n` lines of `buf` (a final newline does not count as a line). */
export function tailStart(buf: Buffer, n: number): number {
  if (n === 0) return buf.length;
  let end = buf.length;
  if (end > 0 && buf[end - 1] === 0x0a) end--;
  let seen = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (buf[i] === 0x0a && ++seen === n) return i + 1;
  }
  return 0;
}

function send(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text.endsWith('\n') ? text : `${text}\n`);
}

function authorized(req: IncomingMessage): boolean {
  const sock = req.socket as TLSSocket;
  if (!sock.authorized) return false;
  const cert = sock.getPeerCertificate();
  const o = cert?.subject?.O;
  const groups = Array.isArray(o) ? o : o ? [o] : [];
  return groups.includes('system:masters');
}

async function serveLog(res: ServerResponse, src: LogSource, ns: string, name: string, container: string, q: LogQuery): Promise<void> {
  const pod = src.pod(ns, name);
  if (!pod) return send(res, 404, `pod ${ns}/${name} is not on this node`);
  if (!pod.spec?.containers.some((c) => c.name === container)) return send(res, 404, `container ${container} is not in pod ${ns}/${name}`);
  if (q.timestamps) return send(res, 400, 'timestamps=true is not supported by the kiln local node (its logs are raw bytes without per-line times)');
  const rec = src.containerRecord(pod, container, q.previous);
  if (!rec) return send(res, q.previous ? 400 : 404, q.previous ? `previous terminated container "${container}" in pod "${name}" not found` : `container "${container}" in pod "${name}" has not started yet`);
  const file = src.logFile(rec.id);
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch {
    buf = Buffer.alloc(0);
  }
  // sinceSeconds without per-line times: the whole log when the file changed within the window, else nothing new.
  if (q.sinceSeconds !== undefined) {
    const mtime = (() => {
      try {
        return statSync(file).mtimeMs;
      } catch {
        return 0;
      }
    })();
    if (Date.now() - mtime > q.sinceSeconds * 1000) buf = Buffer.alloc(0);
  }
  let offset = buf.length;
  let out = q.tailLines !== undefined ? buf.subarray(tailStart(buf, q.tailLines)) : buf;
  let budget = q.limitBytes ?? Infinity;
  if (out.length > budget) out = out.subarray(0, budget);
  budget -= out.length;
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', ...(q.follow ? { 'transfer-encoding': 'chunked' } : {}) });
  res.write(out);
  if (!q.follow || budget <= 0) return void res.end();
  let closed = false;
  res.on('close', () => (closed = true));
  // Follow: new bytes as they come, until the container has exited and its log is drained.
  for (;;) {
    if (closed) return;
    const exited = src.containerRecord(pod, container, q.previous)?.status.state !== 'running';
    let chunk = Buffer.alloc(0);
    let fd: number | undefined;
    try {
      fd = openSync(file, 'r');
      const size = fstatSync(fd).size;
      if (size > offset) {
        chunk = Buffer.alloc(Math.min(size - offset, 1 << 20));
        readSync(fd, chunk, 0, chunk.length, offset);
        offset += chunk.length;
      }
    } catch {
      /* not there yet */
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    if (chunk.length) {
      if (chunk.length > budget) chunk = chunk.subarray(0, budget);
      budget -= chunk.length;
      res.write(chunk);
      if (budget <= 0) return void res.end();
      continue;
    }
    if (exited) return void res.end();
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts the kubelet API on 127.0.0.1:`port`. */
export function startKubeletServer(opts: { port: number; host?: string; cert: string; key: string; ca: string; source: LogSource; log: (m: string) => void }): Promise<Server> {
  const server = createServer({ cert: readFileSync(opts.cert), key: readFileSync(opts.key), ca: readFileSync(opts.ca), requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://kubelet');
    if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, 'ok');
    if (!authorized(req)) return send(res, 401, 'the kiln local node serves only clients with a certificate of the cluster CA in group system:masters');
    const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'GET' || !m) return send(res, 404, `${req.method} ${url.pathname}: the kiln local node serves only /healthz and /containerLogs (no exec, attach, port-forward or stats)`);
    let q: LogQuery;
    try {
      q = parseLogQuery(url.searchParams);
    } catch (e) {
      return send(res, 400, (e as Error).message);
    }
    serveLog(res, opts.source, decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), decodeURIComponent(m[3]!), q).catch((e) => {
      opts.log(`containerLogs: ${(e as Error).message}`);
      if (!res.headersSent) send(res, 500, (e as Error).message);
      else res.end();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve(server));
  });
}
