/**
 * The local node's pod network: one Linux bridge per cluster (`kb-<name>`, holding the gateway, the first host
 * address of the pod CIDR) and, per pod, a network namespace (`/run/netns/kiln-<name>-<short uid>`) joined to the
 * bridge by a veth pair whose pod end is `eth0` with the pod's IP and a default route via the gateway.
 *
 * IP assignments live in `<stateDir>/network.json`, written before any interface is made, so an agent restarted
 * after a crash keeps every pod's IP and netns, finishes or repairs a half-made sandbox on the next
 * createSandbox, and never hands out an IP that a known pod holds. Every operation is idempotent; they run one
 * at a time, each reading the state file afresh (one agent per state dir: there is no lock across processes).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Cidr, contains, firstHost, formatIp, lastHost, overlaps, parseCidr, parseIp } from './cidr.ts';
import { type IpAddr, type IpLink, type IpRoute, findLink, ip, ipJson } from './ip.ts';

/** Options of a PodNetwork. */
export interface PodNetworkOptions {
  /** Cluster-unique short id (1–12 of [a-z0-9], e.g. 6 hex): names the bridge `kb-<name>` and the netns. */
  readonly name: string;
  /** The pod CIDR, e.g. "10.250.7.0/24" (/8 to /30); the gateway is its first host address. */
  readonly podCidr: string;
  /** Directory for network.json (the IP assignments); created when missing. */
  readonly stateDir: string;
}

/** A pod's sandbox: its IP and the path of its network namespace. */
export interface Sandbox {
  readonly podUid: string;
  readonly ip: string;
  readonly netns: string;
}

interface PodRecord {
  readonly ip: string;
  readonly netnsName: string;
  readonly hostVeth: string;
}

interface State {
  readonly version: 1;
  readonly name: string;
  readonly podCidr: string;
  readonly pods: Record<string, PodRecord>;
}

const NETNS_DIR = '/run/netns';
const NAME = /^[a-z0-9]{1,12}$/;

