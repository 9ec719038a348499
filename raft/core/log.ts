import { assert } from "../base/assert.js";
import type { Entry, LogStore, Snapshot } from "./types.js";

/**
 * The core's view of the log: the durable store (read-only here) plus an unstable tail that the
 * next Ready hands to the driver for writing (etcd-raft's raftLog + unstable).
 *
 * Unstable entries start at `unstableOffset`. When a follower truncates a divergent tail,
 * `unstableOffset` may be ≤ store.lastIndex(): the store's entries from there on are stale and
 * are replaced when the driver writes the Ready (DurableLogStore.append drops the suffix).
 * So every lookup consults the unstable tail first, then the store below `unstableOffset`.
 */
export class RaftLog {
  private unstable: Entry[] = [];
  private unstableOffset: number;
  /** A snapshot received from the leader, to be installed by the next Ready. */
  private unstableSnapshot: Snapshot | null = null;
  /** Highest index known committed (Raft §5.3). Never decreases. */
  committed: number;
  /** Highest index handed to the driver for applying and acknowledged by advance(). */
  applied: number;

  constructor(private readonly store: LogStore, commitHint: number) {
    const first = store.firstIndex();
    const last = store.lastIndex();
    this.unstableOffset = last + 1;
    // The state machine restarts from the latest snapshot, so applied starts at its index, which
    // may lie above firstIndex - 1 when entries below the snapshot were kept for slow followers.
    const snapshotIndex = Math.max(first - 1, store.snapshot()?.meta.index ?? 0);
    // The commit hint was persisted lazily, so it can lag; it never exceeds what was durable.
    this.committed = Math.max(snapshotIndex, Math.min(commitHint, last));
    this.applied = snapshotIndex;
  }

  firstIndex(): number {
    if (this.unstableSnapshot !== null) return this.unstableSnapshot.meta.index + 1;
    return this.store.firstIndex();
  }

  lastIndex(): number {
    if (this.unstable.length > 0) return this.unstableOffset + this.unstable.length - 1;
    if (this.unstableSnapshot !== null) return this.unstableSnapshot.meta.index;
    return Math.min(this.store.lastIndex(), this.unstableOffset - 1);
  }

  /** Term at `index`, or undefined if it was compacted away or lies beyond lastIndex(). */
  term(index: number): number | undefined {
    if (index >= this.unstableOffset) {
      return this.unstable[index - this.unstableOffset]?.term;
    }
    const snap = this.unstableSnapshot;
    if (snap !== null) return index === snap.meta.index ? snap.meta.term : undefined;
    return this.store.term(index);
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, `no term for lastIndex ${this.lastIndex()}`);
    return t;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries [lo, hi), at least one if lo < hi, then stopping before `maxBytes` of data.
   * Returns null if lo is compacted (the caller must send a snapshot instead).
   */
  slice(lo: number, hi: number, maxBytes: number): readonly Entry[] | null {
    assert(lo <= hi, `slice: lo ${lo} > hi ${hi}`);
    assert(hi <= this.lastIndex() + 1, `slice: hi ${hi} > lastIndex + 1 (${this.lastIndex() + 1})`);
    if (lo < this.firstIndex()) return null;
    const out: Entry[] = [];
    if (lo < this.unstableOffset) {
      const storeHi = Math.min(hi, this.unstableOffset);
      const stored = this.store.entries(lo, storeHi, maxBytes);
      for (const e of stored) out.push(e);
      if (out.length < storeHi - lo) return out;
    }
    let bytes = 0;
    for (const e of out) bytes += e.data.byteLength;
    for (let i = Math.max(lo, this.unstableOffset); i < hi; i++) {
      const e = this.unstable[i - this.unstableOffset] as Entry;
      bytes += e.data.byteLength;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Appends entries to the unstable tail, truncating any conflicting suffix. Returns lastIndex. */
  append(entries: readonly Entry[]): number {
    if (entries.length === 0) return this.lastIndex();
    const first = (entries[0] as Entry).index;
    assert(first > this.committed, `append at ${first} would overwrite committed ${this.committed}`);
    assert(first <= this.lastIndex() + 1, `append at ${first} leaves a gap after ${this.lastIndex()}`);
    if (first === this.unstableOffset + this.unstable.length) {
      for (const e of entries) this.unstable.push(e);
    } else if (first <= this.unstableOffset) {
      // Replacing stored entries from `first` on: the store drops them when the Ready is written.
      this.unstableOffset = first;
      this.unstable = entries.slice();
    } else {
      this.unstable.length = first - this.unstableOffset;
      for (const e of entries) this.unstable.push(e);
    }
    return this.lastIndex();
  }

  /**
   * The follower half of AppendEntries (Raft §5.3). If (prevIndex, prevTerm) matches, appends
   * what is new and returns the last index the leader's RPC vouches for; null when it does not
   * match.
   */
  maybeAppend(prevIndex: number, prevTerm: number, entries: readonly Entry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, `entry ${conflict} conflicts with committed ${this.committed}`);
      this.append(entries.slice(conflict - prevIndex - 1));
    }
    return lastNew;
  }

