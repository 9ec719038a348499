import { fnv1a } from "../../raft/base/bytes.js";
import type { Entry } from "../../raft/core/types.js";

/**
 * Chained entry fingerprints. chain(i) folds chain(i-1) with entry i's term, type and data hash,
 * so two logs with equal chain(i) agree on every entry in [1, i] (up to 32-bit collisions, which
 * can only hide a violation, never invent one). This turns the log-matching property into one
 * integer comparison per index. 0 means "unknown" and is never produced by chainNext.
 */

/** The chain value of the empty prefix (index 0, term 0). */
export const chainOfEmptyPrefix = 0x2545f491;

/** 1 for a no-op, 2 for a normal entry: folded into the chain so a type change is visible. */
export function entryTypeCode(entry: Entry): number {
  return entry.type === "noop" ? 1 : 2;
}

/** Fingerprint of an entry's payload. */
export function entryDataHash(entry: Entry): number {
  return fnv1a(entry.data);
}

/** chain(i) from chain(i-1) and entry i's term, type code and data hash. Never returns 0. */
export function chainNext(previous: number, term: number, typeCode: number, dataHash: number): number {
  let h = (previous ^ 0x9e3779b9) >>> 0;
  h = Math.imul(h ^ term, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h ^ typeCode, 0xc2b2ae35);
  h ^= h >>> 16;
  h = Math.imul(h ^ dataHash, 0x01000193);
  h ^= h >>> 15;
  h >>>= 0;
  return h === 0 ? 1 : h;
}

/** A growable Uint32Array indexed by log index; unset slots read as 0 ("unknown"). */
export class IndexedU32 {
  private data = new Uint32Array(256);

  get(index: number): number {
    return index < this.data.length ? (this.data[index] as number) : 0;
  }

  set(index: number, value: number): void {
    if (index >= this.data.length) {
      let capacity = this.data.length * 2;
      while (capacity <= index) capacity *= 2;
      const bigger = new Uint32Array(capacity);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[index] = value;
  }

  /** Sets [lo, hi) to 0. */
  clear(lo: number, hi: number): void {
    const end = Math.min(hi, this.data.length);
    if (lo < end) this.data.fill(0, lo, end);
  }
}
