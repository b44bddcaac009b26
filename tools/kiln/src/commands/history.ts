/** `kiln history`: every promotion and rollback of a stack, from git (the commits of its config file). */
import { promotionHistory, readStackConfig, type HistoryEntry } from '@kiln/promote';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { table } from '../render/table.ts';
import { refusals, stacksDir } from './promote.ts';

export const command: Command = {
  usage: 'kiln history <stack> [--json]',
  help: `Every promotion and rollback of a stack, oldest first, read from git: the commits of
stacks/Pulumi.<stack>.yaml that changed kiln:model or kiln:canary, and the record at each.
Columns: seq, action, run, digest (short), from, gates, by, when, commit.

Options:
  --stacks DIR   the Pulumi project (default: the repository's stacks/)
  --json         the entries as JSON (with each record's evidence)

Exit codes: 0 ok, 1 not a git repository or no such stack, 2 usage error.`,
  options: { ...common, stacks: { type: 'string' }, json: { type: 'boolean' }, dir: { type: 'string' } },
  allowPositionals: true,
  run: runHistory,
};

/** The history as a table, one row per commit. */
export function renderHistory(entries: readonly HistoryEntry[]): string {
  if (!entries.length) return 'no promotions yet';
  const rows = entries.map((e) => {
    const r = e.canary && !e.message.startsWith('kiln: rollback') ? e.canary : e.record;
    const gates = r.evidence.gates;
    const passed = gates.filter((g) => g.passed === true).length;
    const action = e.canary ? `${e.action} (canary)` : e.message.includes('Kiln-Canary:') ? 'rollback (canary failed)' : e.action;
    return [String(r.seq), action, r.run, r.digest.replace(/^sha256:/, '').slice(0, 12), r.from ?? '-', gates.length ? `${passed}/${gates.length}${r.override ? ' override' : ''}` : 'none', e.author, e.date, e.sha.slice(0, 12)];
  });
  return table([['SEQ', 'ACTION', 'RUN', 'DIGEST', 'FROM', 'GATES', 'BY', 'WHEN', 'COMMIT'], ...rows]);
}

/** An entry for --json: the stable record's seq, run, digest and from at the top, then the whole entry. */
const flat = (e: HistoryEntry) => ({ seq: e.record.seq, run: e.record.run, digest: e.record.digest, from: e.record.from, ...(e.canary ? { canaryRun: e.canary.run } : {}), ...e });

export async function runHistory(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos.length !== 1) throw new UsageError(pos.length ? `expected one stack, got ${pos.length}` : 'which stack? kiln history <stack>');
  const json = values.json === true;
  const dir = await stacksDir(values);
  return refusals('history', io, json, async () => {
    let h: HistoryEntry[];
    try {
      readStackConfig(dir, pos[0]!);
      h = await promotionHistory(dir, pos[0]!);
    } catch (e) {
      io.err(`kiln history: ${(e as Error).message}`);
      return EXIT.invalid;
    }
    io.out(json ? JSON.stringify(h.map(flat), null, 2) : renderHistory(h));
    return EXIT.ok;
  });
}
