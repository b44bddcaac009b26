import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PII_KINDS, parseIpv6, redact, type PiiKind } from '../src/pii.ts';

const kindsFound = (text: string): PiiKind[] => (redact(text, { findings: true }).findings ?? []).map((f) => f.kind);

// Deterministic PRNG (mulberry32) so the generated corpus is the same on every run.
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const B64URL = `${ALNUM}-_`;
const UPPER_DIGITS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';

const random = (seed: number) => {
  const r = prng(seed);
  const int = (n: number) => Math.floor(r() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const str = (alphabet: string, n: number) => Array.from({ length: n }, () => alphabet[int(alphabet.length)]).join('');
  return { r, int, pick, str };
};

describe('redact: emails', () => {
  it('GIVEN an email in a comment WHEN redacted THEN it becomes <EMAIL> and is counted', () => {
    const r = redact('# Author: Jane Doe <jane.doe@acme-corp.com>\nx = 1\n');
    expect(r.text).toBe('# Author: Jane Doe <<EMAIL>>\nx = 1\n');
    expect(r.counts.email).toBe(1);
  });
  it('GIVEN subdomains, plus-tags and a ccTLD THEN the whole address is replaced', () => {
    expect(redact('mail "ops+alerts@mail.eu.widgets.co.uk" now').text).toBe('mail "<EMAIL>" now');
  });
  it('GIVEN retina image names, bare user@host, decorators, matmul and reserved domains THEN nothing is found', () => {
    const code = ['img = "icon@2x.png"', 'ssh foo@bar', '@property', 'def f(self):', 'y = x@w', 'z = a@b.T', 'ok = "user@example.com"', 'pkg@module.py', 'x @ self.weight'].join('\n');
    expect(kindsFound(code)).toEqual([]);
  });
});

describe('redact: IPv4', () => {
  it('GIVEN a public address THEN it is replaced by a private IPv4 address and counted', () => {
    const r = redact('HOST = "52.14.203.77"\n');
    expect(r.counts.ipv4).toBe(1);
    expect(r.text).not.toContain('52.14.203.77');
    expect(r.text).toMatch(/^HOST = "(?:172\.16\.\d+\.\d+|192\.168\.\d+\.\d+)"\n$/);
  });
  it('GIVEN private, reserved, multicast, broadcast addresses and public DNS resolvers THEN none is found', () => {
    const ips = ['10.1.2.3', '172.20.0.5', '192.168.1.10', '127.0.0.1', '0.0.0.0', '169.254.1.1', '100.64.3.3', '224.0.0.251', '255.255.255.255', '255.255.255.0', '8.8.8.8', '1.1.1.1', '9.9.9.9', '208.67.222.222'];
    expect(kindsFound(ips.map((ip) => `connect("${ip}")`).join('\n'))).toEqual([]);
  });
  it('GIVEN version numbers and dotted sequences THEN none is found', () => {
    const code = ['__version__ = "41.2.3.14"', 'version: 12.4.1.33', 'pkg==21.3.12.4', 'release v12.30.1.4', 'oid = "1.3.6.1.4.1.311"', 'x = "12.4.1.33.5"', 'VERSION = (3, 1) # 1.2.3.4', 'requires >= 11.2.33.4', 'date = 12.11.20.21'].join('\n');
    expect(kindsFound(code)).toEqual([]);
  });
  it('GIVEN x.x.x.x THEN it is a version unless the context talks about a server', () => {
    expect(kindsFound('tested with 3.4.5.6\n')).toEqual([]);
    expect(kindsFound('dns server at 3.4.5.6\n')).toEqual(['ipv4']);
  });
});

describe('redact: IPv6', () => {
  it('GIVEN full and compressed public addresses THEN they are replaced with unique-local ones', () => {
    const r = redact('a = "2607:f8b0:4005:80a::200e"\nb = "2a03:2880:f12f:83:face:b00c:0:25de"\n');
    expect(r.counts.ipv6).toBe(2);
    expect(r.text).not.toMatch(/2607|2a03/);
    expect(r.text).toMatch(/^a = "f[cd][0-9a-f:]+"\nb = "f[cd][0-9a-f:]+"\n$/);
  });
  it('GIVEN loopback, unspecified, ULA, link-local, documentation addresses THEN none is found', () => {
    expect(kindsFound(['::1', '::', 'fd12:3456:789a::1', 'fe80::1ff:fe23:4567:890a', '2001:db8:85a3::8a2e:370:7334', 'ff02::1:2'].map((a) => `h = "${a}"`).join('\n'))).toEqual([]);
  });
  it('GIVEN code with colons (C++ scopes, slices, times, dict literals, MACs) THEN none is found', () => {
    const code = ['std::vector<int> v;', 'a::b::c();', 'x = y[1::2]', 'at 12:30:45 today', '{a:b:c}', 'mac = "00:1a:2b:3c:4d:5e"', 'dead::beef', 'ab:cd:ef'].join('\n');
    expect(kindsFound(code)).toEqual([]);
  });
  it('parses groups and :: compression strictly', () => {
    expect(parseIpv6('2001:db8::1')).toEqual([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]);
    expect(parseIpv6('::ffff:1.2.3.4')).toEqual([0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]);
    expect(parseIpv6('1::2::3')).toBeUndefined();
    expect(parseIpv6('1:2:3:4:5:6:7')).toBeUndefined();
    expect(parseIpv6('12345::1')).toBeUndefined();
    expect(parseIpv6('1:2:3:4:5:6:7::8')).toBeUndefined();
  });
});

describe('redact: keys and tokens', () => {
  const cases: [PiiKind, string][] = [
    ['aws-key', 'AKIAIOSFODNN7EXAMPLQ'],
    ['aws-key', 'ASIAY34FZKBOKMUTVV7A'],
    ['github-token', `ghp_${'aB3'.repeat(12)}`],
    ['github-token', `github_pat_11ABCDEFG0${'x9Y'.repeat(20)}`],
    ['slack-token', 'xoxb-263594206564-2343594206574-FGqddMF8t08v8N7Oq4i57vs1'],
    ['stripe-key', 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'],
    ['jwt', 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c'],
  ];
  for (const [kind, value] of cases) {
    it(`GIVEN a ${kind} in code THEN it is replaced by <KEY> and counted as ${kind}`, () => {
      const r = redact(`cfg = {"k": "${value}"}\n`);
      expect(r.text).toBe('cfg = {"k": "<KEY>"}\n');
      expect(r.counts[kind]).toBe(1);
    });
  }
  it('GIVEN an AWS secret access key assigned to its usual name THEN it is an aws-key', () => {
    const r = redact('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n');
    expect(r.counts['aws-key']).toBe(1);
    expect(r.text).toBe('aws_secret_access_key = "<KEY>"\n');
  });
  it('GIVEN near misses (short AKIA, ghp_ too short, sk_test_) THEN nothing is found', () => {
    expect(kindsFound('AKIA1234\nghp_abc123\nsk_test_4eC39HqLyjWDarjtT1zdp7dc\nxoxb-\neyJhbGciOi\nAKIAIOSFODNN7EXAMPLQX9')).toEqual([]);
  });
  it('GIVEN a PEM private key block THEN the whole block is replaced, BEGIN to END', () => {
    const pem = `-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\nZ1BjP5CE8Wm8yj4O9d1kQ==\n-----END RSA PRIVATE KEY-----`;
    const r = redact(`KEY = """${pem}"""\nx = 1\n`);
    expect(r.text).toBe('KEY = """<KEY>"""\nx = 1\n');
    expect(r.counts['private-key']).toBe(1);
    expect(kindsFound('-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----')).toEqual([]);
  });
});

describe('redact: high-entropy secrets', () => {
  it('GIVEN random strings assigned to secret-ish names THEN they are replaced and counted', () => {
    const code = ['api_key = "Zk3q9LmX2vR7tYp1Wb8NcD4e"', "token: 'h7G2kLq9Zx4RmP1vT8bN3wYc5Fd6'", 'DB_PASSWORD="p9X!k2#Lm4@Qz7$w"', 'CLIENT_SECRET=9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a', 'secret := "Q2hhbmdlZE15TWluZDEyMzQ1Njc4OQ"'].join('\n');
    const r = redact(code);
    expect(r.counts.secret).toBe(5);
    expect(r.text).toBe(['api_key = "<KEY>"', "token: '<KEY>'", 'DB_PASSWORD="<KEY>"', 'CLIENT_SECRET=<KEY>', 'secret := "<KEY>"'].join('\n'));
  });
  it('GIVEN non-secrets in secret-ish assignments THEN none is found', () => {
    const code = [
      'api_key = "123e4567-e89b-12d3-a456-426614174000"', // UUID
      'token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"', // hash near sha
      'secret = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"', // sequential
      'password = "xxxxxxxxxxxxxxxxxxxxxxxx"', // placeholder
      'api_key = "<your-api-key-goes-here>"',
      'token = "${GITHUB_TOKEN_FROM_ENVIRONMENT}"',
      'password = os.environ["DATABASE_PASSWORD_VALUE"]',
      'secret_key = "django-insecure-change-me-please"',
      'token_class = "AbstractBasicAuthHandler"',
      'password = "correcthorsebatterystaple"',
      'api_key = "a1b2c3"', // too short
    ].join('\n');
    expect(kindsFound(code)).toEqual([]);
  });
  it('GIVEN a random string without a secret-ish name THEN it is left alone', () => {
    expect(kindsFound('color = "Zk3q9LmX2vR7tYp1Wb8NcD4e"\n')).toEqual([]);
  });
});

describe('redact: options and consistency', () => {
  it('GIVEN the same secret twice THEN both get the same replacement; different IPs may differ but each is stable', () => {
    let n = 0;
    const r = redact('a = "45.33.32.156"\nb = "45.33.32.156"\nc = "ghp_' + 'Q'.repeat(36) + '"\nd = "ghp_' + 'Q'.repeat(36) + '"\n', { replacements: { 'github-token': () => `<TOKEN_${++n}>` } });
    const [a, b, c, d] = r.text.split('\n');
    expect(a!.slice(4)).toBe(b!.slice(4));
    expect(c).toBe('c = "<TOKEN_1>"');
    expect(d).toBe('d = "<TOKEN_1>"');
    expect(r.counts.ipv4).toBe(2);
    expect(r.counts['github-token']).toBe(2);
  });
  it('GIVEN opts.kinds THEN only those kinds are redacted', () => {
    const r = redact('x = "bob@corp.io" # 45.33.32.156', { kinds: ['ipv4'] });
    expect(r.text).toContain('bob@corp.io');
    expect(r.text).not.toContain('45.33.32.156');
    expect(r.counts.email).toBe(0);
  });
  it('GIVEN a fixed replacement string THEN it is used', () => {
    expect(redact('x = "bob@corp.io"', { replacements: { email: 'nobody@example.com' } }).text).toBe('x = "nobody@example.com"');
  });
  it('GIVEN text with no triggers THEN it comes back unchanged with zero counts', () => {
    const r = redact('def f(x):\n    return x + 1\n');
    expect(r.text).toBe('def f(x):\n    return x + 1\n');
    expect(Object.values(r.counts).every((n) => n === 0)).toBe(true);
  });
  it('GIVEN pathological input THEN it finishes quickly (no catastrophic backtracking)', () => {
    const t0 = performance.now();
    redact(`${'a.'.repeat(50_000)}@${'b-'.repeat(50_000)}${':'.repeat(50_000)}${'1.'.repeat(50_000)}${'eyJ' + 'A'.repeat(100_000)}${'token = "'.repeat(10_000)}`);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

// ---------------------------------------------------------------- generated corpus with planted items

function plant(kind: PiiKind, g: ReturnType<typeof random>): string {
  switch (kind) {
    case 'email':
      return `${g.str(LOWER, 3 + g.int(6))}${g.pick(['.', '_', ''])}${g.str(LOWER, 2 + g.int(6))}@${g.str(LOWER, 4 + g.int(6))}.${g.pick(['com', 'org', 'net', 'io', 'de', 'co.uk', 'fr', 'dev'])}`;
    case 'ipv4':
      for (;;) {
        const o = [1 + g.int(223), g.int(256), g.int(256), 1 + g.int(254)];
        const [a, b] = o as [number, number];
        const reserved = a === 10 || a === 127 || a === 100 || a === 169 || a === 172 || a === 192 || a === 198 || a === 203 || a < 11 || (a === 8 && b === 8);
        if (!reserved) return o.join('.');
      }
    case 'ipv6': {
      const gs = [(0x2400 + g.int(0x600)).toString(16), ...Array.from({ length: 7 }, () => g.int(0x10000).toString(16))];
      if (g.r() < 0.5) return gs.join(':');
      return `${gs.slice(0, 4).join(':')}::${gs.slice(6).join(':')}`;
    }
    case 'aws-key':
      return `${g.pick(['AKIA', 'ASIA'])}${g.str(UPPER_DIGITS, 16)}`;
    case 'github-token':
      return g.r() < 0.8 ? `${g.pick(['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_'])}${g.str(ALNUM, 36)}` : `github_pat_${g.str(ALNUM, 22)}_${g.str(ALNUM, 59)}`;
    case 'slack-token':
      return `xox${g.pick(['b', 'p', 'a'])}-${g.str('0123456789', 12)}-${g.str('0123456789', 13)}-${g.str(ALNUM, 24)}`;
    case 'stripe-key':
      return `${g.pick(['sk', 'rk', 'pk'])}_live_${g.str(ALNUM, 24 + g.int(75))}`;
    case 'jwt':
      return `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ${g.str(B64URL, 20 + g.int(80))}.${g.str(B64URL, 43)}`;
    case 'private-key': {
      const t = g.pick(['RSA ', 'EC ', 'OPENSSH ', '']);
      const body = Array.from({ length: 3 + g.int(5) }, () => g.str(`${ALNUM}+/`, 64)).join('\\n');
      return `-----BEGIN ${t}PRIVATE KEY-----\\n${body}\\n-----END ${t}PRIVATE KEY-----`;
    }
    case 'secret':
      return g.str(`${ALNUM}+/`, 24 + g.int(40));
  }
}

function snippet(kind: PiiKind, value: string, g: ReturnType<typeof random>): string {
  const id = () => `${g.str(LOWER, 2 + g.int(6))}_${g.str(LOWER, 2 + g.int(6))}`;
  const lang = g.pick(['py', 'js', 'go', 'yaml'] as const);
  const filler = (): string =>
    ({
      py: () => g.pick([`def ${id()}(${id()}, ${id()}=${g.int(100)}):`, `    ${id()} = ${id()}.${id()}(${g.int(10)})`, `    return ${id()} + ${g.r().toFixed(3)}`, `import ${id()}`, `# TODO: ${id()} ${id()}`, `@${id()}`]),
      js: () => g.pick([`const ${id()} = require('${id()}');`, `function ${id()}(${id()}) {`, `  return ${id()}.${id()}[${g.int(9)}];`, `}`, `// ${id()} ${id()}`, `export default ${id()};`]),
      go: () => g.pick([`func ${id()}(${id()} int) error {`, `\t${id()} := ${id()}.${id()}()`, `\treturn nil`, `}`, `// ${id()} handles ${id()}`, `var ${id()} = map[string]int{"a": ${g.int(9)}}`]),
      yaml: () => g.pick([`${id()}:`, `  ${id()}: ${g.int(1000)}`, `  - name: ${id()}`, `  image: ${id()}:${g.int(9)}.${g.int(9)}`, `# ${id()}`]),
    })[lang]();
  const keyName = g.pick(['api_key', 'SECRET_KEY', 'password', 'auth_token', 'client_secret', 'accessKey']);
  const line =
    kind === 'secret'
      ? { py: `${keyName} = "${value}"`, js: `  ${keyName}: '${value}',`, go: `\t${keyName} := "${value}"`, yaml: `  ${keyName}: ${value}` }[lang]
      : g.pick([`x = "${value}"`, `# contact ${value} for details`, `  url: "${value}"`, `\tcall(${id()}, "${value}")`, `${id()} = ['${value}']`]);
  const lines = Array.from({ length: 3 + g.int(15) }, filler);
  lines.splice(g.int(lines.length + 1), 0, line);
  return `${lines.join('\n')}\n`;
}

describe('redact: generated corpus with planted PII', () => {
  it('GIVEN 2,000 synthetic snippets, each with one planted item THEN at least 99% of planted values are gone', () => {
    const g = random(20240601);
    const missed: string[] = [];
    const perKind = Object.fromEntries(PII_KINDS.map((k) => [k, { planted: 0, caught: 0 }])) as Record<PiiKind, { planted: number; caught: number }>;
    for (let i = 0; i < 2000; i++) {
      const kind = g.pick(PII_KINDS);
      const value = plant(kind, g);
      const text = snippet(kind, value, g);
      expect(text).toContain(value);
      const out = redact(text).text;
      perKind[kind].planted++;
      if (out.includes(value)) missed.push(`${kind}: ${value}`);
      else perKind[kind].caught++;
    }
    const recall = 1 - missed.length / 2000;
    console.log(`planted-PII recall ${(recall * 100).toFixed(2)}% (${2000 - missed.length}/2000); per kind ${JSON.stringify(perKind)}; missed: ${missed.slice(0, 10).join(' | ')}`);
    expect(recall).toBeGreaterThanOrEqual(0.99);
  });
});

// ---------------------------------------------------------------- false positives on real code

describe('redact: false positives on the Python standard library', () => {
  it('GIVEN the first 300 .py files of the stdlib (sorted by path) THEN findings stay under the measured bound', () => {
    const stdlib = execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        if (files.length >= 300) return;
        const p = join(d, e.name);
        if (e.isDirectory() && e.name !== 'site-packages' && e.name !== '__pycache__') walk(p);
        else if (e.isFile() && e.name.endsWith('.py')) files.push(p);
      }
    };
    walk(stdlib); // throws if the directory is missing
    expect(files.length).toBe(300);
    const counts = Object.fromEntries(PII_KINDS.map((k) => [k, 0])) as Record<PiiKind, number>;
    let bytes = 0;
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      bytes += text.length;
      const r = redact(text);
      for (const k of PII_KINDS) counts[k] += r.counts[k];
    }
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const nonEmail = total - counts.email;
    console.log(`stdlib sample: ${files.length} files, ${(bytes / 1e6).toFixed(1)} MB, findings ${total}: ${JSON.stringify(counts)}`);
    // Measured (Python 3.11.7): 49 emails, all real maintainers' addresses in module headers (true positives, still
    // counted), and 3 IPv4 false positives (`7.1.4.34`, an AIX version; `8.2.4.44/45`, HTML spec section numbers).
    // Bounds leave 2x headroom on the false positives and ~60% on the total, for other Python 3.x stdlibs.
    expect(counts.secret + counts['aws-key'] + counts['github-token'] + counts['slack-token'] + counts['stripe-key'] + counts.jwt).toBeLessThanOrEqual(3);
    expect(nonEmail).toBeLessThanOrEqual(NON_EMAIL_BOUND);
    expect(total).toBeLessThanOrEqual(TOTAL_BOUND);
  });
});

const NON_EMAIL_BOUND = 6;
const TOTAL_BOUND = 80;
