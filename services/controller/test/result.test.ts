import { describe, expect, it } from 'vitest';
import { nextStep, TerminalError } from '../src/controller.ts';

describe('the reconcile result contract', () => {
  it('forgets a run whose reconcile asks for nothing, and waits as long as one asks', () => {
    expect(nextStep({ result: {} })).toEqual({ kind: 'forget' });
    expect(nextStep({ result: { requeueAfterMs: 700 } })).toEqual({ kind: 'after', ms: 700 });
  });

  it('retries a thrown error with backoff, and says when it was a write conflict', () => {
    expect(nextStep({ error: new Error('connection reset') })).toEqual({ kind: 'backoff', conflict: false });
    expect(nextStep({ error: Object.assign(new Error('Conflict'), { code: 409 }) })).toEqual({ kind: 'backoff', conflict: true });
  });

  it('does not retry a TerminalError', () => {
    expect(nextStep({ error: new TerminalError('the API server rejected Job x (HTTP 422)') })).toEqual({ kind: 'terminal' });
  });
});
