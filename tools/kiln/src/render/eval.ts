/** The text of `kiln eval run --stack`: each gate of the stack with the value it read. */
import type { GateCheck } from '@kiln/eval-runner';

/** `gates (dev):` then one line per gate: ✓ passed, ✗ failed, · not decided (its reason). */
export function formatGateChecks(stack: string, checks: readonly GateCheck[]): string {
  return [`gates (${stack}):`, ...checks.map((v) => `  ${v.passed === true ? '✓' : v.passed === false ? '✗' : '·'} ${v.expr}${v.value !== null && v.value !== undefined ? `  (${v.value.toFixed(3)})` : v.reason ? `  (${v.reason})` : ''}`)].join('\n');
}
