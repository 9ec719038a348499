import { assert } from "../raft/base/assert.js";

/**
 * Terms of the log as runs: (first index of a run, its term). Raft terms change rarely, so a log
 * of millions of entries has a handful of runs; `term(index)` is a binary search over them and
 * costs no disk read, which matters because the core asks for terms on every AppendEntries.
 */
export class TermTable {
  private starts: number[] = [];
  private terms: number[] = [];
  /** Last index covered (the table covers [firstIndex, lastIndex]). */
  lastIndex: number;

  constructor(firstIndex: number) {
    this.lastIndex = firstIndex - 1;
  }

  get runs(): number {
    return this.starts.length;
  }

  /** Records entry `index` (must be lastIndex + 1) with `term` (non-decreasing). */
  push(index: number, term: number): void {
    assert(index === this.lastIndex + 1, `term table: index ${index} after ${this.lastIndex}`);
    const n = this.terms.length;
    if (n === 0 || (this.terms[n - 1] as number) !== term) {
      assert(n === 0 || term > (this.terms[n - 1] as number), `term table: term ${term} after ${this.terms[n - 1]}`);
      this.starts.push(index);
      this.terms.push(term);
    }
    this.lastIndex = index;
  }

  /** Term of `index`, or undefined outside [first run start, lastIndex]. */
  term(index: number): number | undefined {
    if (index > this.lastIndex || this.starts.length === 0 || index < (this.starts[0] as number)) return undefined;
    let lo = 0;
    let hi = this.starts.length - 1;
    // Invariant: starts[lo] <= index; find the last run starting at or before index.
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.starts[mid] as number) <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.terms[lo];
  }

  /** Drops entries after `index`. */
  truncateAfter(index: number): void {
    // Bounded by the number of runs.
    while (this.starts.length > 0 && (this.starts[this.starts.length - 1] as number) > index) {
      this.starts.pop();
      this.terms.pop();
    }
    this.lastIndex = Math.min(this.lastIndex, index);
  }

  /** Drops entries before `index` (they were compacted). */
  compactBefore(index: number): void {
    let drop = 0;
    while (drop + 1 < this.starts.length && (this.starts[drop + 1] as number) <= index) drop++;
    this.starts.splice(0, drop);
    this.terms.splice(0, drop);
    if (this.starts.length > 0 && (this.starts[0] as number) < index) this.starts[0] = index;
    if (index > this.lastIndex) this.reset(index);
  }

  reset(firstIndex: number): void {
    this.starts = [];
    this.terms = [];
    this.lastIndex = firstIndex - 1;
  }
}
