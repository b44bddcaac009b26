/** Parsing of the spec's human quantities: token counts (`525B`), shares (`1%`) and byte sizes (`2GiB`). */

const TOKEN_SUFFIX: Record<string, number> = { '': 1, K: 1e3, M: 1e6, B: 1e9, T: 1e12 };
const BYTE_UNIT: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
};

/** `525B` → 525000000000; integers pass through. Throws on anything the schema would reject. */
export function parseTokens(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^([0-9]+(?:\.[0-9]+)?)([KMBT]?)$/.exec(v);
  if (!m) throw new Error(`not a token count: ${v}`);
  return Math.round(Number(m[1]) * TOKEN_SUFFIX[m[2]!]!);
}

/** A token count, or a share of `budget` when written as `N%`. */
export function parseTokensOrShare(v: number | string, budget: number): number {
  if (typeof v === 'string' && v.endsWith('%')) return Math.round((Number(v.slice(0, -1)) / 100) * budget);
  return parseTokens(v);
}

export function parseBytes(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^([0-9]+(?:\.[0-9]+)?) ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/.exec(v);
  if (!m) throw new Error(`not a byte size: ${v}`);
  return Math.round(Number(m[1]) * BYTE_UNIT[m[2]!]!);
}

/** Prints a count with an SI suffix and three significant digits: 2.65e9 → `2.65B`. */
export function formatCount(n: number): string {
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  for (const [size, suffix] of units) {
    if (Math.abs(n) >= size) return `${Number((n / size).toPrecision(3))}${suffix}`;
  }
  return String(Number(n.toPrecision(3)));
}

const K8S_UNIT: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50 };

/** A Kubernetes quantity (`500m`, `2`, `4Gi`) as a number: cores for CPU, bytes for memory. */
export function parseK8sQuantity(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$/.exec(v);
  if (!m) throw new Error(`not a Kubernetes quantity: ${v}`);
  return Number(m[1]) * K8S_UNIT[m[2] ?? '']!;
}
