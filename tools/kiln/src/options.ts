/** Option values checked the same way by every command: a usage error (exit 2) names the option and what it takes. */
import { UsageError } from './io.ts';

/** `value` as an integer of at least `min`, or a usage error naming the option. */
export function intOption(name: string, value: unknown, min: number): number | undefined {
  if (value === undefined) return undefined;
  const s = String(value);
  if (!/^[0-9]+$/.test(s) || Number(s) < min) throw new UsageError(`--${name} takes a whole number of at least ${min}, not "${s}"`);
  return Number(s);
}

/** `value` as a share between 0 and 1, or a usage error naming the option. */
export function fractionOption(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (String(value).trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`--${name} takes a share from 0 to 1 (e.g. 0.5), not "${String(value)}"`);
  return n;
}

/** `value` if it is one of `allowed`, else a usage error listing them. */
export function enumOption<T extends string>(name: string, value: unknown, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!allowed.includes(value as T)) throw new UsageError(`--${name} is one of ${allowed.join(', ')}, not "${String(value)}"`);
  return value as T;
}

/** `value` as a number from `min` to `max` (`above`: more than `min`, not equal), or a usage error naming the option. */
export function numberOption(name: string, value: unknown, range: { readonly min: number; readonly max?: number; readonly above?: boolean }): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  const low = range.above ? n > range.min : n >= range.min;
  if (String(value).trim() === '' || !Number.isFinite(n) || !low || (range.max !== undefined && n > range.max)) {
    const from = range.above ? `more than ${range.min}` : `at least ${range.min}`;
    throw new UsageError(`--${name} takes a number ${range.max !== undefined ? `${range.above ? 'above' : 'from'} ${range.min} to ${range.max}` : from}, not "${String(value)}"`);
  }
  return n;
}
