/**
 * PII and secrets redaction for code files, after BigCode's regex pipeline (notes/data-and-eval.md §A2):
 * emails, public IPv4/IPv6 addresses, well-known key and token formats, PEM private keys, and high-entropy
 * strings assigned to a secret-ish name. Each family is skipped unless its trigger characters or prefixes
 * occur in the text, and every regex is linear (bounded quantifiers, no nested unbounded repetition).
 */

export type PiiKind = 'email' | 'ipv4' | 'ipv6' | 'aws-key' | 'github-token' | 'slack-token' | 'stripe-key' | 'jwt' | 'private-key' | 'secret';

export const PII_KINDS: readonly PiiKind[] = ['email', 'ipv4', 'ipv6', 'aws-key', 'github-token', 'slack-token', 'stripe-key', 'jwt', 'private-key', 'secret'];

/** A fixed replacement, or a function of the matched value (called once per distinct value within a text). */
export type Replacement = string | ((value: string, kind: PiiKind) => string);

export interface RedactOptions {
  /** Kinds to detect (default: all). */
  kinds?: readonly PiiKind[];
  /** Per-kind replacements; the defaults are `<EMAIL>`, `<KEY>`, and for IPs a private address of the same family. */
  replacements?: Partial<Record<PiiKind, Replacement>>;
  /** Also return the findings (kind, offsets into the input, matched value). */
  findings?: boolean;
}

export interface Finding {
  kind: PiiKind;
  start: number;
  end: number;
  value: string;
}

export interface RedactResult {
  text: string;
  counts: Record<PiiKind, number>;
  findings?: Finding[];
}

// BigCode's replacement pools: five private IPv4 and five unique-local IPv6 addresses.
const IPV4_POOL = ['172.16.31.10', '172.16.58.3', '172.16.17.32', '192.168.127.12', '192.168.3.11'];
const IPV6_POOL = ['fd00:c2b6:b24b:be67:2827:688d:e6a1:6a3b', 'fc00:e968:6179::de52:7100', 'fdf8:f53e:61e4::18', 'fd00:a516:7c1b:17cd:6d81:2137:bd2a:2c5b', 'fc00:db20:35b:7399::5'];

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const DEFAULT_REPLACEMENTS: Record<PiiKind, Replacement> = {
  email: '<EMAIL>',
  ipv4: (v) => IPV4_POOL[fnv1a(v) % IPV4_POOL.length]!,
  ipv6: (v) => IPV6_POOL[fnv1a(v) % IPV6_POOL.length]!,
  'aws-key': '<KEY>',
  'github-token': '<KEY>',
  'slack-token': '<KEY>',
  'stripe-key': '<KEY>',
  jwt: '<KEY>',
  'private-key': '<KEY>',
  secret: '<KEY>',
};

// Earlier kinds win when matches overlap.
const PRIORITY: readonly PiiKind[] = ['private-key', 'jwt', 'github-token', 'slack-token', 'stripe-key', 'aws-key', 'secret', 'email', 'ipv6', 'ipv4'];

// ---------------------------------------------------------------- emails

const LOCAL_CHAR = /[A-Za-z0-9._%+-]/;
const DOMAIN = /(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,10}([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})(?!\.?[A-Za-z0-9_-])/y;
// File extensions that would otherwise pass as TLDs (`icon@2x.png`, `pkg@module.py`).
const FILE_EXT = new Set(['png', 'jpg', 'jpeg', 'gif', 'svg', 'webp', 'ico', 'bmp', 'py', 'pyc', 'js', 'mjs', 'ts', 'tsx', 'jsx', 'rb', 'sh', 'md', 'txt', 'rs', 'go', 'cc', 'cpp', 'hpp', 'java', 'json', 'yaml', 'yml', 'css', 'html', 'htm', 'xml', 'lock', 'zip', 'gz', 'tar', 'whl', 'so', 'dll', 'exe', 'pdf', 'csv', 'wasm', 'map']);
// RFC 2606 / 6761 reserved names: addresses there are placeholders, not personal data.
const RESERVED_DOMAIN = /(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost|local)$/i;

