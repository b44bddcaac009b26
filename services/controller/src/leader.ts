/**
 * Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it: the holder renews
 * the lease every `retryMs`; another replica takes it over only after `leaseMs` without a renewal. Writes
 * carry the resourceVersion they read, so two replicas can never both win the same round.
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Clock } from './clock.ts';

export interface LeaderOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  /** How long a lease lasts without renewal. Default 15 s. */
  readonly leaseMs?: number;
  /** How often the holder renews and a candidate tries. Default 2 s. */
  readonly retryMs?: number;
}

const micro = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');

/** One round: take or renew the lease if we may. True when we hold it afterwards. */
export async function tryAcquire(api: CoordinationV1Api, o: LeaderOptions, clock: Clock): Promise<boolean> {
  const leaseSec = Math.ceil((o.leaseMs ?? 15_000) / 1000);
  const now = clock.now();
  let lease: V1Lease | undefined;
  try {
    lease = await api.readNamespacedLease({ name: o.name, namespace: o.namespace });
  } catch (e) {
    if ((e as { code?: number }).code !== 404) throw e;
  }
  const spec = { holderIdentity: o.identity, leaseDurationSeconds: leaseSec, acquireTime: micro(now), renewTime: micro(now), leaseTransitions: 0 };
  if (!lease) {
    try {
      await api.createNamespacedLease({ namespace: o.namespace, body: { metadata: { name: o.name, namespace: o.namespace }, spec: spec as never } });
      return true;
    } catch (e) {
      if ((e as { code?: number }).code === 409) return false;
      throw e;
    }
  }
  const held = lease.spec?.holderIdentity;
  const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime as unknown as string).getTime() : 0;
  const expired = !held || now > renewed + (lease.spec?.leaseDurationSeconds ?? leaseSec) * 1000;
  if (held !== o.identity && !expired) return false;
  const next: V1Lease = {
    ...lease,
    spec: {
      ...lease.spec,
      holderIdentity: o.identity,
      leaseDurationSeconds: leaseSec,
      renewTime: micro(now) as never,
      ...(held === o.identity ? {} : { acquireTime: micro(now) as never, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 }),
    },
  };
  try {
    await api.replaceNamespacedLease({ name: o.name, namespace: o.namespace, body: next });
    return true;
  } catch (e) {
    if ((e as { code?: number }).code === 409) return false;
    throw e;
  }
}

/**
 * Campaigns until this replica leads, calls `onLead`, then keeps renewing; if a renewal cannot be made
 * within the lease, calls `onLost` (the controller then exits, like controller-runtime's managers).
 */
export function campaign(kc: KubeConfig, o: LeaderOptions, clock: Clock, onLead: () => void, onLost: (why: string) => void, log: (m: string) => void): () => Promise<void> {
  const api = kc.makeApiClient(CoordinationV1Api);
  const retry = o.retryMs ?? 2000;
  const leaseMs = o.leaseMs ?? 15_000;
  let leading = false;
  let lastRenew = 0;
  let stopped = false;
  let cancel: (() => void) | undefined;
  const tick = async () => {
    if (stopped) return;
    try {
      const ok = await tryAcquire(api, o, clock);
      if (ok) {
        lastRenew = clock.now();
        if (!leading) {
          leading = true;
          log(`leader: ${o.identity} holds lease ${o.namespace}/${o.name}`);
          onLead();
        }
      } else if (leading) {
        leading = false;
        stopped = true;
        onLost(`lease ${o.namespace}/${o.name} was taken by another replica`);
        return;
      }
    } catch (e) {
      log(`leader: ${(e as Error).message}`);
    }
    if (leading && clock.now() - lastRenew > leaseMs) {
      stopped = true;
      onLost(`could not renew lease ${o.namespace}/${o.name} for ${leaseMs} ms`);
      return;
    }
    if (!stopped) cancel = clock.setTimeout(() => void tick(), retry);
  };
  void tick();
  return async () => {
    stopped = true;
    cancel?.();
    // Give the lease up so a successor need not wait for it to expire.
    if (leading) {
      try {
        const lease = await api.readNamespacedLease({ name: o.name, namespace: o.namespace });
        if (lease.spec?.holderIdentity === o.identity) await api.replaceNamespacedLease({ name: o.name, namespace: o.namespace, body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined as never, leaseDurationSeconds: 1 } } });
      } catch {
        // Best effort: the lease expires on its own.
      }
    }
  };
}
