import type { Gate, GateOp } from './types.ts';

/** Each gate operator as a comparison of the metric's value with the gate's threshold. */
export const GATE_OPS: Readonly<Record<GateOp, (value: number, threshold: number) => boolean>> = {
  '>=': (a, b) => a >= b,
  '>': (a, b) => a > b,
  '<=': (a, b) => a <= b,
  '<': (a, b) => a < b,
  '==': (a, b) => a === b,
};

/**
 * A parsed gate (`parseGate`) read against the metric's value: passed or not; null while the value is unknown
 * (absent, or not a finite number). The one gate evaluation libs/plan and the eval runner share.
 */
export function gatePasses(gate: Pick<Gate, 'op' | 'value'>, value: number | null | undefined): boolean | null {
  if (typeof value !== 'number' || !Number.isFinite(value)) return null;
  return GATE_OPS[gate.op](value, gate.value);
}