function findEmails(text: string, out: Finding[]): void {
  let at = text.indexOf('@');
  while (at !== -1) {
    let s = at;
    while (s > 0 && at - s < 64 && LOCAL_CHAR.test(text[s - 1]!)) s--;
    while (s < at && /[.%+-]/.test(text[s]!)) s++; // a local part starts with a letter or digit
    if (s < at && text[at - 1] !== '.') {
      DOMAIN.lastIndex = at + 1;
      const m = DOMAIN.exec(text);
      if (m) {
        const tld = m[1]!.toLowerCase();
        const domain = m[0];
        if (!FILE_EXT.has(tld) && !RESERVED_DOMAIN.test(domain) && !/^\d+x\./i.test(domain)) {
          const end = at + 1 + domain.length;
          out.push({ kind: 'email', start: s, end, value: text.slice(s, end) });
          at = text.indexOf('@', end);
          continue;
        }
      }
    }
    at = text.indexOf('@', at + 1);
  }
}

// ---------------------------------------------------------------- IP addresses

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w]|\\.\\d)`, 'g');
const PUBLIC_DNS = new Set(['8.8.8.8', '8.8.4.4', '1.1.1.1', '1.0.0.1', '76.76.19.19', '76.223.122.150', '9.9.9.9', '149.112.112.112', '208.67.222.222', '208.67.220.220', '8.26.56.26', '8.20.247.20', '94.140.14.14', '94.140.15.15']);
const VERSION_BEFORE = /(?:version\w*|\bver|\bv|==|>=|<=|~=|!=|\^|~|@|release|rev(?:ision)?|build)["']?\s*[:=]?\s*[([]?\s*["']?$/i;
const DATE_BEFORE = /\b(?:date|time|day|year|timestamp)\w*["']?\s*[:=(]?\s*["']?$/i;
const IP_CONTEXT = /\b(?:ip|dns|server|host|addr|address|nameserver|gateway|proxy|connect|socket|inet)/i;

/** Private, loopback, link-local, shared, documentation, multicast and reserved IPv4 ranges. */
export function isNonPublicIpv4(o: readonly number[]): boolean {
  const [a, b, c] = o as [number, number, number, number];
  return a === 0 || a === 10 || a === 127 || a >= 224 || (a === 100 && b >= 64 && b <= 127) || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 192 && b === 0 && (c === 0 || c === 2)) || (a === 198 && (b === 18 || b === 19)) || (a === 198 && b === 51 && c === 100) || (a === 203 && b === 0 && c === 113);
}

function lineAround(text: string, start: number, end: number): { before: string; after: string } {
  const ls = Math.max(text.lastIndexOf('\n', start - 1) + 1, start - 100);
  let le = text.indexOf('\n', end);
  if (le === -1 || le > end + 100) le = Math.min(text.length, end + 100);
  return { before: text.slice(ls, start), after: text.slice(end, le) };
}

function findIpv4(text: string, out: Finding[]): void {
  IPV4.lastIndex = 0;
  for (let m = IPV4.exec(text); m; m = IPV4.exec(text)) {
    const v = m[0];
    const o = v.split('.').map(Number);
    if (isNonPublicIpv4(o) || PUBLIC_DNS.has(v)) continue;
    const { before, after } = lineAround(text, m.index, m.index + v.length);
    if (VERSION_BEFORE.test(before) || DATE_BEFORE.test(before)) continue;
    if (/^-\d/.test(after)) continue; // `1.2.3.4-beta` style versions and `1.2.3.4-5` ranges
    // BigCode: `x.x.x.x` (seven characters) is a version unless the context talks about addresses.
    if (v.length === 7 && !IP_CONTEXT.test(text.slice(Math.max(0, m.index - 100), m.index + 107))) continue;
    out.push({ kind: 'ipv4', start: m.index, end: m.index + v.length, value: v });
  }
}

const IPV6 = /(?<![\w:.])(?:[0-9A-Fa-f]{1,4}|(?=::))(?::{1,2}[0-9A-Fa-f]{0,4}){2,8}(?:\.\d{1,3}){0,3}(?![\w:.]|\.\d)/g;

/** Parses an IPv6 address into its eight 16-bit groups, or returns undefined. */
export function parseIpv6(s: string): number[] | undefined {
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return undefined;
  if (s.includes(':::')) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const gs = part.split(':');
    for (let i = 0; i < gs.length; i++) {
      const g = gs[i]!;
      if (i === gs.length - 1 && g.includes('.')) {
        const o = g.split('.');
        if (o.length !== 4 || o.some((x) => !/^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(x))) return undefined;
        const n = o.map(Number) as [number, number, number, number];
        out.push((n[0] << 8) | n[1], (n[2] << 8) | n[3]);
      } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) out.push(parseInt(g, 16));
      else return undefined;
    }
    return out;
  };
  if (dbl === -1) {
    const g = parseGroups(s);
    return g && g.length === 8 ? g : undefined;
  }
  const head = parseGroups(s.slice(0, dbl));
  const tail = parseGroups(s.slice(dbl + 2));
  if (!head || !tail || head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

const PUBLIC_DNS6 = new Set(['2001:4860:4860:0:0:0:0:8888', '2001:4860:4860:0:0:0:0:8844', '2606:4700:4700:0:0:0:0:1111', '2606:4700:4700:0:0:0:0:1001']);

/** Unspecified, loopback, IPv4-mapped/compatible, unique-local, link-local, multicast, documentation, NAT64 well-known. */
export function isNonPublicIpv6(g: readonly number[]): boolean {
  const a = g[0]!;
  if (a === 0) return true; // ::, ::1, ::ffff:0:0/96 and the rest of ::/8 (reserved)
  if ((a & 0xfe00) === 0xfc00 || (a & 0xffc0) === 0xfe80 || (a & 0xff00) === 0xff00) return true;
  if (a === 0x2001 && g[1] === 0x0db8) return true;
  if (a === 0x64 && g[1] === 0xff9b) return true;
  return PUBLIC_DNS6.has(g.map((x) => x.toString(16)).join(':'));
}

function findIpv6(text: string, out: Finding[]): void {
  IPV6.lastIndex = 0;
  for (let m = IPV6.exec(text); m; m = IPV6.exec(text)) {
    const v = m[0];
    const g = parseIpv6(v);
    if (!g) continue;
    // Code is full of `a::b` (C++ scopes, Python slices): with `::`, ask for three written groups and a digit.
    const written = v.split(/:+/).filter((x) => x !== '').length;
    if (v.includes('::') && (written < 3 || !/\d/.test(v))) continue;
    if (isNonPublicIpv6(g)) continue;
    out.push({ kind: 'ipv6', start: m.index, end: m.index + v.length, value: v });
  }
}

// ---------------------------------------------------------------- keys and tokens

interface Rule {
  kind: PiiKind;
  re: RegExp;
  trigger: (text: string) => boolean;
}

const RULES: readonly Rule[] = [
  {
    kind: 'private-key',
    re: /-----BEGIN ((?:[A-Z0-9]{1,20} ){0,3})PRIVATE KEY(?: BLOCK)?-----[\s\S]{0,65536}?-----END \1PRIVATE KEY(?: BLOCK)?-----/g,
    trigger: (t) => t.includes('-----BEGIN'),
  },
  { kind: 'jwt', re: /(?<![\w-])eyJ[A-Za-z0-9_-]{4,4096}\.[A-Za-z0-9_-]{4,8192}\.[A-Za-z0-9_-]{8,4096}(?![\w-])/g, trigger: (t) => t.includes('eyJ') },
  { kind: 'github-token', re: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,243})(?![A-Za-z0-9_])/g, trigger: (t) => t.includes('gh') || t.includes('github_pat_') },
  { kind: 'slack-token', re: /(?<![A-Za-z0-9])(?:xox[abposr]-[A-Za-z0-9]{1,64}(?:-[A-Za-z0-9]{1,64}){1,6}|https:\/\/hooks\.slack\.com\/services\/T[A-Z0-9]{6,12}\/B[A-Z0-9]{6,12}\/[A-Za-z0-9]{16,32})(?![A-Za-z0-9-])/g, trigger: (t) => t.includes('xox') || t.includes('hooks.slack.com') },
  { kind: 'stripe-key', re: /(?<![A-Za-z0-9_])(?:sk|rk|pk)_live_[0-9A-Za-z]{10,99}(?![A-Za-z0-9_])/g, trigger: (t) => t.includes('_live_') },
  { kind: 'aws-key', re: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g, trigger: (t) => t.includes('AKIA') || t.includes('ASIA') },
];

// ---------------------------------------------------------------- high-entropy secrets in assignments

// A secret-ish name, the rest of the identifier, an optional closing quote/bracket, an assignment operator, then
// a quoted literal (group 2) or a bare value running to the end of the token (group 3).
const SECRET_ASSIGN = /(?:secret|passw(?:or)?d|\bpwd|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?(?:key|token)|authorization|credential|private[_-]?key|signing[_-]?key|encryption[_-]?key|client[_-]?secret|\bsalt)[\w.-]{0,40}["'\]]?\s{0,8}(?::=|=>|=|:)\s{0,8}(?:Bearer\s+)?(?:[rbuRBU]?(["'`])([^"'`\s\\]{16,512})\1|([A-Za-z0-9+/=_~-]{20,512})(?=[\s,;}]|$))/gi;

function entropy(s: string): number {
  const freq = new Map<string, number>();
  for (const c of s) freq.set(c, (freq.get(c) ?? 0) + 1);
  let h = 0;
  for (const n of freq.values()) {
    const p = n / s.length;
    h -= p * Math.log2(p);
  }
  return h;
}

const SEQUENCES = ['ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789ABCDEF0123456789ABCDEF', 'ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/', 'QWERTYUIOPASDFGHJKLZXCVBNM1234567890'];
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const PLACEHOLDER = /x{4,}|\*{3,}|\.{3}|^<.*>$|\$\{|\{\{|%\(|%s|^\$|your[_-]?|example|changeme|change[_-]me|dummy|placeholder|redacted|replace[_-]?me|fake|sample|insert[_-]|put[_-]your|<[a-z_-]+>/i;
const IDENTIFIERISH = /^[A-Za-z_$][\w$]*(?:[.:][A-Za-z_$][\w$]*)+$|^[a-z]+(?:[_-][a-z]+)+$|^[A-Z]+(?:[_-][A-Z]+)+$|:\/\/|^(?:\/[a-z0-9_.-]+)+\/?$/;
const HASH_WORD = /sha|md5|hash|digest|checksum|fingerprint|byte|commit|\bsum\b/i;

/** Whether a literal assigned to a secret-ish name looks like a real secret (random, not a placeholder/id/hash). */
export function looksLikeSecret(value: string, line: string): boolean {
  if (value.length < 16) return false;
  if (UUID.test(value) || PLACEHOLDER.test(value) || IDENTIFIERISH.test(value)) return false;
  const up = value.toUpperCase();
  if (SEQUENCES.some((s) => s.includes(up))) return false;
  if (/^[0-9a-f]+$/i.test(value)) {
    if ([32, 40, 64, 128].includes(value.length) && HASH_WORD.test(line)) return false;
    return value.length >= 20 && entropy(value) >= 3.0;
  }
  const classes = (/[a-z]/.test(value) ? 1 : 0) + (/[A-Z]/.test(value) ? 1 : 0) + (/\d/.test(value) ? 1 : 0);
  if (classes < 2) return false;
  if (/^[A-Za-z]+$/.test(value) && /[a-z]{5,}/.test(value)) return false; // CamelCase names, not random letters
  if (/^\d+$/.test(value.replace(/[.\-_:]/g, ''))) return false; // numbers, dates, versions
  // Shannon entropy, relative to what a random string of this length over base64 could reach.
  return entropy(value) >= Math.min(4.2, 0.8 * Math.log2(value.length));
}

function findSecrets(text: string, out: Finding[]): void {
  SECRET_ASSIGN.lastIndex = 0;
  for (let m = SECRET_ASSIGN.exec(text); m; m = SECRET_ASSIGN.exec(text)) {
    const value = (m[2] ?? m[3])!;
    const close = m[2] !== undefined ? (m[1] ?? '').length : 0;
    const end = m.index + m[0].length - close;
    const start = end - value.length;
    const { before, after } = lineAround(text, start, end);
    const line = before + value + after;
    const name = m[0].slice(0, m[0].length - value.length);
    if (/aws/i.test(before) && /^[A-Za-z0-9/+]{40}$/.test(value) && /secret/i.test(name + before)) {
      out.push({ kind: 'aws-key', start, end, value });
      continue;
    }
    if (/os\.environ|getenv|process\.env/.test(line) && !/["'`]/.test(m[0].slice(-1))) continue;
    if (m[3] !== undefined && !(/\d/.test(value) && /[A-Za-z]/.test(value))) continue; // bare values: identifiers unless mixed
    if (!looksLikeSecret(value, line)) continue;
    out.push({ kind: 'secret', start, end, value });
  }
}

const SECRET_TRIGGER = /secret|passw|pwd|token|key|auth|credential|salt/i;

// ---------------------------------------------------------------- redaction

function zeroCounts(): Record<PiiKind, number> {
  return { email: 0, ipv4: 0, ipv6: 0, 'aws-key': 0, 'github-token': 0, 'slack-token': 0, 'stripe-key': 0, jwt: 0, 'private-key': 0, secret: 0 };
}

/** Finds PII and secrets in `text` (no overlaps; sorted by offset). */
export function detect(text: string, kinds: readonly PiiKind[] = PII_KINDS): Finding[] {
  const want = new Set(kinds);
  const byKind = new Map<PiiKind, Finding[]>();
  const add = (k: PiiKind, f: (t: string, out: Finding[]) => void): void => {
    const out: Finding[] = [];
    f(text, out);
    byKind.set(k, out);
  };
  for (const r of RULES) {
    if (!want.has(r.kind) || !r.trigger(text)) continue;
    const out: Finding[] = [];
    r.re.lastIndex = 0;
    for (let m = r.re.exec(text); m; m = r.re.exec(text)) out.push({ kind: r.kind, start: m.index, end: m.index + m[0].length, value: m[0] });
    byKind.set(r.kind, out);
  }
  if ((want.has('secret') || want.has('aws-key')) && SECRET_TRIGGER.test(text)) {
    const out: Finding[] = [];
    findSecrets(text, out);
    byKind.set('secret', out.filter((f) => f.kind === 'secret' && want.has('secret')));
    const aws = out.filter((f) => f.kind === 'aws-key' && want.has('aws-key'));
    if (aws.length) byKind.set('aws-key', [...(byKind.get('aws-key') ?? []), ...aws]);
  }
  if (want.has('email') && text.includes('@')) add('email', findEmails);
  if (want.has('ipv6') && text.includes(':')) add('ipv6', findIpv6);
  if (want.has('ipv4') && text.includes('.')) add('ipv4', findIpv4);

  // Resolve overlaps by priority: kept intervals stay sorted by start.
  const kept: Finding[] = [];
  for (const k of PRIORITY) {
    for (const f of byKind.get(k) ?? []) {
      let lo = 0;
      let hi = kept.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (kept[mid]!.start < f.start) lo = mid + 1;
        else hi = mid;
      }
      const prev = kept[lo - 1];
      const next = kept[lo];
      if ((prev && prev.end > f.start) || (next && next.start < f.end)) continue;
      kept.splice(lo, 0, f);
    }
  }
  return kept;
}

/** Redacts PII and secrets; the same value of the same kind gets the same replacement within a text. */
export function redact(text: string, opts: RedactOptions = {}): RedactResult {
  const found = detect(text, opts.kinds ?? PII_KINDS);
  const counts = zeroCounts();
  if (found.length === 0) return opts.findings ? { text, counts, findings: [] } : { text, counts };
  const memo = new Map<string, string>();
  const parts: string[] = [];
  let pos = 0;
  for (const f of found) {
    counts[f.kind]++;
    const key = `${f.kind}\u0000${f.value}`;
    let rep = memo.get(key);
    if (rep === undefined) {
      const r = opts.replacements?.[f.kind] ?? DEFAULT_REPLACEMENTS[f.kind];
      rep = typeof r === 'function' ? r(f.value, f.kind) : r;
      memo.set(key, rep);
    }
    parts.push(text.slice(pos, f.start), rep);
    pos = f.end;
  }
  parts.push(text.slice(pos));
  const result: RedactResult = { text: parts.join(''), counts };
  if (opts.findings) result.findings = found;
  return result;
}
