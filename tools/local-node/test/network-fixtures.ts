/**
 * Helpers for the network tests: the root check (these tests make bridges and namespaces; they fail, never
 * skip, without root), test-unique names and CIDRs, a tiny TCP server run inside a netns (or on the host), a
 * client run from inside a netns, and a cleanup that removes whatever a test left even when it failed.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';

/** Throws a clear message when not root (CI runs these as root). */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('the network tests make bridges, veths and network namespaces: run them as root (CI does)');
  }
}

/** A test-unique network name (bridge kb-<name>), e.g. "t3f9a1c". */
export function uniqueName(): string {
  return `t${randomBytes(3).toString('hex')}`;
}

/**
 * A /24 at 10.<second>.<random in [from, to)>.0 (10.251 for pods, 10.252 for Services in these tests); test files
 * that run at once take disjoint ranges of the third octet.
 */
export function randomCidr(second: number, from = 1, to = 255): string {
  return `10.${second}.${randomInt(from, to)}.0/24`;
}

/**
 * A TCP server that answers every connection with `reply` then closes (or echoes, for 'ECHO'); run in a netns when `netns` is given.
 * Resolves once it listens.
 */
export function startServer(reply: string | 'ECHO', port: number, netns?: string): Promise<ChildProcess> {
  const handler = reply === 'ECHO' ? '(s) => s.pipe(s)' : `(s) => s.end(${JSON.stringify(reply)})`;
  const script = `require('net').createServer(${handler}).listen(${port}, '0.0.0.0', () => console.log('listening'))`;
  const argv = netns ? ['ip', 'netns', 'exec', netns, process.execPath, '-e', script] : [process.execPath, '-e', script];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`server (${reply}) exited ${code}: ${err}`)));
  });
}

/** Connects from the host, returns everything read until the peer closes. */
export function fetchFromHost(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let data = '';
    s.on('data', (d) => (data += d.toString()));
    s.on('error', reject);
    s.on('close', () => resolve(data));
  });
}

/** Connects from inside a netns (a node client run there), returns what it read until the peer closed. */
export function fetchFromNetns(netns: string, host: string, port: number): Promise<string> {
  const script = `const s = require('net').connect(${port}, ${JSON.stringify(host)}); let d = ''; s.on('data', (x) => d += x); s.on('error', (e) => { console.error(e.message); process.exit(2); }); s.on('close', () => process.stdout.write(d));`;
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`client in ${netns} → ${host}:${port}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Runs `ip <args>` and returns stdout (rejects on failure). */
export function ipOut(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { encoding: 'utf8' }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)));
  });
}

/** Whether a host link of that name exists. */
export async function linkExists(name: string): Promise<boolean> {
  return ipOut(['link', 'show', 'dev', name]).then(
    () => true,
    () => false,
  );
}

/** Removes every trace of network `name`: its netns, its bridge (and so its ports), whatever a test left. */
export async function scrub(name: string, children: ChildProcess[]): Promise<void> {
  for (const c of children) c.kill('SIGKILL');
  const strays = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`kiln-${name}-`)) : [];
  for (const n of strays) await ipOut(['netns', 'del', n]).catch(() => undefined);
  const links = JSON.parse(await ipOut(['-j', 'link', 'show'])) as { ifname: string; master?: string }[];
  for (const l of links.filter((x) => x.master === `kb-${name}`)) await ipOut(['link', 'del', l.ifname]).catch(() => undefined);
  await ipOut(['link', 'del', `kb-${name}`]).catch(() => undefined);
}