/** Per-cluster pod network on this host (see the file comment). */
export class PodNetwork {
  readonly name: string;
  readonly podCidr: string;
  readonly bridge: string;
  readonly gateway: string;
  private readonly cidr: Cidr;
  private readonly stateFile: string;
  private state: State;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: PodNetworkOptions) {
    if (!NAME.test(opts.name)) {
      throw new Error(
        `the pod network name "${opts.name}" must be 1 to 12 characters of [a-z0-9] (it names the bridge kb-<name>, at most 15 characters)`,
      );
    }
    this.name = opts.name;
    this.cidr = parseCidr(opts.podCidr, 'pod CIDR');
    if (this.cidr.prefix < 8 || this.cidr.prefix > 30) {
      throw new Error(`the pod CIDR ${opts.podCidr} must be a /8 to /30 (a gateway and at least one pod address)`);
    }
    this.podCidr = opts.podCidr;
    this.bridge = `kb-${opts.name}`;
    this.gateway = formatIp(firstHost(this.cidr));
    this.stateFile = join(opts.stateDir, 'network.json');
    mkdirSync(opts.stateDir, { recursive: true });
    this.state = this.load();
  }

  /** Brings the bridge up with the gateway address (first host of the pod CIDR); idempotent. */
  ensure(): Promise<{ bridge: string; gateway: string }> {
    return this.serial(async () => {
      await this.ensureBridge();
      return { bridge: this.bridge, gateway: this.gateway };
    });
  }

  /** Makes (or finds, or repairs) the pod's netns, veth and IP; the same pod always gets the same answer. */
  createSandbox(podUid: string): Promise<{ ip: string; netns: string }> {
    return this.serial(async () => {
      if (!/^[A-Za-z0-9-]+$/.test(podUid)) throw new Error(`createSandbox: "${podUid}" is not a pod UID`);
      await this.ensureBridge();
      let rec = this.state.pods[podUid];
      if (!rec) {
        // Record first: a crash between here and the interfaces leaves a known, repairable sandbox, never a
        // netns nobody owns nor an IP handed out twice.
        rec = { ip: this.allocate(), netnsName: this.netnsNameFor(podUid), hostVeth: this.hostVethFor(podUid) };
        this.save({ ...this.state, pods: { ...this.state.pods, [podUid]: rec } });
      }
      if (!(await this.sandboxIsWhole(rec))) await this.build(rec);
      return { ip: rec.ip, netns: join(NETNS_DIR, rec.netnsName) };
    });
  }

  /** Removes the pod's veth and netns and frees its IP; a pod with no sandbox is a no-op. */
  removeSandbox(podUid: string): Promise<void> {
    return this.serial(async () => {
      const rec = this.state.pods[podUid];
      if (!rec) return;
      await this.destroy(rec);
      const pods = { ...this.state.pods };
      delete pods[podUid];
      this.save({ ...this.state, pods });
    });
  }

  /**
   * Every sandbox this network has assigned (read from the state dir, so an agent finds them after a restart).
   * A listed sandbox whose netns vanished (a reboot empties /run/netns) is rebuilt with the same IP by
   * createSandbox, or freed by removeSandbox.
   */
  sandboxes(): Sandbox[] {
    this.state = this.load();
    return Object.entries(this.state.pods).map(([podUid, r]) => ({ podUid, ip: r.ip, netns: join(NETNS_DIR, r.netnsName) }));
  }

  /** Removes everything of this network: every sandbox (and stray `kiln-<name>-*` netns), the bridge, the state. */
  teardown(): Promise<void> {
    return this.serial(async () => {
      for (const rec of Object.values(this.state.pods)) await this.destroy(rec);
      const prefix = `kiln-${this.name}-`;
      const strays = existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR).filter((n) => n.startsWith(prefix)) : [];
      for (const n of strays) await ip(['netns', 'del', n]).catch(ignoreMissing);
      const links = await ipJson<IpLink>(['link', 'show']);
      for (const l of links.filter((x) => x.master === this.bridge)) await ip(['link', 'del', l.ifname]).catch(ignoreMissing);
      if (links.some((l) => l.ifname === this.bridge)) await ip(['link', 'del', this.bridge]).catch(ignoreMissing);
      this.state = { version: 1, name: this.name, podCidr: this.podCidr, pods: {} };
      rmSync(this.stateFile, { force: true });
    });
  }

  // --- internals ---------------------------------------------------------------------------------------------

  /** Runs ops one at a time, each on the state as it is on disk (another instance may have written it). */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const fresh = (): Promise<T> => {
      this.state = this.load();
      return op();
    };
    const run = this.queue.then(fresh, fresh);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private load(): State {
    if (!existsSync(this.stateFile)) return { version: 1, name: this.name, podCidr: this.podCidr, pods: {} };
    let state: State;
    try {
      state = JSON.parse(readFileSync(this.stateFile, 'utf8')) as State;
    } catch (e) {
      throw new Error(`${this.stateFile} is not valid JSON (${(e as Error).message}); remove it to start the pod network afresh`);
    }
    if (state.name !== this.name || state.podCidr !== this.podCidr) {
      throw new Error(
        `${this.stateFile} belongs to pod network "${state.name}" with pod CIDR ${state.podCidr}, not "${this.name}" with ${this.podCidr}; ` +
          `tear that network down first or use another state dir`,
      );
    }
    return { version: 1, name: state.name, podCidr: state.podCidr, pods: state.pods ?? {} };
  }

  private save(state: State): void {
    const tmp = `${this.stateFile}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n');
    renameSync(tmp, this.stateFile);
    this.state = state;
  }

  /** Lowest free host address after the gateway. */
  private allocate(): string {
    const used = new Set(Object.values(this.state.pods).map((r) => parseIp(r.ip)));
    for (let n = firstHost(this.cidr) + 1; n <= lastHost(this.cidr); n++) {
      if (!used.has(n)) return formatIp(n);
    }
    throw new Error(`the pod CIDR ${this.podCidr} has no free address left (${used.size} pods hold one); choose a larger pod CIDR`);
  }

  private netnsNameFor(podUid: string): string {
    const taken = new Set(Object.values(this.state.pods).map((r) => r.netnsName));
    const compact = podUid.replace(/-/g, '').toLowerCase();
    for (let len = 8; len <= compact.length; len++) {
      const candidate = `kiln-${this.name}-${compact.slice(0, len)}`;
      if (!taken.has(candidate)) return candidate;
    }
    return `kiln-${this.name}-${shortHash(podUid, 16)}`;
  }

  /** `kv` + 12 hex of a hash of network and pod: 14 characters, within IFNAMSIZ, unique across clusters. */
  private hostVethFor(podUid: string): string {
    const taken = new Set(Object.values(this.state.pods).map((r) => r.hostVeth));
    for (let salt = 0; ; salt++) {
      const candidate = `kv${shortHash(`${this.name}/${podUid}/${salt}`, 12)}`;
      if (!taken.has(candidate)) return candidate;
    }
  }

  private async ensureBridge(): Promise<void> {
    const link = await findLink(this.bridge);
    if (link && link.linkinfo?.info_kind !== 'bridge') {
      throw new Error(`a ${link.linkinfo?.info_kind ?? 'non-bridge'} link named ${this.bridge} already exists on this machine; remove it (ip link del ${this.bridge}) or choose another pod network name`);
    }
    await this.checkOverlap();
    // A set address stays: otherwise a bridge takes its ports' lowest MAC, which changes as pods come and go
    // and leaves the gateway's MAC stale in the pods' neighbour caches.
    if (!link) await ip(['link', 'add', this.bridge, 'address', macFor(this.gateway), 'type', 'bridge']).catch(ignoreExists);
    const addrs = await ipJson<IpAddr>(['-4', 'addr', 'show', 'dev', this.bridge]);
    const infos = addrs.flatMap((a) => a.addr_info ?? []);
    for (const a of infos) {
      // /32s are Service ClusterIPs (ServiceProxy); any other address is a leftover of another configuration.
      if (a.prefixlen !== 32 && !(a.local === this.gateway && a.prefixlen === this.cidr.prefix)) {
        throw new Error(
          `the bridge ${this.bridge} has ${a.local}/${a.prefixlen}, not the gateway ${this.gateway}/${this.cidr.prefix} of pod CIDR ${this.podCidr}; ` +
            `another network of this name exists: tear it down (ip link del ${this.bridge}) or choose another name`,
        );
      }
    }
    if (!infos.some((a) => a.local === this.gateway && a.prefixlen === this.cidr.prefix)) {
      await ip(['addr', 'add', `${this.gateway}/${this.cidr.prefix}`, 'dev', this.bridge]).catch(ignoreExists);
    }
    await ip(['link', 'set', this.bridge, 'up']);
  }

  /** Refuses a pod CIDR that overlaps a route or an address of another device on this machine. */
  private async checkOverlap(): Promise<void> {
    const routes = await ipJson<IpRoute>(['-4', 'route', 'show', 'table', 'main']);
    for (const r of routes) {
      if (r.dst === 'default' || r.dev === this.bridge) continue;
      const dst = tryCidr(r.dst);
      if (dst && overlaps(dst, this.cidr)) {
        throw new Error(
          `the pod CIDR ${this.podCidr} overlaps the route ${r.dst}${r.dev ? ` on ${r.dev}` : ''} already on this machine; choose another pod CIDR`,
        );
      }
    }
    const addrs = await ipJson<IpAddr>(['-4', 'addr', 'show']);
    for (const a of addrs) {
      if (a.ifname === this.bridge) continue;
      for (const info of a.addr_info ?? []) {
        const n = parseIp(info.local);
        if (n !== undefined && contains(this.cidr, n)) {
          throw new Error(
            `the pod CIDR ${this.podCidr} holds the address ${info.local}/${info.prefixlen} of ${a.ifname} already on this machine; choose another pod CIDR`,
          );
        }
      }
    }
  }

  /** True when the netns, both veth ends, the address and the default route are all in place. */
  private async sandboxIsWhole(rec: PodRecord): Promise<boolean> {
    if (!existsSync(join(NETNS_DIR, rec.netnsName))) return false;
    const host = await findLink(rec.hostVeth);
    if (!host || host.master !== this.bridge || !(host.flags ?? []).includes('UP')) return false;
    try {
      const addrs = await ipJson<IpAddr>(['-n', rec.netnsName, '-4', 'addr', 'show', 'dev', 'eth0']);
      const hasIp = addrs.flatMap((a) => a.addr_info ?? []).some((a) => a.local === rec.ip && a.prefixlen === this.cidr.prefix);
      const routes = await ipJson<IpRoute>(['-n', rec.netnsName, '-4', 'route', 'show', 'default']);
      return hasIp && routes.some((r) => r.gateway === this.gateway);
    } catch {
      return false;
    }
  }

  /** Builds the sandbox from whatever part of it exists (none, or a crashed half). */
  private async build(rec: PodRecord): Promise<void> {
    const ns = rec.netnsName;
    if (!existsSync(join(NETNS_DIR, ns))) await ip(['netns', 'add', ns]);
    // A half-made pair is cheaper to redo than to inspect: deleting either end deletes both.
    if (await findLink(rec.hostVeth)) await ip(['link', 'del', rec.hostVeth]);
    if (await findLink('eth0', ns)) await ip(['-n', ns, 'link', 'del', 'eth0']);
    const peer = `kp${rec.hostVeth.slice(2)}`;
    if (await findLink(peer)) await ip(['link', 'del', peer]);
    // The pod's MAC follows from its IP, so a rebuilt sandbox answers at the MAC every neighbour cache holds.
    await ip(['link', 'add', rec.hostVeth, 'type', 'veth', 'peer', 'name', peer, 'address', macFor(rec.ip)]);
    await ip(['link', 'set', peer, 'netns', ns]);
    await ip(['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
    await ip(['-n', ns, 'addr', 'add', `${rec.ip}/${this.cidr.prefix}`, 'dev', 'eth0']);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    await ip(['-n', ns, 'route', 'replace', 'default', 'via', this.gateway, 'dev', 'eth0']);
    await ip(['link', 'set', rec.hostVeth, 'master', this.bridge]);
    await ip(['link', 'set', rec.hostVeth, 'up']);
  }

  private async destroy(rec: PodRecord): Promise<void> {
    await ip(['link', 'del', rec.hostVeth]).catch(ignoreMissing);
    if (existsSync(join(NETNS_DIR, rec.netnsName))) await ip(['netns', 'del', rec.netnsName]).catch(ignoreMissing);
  }
}

/** A locally administered unicast MAC from an IPv4 address: 0a:58:<the four octets in hex> (as CNI plugins do). */
function macFor(ipText: string): string {
  return ['0a', '58', ...ipText.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(':');
}

function shortHash(text: string, hexChars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, hexChars);
}

function tryCidr(text: string): Cidr | undefined {
  try {
    return parseCidr(text);
  } catch {
    return undefined;
  }
}

function ignoreMissing(e: unknown): void {
  if (!/Cannot find device|No such file|does not exist|Cannot open network namespace/i.test(String(e))) throw e;
}

function ignoreExists(e: unknown): void {
  if (!/File exists|already (exists|assigned)/i.test(String(e))) throw e;
}
