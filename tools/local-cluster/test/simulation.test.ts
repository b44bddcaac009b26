import { fileURLToPath } from 'node:url';
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { modelRun } from '@kiln/k8s';
import { compileFile, type Plan } from '@kiln/plan';
import type { ModelRun } from '@kiln/cluster';
import { describe, expect, it } from 'vitest';
import { readSimulation, SIM, SIMULATE_ANNOTATION, simulatedSummary, simulationAnnotations, simulationHooks } from '../src/index.ts';

const compiled = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), { stack: 'dev' });
if (!compiled.plan) throw new Error(compiled.diagnostics.map((d) => d.message).join('; '));
const plan: Plan = compiled.plan;
const stageOf = (name: string) => plan.stages.find((s) => s.name === name)!;
const T0 = Date.parse('2026-01-01T00:00:00Z');

const makeRun = (annotations?: Record<string, string>): ModelRun => {
  const o = modelRun(plan) as unknown as ModelRun;
  return { ...o, metadata: { ...o.metadata, ...(annotations ? { annotations } : {}) } };
};
const faultRun = (faults: unknown) => makeRun({ [SIMULATE_ANNOTATION]: JSON.stringify({ faults }) });
const annotationsFor = (run: ModelRun, stage: string, attempt = 1, hooks = simulationHooks()) => hooks.podAnnotations!({ run, plan, stage: stageOf(stage), attempt })!;
const runningTrain = (run: ModelRun, now: number, hooks = simulationHooks({ durationMs: 2000 })) =>
  hooks.progress!({ run, plan, stage: stageOf('train'), attempt: 1, job: {} as V1Job, pods: [{ status: { startTime: new Date(T0) } } as V1Pod], now });

describe('the local cluster\'s controller hooks', () => {
  it("tell kwok to end a stage's pods cleanly with a summary the stage contract allows, marked simulated", () => {
    const a = annotationsFor(makeRun(), 'data-prep');
    expect(a[SIM.exitCode]).toBe('0');
    expect(JSON.parse(a[SIM.message]!)).toMatchObject({ simulated: true, attempt: 1, metrics: { records_out: expect.any(Number) } });
    expect(a[SIM.duration]).toBe('2000ms');
  });

  it('make the attempt a fault names fail with its exit code and message', () => {
    const a = annotationsFor(faultRun([{ stage: 'data-prep', attempt: 1, exitCode: 2, message: 'boom' }]), 'data-prep');
    expect(a[SIM.exitCode]).toBe('2');
    expect(a[SIM.message]).toBe('boom');
  });

  it('leave attempts a fault does not name alone', () => {
    expect(annotationsFor(faultRun([{ stage: 'data-prep', attempt: 2, exitCode: 1 }]), 'data-prep')[SIM.exitCode]).toBe('0');
  });

  it('take the duration the caller gives unless the run says otherwise', () => {
    expect(annotationsFor(makeRun(), 'pack', 1, simulationHooks({ durationMs: 400 }))[SIM.duration]).toBe('400ms');
    expect(annotationsFor(makeRun({ [SIMULATE_ANNOTATION]: '{"durationMs": 900}' }), 'pack', 1, simulationHooks({ durationMs: 400 }))[SIM.duration]).toBe('900ms');
  });

  it('report a malformed simulation annotation as a BadSimulation warning and simulate a clean run', () => {
    const run = makeRun({ [SIMULATE_ANNOTATION]: '{faults: [' });
    expect(simulationHooks().runWarnings!(run)).toEqual([expect.objectContaining({ reason: 'BadSimulation' })]);
    expect(simulationHooks().runWarnings!(makeRun())).toEqual([]);
    expect(annotationsFor(run, 'data-prep')[SIM.exitCode]).toBe('0');
  });

  it("report a training stage's progress from the clock, marked simulated, and nothing for other stages", () => {
    expect(runningTrain(makeRun(), T0 + 1000)).toEqual({ done: 250_000, total: 500_000, unit: 'tokens', simulated: true });
    expect(runningTrain(makeRun(), T0 + 5000)).toMatchObject({ done: 500_000 });
    expect(runningTrain(makeRun({ [SIMULATE_ANNOTATION]: '{"stageDurationMs": {"train": 4000}}' }), T0 + 1000)).toMatchObject({ done: 125_000 });
    const hooks = simulationHooks();
    expect(hooks.progress!({ run: makeRun(), plan, stage: stageOf('pack'), attempt: 1, job: {} as V1Job, pods: [{ status: { startTime: new Date(T0) } } as V1Pod], now: T0 + 1000 })).toBeUndefined();
  });
});

describe('simulate', () => {
  it('reads a JSON object annotation and rejects anything else', () => {
    expect(readSimulation({ [SIMULATE_ANNOTATION]: '{"durationMs":5}' })).toEqual({ sim: { durationMs: 5 } });
    expect(readSimulation({ [SIMULATE_ANNOTATION]: '[1]' }).error).toContain('not an object');
    expect(readSimulation(undefined)).toEqual({ sim: {} });
  });

  it('lets one stage run longer than the others', () => {
    const sim = { durationMs: 300, stageDurationMs: { train: 4000 } };
    expect(simulationAnnotations(plan, stageOf('train'), 1, sim)[SIM.duration]).toBe('4000ms');
    expect(simulationAnnotations(plan, stageOf('pack'), 1, sim)[SIM.duration]).toBe('300ms');
  });

  it("reports the eval metrics the simulation asks for, else pass@k from the suite's k", () => {
    const ev = stageOf('eval-humaneval');
    expect(simulatedSummary(plan, ev, 1, { metrics: { 'eval-humaneval': { 'pass@1': 0.31 } } }).metrics).toEqual({ 'pass@1': 0.31 });
    expect(simulatedSummary(plan, ev, 1, {}).metrics).toEqual({ 'pass@1': 0.12 });
  });

  it('gives a fault without a message a default one, and a fault without an attempt attempt 1', () => {
    const a = simulationAnnotations(plan, stageOf('pack'), 1, { faults: [{ stage: 'pack', exitCode: 137 }] });
    expect(a[SIM.exitCode]).toBe('137');
    expect(a[SIM.message]).toContain('exit 137');
    expect(a[SIM.duration]).toBeUndefined();
  });
});
