/**
 * What the promotion tests (local-run.test.ts, after the real run) stand on: a GitOps repository of their own (a
 * temporary git repository holding a copy of the stacks/ Pulumi project and a spec whose `staging` and `prod`
 * overlays serve on the local node, in the run's namespace), `kiln` run as a user runs it, and client traffic
 * through the gateway that counts every failed request.
 */
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createIfAbsent } from '@kiln/cluster';
import { paths, pulumiOnLocalCluster } from '@kiln/local-cluster';
import { clusterKubeConfig, k, ROOT } from './helpers.ts';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const KILN = join(REPO, 'tools/kiln/bin/kiln.js');

/** Serving on the local node, as the local overlay of configs/tiny.yaml does, with a canary share and latency objectives. */
const servingOverlay = (gates: string, target: string, canary: number, latency: { p50: number; p99: number }) => `
    model: { max_seq_len: 1024 }
    training:
      resources: { gpus_per_node: 0, nodes: 1, cpu: "2", memory: 6Gi, shm: 256Mi }
    eval:
      gates:
        ${gates}
    serving:
      targets:
        - name: ${target}
          backend: python
          engine: { precision: fp32 }
          gpu: { count: 0 }
          replicas: { min: 1, max: 1 }
          max_batch_size: 4
          queue_delay_ms: 5
          canary: ${canary}
          latency: { p50_ms: ${latency.p50}, p99_ms: ${latency.p99} }
          gateway:
            api_keys: gateway-keys
            replicas: { min: 1, max: 1 }
    infra:
      node_pools:
        - name: local
          node_selector: { kiln.dev/pool: local }
          tolerations: [{ key: kiln.dev/local, operator: Exists, effect: NoSchedule }]
      stage_resources:
        triton: { requests: { cpu: 100m, memory: 512Mi }, limits: { cpu: "2", memory: 3Gi } }
        gateway: { requests: { cpu: 100m, memory: 128Mi }, limits: { cpu: "1", memory: 512Mi } }`;

/**
 * configs/it.yaml of the GitOps repository: tiny in `namespace`, with serving-only overlays on the local node:
 * `staging` (gate pass@1 >= 0, target `completions` with a canary share of 0.5 and the given latency objectives)
 * and `prod` (gate pass@1 >= 0.5, target `prod`, no canary).
 */
export function gitOpsSpec(namespace: string, latency: { p50: number; p99: number }): string {
  const base = readFileSync(join(REPO, 'configs/tiny.yaml'), 'utf8').replace('namespace: kiln-tiny', `namespace: ${namespace}`);
  return `${base.trimEnd()}\n  staging:${servingOverlay('staging: ["humaneval.pass@1 >= 0"]', 'completions', 0.5, latency)}\n  prod:${servingOverlay('prod: ["humaneval.pass@1 >= 0.5"]', 'prod', 0, { p50: 60_000, p99: 120_000 })}\n`;
}

export interface GitOpsRepo {
  readonly dir: string;
  readonly stacksDir: string;
  readonly specFile: string;
  readonly stacks: { readonly staging: string; readonly prod: string };
  readonly apiKeyFile: string;
  /** Rewrites the staging overlay's latency objectives and commits the spec. */
  setLatency(p50: number, p99: number): void;
  git(...args: string[]): string;
  close(): Promise<void>;
}

/**
 * The repository: configs/it.yaml (gitOpsSpec), stacks/ (Pulumi.yaml, index.ts, and two serving-only stacks of
 * the local backend named after the test), node_modules linked to the checkout's. The gateway's key Secret is made in the
 * namespace, as a platform team would.
 */