  /** The index of the first entry whose term differs from ours (or which we lack), or 0. */
  private findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (etcd-raft's findConflictByTerm): where a
   * log that has `term` at some point can first possibly agree with ours. A compacted index is
   * returned as is: the caller cannot look further back.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (; i > 0; i--) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commitTo ${index} beyond lastIndex ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Installs a received snapshot as the new base of the log (everything before is gone). */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.committed, `restore ${snapshot.meta.index} ≤ committed ${this.committed}`);
    this.unstableSnapshot = snapshot;
    this.unstable = [];
    this.unstableOffset = snapshot.meta.index + 1;
    this.committed = snapshot.meta.index;
  }

  /* --- The Ready/advance hand-off ---------------------------------------------------------- */

  unstableEntries(): readonly Entry[] {
    return this.unstable;
  }

  pendingSnapshot(): Snapshot | null {
    return this.unstableSnapshot;
  }

  /** Entries that are committed and not yet applied, bounded by `maxBytes`. */
  nextCommitted(maxBytes: number): readonly Entry[] {
    if (this.unstableSnapshot !== null) return [];
    const lo = this.applied + 1;
    const hi = this.committed + 1;
    if (lo >= hi) return [];
    const out = this.slice(lo, hi, maxBytes);
    assert(out !== null, `committed entries from ${lo} were compacted before being applied`);
    return out;
  }

  /** Committed entries [lo, hi] (hi ≤ committed), bounded by `maxBytes` (at least one). */
  committedBetween(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    assert(lo > this.applied && hi <= this.committed && lo <= hi, `committedBetween(${lo}, ${hi}) outside (${this.applied}, ${this.committed}]`);
    const out = this.slice(lo, hi + 1, maxBytes);
    assert(out !== null, `committed entries from ${lo} were compacted before being applied`);
    return out;
  }

  /**
   * The last index the driver has made durable (stableTo): everything below the unstable tail.
   * Equal to lastIndex() unless entries were appended since the Ready being written.
   */
  stableLastIndex(): number {
    return Math.min(this.lastIndex(), this.unstableOffset - 1);
  }

  hasNextCommitted(): boolean {
    return this.unstableSnapshot === null && this.committed > this.applied;
  }

  /** The driver has durably written everything up to `index` and the pending snapshot, if any. */
  stableTo(index: number, snapshotInstalled: boolean): void {
    if (snapshotInstalled) {
      const snap = this.unstableSnapshot;
      assert(snap !== null, "stableTo: no pending snapshot");
      this.unstableSnapshot = null;
      this.applied = Math.max(this.applied, snap.meta.index);
    }
    if (index < this.unstableOffset) return;
    const n = index - this.unstableOffset + 1;
    assert(n <= this.unstable.length, `stableTo ${index} beyond unstable tail`);
    this.unstable = this.unstable.slice(n);
    this.unstableOffset = index + 1;
  }

  appliedTo(index: number): void {
    assert(index >= this.applied, `applied goes back from ${this.applied} to ${index}`);
    assert(index <= this.committed, `applied ${index} beyond committed ${this.committed}`);
    this.applied = index;
  }

  checkInvariants(): void {
    assert(this.applied <= this.committed, `applied ${this.applied} > committed ${this.committed}`);
    assert(this.committed <= this.lastIndex(), `committed ${this.committed} > lastIndex ${this.lastIndex()}`);
    assert(this.firstIndex() - 1 <= this.applied, `applied ${this.applied} below the snapshot`);
    let prev = this.term(this.unstableOffset - 1);
    for (let i = 0; i < this.unstable.length; i++) {
      const e = this.unstable[i] as Entry;
      assert(e.index === this.unstableOffset + i, `unstable entry ${i} has index ${e.index}`);
      assert(prev === undefined || e.term >= prev, `terms decrease at ${e.index}`);
      prev = e.term;
    }
  }
}
