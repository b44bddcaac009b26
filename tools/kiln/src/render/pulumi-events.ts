/**
 * What a person needs from `pulumi up`: each resource once, with its result, the diagnostics in full, and a
 * one-line summary. Reads the engine's events (`pulumi up --event-log`, the stream the Automation API's
 * `onEvent` gives), not its progress display, which repeats a resource's line as its state changes.
 */

/** The subset of @pulumi/pulumi/automation's EngineEvent this reads. */
export interface EngineEvent {
  readonly resourcePreEvent?: { readonly metadata: StepMetadata; readonly planning?: boolean };
  readonly resOutputsEvent?: { readonly metadata: StepMetadata; readonly planning?: boolean };
  readonly resOpFailedEvent?: { readonly metadata: StepMetadata; readonly status: number; readonly steps: number };
  readonly diagnosticEvent?: { readonly urn?: string; readonly message: string; readonly severity: string; readonly ephemeral?: boolean };
  readonly summaryEvent?: { readonly durationSeconds: number; readonly resourceChanges: Readonly<Record<string, number>> };
}

interface StepMetadata {
  readonly op: string;
  readonly urn: string;
  readonly type: string;
}

/** Past tense of each step, as a person reads it. */
const DONE: Record<string, string> = {
  same: 'unchanged',
  create: 'created',
  update: 'updated',
  delete: 'deleted',
  replace: 'replaced',
  'create-replacement': 'replaced',
  'delete-replaced': 'replaced',
  read: 'read',
  'read-replacement': 'read',
  refresh: 'refreshed',
  import: 'imported',
  'import-replacement': 'imported',
  discard: 'discarded',
  'discard-replaced': 'discarded',
  'remove-pending-replace': 'replaced',
};

const SIGN: Record<string, string> = { created: '+', updated: '~', replaced: '±', deleted: '-', unchanged: ' ', read: ' ', imported: '=', discarded: '-', refreshed: ' ', failed: '✗' };

/** `urn:pulumi:dev::kiln::kiln:pipeline:Pipeline$kubernetes:batch/v1:Job::tiny-train` → `tiny-train`. */
export const resourceName = (urn: string): string => urn.slice(urn.lastIndexOf('::') + 2);

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').replace(/<\{%[^%]*%\}>/g, '');

/**
 * Turns engine events into lines: one per resource when its step ends (a refresh that `up` follows with its
 * own step for the same resource is not shown apart), every warning and error in full, and the summary.
 */
export class UpReport {
  private readonly shown = new Set<string>();
  private readonly failed = new Set<string>();
  private readonly started = new Map<string, number>();
  private readonly emit: (line: string) => void;
  constructor(emit: (line: string) => void) {
    this.emit = emit;
  }

  event(e: EngineEvent, at = Date.now()): void {
    if (e.resourcePreEvent && !e.resourcePreEvent.planning) {
      const m = e.resourcePreEvent.metadata;
      if (m.op !== 'refresh' && !this.started.has(m.urn)) this.started.set(m.urn, at);
    } else if (e.resOutputsEvent && !e.resOutputsEvent.planning) {
      const m = e.resOutputsEvent.metadata;
      if (m.op === 'refresh' || this.hidden(m) || this.shown.has(m.urn)) return;
      this.shown.add(m.urn);
      const t0 = this.started.get(m.urn);
      const took = t0 !== undefined && m.op !== 'same' && at - t0 >= 50 ? ` (${((at - t0) / 1000).toFixed(1)}s)` : '';
      this.line(DONE[m.op] ?? m.op, m, took);
    } else if (e.resOpFailedEvent) {
      const m = e.resOpFailedEvent.metadata;
      if (this.failed.has(m.urn)) return;
      this.failed.add(m.urn);
      this.shown.add(m.urn);
      this.line('failed', m, '');
    } else if (e.diagnosticEvent && !e.diagnosticEvent.ephemeral) {
      const d = e.diagnosticEvent;
      if (d.severity !== 'warning' && d.severity !== 'error') return;
      const text = plain(d.message).trimEnd();
      if (!text) return;
      const who = d.urn ? ` ${resourceName(d.urn)}` : '';
      this.emit(`${d.severity}${who}: ${text.replace(/\n/g, '\n    ')}`);
    } else if (e.summaryEvent) {
      this.emit(summaryLine(e.summaryEvent));
    }
  }

  private hidden(m: StepMetadata): boolean {
    // The stack itself and the provider are plumbing, not something the spec declared.
    return m.type === 'pulumi:pulumi:Stack' || m.type.startsWith('pulumi:providers:');
  }

  private line(result: string, m: StepMetadata, took: string): void {
    this.emit(`${SIGN[result] ?? ' '} ${result.padEnd(9)} ${m.type.padEnd(44)} ${resourceName(m.urn)}${took}`);
  }
}

/** `6 created, 1 updated, 14 unchanged in 12.3s` (the stack and providers included, as Pulumi counts). */
export function summaryLine(s: { readonly durationSeconds: number; readonly resourceChanges: Readonly<Record<string, number>> }): string {
  const counts = new Map<string, number>();
  for (const [op, n] of Object.entries(s.resourceChanges)) if (n) counts.set(DONE[op] ?? op, (counts.get(DONE[op] ?? op) ?? 0) + n);
  const order = ['created', 'updated', 'replaced', 'deleted', 'unchanged'];
  const parts = [...counts].sort(([a], [b]) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99)).map(([k, n]) => `${n} ${k}`);
  return `${parts.join(', ') || 'no changes'} in ${s.durationSeconds}s`;
}
