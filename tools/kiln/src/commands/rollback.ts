/** `kiln rollback`: the stack back to what it served before its current model, as a new commit (history is never rewritten). */
import { applyStack, rollback } from '@kiln/promote';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { bold, mark } from '../render/table.ts';
import { applySettings, refusals, stacksDir } from './promote.ts';

export const command: Command = {
  usage: 'kiln rollback <stack> [--apply] [--json]',
  help: `Returns a stack to the model it served before its current one: a new commit of
stacks/Pulumi.<stack>.yaml setting kiln:model to that earlier record (action rollback). A rollback of a
rollback goes one further back. Git history is never rewritten: kiln history shows every step.

Options:
  --apply        run pulumi preview and up after the commit
  --stacks DIR   the Pulumi project (default: the repository's stacks/)
  --json         the result as JSON
  --dir DIR      directory holding .kiln/ (default: current directory)

Exit codes: 0 rolled back, 1 nothing to roll back to (or a canary in progress), 2 usage error.`,
  options: { ...common, apply: { type: 'boolean' }, stacks: { type: 'string' }, json: { type: 'boolean' }, dir: { type: 'string' } },
  allowPositionals: true,
  run: runRollback,
};

export async function runRollback(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos.length !== 1) throw new UsageError(pos.length ? `expected one stack, got ${pos.length}` : 'which stack? kiln rollback <stack>');
  const json = values.json === true;
  const dir = await stacksDir(values);
  return refusals('rollback', io, json, async () => {
    const r = await rollback({ stacksDir: dir, stack: pos[0]!, apply: values.apply === true, applyStack, applySettings: values.apply ? applySettings(values) : {}, onOutput: (l) => (json ? io.err(l) : io.out(l)) });
    if (json) io.out(JSON.stringify(r, null, 2));
    else
      io.out(
        [
          `${mark(true, io.color)} ${bold(`rolled back ${r.stack} to ${r.record.run}`, io.color)} (from ${r.previous.run})`,
          `  digest ${r.record.digest}, seq ${r.record.seq}`,
          `  commit ${r.commit.sha.slice(0, 12)} ${r.commit.message.split('\n')[0]}`,
          ...(r.applyCommand ? [`  not applied; to apply: ${r.applyCommand} (or again with --apply)`] : []),
        ].join('\n'),
      );
    return EXIT.ok;
  });
}
