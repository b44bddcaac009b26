/**
 * A userspace Service proxy (kube-proxy's old userspace mode; these machines have no iptables or nft): each
 * Service ClusterIP is a /32 on the pod bridge, and the agent's Node process listens on <clusterIP>:<port> and
 * pipes every connection to one of the port's endpoints, round robin, trying the next when a connect fails and
 * closing the connection at once when there is none. Pods reach ClusterIPs through their default route (the
 * bridge's gateway) and the host reaches them directly.
 *
 * sync() is level-triggered: it makes the bridge's /32s and the listeners exactly those of the Services given
 * (so /32s an earlier agent left are removed), and swaps a port's endpoints in place without touching its
 * listener or the connections already open.
 */
import { type Server, type Socket, connect, createServer } from 'node:net';
import { parseIp } from './cidr.ts';
import { type IpAddr, ip, ipJson } from './ip.ts';

/** A Service as the proxy sees it: its ClusterIP and, per TCP port, the endpoints behind it. */
export interface ProxyService {
  readonly clusterIP: string;
  readonly ports: { port: number; protocol: 'TCP'; endpoints: { ip: string; port: number }[] }[];
}

/** Options of a ServiceProxy. */
export interface ServiceProxyOptions {
  /** The pod bridge (PodNetwork.ensure()'s `bridge`) that holds the ClusterIPs. */
  readonly bridge: string;
  /** How long one endpoint may take to accept before the next is tried; default 3000 ms. */
  readonly connectTimeoutMs?: number;
}

interface Listener {
  readonly key: string; // "<ip>:<port>"
  readonly server: Server;
  readonly sockets: Set<Socket>;
  endpoints: readonly { ip: string; port: number }[];
  next: number; // round-robin cursor
}

/**
 * The host's userspace kube-proxy for one pod bridge (see the file comment). One per bridge: its sync and close
 * own every /32 on that bridge.
 */
export class ServiceProxy {
  private readonly bridge: string;
  private readonly connectTimeoutMs: number;
  private readonly listeners = new Map<string, Listener>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(opts: ServiceProxyOptions) {
    this.bridge = opts.bridge;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
  }

  /**
   * Makes the ClusterIPs and listeners exactly those of `services`; endpoints change in place. A port that cannot
   * listen (another process holds it) fails the call with every such port named, after all others are synced;
   * the next sync tries it again.
   */
  sync(services: ProxyService[]): Promise<void> {
    return this.serial(async () => {
      if (this.closed) throw new Error('ServiceProxy.sync after close: make a new ServiceProxy');
      const wanted = validate(services);
      const ips = new Set([...wanted.values()].map((w) => w.ip));
      const present = await this.bridgeHostAddresses();
      for (const a of ips) {
        if (!present.has(a)) await ip(['addr', 'add', `${a}/32`, 'dev', this.bridge]).catch(ignoreExists);
      }
      for (const [key, l] of this.listeners) {
        if (!wanted.has(key)) await this.stop(l);
      }
      // One port that cannot listen must not keep the others down: collect, then report once.
      const failures: string[] = [];
      for (const [key, w] of wanted) {
        const l = this.listeners.get(key);
        if (l) l.endpoints = w.endpoints;
        else await this.listen(key, w.ip, w.port, w.endpoints).catch((e: Error) => failures.push(e.message));
      }
      for (const a of present) {
        if (!ips.has(a)) await ip(['addr', 'del', `${a}/32`, 'dev', this.bridge]).catch(ignoreMissing);
      }
      if (failures.length > 0) throw new Error(failures.join('; '));
    });
  }

