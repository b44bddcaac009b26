/**
 * IPv4 arithmetic for the local node's pod network: parsing dotted quads and CIDRs, the first host address
 * (the bridge's gateway), the usable host range and overlap between ranges. Pure functions; no I/O.
 */

/** An IPv4 network: its base address and prefix length, as numbers for arithmetic. */
export interface Cidr {
  readonly text: string; // as given, e.g. "10.250.7.0/24"
  readonly base: number; // network address as an unsigned 32-bit integer
  readonly prefix: number; // 0..32
}

const QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a dotted-quad IPv4 address to an unsigned integer, or returns undefined when it is not one. */
export function parseIp(text: string): number | undefined {
  const m = QUAD.exec(text);
  if (!m) return undefined;
  let n = 0;
  for (const part of m.slice(1)) {
    const octet = Number(part);
    if (octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

/** Formats an unsigned 32-bit integer as a dotted quad. */
export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The size of a prefix's block (2^(32-prefix)), exact for every prefix 0..32. */
export function blockSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

/**
 * Parses "a.b.c.d/p"; a bare address is a /32. Throws with the fix when the text is not a CIDR or has host bits
 * set (so "10.250.7.5/24" is refused with "did you mean 10.250.7.0/24").
 */
export function parseCidr(text: string, what = 'CIDR'): Cidr {
  const [addr, prefixText, ...rest] = text.split('/');
  const base = parseIp(addr ?? '');
  const prefix = prefixText === undefined ? 32 : /^\d{1,2}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (base === undefined || rest.length > 0 || !(prefix >= 0 && prefix <= 32)) {
    throw new Error(`the ${what} "${text}" is not an IPv4 CIDR like 10.250.7.0/24`);
  }
  const size = blockSize(prefix);
  const network = base - (base % size);
  if (network !== base) {
    throw new Error(`the ${what} "${text}" has host bits set; did you mean ${formatIp(network)}/${prefix}?`);
  }
  return { text, base, prefix };
}

/** Whether two ranges share any address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  const aEnd = a.base + blockSize(a.prefix);
  const bEnd = b.base + blockSize(b.prefix);
  return a.base < bEnd && b.base < aEnd;
}

/** Whether an address lies in a range. */
export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip < c.base + blockSize(c.prefix);
}

/** The first host address of a network (the gateway), e.g. 10.250.7.1 for 10.250.7.0/24. */
export function firstHost(c: Cidr): number {
  return c.base + 1;
}

/** The last host address (the one before broadcast), e.g. 10.250.7.254 for 10.250.7.0/24. */
export function lastHost(c: Cidr): number {
  return c.base + blockSize(c.prefix) - 2;
}
