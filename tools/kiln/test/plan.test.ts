import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));

describe('kiln plan', () => {
  const kiln = (...args: string[]) => spawnSync(process.execPath, [bin, 'plan', ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, KUBECONFIG: '' } });

  it('prints the stage graph and the estimate', () => {
    const r = kiln('configs/replit-code-v1-3b.yaml', '--offline');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/train\s+32 nodes × 8 GPUs/);
    expect(r.stdout).toMatch(/GPU-hours of a100-40gb at 40% MFU/);
  });
  it('shows each serving target\'s batching, canary and gateway (its URL, limits, the API-keys Secret by name, the feedback folder)', () => {
    const r = kiln('configs/tiny-loop.yaml', '--offline');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("completions: python fp16, 1–2 replicas × 1 h100-80gb; batches of up to 4 within 2 ms, 2 instances; canary: 10% of requests to this run's model");
    expect(r.stdout).toContain('gateway http://tiny-loop-completions-gateway.kiln-tiny-loop.svc:8080/v1: 1–2 replicas; per key 120 requests and 50K tokens a minute, max_tokens 64');
    expect(r.stdout).toContain('API keys from secret tiny-loop-gateway-keys, key keys; feedback to pvc://kiln-artifacts/feedback/completions/');
  });
  it('gives machines the plan as JSON, with a stack overlay and another MFU', () => {
    const j = JSON.parse(kiln('configs/replit-code-v1-3b.yaml', '--offline', '--json', '--stack', 'dev', '--mfu', '0.5').stdout);
    expect(j.plan.stack).toBe('dev');
    expect(j.plan.estimate.mfu).toBe(0.5);
    expect(j.plan.stages.find((s: { name: string }) => s.name === 'train').parallelism).toEqual({ kind: 'nodes', nodes: 1, gpusPerNode: 8 });
    expect(j.cluster).toBeNull();
  });
  it('reports spec errors like validate does, with exit 1, and usage errors with exit 2', () => {
    const r = kiln(`${root}libs/spec/test/fixtures/invalid/heads-not-dividing.yaml`, '--offline');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('KL301');
    expect(kiln('configs/tiny.yaml', '--mfu', '2').status).toBe(2);
    expect(kiln().status).toBe(2);
  });
});
