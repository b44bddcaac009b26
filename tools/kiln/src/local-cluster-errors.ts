/** What `kiln cluster`, `kiln toolchain` say when the local cluster or its toolchain fails. */
import { ClusterError, ToolchainError } from '@kiln/local-cluster';
import { EXIT, type Io } from './io.ts';

/** A local-cluster or toolchain failure as a message and exit 1; anything else is thrown on. */
export function explain(e: unknown, io: Io): number {
  if (e instanceof ClusterError) {
    io.err(`kiln cluster: ${e.message}${e.detail ? `\n${e.detail}` : ''}`);
    return EXIT.invalid;
  }
  if (e instanceof ToolchainError) {
    io.err(`kiln: ${e.message}\n  command: ${e.command}\n  log: ${e.log}`);
    return EXIT.invalid;
  }
  throw e;
}
