/**
 * Pod status as the agent reports it through pods/status: each container's state, lastState, restartCount,
 * ready/started and `kiln://<id>` container id from the Runtime's records, the pod's phase and conditions
 * (PodScheduled, PodReadyToStartContainers, Initialized, ContainersReady, Ready). Pure, so tests build statuses
 * from records without a cluster. Also the restart decision and CrashLoopBackOff delays.
 */
import type { V1ContainerState, V1ContainerStatus, V1Pod, V1PodCondition, V1PodStatus } from '@kubernetes/client-node';
import type { ContainerRecord, ContainerState } from '../runtime/types.ts';

/** What the agent knows of one container of a pod. */
export interface ContainerView {
  readonly name: string;
  readonly image: string;
  readonly restartCount: number;
  /** The current run (or the last one, when it will not run again). */
  readonly record?: ContainerRecord;
  /** The run before the current one (a restarted container's lastState). */
  readonly previous?: ContainerRecord;
  /** Why the container is not running now (ContainerCreating, CrashLoopBackOff, ErrImagePull, …). */
  readonly waiting?: { readonly reason: string; readonly message?: string };
  /** A failure before any process existed (ErrImagePull, CreateContainerConfigError) that ends the pod. */
  readonly failed?: { readonly reason: string; readonly message: string };
  /** Termination message override (FallbackToLogsOnError applied by the caller). */
  readonly message?: string;
  readonly ready: boolean;
}

export interface StatusInput {
  readonly pod: V1Pod;
  readonly containers: readonly ContainerView[];
  readonly podIP?: string;
  readonly hostIP: string;
  readonly startTime: Date;
  readonly now: Date;
}

const iso = (d: Date | string) => new Date(d).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The last 80 lines, at most 2 KiB, of a log: Kubernetes' FallbackToLogsOnError message. */
export function fallbackMessage(log: string): string {
  let text = log.split('\n').slice(-81).join('\n');
  const bytes = Buffer.from(text);
  if (bytes.length > 2048) text = bytes.subarray(bytes.length - 2048).toString('utf8').replace(/^\uFFFD+/, '');
  return text;
}

function terminated(r: ContainerRecord, s: Extract<ContainerState, { state: 'exited' }>, message?: string): V1ContainerState {
  const msg = message ?? s.message;
  return {
    terminated: {
      exitCode: s.exitCode,
      reason: s.reason,
      ...(msg ? { message: msg } : {}),
      ...(s.signal ? { signal: signalNumber(s.signal) } : {}),
      startedAt: iso(s.startedAt) as unknown as Date,
      finishedAt: iso(s.finishedAt) as unknown as Date,
      containerID: `kiln://${r.id}`,
    },
  };
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };
const signalNumber = (s: string): number => SIGNALS[s] ?? (Number(s) || 0);

function containerStatus(c: ContainerView): V1ContainerStatus {
  const r = c.record;
  let state: V1ContainerState;
  if (c.failed) state = { terminated: { exitCode: 128, reason: c.failed.reason, message: c.failed.message } as never };
  else if (c.waiting || !r) state = { waiting: { reason: c.waiting?.reason ?? 'ContainerCreating', ...(c.waiting?.message ? { message: c.waiting.message } : {}) } };
  else if (r.status.state === 'running') state = { running: { startedAt: iso(r.status.startedAt) as unknown as Date } };
  else state = terminated(r, r.status, c.message);
  // A restarted container shows its previous run; while it waits in backoff, the run that just ended.
  const last = c.waiting && r && r.status.state === 'exited' ? r : c.previous;
  const lastState: V1ContainerState = last && last.status.state === 'exited' ? terminated(last, last.status) : {};
  return {
    name: c.name,
    image: c.image,
    imageID: `kiln://${c.image}`,
    ...(r && !c.waiting ? { containerID: `kiln://${r.id}` } : {}),
    ready: c.ready,
    started: Boolean(state.running),
    restartCount: c.restartCount,
    state,
    lastState,
  };
}

/** A pod's phase from its containers' statuses and restart policy. */
export function podPhase(pod: V1Pod, statuses: readonly V1ContainerStatus[]): 'Pending' | 'Running' | 'Succeeded' | 'Failed' {
  const policy = pod.spec?.restartPolicy ?? 'Always';
  if (statuses.some((s) => s.state?.terminated && (s.state.terminated.reason === 'ErrImagePull' || s.state.terminated.reason === 'CreateContainerConfigError'))) return 'Failed';
  const term = statuses.map((s) => s.state?.terminated);
  if (statuses.length && term.every(Boolean) && policy !== 'Always') {
    if (term.every((t) => t!.exitCode === 0)) return 'Succeeded';
    if (policy === 'Never') return 'Failed';
  }
  if (statuses.some((s) => s.state?.running || s.state?.terminated || s.lastState?.terminated || (s.restartCount ?? 0) > 0)) return 'Running';
  return 'Pending';
}

/** Whether a container that ended this way runs again under the pod's restartPolicy. */
export function shouldRestart(policy: string | undefined, exitCode: number): boolean {
  if (policy === 'Never') return false;
  if (policy === 'OnFailure') return exitCode !== 0;
  return true;
}

/** CrashLoopBackOff before restart number `restartCount + 1`: 10 s, doubling, capped at 20 s (a 2-core machine's setting; Kubernetes caps at 5 min). */
export const restartDelayMs = (restartCount: number, baseMs = 10_000, capMs = 20_000): number => Math.min(capMs, baseMs * 2 ** Math.max(0, restartCount));

/** The pod's whole status. */
export function podStatus(input: StatusInput): V1PodStatus {
  const statuses = input.containers.map(containerStatus);
  const phase = podPhase(input.pod, statuses);
  const allReady = statuses.length > 0 && statuses.every((s) => s.ready);
  const prev = new Map((input.pod.status?.conditions ?? []).map((c) => [c.type, c]));
  const cond = (type: string, ok: boolean, reason?: string, message?: string): V1PodCondition => {
    const status = ok ? 'True' : 'False';
    const old = prev.get(type);
    const since = old && old.status === status ? old.lastTransitionTime : (iso(input.now) as unknown as Date);
    return { type, status, lastProbeTime: null as never, lastTransitionTime: since, ...(reason ? { reason } : {}), ...(message ? { message } : {}) };
  };
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const notReady = statuses.filter((s) => !s.ready).map((s) => s.name);
  const readyReason = terminal ? 'PodCompleted' : allReady ? undefined : 'ContainersNotReady';
  const readyMessage = !terminal && !allReady ? `containers with unready status: [${notReady.join(' ')}]` : undefined;
  const failed = input.containers.find((c) => c.failed)?.failed;
  return {
    phase,
    ...(failed ? { reason: failed.reason, message: failed.message } : {}),
    conditions: [
      cond('PodReadyToStartContainers', !terminal || phase === 'Succeeded' ? Boolean(input.podIP) : false),
      cond('Initialized', true, terminal ? 'PodCompleted' : undefined),
      cond('Ready', !terminal && allReady, readyReason, readyMessage),
      cond('ContainersReady', !terminal && allReady, readyReason, readyMessage),
      cond('PodScheduled', true),
    ],
    hostIP: input.hostIP,
    hostIPs: [{ ip: input.hostIP }],
    ...(input.podIP ? { podIP: input.podIP, podIPs: [{ ip: input.podIP }] } : {}),
    startTime: iso(input.startTime) as unknown as Date,
    containerStatuses: statuses,
    qosClass: input.pod.status?.qosClass ?? 'BestEffort',
  };
}
