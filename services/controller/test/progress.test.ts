/**
 * The read end of the progress channel against a small HTTP server that speaks the API server's pods/log
 * endpoint (GET /api/v1/namespaces/NS/pods/POD/log?container=&tailLines=&limitBytes=), through the real
 * client (readPodLog over a KubeConfig). Local kwok pods serve no logs, so this fixture stands in for the
 * kubelet; the log it serves is a real train stage's stdout (libs/stage/test/fixtures/train-progress.log).
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { readPodLog, type ModelRun, type RunningAttempt } from '@kiln/cluster';
import { modelRun, stageObjects } from '@kiln/k8s';
import { compileFile, type Plan } from '@kiln/plan';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { ProgressReader, rankZero, type LogTail } from '../src/progress.ts';

const REAL = readFileSync(new URL('../../../libs/stage/test/fixtures/train-progress.log', import.meta.url), 'utf8');
const LAST = JSON.parse(REAL.trim().split('\n').at(-1)!) as { progress: { done: number }; loss: number; tokens_per_s: number };
const plan: Plan = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), { stack: 'dev' }).plan!;
const train = plan.stages.find((s) => s.kind === 'train')!;
const run = { ...(modelRun(plan) as unknown as ModelRun), metadata: { ...(modelRun(plan) as unknown as ModelRun).metadata, uid: 'u' } };
const ns = run.metadata.namespace;

/** A pod of the train Job at completion index `i`, Running. */
function pod(i: number, name = `train-${i}`): V1Pod {
  const t = stageObjects(plan, train).job.spec!.template;
  return { metadata: { name, namespace: ns, uid: name, labels: t.metadata!.labels, annotations: { 'batch.kubernetes.io/job-completion-index': String(i) }, creationTimestamp: new Date(0) }, spec: t.spec!, status: { phase: 'Running' } };
}
const attempt = (pods: V1Pod[]): RunningAttempt => ({ run, plan, stage: train, attempt: 1, job: stageObjects(plan, train).job, pods, now: 0 });

