import { describe, expect, it } from 'vitest';
import { barChart, Log2Histogram } from '../src/report.ts';

describe('the data-prep report', () => {
  it('buckets values by powers of two', () => {
    const h = new Log2Histogram();
    for (const v of [0, 1, 2, 3, 4, 1023, 1024]) h.add(v);
    expect(h.toJSON().map((b) => b.count)).toEqual([2, 2, 1, 0, 0, 0, 0, 0, 0, 1, 1]);
    expect(h.toJSON()[10]).toEqual({ bucket: '1024–2047', count: 1 });
  });

  it('draws one bar per row, the longest for the largest value, and escapes labels', () => {
    const svg = barChart('Why', [['<b>', 10], ['small', 5]]);
    expect(svg).toContain('&lt;b&gt;');
    expect(svg).not.toContain('<b>');
    const widths = [...svg.matchAll(/<rect x="\d+" y="3" width="(\d+)"/g)].map((m) => Number(m[1]));
    expect(widths).toHaveLength(2);
    expect(widths[0]).toBeGreaterThan(widths[1]!);
    expect(barChart('Empty', [])).toContain('none');
  });
});
