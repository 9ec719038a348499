import { assert } from "../../raft/base/assert.js";
import { ViolationKind, type ViolationLog } from "./violation.js";

/**
 * Linearizability of ReadIndex reads over a key-value register store (Raft thesis §6.4).
 *
 * The canonical history of each key is the sequence of writes in the committed log, by index.
 * A read served by a replica whose state machine has applied index `s` must return the value the
 * canonical history gives at `s` (it read a real, committed state), and `s` must be at or above
 * the index of every write to that key acknowledged before the read was invoked (real-time
 * order). A read of a key is only constrained by writes to the same key: linearizability is
 * local (Herlihy & Wing 1990, §3.3), so per-key checks are complete.
 *
 * Values are unsigned integers; 0 is the value of a key never written.
 */

interface KeyHistory {
  /** Indexes of canonical writes, ascending. */
  readonly indexes: number[];
  readonly values: number[];
  /** Highest index of a write acknowledged to a client. */
  ackedIndex: number;
}

interface PendingRead {
  readonly key: number;
  /** ackedIndex of the key when the read was invoked. */
  readonly mustSeeIndex: number;
}

export class ReadChecker {
  private readonly keys = new Map<number, KeyHistory>();
  private readonly pending = new Map<number, PendingRead>();
  private lastCanonicalIndex = 0;
  /** Reads started but not yet served or abandoned: bounded so a leak shows up (STYLE.md rule 13). */
  static readonly pendingReadsMax = 100_000;
  readsChecked = 0;

  constructor(private readonly log: ViolationLog) {}

  /** The committed entry at `index` writes `value` to `key`. Called once per index, in order. */
  onCanonicalWrite(index: number, key: number, value: number): void {
    assert(index > this.lastCanonicalIndex, `read checker: canonical write ${index} after ${this.lastCanonicalIndex}`);
    this.lastCanonicalIndex = index;
    const h = this.history(key);
    h.indexes.push(index);
    h.values.push(value);
  }

  /** Entries without a write (no-ops) still advance the canonical position. */
  onCanonicalIndex(index: number): void {
    if (index > this.lastCanonicalIndex) this.lastCanonicalIndex = index;
  }

  /** A client was told its write to `key` at `index` succeeded. */
  onWriteAck(key: number, index: number): void {
    const h = this.history(key);
    if (index > h.ackedIndex) h.ackedIndex = index;
  }

  /** A client invoked read `readId` of `key`. */
  onReadInvoke(readId: number, key: number): void {
    assert(this.pending.size < ReadChecker.pendingReadsMax, "read checker: too many pending reads");
    this.pending.set(readId, { key, mustSeeIndex: this.history(key).ackedIndex });
  }

  /** The read will never be served (refused, leadership lost, replica crashed). */
  onReadAbandoned(readId: number): void {
    this.pending.delete(readId);
  }

  /**
   * Read `readId` returned `value` from `replica`, whose state machine had applied `appliedIndex`
   * and whose ReadIndex answer was `readIndex`.
   */
  onReadServe(readId: number, replica: string, value: number, appliedIndex: number, readIndex: number): void {
    const read = this.pending.get(readId);
    assert(read !== undefined, `read checker: read ${readId} served but never invoked`);
    this.pending.delete(readId);
    this.readsChecked++;
    const where = `read ${readId} of key ${read.key} on ${replica}`;
    if (appliedIndex < readIndex) {
      this.log.report(ViolationKind.readLinearizability, replica, `${where} served at applied ${appliedIndex} below read index ${readIndex}`);
      return;
    }
    if (appliedIndex > this.lastCanonicalIndex) {
      this.log.report(ViolationKind.readLinearizability, replica, `${where} served at applied ${appliedIndex} beyond the committed log`);
      return;
    }
    const expected = this.valueAt(read.key, appliedIndex);
    if (value !== expected) {
      this.log.report(
        ViolationKind.readLinearizability,
        replica,
        `${where} returned ${value} but the committed log gives ${expected} at index ${appliedIndex}`,
      );
      return;
    }
    if (appliedIndex < read.mustSeeIndex) {
      this.log.report(
        ViolationKind.readLinearizability,
        replica,
        `${where} returned the state at ${appliedIndex}, older than the write at ${read.mustSeeIndex} acknowledged before the read began`,
      );
    }
  }

  private history(key: number): KeyHistory {
    let h = this.keys.get(key);
    if (h === undefined) {
      h = { indexes: [], values: [], ackedIndex: 0 };
      this.keys.set(key, h);
    }
    return h;
  }

  /** The canonical value of `key` after applying [1, index]. */
  private valueAt(key: number, index: number): number {
    const h = this.history(key);
    let lo = 0;
    let hi = h.indexes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((h.indexes[mid] as number) <= index) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : (h.values[lo - 1] as number);
  }
}
