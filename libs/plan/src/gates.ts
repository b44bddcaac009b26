import { gatePasses, parseGate } from '@kiln/spec';
import { stagesOf, type Plan } from './types.ts';

/** One gate of one environment, read against a run's eval metrics. */
export interface GateResult {
  readonly expr: string;
  readonly suite: string;
  readonly metric: string;
  readonly op: string;
  readonly threshold: number;
  /** The metric the suite reported; null while the suite has not reported it. */
  readonly value: number | null;
  /** null while the value is unknown. */
  readonly passed: boolean | null;
}

/** An environment's verdict: passed when every gate passes, failed when one fails, else pending (null). */
export interface GateVerdict {
  readonly passed: boolean | null;
  readonly results: readonly GateResult[];
}

/** Eval metrics by suite name, then metric name (`pass@1`). */
export type SuiteMetrics = Readonly<Record<string, Readonly<Record<string, number>>>>;

/** The suites a plan evaluates, by name (from its eval stages' config). */
export function evalSuites(plan: Plan): string[] {
  return stagesOf(plan, 'eval').map((s) => s.config.suite.name);
}

/** Reads every environment's gates against the metrics the eval stages reported. Pure. */
export function evaluateGates(plan: Plan, metrics: SuiteMetrics): Record<string, GateVerdict> {
  const suites = evalSuites(plan);
  const out: Record<string, GateVerdict> = {};
  for (const [env, exprs] of Object.entries(plan.gates)) {
    const results = exprs.map((expr): GateResult => {
      const g = parseGate(expr, suites.length === 1 ? suites[0] : undefined);
      // The spec was validated, so a gate that does not parse here means a plan from another version.
      if (!g) return { expr, suite: '', metric: '', op: '', threshold: NaN, value: null, passed: false };
      const v = metrics[g.suite]?.[g.metric];
      const value = typeof v === 'number' && Number.isFinite(v) ? v : null;
      return { expr, suite: g.suite, metric: g.metric, op: g.op, threshold: g.value, value, passed: gatePasses(g, value) };
    });
    const passed = results.some((r) => r.passed === false) ? false : results.every((r) => r.passed === true) ? true : null;
    out[env] = { passed, results };
  }
  return out;
}
