/** Pod status building: container states from Runtime records, phase by restartPolicy, conditions, fallback messages, backoff. */
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { ContainerRecord } from '../src/runtime/types.ts';
import { fallbackMessage, podPhase, podStatus, restartDelayMs, shouldRestart, type ContainerView } from '../src/agent/status.ts';

const t0 = new Date('2026-12-02T05:00:00Z');
const t1 = new Date('2026-12-02T05:00:05Z');
const pod = (restartPolicy = 'Never'): V1Pod => ({ metadata: { name: 'p', namespace: 'n', uid: 'u' }, spec: { restartPolicy, containers: [{ name: 'c', image: 'kiln/trainer:1' }] } });
const spec = { podUid: 'u', podKey: 'n/p', container: 'c', restartCount: 0, argv: ['x'], env: {}, workingDir: '/', mounts: [], limits: {}, terminationMessagePath: '/dev/termination-log' };
const running = (n = 0): ContainerRecord => ({ id: `u_c_${n}`, spec: { ...spec, restartCount: n }, status: { state: 'running', pid: 42, startedAt: t0 } });
const exited = (code: number, reason: 'Completed' | 'Error' | 'OOMKilled', message = '', n = 0): ContainerRecord => ({ id: `u_c_${n}`, spec: { ...spec, restartCount: n }, status: { state: 'exited', exitCode: code, reason, message, startedAt: t0, finishedAt: t1 } });
const view = (v: Partial<ContainerView>): ContainerView => ({ name: 'c', image: 'kiln/trainer:1', restartCount: 0, ready: false, ...v });
const status = (p: V1Pod, v: Partial<ContainerView>) => podStatus({ pod: p, containers: [view(v)], podIP: '10.1.1.2', hostIP: '127.0.0.1', startTime: t0, now: t1 });

describe('podStatus', () => {
  it('a running, ready container: phase Running, Ready and ContainersReady True, kiln:// container id, pod IP', () => {
    const s = status(pod(), { record: running(), ready: true });
    expect(s.phase).toBe('Running');
    expect(s.containerStatuses![0]).toMatchObject({ name: 'c', ready: true, started: true, restartCount: 0, containerID: 'kiln://u_c_0', state: { running: { startedAt: '2026-12-02T05:00:00Z' } } });
    expect(s.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
    expect(s).toMatchObject({ podIP: '10.1.1.2', podIPs: [{ ip: '10.1.1.2' }], hostIP: '127.0.0.1', startTime: '2026-12-02T05:00:00Z' });
  });
  it('an exit 0 under Never is Succeeded, with the termination message and PodCompleted readiness', () => {
    const s = status(pod(), { record: exited(0, 'Completed', 'metrics: 1\n') });
    expect(s.phase).toBe('Succeeded');
    expect(s.containerStatuses![0]!.state!.terminated).toMatchObject({ exitCode: 0, reason: 'Completed', message: 'metrics: 1\n', containerID: 'kiln://u_c_0' });
    expect(s.conditions!.find((c) => c.type === 'Ready')).toMatchObject({ status: 'False', reason: 'PodCompleted' });
  });
  it('an OOMKilled exit under Never fails the pod with reason OOMKilled and exit 137', () => {
    const s = status(pod(), { record: exited(137, 'OOMKilled') });
    expect(s.phase).toBe('Failed');
    expect(s.containerStatuses![0]!.state!.terminated).toMatchObject({ exitCode: 137, reason: 'OOMKilled' });
  });
  it('a caller-applied FallbackToLogsOnError message replaces the empty termination message', () => {
    const s = status(pod(), { record: exited(3, 'Error'), message: 'config invalid' });
    expect(s.containerStatuses![0]!.state!.terminated!.message).toBe('config invalid');
  });
  it('a failure under OnFailure waiting in backoff: Running, CrashLoopBackOff, the failed run as lastState', () => {
    const s = status(pod('OnFailure'), { record: exited(1, 'Error'), waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s' } });
    expect(s.phase).toBe('Running');
    expect(s.containerStatuses![0]).toMatchObject({ state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1 } }, ready: false });
    expect(s.containerStatuses![0]!.containerID).toBeUndefined();
  });
  it('a restarted container shows its previous run as lastState and its restart count', () => {
    const s = status(pod('Always'), { record: running(1), previous: exited(1, 'Error', '', 0), restartCount: 1, ready: true });
    expect(s.containerStatuses![0]).toMatchObject({ restartCount: 1, containerID: 'kiln://u_c_1', lastState: { terminated: { containerID: 'kiln://u_c_0', exitCode: 1 } } });
  });
  it('an image the node cannot run fails the pod with ErrImagePull and the message', () => {
    const s = status(pod(), { failed: { reason: 'ErrImagePull', message: 'the local node cannot run image "x"' } });
    expect(s).toMatchObject({ phase: 'Failed', reason: 'ErrImagePull', message: 'the local node cannot run image "x"' });
    expect(s.containerStatuses![0]!.state!.terminated).toMatchObject({ reason: 'ErrImagePull' });
  });
  it('before the first start: Pending, ContainerCreating', () => {
    const s = status(pod(), {});
    expect(s.phase).toBe('Pending');
    expect(s.containerStatuses![0]!.state).toEqual({ waiting: { reason: 'ContainerCreating' } });
  });
  it('keeps a condition\'s lastTransitionTime while its status does not change', () => {
    const p = pod();
    p.status = { conditions: [{ type: 'PodScheduled', status: 'True', lastTransitionTime: t0 }] };
    const s = status(p, { record: running() });
    expect(s.conditions!.find((c) => c.type === 'PodScheduled')!.lastTransitionTime).toBe(t0);
    expect(s.conditions!.find((c) => c.type === 'Initialized')!.lastTransitionTime).toBe('2026-12-02T05:00:05Z');
  });
});

describe('restart policy and backoff', () => {
  it('restarts by policy', () => {
    expect([shouldRestart('Never', 1), shouldRestart('OnFailure', 0), shouldRestart('OnFailure', 1), shouldRestart('Always', 0), shouldRestart(undefined, 0)]).toEqual([false, false, true, true, true]);
  });
  it('backs off 10 s, then doubles, capped at 20 s', () => {
    expect([0, 1, 2, 5].map((n) => restartDelayMs(n))).toEqual([10_000, 20_000, 20_000, 20_000]);
  });
  it('a multi-container pod under Never fails when one container failed and all ended', () => {
    const term = (exitCode: number) => ({ name: 'x', image: '', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode } } });
    expect(podPhase(pod(), [term(0), term(2)])).toBe('Failed');
    expect(podPhase(pod(), [term(0), { ...term(0), state: { running: {} } }])).toBe('Running');
  });
});

describe('FallbackToLogsOnError', () => {
  it('takes the last 80 lines', () => {
    const log = Array.from({ length: 200 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const m = fallbackMessage(log);
    expect(m.split('\n').filter(Boolean)).toHaveLength(80);
    expect(m.startsWith('line 120\n')).toBe(true);
  });
  it('and at most 2 KiB of them', () => {
    const m = fallbackMessage(`${'x'.repeat(5000)}\nlast\n`);
    expect(Buffer.byteLength(m)).toBeLessThanOrEqual(2048);
    expect(m.endsWith('last\n')).toBe(true);
  });
});