  /** Closes every listener and open connection and removes the ClusterIPs from the bridge. */
  close(): Promise<void> {
    return this.serial(async () => {
      this.closed = true;
      for (const l of this.listeners.values()) await this.stop(l);
      for (const a of await this.bridgeHostAddresses().catch(() => new Set<string>())) {
        await ip(['addr', 'del', `${a}/32`, 'dev', this.bridge]).catch(ignoreMissing);
      }
    });
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.queue.then(op, op);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The /32s on the bridge: ClusterIPs (the gateway has the pod CIDR's prefix, never /32). */
  private async bridgeHostAddresses(): Promise<Set<string>> {
    let addrs: IpAddr[];
    try {
      addrs = await ipJson<IpAddr>(['-4', 'addr', 'show', 'dev', this.bridge]);
    } catch (e) {
      throw new Error(`the Service proxy needs the pod bridge ${this.bridge}, which is missing (PodNetwork.ensure() makes it): ${(e as Error).message}`);
    }
    return new Set(addrs.flatMap((a) => a.addr_info ?? []).filter((i) => i.prefixlen === 32).map((i) => i.local));
  }

  private listen(key: string, host: string, port: number, endpoints: readonly { ip: string; port: number }[]): Promise<void> {
    const sockets = new Set<Socket>();
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
    const l: Listener = { key, server, sockets, endpoints, next: 0 };
    server.on('connection', (client) => this.accept(l, client));
    return new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        const hint =
          e.code === 'EADDRINUSE'
            ? `another process on this machine listens on port ${port} (on all addresses, or on ${host}); stop it or give the Service another port`
            : e.message;
        reject(new Error(`the Service proxy cannot listen on ${key}: ${hint}`));
      });
      server.listen({ host, port }, () => {
        server.removeAllListeners('error');
        server.on('error', () => undefined);
        this.listeners.set(key, l);
        resolve();
      });
    });
  }

  private async stop(l: Listener): Promise<void> {
    this.listeners.delete(l.key);
    for (const s of l.sockets) s.destroy();
    await new Promise<void>((resolve) => l.server.close(() => resolve()));
  }

  /** Pipes one client to the first endpoint (from the round-robin cursor) that accepts; none: close at once. */
  private accept(l: Listener, client: Socket): void {
    l.sockets.add(client);
    client.on('close', () => l.sockets.delete(client));
    client.on('error', () => client.destroy());
    const candidates = l.endpoints;
    if (candidates.length === 0) {
      client.destroy();
      return;
    }
    const start = l.next++ % candidates.length;
    const attempt = (i: number): void => {
      if (client.destroyed) return;
      if (i === candidates.length) {
        client.destroy();
        return;
      }
      const ep = candidates[(start + i) % candidates.length]!;
      const upstream = connect({ host: ep.ip, port: ep.port, allowHalfOpen: true });
      upstream.setTimeout(this.connectTimeoutMs);
      let connected = false;
      const fail = (): void => {
        upstream.destroy();
        if (!connected) attempt(i + 1);
        else client.destroy();
      };
      upstream.once('timeout', fail);
      upstream.on('error', fail);
      upstream.once('connect', () => {
        connected = true;
        upstream.setTimeout(0);
        upstream.removeListener('timeout', fail);
        l.sockets.add(upstream);
        upstream.on('close', () => l.sockets.delete(upstream));
        splice(client, upstream);
        client.resume();
      });
    };
    attempt(0);
  }
}

/** Pipes both ways with half-close: when one side has closed, the other ends and is destroyed once flushed. */
function splice(a: Socket, b: Socket): void {
  a.pipe(b);
  b.pipe(a);
  const windDown = (other: Socket) => () => {
    if (other.destroyed) return;
    if (other.writableFinished) other.destroy();
    else {
      other.once('finish', () => other.destroy());
      other.end();
    }
  };
  a.on('close', windDown(b));
  b.on('close', windDown(a));
  a.on('error', () => b.destroy());
}

function validate(services: readonly ProxyService[]): Map<string, { ip: string; port: number; endpoints: { ip: string; port: number }[] }> {
  const wanted = new Map<string, { ip: string; port: number; endpoints: { ip: string; port: number }[] }>();
  for (const s of services) {
    if (parseIp(s.clusterIP) === undefined) throw new Error(`ServiceProxy: the ClusterIP "${s.clusterIP}" is not an IPv4 address`);
    for (const p of s.ports) {
      if (p.protocol !== 'TCP') throw new Error(`ServiceProxy: ${s.clusterIP}:${p.port} is ${p.protocol}; the local node proxies TCP only`);
      if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new Error(`ServiceProxy: ${s.clusterIP} has port ${p.port}, not 1 to 65535`);
      const key = `${s.clusterIP}:${p.port}`;
      if (wanted.has(key)) throw new Error(`ServiceProxy: two Services claim ${key}`);
      wanted.set(key, { ip: s.clusterIP, port: p.port, endpoints: p.endpoints.map((e) => ({ ip: e.ip, port: e.port })) });
    }
  }
  return wanted;
}

function ignoreMissing(e: unknown): void {
  if (!/Cannot assign requested address|Cannot find device|No such/i.test(String(e))) throw e;
}

function ignoreExists(e: unknown): void {
  if (!/File exists|already assigned/i.test(String(e))) throw e;
}
