import { readFileSync, rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { applyStackConfig, parseStackConfig, readStackConfig, writeStackConfig } from '../src/index.ts';
import { STAGING, record, tempRepo } from './fixtures.ts';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('stack config', () => {
  it('reads the kiln keys with their defaults (overlay = stack name, train = true)', () => {
    const c = parseStackConfig('config:\n  kiln:spec: configs/tiny.yaml\n', 'Pulumi.dev.yaml', 'dev');
    expect(c).toMatchObject({ spec: 'configs/tiny.yaml', overlay: 'dev', train: true });
    expect(c.model).toBeUndefined();
    expect(parseStackConfig(STAGING, 'f', 'staging').train).toBe(false);
    expect(parseStackConfig('config:\n  kiln:spec: a.yaml\n  kiln:train: "false"\n  kiln:overlay: local\n', 'f', 'x')).toMatchObject({ train: false, overlay: 'local' });
  });

  it('names the file and the key when the config is not a stack config', () => {
    expect(() => parseStackConfig('config:\n  aws:region: x\n', 'stacks/Pulumi.x.yaml', 'x')).toThrow(/stacks\/Pulumi.x.yaml: no `kiln:spec`/);
    expect(() => parseStackConfig('config:\n  kiln:spec: a\n  kiln:model: 3\n', 'f', 'x')).toThrow(/`kiln:model` must be a map/);
    expect(() => readStackConfig('/nonexistent', 'qa')).toThrow(/no stack "qa"/);
  });

  it('GIVEN a commented config WHEN a model is written and the canary set then deleted THEN comments and other keys are kept', () => {
    const { repo, stacks } = tempRepo();
    dirs.push(repo);
    const a = record('r-aaaaaaaaaaaa');
    writeStackConfig(stacks, 'staging', { model: a });
    let text = readFileSync(`${stacks}/Pulumi.staging.yaml`, 'utf8');
    expect(text).toContain('# staging: serves what kiln promote puts here');
    expect(text).toContain('kiln:spec: configs/tiny.yaml # the pipeline');
    expect(text).toContain('# the cluster\'s region, kept by every promotion\n  aws:region: eu-west-1');
    const read = readStackConfig(stacks, 'staging');
    expect(read.model).toEqual(a);
    expect(read.canary).toBeUndefined();

    writeStackConfig(stacks, 'staging', { canary: record('r-bbbbbbbbbbbb', { seq: 2 }) });
    expect(readStackConfig(stacks, 'staging').canary?.run).toBe('r-bbbbbbbbbbbb');
    expect(readStackConfig(stacks, 'staging').model?.run).toBe('r-aaaaaaaaaaaa');
    writeStackConfig(stacks, 'staging', { canary: null });
    text = readFileSync(`${stacks}/Pulumi.staging.yaml`, 'utf8');
    expect(text).not.toContain('kiln:canary');
    expect(text).toContain('aws:region: eu-west-1');
  });

  it('leaves a null `from` out of the YAML (Pulumi config has no null) and reads it back as null', () => {
    const text = applyStackConfig(STAGING, 'f', { model: record('r-aaaaaaaaaaaa', { from: null }) });
    expect(text).not.toMatch(/from:/);
    expect(parseStackConfig(text, 'f', 'staging').model?.from).toBeNull();
  });

  it('a config without a config map gets one', () => {
    const text = applyStackConfig('# empty\n', 'f', { model: record('r-aaaaaaaaaaaa') });
    expect(text).toContain('# empty');
    expect(text).toMatch(/config:\n {2}kiln:model:\n {4}action: promote/);
  });
});
