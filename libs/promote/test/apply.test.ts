import { describe, expect, it } from 'vitest';
import { CommandError, ConcurrentUpdateError } from '@pulumi/pulumi/automation/index.js';
import { retryLocked } from '../src/apply.ts';

// Pulumi's own error classes, built as its createCommandError builds them from a CLI result.
const locked = () => new (ConcurrentUpdateError as unknown as new (r: object) => Error)({ stdout: '', stderr: 'error: the stack is currently locked by 1 lock(s)', code: 255, err: undefined });
const failed = () => new (CommandError as unknown as new (r: object) => Error)({ stdout: '', stderr: 'error: boom', code: 1, err: undefined });

describe('apply: waiting on a locked stack', () => {
  it('retries while Pulumi reports the stack locked, telling the user once, then returns the result', async () => {
    let calls = 0;
    const told: string[] = [];
    const r = await retryLocked({ stacksDir: '.', stack: 'staging', retryMs: 10, onWait: (m) => told.push(m) }, 'the update', async () => {
      calls++;
      if (calls < 3) throw locked();
      return 'done';
    });
    expect(r).toBe('done');
    expect(calls).toBe(3);
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/stack staging is locked by another update; the update waits for it/);
  });

  it('another error is not retried; a lock past the timeout is rethrown', async () => {
    let calls = 0;
    await expect(
      retryLocked({ stacksDir: '.', stack: 's', retryMs: 5 }, 'x', async () => {
        calls++;
        throw failed();
      }),
    ).rejects.toBeInstanceOf(CommandError);
    expect(calls).toBe(1);
    await expect(retryLocked({ stacksDir: '.', stack: 's', retryMs: 5, timeoutMs: 30 }, 'x', async () => { throw locked(); })).rejects.toBeInstanceOf(ConcurrentUpdateError);
  });
});
