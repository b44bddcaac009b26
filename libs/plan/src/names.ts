import { createHash } from 'node:crypto';

/**
 * A DNS-1123 label of at most `max` characters (63; 52 for CronJobs). Longer names keep their start and
 * end with a short hash of the whole in between, so distinct inputs stay distinct (as cdk8s names.ts).
 */
export function dnsName(parts: readonly string[], max = 63): string {
  const joined = parts
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
  if (joined.length <= max) return joined || 'x';
  const hash = createHash('sha256').update(joined).digest('hex').slice(0, 8);
  const keep = max - hash.length - 1;
  return `${joined.slice(0, keep).replace(/-+$/, '')}-${hash}`;
}
