import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/clock.ts';
import { WorkQueue } from '../src/queue.ts';

/** Takes every key waiting now (get() resolves at once while keys wait). */
async function drain(q: WorkQueue): Promise<string[]> {
  const out: string[] = [];
  while (q.length) out.push((await q.get())!);
  return out;
}

describe('WorkQueue', () => {
  it('hands out a key added twice before it is taken only once', async () => {
    // GIVEN a queue
    const q = new WorkQueue(new ManualClock());
    // WHEN the same key is added twice and another once
    q.add('ns/a');
    q.add('ns/a');
    q.add('ns/b');
    // THEN each comes out once, in order
    expect(await drain(q)).toEqual(['ns/a', 'ns/b']);
  });

  it('never gives a key that is being processed to a second worker', async () => {
    // GIVEN a key taken by a worker
    const q = new WorkQueue(new ManualClock());
    q.add('ns/a');
    expect(await q.get()).toBe('ns/a');
    // WHEN it is added again while processed
    q.add('ns/a');
    // THEN no other worker can take it
    expect(q.length).toBe(0);
  });

  it('does not wake a second waiting worker for a key the first is processing', async () => {
    // GIVEN worker 1 processing a key and worker 2 waiting
    const q = new WorkQueue(new ManualClock());
    q.add('ns/a');
    await q.get();
    let second: string | undefined | null = null;
    void q.get().then((k) => (second = k));
    // WHEN the key is added again
    q.add('ns/a');
    await Promise.resolve();
    // THEN worker 2 still waits, and gets the key only once worker 1 is done
    expect(second).toBeNull();
    q.done('ns/a');
    await new Promise((r) => setImmediate(r));
    expect(second).toBe('ns/a');
  });

  it('runs a key added while it was processed again once the worker is done', async () => {
    // GIVEN a key added again while processed
    const q = new WorkQueue(new ManualClock());
    q.add('ns/a');
    await q.get();
    q.add('ns/a');
    q.add('ns/a');
    // WHEN the worker finishes
    q.done('ns/a');
    // THEN it waits again, once
    expect(await drain(q)).toEqual(['ns/a']);
  });

  it('does not run a key again after done when nobody added it meanwhile', async () => {
    const q = new WorkQueue(new ManualClock());
    q.add('ns/a');
    await q.get();
    q.done('ns/a');
    expect(q.length).toBe(0);
  });

  it('wakes a worker waiting in get() when a key is added', async () => {
    // GIVEN a worker waiting on an empty queue
    const q = new WorkQueue(new ManualClock());
    const next = q.get();
    // WHEN a key is added
    q.add('ns/a');
    // THEN the worker gets it
    expect(await next).toBe('ns/a');
  });

  it('adds a key after the delay of addAfter, not before', () => {
    // GIVEN a key scheduled in 1 s
    const clock = new ManualClock();
    const q = new WorkQueue(clock);
    q.addAfter('ns/a', 1000);
    // WHEN time passes
    clock.advance(999);
    // THEN it waits only once the delay has passed
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
  });

  it('keeps the earliest schedule of a key: a later addAfter does not postpone it', () => {
    const clock = new ManualClock();
    const q = new WorkQueue(clock);
    q.addAfter('ns/a', 100);
    q.addAfter('ns/a', 5000);
    clock.advance(100);
    expect(q.length).toBe(1);
  });

  it('lets an earlier addAfter replace a later schedule, so the key comes once', async () => {
    // GIVEN a key scheduled in 5 s, then in 100 ms
    const clock = new ManualClock();
    const q = new WorkQueue(clock);
    q.addAfter('ns/a', 5000);
    q.addAfter('ns/a', 100);
    // WHEN 100 ms pass THEN it waits
    clock.advance(100);
    expect(await drain(q)).toEqual(['ns/a']);
    // AND the cancelled 5 s schedule does not bring it back
    clock.advance(10_000);
    expect(q.length).toBe(0);
  });

  it('adds at once when addAfter is given no delay', () => {
    const q = new WorkQueue(new ManualClock());
    q.addAfter('ns/a', 0);
    expect(q.length).toBe(1);
  });

  it('doubles the backoff of a failing key with every failure, up to the maximum', () => {
    const q = new WorkQueue(new ManualClock(), { baseDelayMs: 100, maxDelayMs: 500 });
    const delays = [1, 2, 3, 4].map(() => q.addRateLimited('ns/a'));
    expect(delays).toEqual([100, 200, 400, 500]);
  });

  it('starts the backoff from the base again after forget', () => {
    // GIVEN a key that failed twice
    const q = new WorkQueue(new ManualClock(), { baseDelayMs: 100 });
    q.addRateLimited('ns/a');
    q.addRateLimited('ns/a');
    // WHEN it succeeds
    q.forget('ns/a');
    // THEN its next failure waits the base delay
    expect(q.addRateLimited('ns/a')).toBe(100);
  });

  it('counts backoff per key', () => {
    const q = new WorkQueue(new ManualClock(), { baseDelayMs: 100 });
    q.addRateLimited('ns/a');
    q.addRateLimited('ns/a');
    expect(q.addRateLimited('ns/b')).toBe(100);
  });

  it('brings a rate-limited key back after its backoff', () => {
    const clock = new ManualClock();
    const q = new WorkQueue(clock, { baseDelayMs: 50 });
    q.addRateLimited('ns/a');
    clock.advance(49);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
  });

  it('releases workers waiting in get() with undefined on shutdown', async () => {
    // GIVEN two workers waiting
    const q = new WorkQueue(new ManualClock());
    const waiting = [q.get(), q.get()];
    // WHEN the queue shuts down
    q.shutdown();
    // THEN both end
    expect(await Promise.all(waiting)).toEqual([undefined, undefined]);
  });

  it('accepts no keys and fires no schedules after shutdown', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue(clock);
    q.addAfter('ns/a', 100);
    q.shutdown();
    q.add('ns/b');
    clock.advance(1000);
    expect(q.length).toBe(0);
    expect(await q.get()).toBeUndefined();
  });
});

describe('ManualClock', () => {
  it('runs due timers in time order when advanced, and not cancelled ones', () => {
    const clock = new ManualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 200);
    clock.setTimeout(() => fired.push('a'), 100);
    const cancel = clock.setTimeout(() => fired.push('x'), 150);
    clock.setTimeout(() => fired.push('late'), 1000);
    cancel();
    clock.advance(500);
    expect(fired).toEqual(['a', 'b']);
    expect(clock.now()).toBe(500);
  });
});