export async function gitOpsRepo(namespace: string, tag: string): Promise<GitOpsRepo> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-gitops-'));
  const stacksDir = join(dir, 'stacks');
  mkdirSync(stacksDir);
  mkdirSync(join(dir, 'configs'));
  for (const f of ['Pulumi.yaml', 'index.ts', 'package.json', 'tsconfig.json']) copyFileSync(join(REPO, 'stacks', f), join(stacksDir, f));
  symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  writeFileSync(join(dir, '.gitignore'), 'node_modules\n');
  const spec = (latency: { p50: number; p99: number }) => gitOpsSpec(namespace, latency);
  const specFile = join(dir, 'configs', 'it.yaml');
  writeFileSync(specFile, spec({ p50: 60_000, p99: 120_000 }));
  const stacks = { staging: `it-staging-${tag}`, prod: `it-prod-${tag}` };
  for (const [overlay, name] of Object.entries(stacks)) {
    writeFileSync(join(stacksDir, `Pulumi.${name}.yaml`), `config:\n  kiln:spec: configs/it.yaml\n  kiln:overlay: ${overlay}\n  kiln:train: false\n`);
    const r = await pulumiOnLocalCluster(ROOT, ['stack', 'init', name], { cwd: stacksDir });
    if (r.code !== 0) throw new Error(`pulumi stack init ${name}: ${r.out}`);
  }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8', env: { ...process.env, GIT_AUTHOR_NAME: 'Kiln Test', GIT_AUTHOR_EMAIL: 'test@kiln.invalid', GIT_COMMITTER_NAME: 'Kiln Test', GIT_COMMITTER_EMAIL: 'test@kiln.invalid' } });
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'Kiln Test');
  git('config', 'user.email', 'test@kiln.invalid');
  git('add', '-A');
  git('commit', '-qm', 'the pipeline and its stacks');
  // The gateway's API keys: a Secret the spec names and kiln never writes.
  const key = `kiln-it-${tag}`;
  const apiKeyFile = join(dir, 'api-key');
  writeFileSync(apiKeyFile, `${key}\n`, { mode: 0o600 });
  await createIfAbsent(clusterKubeConfig(), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tiny-gateway-keys', namespace }, stringData: { keys: `${key}\n` } } as never);
  return {
    dir,
    stacksDir,
    specFile,
    stacks,
    apiKeyFile,
    git,
    setLatency(p50, p99) {
      writeFileSync(specFile, spec({ p50, p99 }));
      git('commit', '-qam', `staging's latency objectives: p50 ${p50} ms, p99 ${p99} ms`);
    },
    async close() {
      for (const name of Object.values(stacks)) {
        await pulumiOnLocalCluster(ROOT, ['destroy', '--yes', '--stack', name], { cwd: stacksDir });
        await pulumiOnLocalCluster(ROOT, ['stack', 'rm', '--yes', '--force', name], { cwd: stacksDir });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface KilnResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `kiln <args>` as a user runs it, in the checkout (whose .kiln holds the local cluster), with `env` added. */
export function kiln(args: string[], env: Record<string, string> = {}): Promise<KilnResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [KILN, ...args], { cwd: ROOT, env: { ...process.env, KUBECONFIG: paths(ROOT).kubeconfig, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** The gateway Service's URL on its ClusterIP (the local node proxies those). */
export async function gatewayUrl(namespace: string, name = 'tiny-completions-gateway'): Promise<string> {
  const svc = (await k('GET', `/api/v1/namespaces/${namespace}/services/${name}`)).body as { spec?: { clusterIP?: string } };
  if (!svc.spec?.clusterIP) throw new Error(`no Service ${namespace}/${name}`);
  return `http://${svc.spec.clusterIP}:8080`;
}

/** Completions through the gateway, one after another, until `stop`: every answer's status, and each model run that answered. */
export function traffic(url: string, apiKey: string): { stop(): Promise<{ ok: number; failed: string[] }> } {
  let running = true;
  const failed: string[] = [];
  let ok = 0;
  const loop = (async () => {
    while (running) {
      try {
        const r = await fetch(`${url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
          body: JSON.stringify({ model: 'completions', prompt: 'def add(a, b):\n', max_tokens: 8 }),
          signal: AbortSignal.timeout(60_000),
        });
        const text = await r.text();
        if (r.status === 200) ok++;
        else failed.push(`HTTP ${r.status}: ${text.slice(0, 200)}`);
      } catch (e) {
        failed.push(String((e as Error).cause ?? e));
      }
      await new Promise((res) => setTimeout(res, 200));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { ok, failed };
    },
  };
}

/** The stable Triton Deployment of the target: the run its pods are labelled with, the digest they serve, and readiness. */
export async function stableTriton(namespace: string, name = 'tiny-completions'): Promise<{ run?: string; digest?: string; ready: number } | undefined> {
  const r = await k('GET', `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`);
  if (r.status !== 200) return undefined;
  const d = r.body as { spec: { template: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } } }; status?: { readyReplicas?: number; updatedReplicas?: number; replicas?: number } };
  const t = d.spec.template.metadata;
  const ready = d.status?.readyReplicas ?? 0;
  return { ...(t.labels?.['kiln.dev/run-id'] ? { run: t.labels['kiln.dev/run-id'] } : {}), ...(t.annotations?.['kiln.dev/model-digest'] ? { digest: t.annotations['kiln.dev/model-digest'] } : {}), ready: ready && (d.status?.updatedReplicas ?? 0) === (d.status?.replicas ?? 0) ? ready : 0 };
}
