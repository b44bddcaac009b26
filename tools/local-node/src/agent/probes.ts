/**
 * Readiness and liveness probes of a running container: httpGet (a status 200–399 within timeoutSeconds),
 * tcpSocket (a connect) and exec (the command inside the container's mount and network namespaces through
 * nsenter, exit 0), with initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold and
 * failureThreshold as Kubernetes applies them. Results go to a callback; the agent turns them into the Ready
 * conditions (readiness) or a restart (liveness).
 */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import type { V1Container, V1Probe } from '@kubernetes/client-node';

/** The port number a probe names (a number, or the name of one of the container's ports). */
export function probePort(c: V1Container, port: number | string | undefined): number {
  if (typeof port === 'number') return port;
  if (port !== undefined && /^\d+$/.test(port)) return Number(port);
  const p = c.ports?.find((x) => x.name === port);
  if (!p) throw new Error(`probe port "${port}" is not a port of container ${c.name}`);
  return p.containerPort;
}

/** One probe attempt: true on success. */
export async function probeOnce(probe: V1Probe, c: V1Container, target: { ip: string; pid?: number; env: Record<string, string> }): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  if (probe.httpGet) {
    const port = probePort(c, probe.httpGet.port as number | string);
    const headers = Object.fromEntries((probe.httpGet.httpHeaders ?? []).map((h) => [h.name, h.value]));
    return new Promise((resolve) => {
      const req = request({ host: probe.httpGet!.host || target.ip, port, path: probe.httpGet!.path ?? '/', timeout: timeoutMs, headers }, (res) => {
        res.resume();
        resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
  }
  if (probe.tcpSocket) {
    const port = probePort(c, probe.tcpSocket.port as number | string);
    return new Promise((resolve) => {
      const s = connect({ host: probe.tcpSocket!.host || target.ip, port, timeout: timeoutMs });
      s.on('connect', () => (s.destroy(), resolve(true)));
      s.on('timeout', () => (s.destroy(), resolve(false)));
      s.on('error', () => resolve(false));
    });
  }
  if (probe.exec?.command?.length) {
    if (!target.pid) return false;
    return new Promise((resolve) => {
      execFile('nsenter', [`--target=${target.pid}`, '--mount', '--net', '--', ...probe.exec!.command!], { timeout: timeoutMs, env: target.env }, (err) => resolve(!err));
    });
  }
  return true;
}

/** A probe loop of one container; `onResult` gets the probe's state each time it changes. */
export class Prober {
  private timer: NodeJS.Timeout | undefined;
  private successes = 0;
  private failures = 0;
  private state: boolean | undefined;
  private stopped = false;

  private readonly probe: V1Probe;
  private readonly container: V1Container;
  private readonly target: () => { ip: string; pid?: number; env: Record<string, string> } | undefined;
  private readonly onResult: (ok: boolean) => void;

  constructor(probe: V1Probe, container: V1Container, target: () => { ip: string; pid?: number; env: Record<string, string> } | undefined, onResult: (ok: boolean) => void) {
    this.probe = probe;
    this.container = container;
    this.target = target;
    this.onResult = onResult;
  }

  start(): void {
    this.schedule((this.probe.initialDelaySeconds ?? 0) * 1000);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const t = this.target();
    if (!t) return this.schedule(1000);
    const ok = await probeOnce(this.probe, this.container, t).catch(() => false);
    if (this.stopped) return;
    if (ok) {
      this.successes++;
      this.failures = 0;
    } else {
      this.failures++;
      this.successes = 0;
    }
    let next = this.state;
    if (ok && this.successes >= (this.probe.successThreshold ?? 1)) next = true;
    if (!ok && this.failures >= (this.probe.failureThreshold ?? 3)) next = false;
    if (next !== undefined && next !== this.state) {
      this.state = next;
      this.onResult(next);
    }
    // Until the first verdict probe each second, so a starting server turns Ready promptly.
    this.schedule(this.state === undefined && !ok ? Math.min(1000, (this.probe.periodSeconds ?? 10) * 1000) : (this.probe.periodSeconds ?? 10) * 1000);
  }
}
