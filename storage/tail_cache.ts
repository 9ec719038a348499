import { assert } from "../raft/base/assert.js";
import type { Entry } from "../raft/core/types.js";

/**
 * The newest entries, in memory: every entry not yet durable, plus durable ones up to a byte
 * budget. Followers read these on the replication hot path, so a leader never reads its own
 * recent appends back from disk. Entries are shared, never copied (the log owns their data).
 */
export class TailCache {
  private items: Entry[] = [];
  private head = 0;
  private bytes = 0;
  /** Index of items[head]; the cache holds [firstIndex, firstIndex + size). */
  firstIndex = 1;

  constructor(private readonly budgetBytes: number) {}

  reset(firstIndex: number): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    this.firstIndex = firstIndex;
  }

  push(e: Entry): void {
    assert(e.index === this.firstIndex + this.items.length - this.head, `tail cache: push ${e.index} out of order`);
    this.items.push(e);
    this.bytes += e.data.byteLength;
  }

  /** Appends entries [lo, hi) to `out` while the total stays within `budget` (at least one when `out` is empty). */
  collect(lo: number, hi: number, budget: number, out: Entry[]): void {
    assert(lo >= this.firstIndex, `tail cache: ${lo} below ${this.firstIndex}`);
    let left = budget;
    for (let i = lo; i < hi; i++) {
      const e = this.items[this.head + i - this.firstIndex];
      assert(e !== undefined, `tail cache: missing ${i}`);
      if (e.data.byteLength > left && out.length > 0) return;
      out.push(e);
      left -= e.data.byteLength;
    }
  }

  truncateAfter(index: number): void {
    const keep = Math.max(0, index - this.firstIndex + 1);
    for (let i = this.head + keep; i < this.items.length; i++) this.bytes -= (this.items[i] as Entry).data.byteLength;
    if (keep === 0) this.reset(index + 1);
    else this.items.length = this.head + keep;
  }

  /** Drops the oldest durable entries (index ≤ durableLast) while over budget. */
  evict(durableLast: number): void {
    while (this.bytes > this.budgetBytes && this.firstIndex <= durableLast && this.head < this.items.length) {
      this.bytes -= (this.items[this.head] as Entry).data.byteLength;
      this.items[this.head] = undefined as unknown as Entry;
      this.head++;
      this.firstIndex++;
    }
    if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
