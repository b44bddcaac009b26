/** `kiln-local-node`: the agent's command line (filled in by the agent's owner). */
export async function main(_argv: string[]): Promise<number> {
  process.stderr.write('kiln-local-node: not built yet\n');
  return 1;
}
