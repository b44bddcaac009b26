import { describe, expect, it } from 'vitest';
import { resourceName, summaryLine, UpReport, type EngineEvent } from '../src/render/pulumi-events.ts';

const urn = (type: string, name: string) => `urn:pulumi:dev::kiln::kiln:pipeline:Pipeline$${type}::${name}`;
const step = (op: string, type: string, name: string) => ({ metadata: { op, type, urn: urn(type, name) } });

function report(events: EngineEvent[]): string[] {
  const lines: string[] = [];
  const r = new UpReport((l) => lines.push(l));
  let t = 0;
  for (const e of events) r.event(e, (t += 500));
  return lines;
}

describe('the demo\'s pulumi up report', () => {
  it('shows each resource once, with its result, however many events the engine sends for it', () => {
    const job = 'kubernetes:batch/v1:Job';
    const lines = report([
      { resourcePreEvent: step('refresh', job, 'tiny-train') },
      { resOutputsEvent: step('refresh', job, 'tiny-train') },
      { resourcePreEvent: step('create', job, 'tiny-train') },
      { resOutputsEvent: step('create', job, 'tiny-train') },
      { resOutputsEvent: step('create', job, 'tiny-train') },
      { resourcePreEvent: step('same', 'kubernetes:core/v1:Namespace', 'kiln-tiny') },
      { resOutputsEvent: step('same', 'kubernetes:core/v1:Namespace', 'kiln-tiny') },
    ]);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\+ created\s+kubernetes:batch\/v1:Job\s+tiny-train \(0\.5s\)$/);
    expect(lines[1]).toMatch(/^  unchanged\s+kubernetes:core\/v1:Namespace\s+kiln-tiny$/);
  });

  it('leaves out the stack and the provider, which the spec did not declare', () => {
    expect(report([{ resOutputsEvent: step('same', 'pulumi:pulumi:Stack', 'kiln-dev') }, { resOutputsEvent: step('create', 'pulumi:providers:kubernetes', 'default') }])).toEqual([]);
  });

  it('shows a failed resource and every error in full, once', () => {
    const lines = report([
      { resOpFailedEvent: { ...step('create', 'kubernetes:apps/v1:Deployment', 'gw'), status: 1, steps: 0 } },
      { resOpFailedEvent: { ...step('create', 'kubernetes:apps/v1:Deployment', 'gw'), status: 1, steps: 0 } },
      { diagnosticEvent: { urn: urn('kubernetes:apps/v1:Deployment', 'gw'), severity: 'error', message: '\x1b[31mDeployment.apps "gw" is invalid:\nspec.replicas: Invalid value: -1\x1b[0m\n' } },
      { diagnosticEvent: { severity: 'info', message: 'noise' } },
    ]);
    expect(lines[0]).toMatch(/^✗ failed\s+kubernetes:apps\/v1:Deployment\s+gw$/);
    expect(lines[1]).toBe('error gw: Deployment.apps "gw" is invalid:\n    spec.replicas: Invalid value: -1');
    expect(lines).toHaveLength(2);
  });

  it('ends with a one-line summary of the changes', () => {
    expect(report([{ summaryEvent: { durationSeconds: 12, resourceChanges: { same: 14, create: 6, update: 1 } } }])).toEqual(['6 created, 1 updated, 14 unchanged in 12s']);
    expect(summaryLine({ durationSeconds: 3, resourceChanges: {} })).toBe('no changes in 3s');
  });

  it('names a resource by the last part of its URN', () => {
    expect(resourceName(urn('kubernetes:batch/v1:Job', 'a::b'))).toBe('b');
  });
});
