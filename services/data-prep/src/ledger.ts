/**
 * The accounting of a shard: every record read is either kept or dropped under exactly one reason, and the
 * manifest says how many of each, with bytes in and out. `close()` refuses a ledger that does not add up, so
 * a record can never disappear silently.
 */

export interface LedgerTotals {
  readonly recordsIn: number;
  readonly kept: number;
  readonly dropped: Readonly<Record<string, number>>;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

export class AccountingError extends Error {}

export class Ledger {
  private recordsIn = 0;
  private kept = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly dropped = new Map<string, number>();
  private open = 0;
  private closed = false;

  /** A record was read (malformed ones too): it must now be kept or dropped. */
  read(bytes: number): void {
    if (this.closed) throw new AccountingError('ledger is closed');
    this.recordsIn++;
    this.bytesIn += bytes;
    this.open++;
  }

  keep(bytesOut: number): void {
    this.settle();
    this.kept++;
    this.bytesOut += bytesOut;
  }

  drop(reason: string): void {
    this.settle();
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
  }

  private settle(): void {
    if (this.open <= 0) throw new AccountingError('a record was kept or dropped without being read');
    this.open--;
  }

  /** Records read and not yet kept or dropped (near-dedup candidates between the map and apply steps). */
  undecided(): number {
    return this.open;
  }

  /** A ledger carried over from an earlier step (its totals, and how many records are still undecided). */
  static resume(t: LedgerTotals, undecided: number): Ledger {
    const l = new Ledger();
    l.recordsIn = t.recordsIn;
    l.kept = t.kept;
    l.bytesIn = t.bytesIn;
    l.bytesOut = t.bytesOut;
    for (const [k, v] of Object.entries(t.dropped)) l.dropped.set(k, v);
    l.open = undecided;
    const dropped = Object.values(t.dropped).reduce((a, b) => a + b, 0);
    if (t.recordsIn !== t.kept + dropped + undecided) throw new AccountingError(`carried-over records do not add up: ${t.recordsIn} read, ${t.kept} kept, ${dropped} dropped, ${undecided} undecided`);
    return l;
  }

  /** The totals so far. */
  totals(): LedgerTotals {
    return {
      recordsIn: this.recordsIn,
      kept: this.kept,
      dropped: Object.fromEntries([...this.dropped].sort(([a], [b]) => (a < b ? -1 : 1))),
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
    };
  }

  /** Ends the shard: throws unless in = kept + Σ dropped and nothing is left undecided. */
  close(): LedgerTotals {
    const t = this.totals();
    const dropped = Object.values(t.dropped).reduce((a, b) => a + b, 0);
    if (this.open !== 0 || t.recordsIn !== t.kept + dropped) {
      throw new AccountingError(`records do not add up: ${t.recordsIn} read, ${t.kept} kept, ${dropped} dropped, ${this.open} undecided`);
    }
    this.closed = true;
    return t;
  }
}
