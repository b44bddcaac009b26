/**
 * A thin wrapper over the `ip` command (iproute2) for the pod network: runs it without a shell, returns stdout,
 * and turns a failure into an error that names the command and iproute2's own message. JSON queries use `-j`.
 */
import { execFile } from 'node:child_process';

/** Runs `ip <args>`; rejects with "ip <args>: <stderr>" when it exits non-zero. */
export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why =
          code === 'ENOENT'
            ? 'the `ip` command (iproute2) is not installed; install iproute2'
            : stderr.trim() || err.message;
        reject(new Error(`ip ${args.join(' ')}: ${why}`));
        return;
      }
      resolve(stdout);
    });
  });
}

/** Runs `ip -j <args>` and parses its JSON (an empty output is an empty list). */
export async function ipJson<T>(args: readonly string[]): Promise<T[]> {
  const out = (await ip(['-j', ...args])).trim();
  return out === '' ? [] : (JSON.parse(out) as T[]);
}

/** One link as `ip -j link show` reports it (the fields the pod network reads). */
export interface IpLink {
  readonly ifname: string;
  readonly master?: string;
  readonly flags?: readonly string[];
  readonly operstate?: string;
  readonly linkinfo?: { readonly info_kind?: string };
  readonly link_netnsid?: number;
}

/** One interface's IPv4 addresses as `ip -j -4 addr show` reports them. */
export interface IpAddr {
  readonly ifname: string;
  readonly addr_info?: readonly { readonly local: string; readonly prefixlen: number; readonly family?: string }[];
}

/** One route as `ip -j -4 route show` reports it. */
export interface IpRoute {
  readonly dst: string; // "default", "a.b.c.d" or "a.b.c.d/p"
  readonly dev?: string;
  readonly gateway?: string;
}

/** The link of that name (in the given netns, or the host's), or undefined when there is none. */
export async function findLink(name: string, netns?: string): Promise<IpLink | undefined> {
  const links = await ipJson<IpLink>([...(netns ? ['-n', netns] : []), '-d', 'link', 'show']);
  return links.find((l) => l.ifname === name);
}
