import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from '../src/config.ts';
import { configFromFlags, OptionError, parseUpstreamFlag } from '../src/serve.ts';
import { tempDir } from './support/harness.ts';

const minimal = { model: 'completions', upstreams: [{ name: 'stable', url: 'http://kiln-demo-completions:8000/' }] };

describe('the gateway config', () => {
  it('needs only model and upstreams, and defaults the rest in one place', () => {
    const c = parseConfig(minimal);
    expect(c.upstreams).toEqual([{ name: 'stable', url: 'http://kiln-demo-completions:8000', weight: 1, tritonModel: 'ensemble' }]);
    expect(c).toMatchObject({ apiKeysFile: null, feedback: null, log: { level: 'info', prompts: false }, health: { intervalMs: 2000 } });
    expect(c.limits).toEqual({ requestsPerMinute: null, tokensPerMinute: null, maxBodyBytes: 65536, maxPromptChars: 32000, maxTokens: 1024, requestTimeoutMs: 60000 });
  });

  it("reads the contract's example", () => {
    const c = parseConfig({
      model: 'completions',
      upstreams: [
        { name: 'stable', url: 'http://kiln-demo-completions:8000', weight: 0.9, triton_model: 'ensemble' },
        { name: 'canary', url: 'http://kiln-demo-completions-canary:8000', weight: 0.1 },
      ],
      api_keys_file: '/etc/kiln/gateway-keys/keys',
      limits: { requests_per_minute: 600, tokens_per_minute: 200000, max_body_bytes: 65536, max_prompt_chars: 32000, max_tokens: 1024, request_timeout_ms: 60000 },
      feedback: { dir: '/artifacts/feedback/completions', max_file_bytes: 67108864 },
      log: { level: 'info', prompts: false },
    });
    expect(c.feedback).toEqual({ dir: '/artifacts/feedback/completions', maxFileBytes: 67108864 });
    expect(c.limits.requestsPerMinute).toBe(600);
  });

  it('names the field and the fix in every error', () => {
    const cases: [unknown, RegExp][] = [
      [{ upstreams: minimal.upstreams }, /\/model is missing/],
      [{ model: 'completions', upstreams: [] }, /\/upstreams must NOT have fewer than 1 items/],
      [{ ...minimal, upstreams: [{ name: 'stable', url: 'kiln:8000' }] }, /\/upstreams\/0\/url must be an http:\/\/ or https:\/\/ URL/],
      [{ ...minimal, upstreams: [{ name: 'Stable!', url: 'http://a:1' }] }, /\/upstreams\/0\/name must be lower-case/],
      [{ ...minimal, upstreams: [{ name: 'a', url: 'http://a:1' }, { name: 'a', url: 'http://b:1' }] }, /\/upstreams\/1\/name "a" is used by an earlier upstream/],
      [{ ...minimal, upstreams: [{ name: 'a', url: 'http://a:1', weight: 0 }] }, /every weight is 0/],
      [{ ...minimal, limits: { requests_per_minute: 0 } }, /\/limits\/requests_per_minute must be >= 1/],
      [{ ...minimal, limit: {} }, /\/limit is not a field here/],
      [{ ...minimal, log: { level: 'loud' } }, /\/log\/level must be one of "fatal"/],
      [{ ...minimal, model: 'a@b' }, /\/model must be letters.*no "@"/],
    ];
    for (const [value, re] of cases) expect(() => parseConfig(value, 'gw.json'), JSON.stringify(value)).toThrow(re);
    expect(() => parseConfig({ upstreams: [] }, 'gw.json')).toThrow(ConfigError);
  });

  it('says which file cannot be read or parsed', () => {
    const dir = tempDir();
    expect(() => loadConfig(join(dir, 'missing.json'))).toThrow(/cannot read the gateway config .*missing\.json: no such file/);
    writeFileSync(join(dir, 'bad.json'), '{"model": ');
    expect(() => loadConfig(join(dir, 'bad.json'))).toThrow(/bad\.json is not JSON/);
    writeFileSync(join(dir, 'ok.json'), JSON.stringify(minimal));
    expect(loadConfig(join(dir, 'ok.json')).model).toBe('completions');
  });
});

describe('the gateway flags', () => {
  it('read --upstream as URL, name=URL, URL@weight or name=URL@weight', () => {
    expect(parseUpstreamFlag('http://127.0.0.1:8000', 0, 1)).toEqual({ name: 'default', url: 'http://127.0.0.1:8000' });
    expect(parseUpstreamFlag('canary=http://127.0.0.1:8001@0.1', 1, 2)).toEqual({ name: 'canary', url: 'http://127.0.0.1:8001', weight: 0.1 });
    expect(parseUpstreamFlag('http://h:1@3', 1, 2)).toEqual({ name: 'upstream-2', url: 'http://h:1', weight: 3 });
    expect(() => parseUpstreamFlag('stable=127.0.0.1:8000', 0, 1)).toThrow(OptionError);
  });

  it('put flags over a --config file, and need an upstream from one of them', () => {
    const dir = tempDir();
    const file = join(dir, 'gw.json');
    writeFileSync(file, JSON.stringify({ ...minimal, limits: { max_tokens: 77 } }));
    const c = configFromFlags({ config: file, model: 'code', 'api-key-file': '/k', 'feedback-dir': '/fb' });
    expect(c).toMatchObject({ model: 'code', apiKeysFile: '/k', feedback: { dir: '/fb' }, limits: { maxTokens: 77 } });
    expect(c.upstreams.map((u) => u.name)).toEqual(['stable']);
    expect(configFromFlags({ config: file, upstream: ['a=http://x:1@9', 'b=http://y:1@1'] }).upstreams.map((u) => [u.name, u.weight])).toEqual([['a', 9], ['b', 1]]);
    expect(() => configFromFlags({})).toThrow(/no upstream: pass --upstream URL/);
  });
});