interface Req {
  readonly pod: string;
  readonly query: URLSearchParams;
}
const requests: Req[] = [];
/** What the server answers per pod: a log, or an HTTP status with a Status body. */
const answers = new Map<string, string | number>();
let inFlight = 0;
let maxInFlight = 0;
let delayMs = 0;
let server: Server;
let kc: KubeConfig;

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/.exec(url.pathname);
    if (!m || req.method !== 'GET') return void res.writeHead(404).end();
    requests.push({ pod: m[2]!, query: url.searchParams });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      const a = answers.get(m[2]!) ?? 404;
      if (typeof a === 'number') return void res.writeHead(a, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', status: 'Failure', code: a, message: `pods "${m[2]}" is forbidden: User cannot get resource "pods/log"` }));
      // pods/log honours tailLines as the API server does: the last N lines.
      const tail = Number(url.searchParams.get('tailLines') ?? 0);
      const lines = a.split('\n');
      res.writeHead(200, { 'content-type': 'text/plain' }).end(tail ? lines.slice(-tail - 1).join('\n') : a);
    }, delayMs);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }], users: [{ name: 'u', token: 't' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const viaPodsLog: LogTail = (namespace, p, q) => readPodLog(kc, namespace, p, q);
const settle = async (r: ProgressReader) => {
  for (let i = 0; i < 200 && r.pending; i++) await new Promise((res) => setTimeout(res, 5));
};
function reader(opts: { concurrency?: number } = {}) {
  const clock = new ManualClock(0);
  const woken: string[] = [];
  const r = new ProgressReader({ readLog: viaPodsLog, clock, wake: (k) => woken.push(k), minIntervalMs: 5000, ...opts });
  return { r, clock, woken };
}

describe('the training progress reader over pods/log', () => {
  it("GIVEN rank 0's real log and a rank 1 with other numbers WHEN asked THEN it reads rank 0's tail once, wakes the run and shows the last line", async () => {
    requests.length = 0;
    answers.set('train-0', `${REAL}checkpoint /ckpt/step-100 (sha256:ab)\n`);
    answers.set('train-1', REAL.replaceAll('"loss": ', '"loss": 9'));
    const { r, woken } = reader();
    const a = attempt([pod(1), pod(0)]);
    expect(r.progress(a)).toBeUndefined(); // nothing read yet: reconcile does not wait for the log
    await settle(r);
    expect(woken).toEqual([`${ns}/${run.metadata.name}`]);
    expect(r.progress(a)).toMatchObject({ done: LAST.progress.done, total: 51_200, unit: 'tokens', loss: LAST.loss, tokens_per_s: LAST.tokens_per_s, step: 100, steps: 100 });
    expect(requests.map((q) => q.pod)).toEqual(['train-0']);
    expect(Object.fromEntries(requests[0]!.query)).toEqual({ container: 'train', tailLines: '200', limitBytes: String(128 * 1024) });
  });

  it('GIVEN a fresh read WHEN asked again within the interval THEN it does not read again; after the interval it does, and an unchanged tail wakes nobody', async () => {
    requests.length = 0;
    answers.set('p0', REAL);
    const { r, clock, woken } = reader();
    const a = attempt([pod(0, 'p0')]);
    r.progress(a);
    await settle(r);
    r.progress(a);
    clock.advance(4999);
    r.progress(a);
    await settle(r);
    expect(requests).toHaveLength(1);
    clock.advance(1);
    r.progress(a);
    await settle(r);
    expect(requests).toHaveLength(2);
    expect(woken).toHaveLength(1);
  });

  it('GIVEN pods/log refused WHEN asked THEN the reconcile gets a note, never an error; after a good read the last numbers stay, marked stale', async () => {
    answers.set('denied', 403);
    const { r, clock } = reader();
    const a = attempt([pod(0, 'denied')]);
    r.progress(a);
    await settle(r);
    expect(r.progress(a)).toEqual({ done: 0, total: train.kind === 'train' ? train.config.training.token_budget : -1, unit: 'tokens', note: expect.stringContaining('HTTP 403') });
    answers.set('denied', REAL);
    clock.advance(5000);
    r.progress(a);
    await settle(r);
    expect(r.progress(a)).not.toHaveProperty('note');
    answers.set('denied', 500);
    clock.advance(5000);
    r.progress(a);
    await settle(r);
    expect(r.progress(a)).toMatchObject({ done: LAST.progress.done, note: expect.stringMatching(/^stale: .*HTTP 500/) });
  });

  it('GIVEN a log without a progress line WHEN read THEN it says none has arrived yet', async () => {
    answers.set('quiet', 'loading tokenizer\n');
    const { r } = reader();
    const a = attempt([pod(0, 'quiet')]);
    r.progress(a);
    await settle(r);
    expect(r.progress(a)).toMatchObject({ done: 0, unit: 'tokens', note: expect.stringContaining('no kiln.progress/v1 line') });
  });

  it('GIVEN many training runs WHEN all are due THEN no more reads are in flight than the bound', async () => {
    delayMs = 30;
    maxInFlight = 0;
    const { r } = reader({ concurrency: 2 });
    for (let i = 0; i < 6; i++) {
      answers.set(`many-${i}`, REAL);
      r.progress(attempt([pod(0, `many-${i}`)]));
    }
    await settle(r);
    delayMs = 0;
    expect(maxInFlight).toBe(2);
    expect(r.progress(attempt([pod(0, 'many-5')]))).toMatchObject({ done: LAST.progress.done });
  });

  it('picks rank 0 by its completion index, and not before it runs', () => {
    const pending = { ...pod(0, 'pending'), status: { phase: 'Pending' } };
    expect(rankZero([pod(1), pending])).toBeUndefined();
    expect(rankZero([pod(1), pod(0, 'zero')])?.metadata?.name).toBe('zero');
    // A replaced rank 0 (eviction): the newest pod, whether its time came listed (a Date) or watched (a string).
    const newer = { ...pod(0, 'newer'), metadata: { ...pod(0, 'newer').metadata, creationTimestamp: '1970-01-02T00:00:00Z' as unknown as Date } };
    expect(rankZero([newer, pod(0, 'older')])?.metadata?.name).toBe('newer');
  });
});
