import { assert } from "../base/assert.js";

/**
 * The leader's view of one follower (etcd-raft's tracker.Progress, Raft thesis §3.5 + §4.2).
 *
 * - probe: the leader does not know where the follower's log matches; it sends one append at a
 *   time and waits for the answer (or the next heartbeat response) before sending another.
 * - replicate: the follower is known to match up to `match`; the leader streams appends
 *   optimistically, bounded by the in-flight window.
 * - snapshot: the follower needs entries the leader compacted; a snapshot is being streamed.
 */
export const ProgressState = { probe: "probe", replicate: "replicate", snapshot: "snapshot" } as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];

/**
 * The in-flight window: appends sent but not yet acknowledged, as (last index, data bytes), in
 * send order. Bounded by count (`inflightRpcsMax`) and bytes (`inflightBytesMax`).
 */
export class Inflights {
  private readonly lastIndexes: number[] = [];
  private readonly sizes: number[] = [];
  private head = 0;
  bytes = 0;

  constructor(
    readonly rpcsMax: number,
    readonly bytesMax: number,
  ) {
    assert(rpcsMax > 0, `inflightRpcsMax must be > 0, got ${rpcsMax}`);
    assert(bytesMax > 0, `inflightBytesMax must be > 0, got ${bytesMax}`);
  }

  count(): number {
    return this.lastIndexes.length - this.head;
  }

  full(): boolean {
    return this.count() >= this.rpcsMax || this.bytes >= this.bytesMax;
  }

  add(lastIndex: number, bytes: number): void {
    assert(!this.full(), "inflights: add while full");
    const n = this.lastIndexes.length;
    assert(n === this.head || lastIndex > (this.lastIndexes[n - 1] as number), "inflights: indexes must increase");
    this.lastIndexes.push(lastIndex);
    this.sizes.push(bytes);
    this.bytes += bytes;
  }

  /** Frees every in-flight append whose last index is ≤ `index` (acknowledged by a match). */
  freeTo(index: number): void {
    while (this.head < this.lastIndexes.length && (this.lastIndexes[this.head] as number) <= index) {
      this.bytes -= this.sizes[this.head] as number;
      this.head++;
    }
    // Compact the arrays once the freed prefix dominates, keeping add/free amortised O(1).
    if (this.head > 64 && this.head * 2 > this.lastIndexes.length) {
      this.lastIndexes.splice(0, this.head);
      this.sizes.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Frees the oldest in-flight append, making room for one more. */
  freeFirst(): void {
    if (this.count() === 0) return;
    this.freeTo(this.lastIndexes[this.head] as number);
  }

  reset(): void {
    this.lastIndexes.length = 0;
    this.sizes.length = 0;
    this.head = 0;
    this.bytes = 0;
  }

  checkInvariants(): void {
    assert(this.count() <= this.rpcsMax, `inflights count ${this.count()} > ${this.rpcsMax}`);
    assert(this.bytes >= 0, `inflights bytes ${this.bytes} < 0`);
    let sum = 0;
    for (let i = this.head; i < this.sizes.length; i++) sum += this.sizes[i] as number;
    assert(sum === this.bytes, `inflights bytes ${this.bytes} != sum ${sum}`);
  }
}

export class Progress {
  /** Highest index known to be durably replicated on the follower. */
  match = 0;
  /** Next index to send. Invariant: match < next. */
  next: number;
  state: ProgressState = ProgressState.probe;
  /** In probe state: an append is outstanding, so hold further ones. */
  probeSent = false;
  /** Heard from since the last check-quorum round (Raft thesis §6.2). */
  recentActive = false;
  /** Highest commit index sent to the follower, in an append or a heartbeat. */
  commitSent = 0;
  /** In snapshot state: the snapshot index being sent, and the next byte the follower expects. */
  pendingSnapshot = 0;
  snapshotPosition = 0;
  /** Highest ReadIndex round (readSeq) the follower has confirmed. */
  readSeqAcked = 0;
  readonly inflights: Inflights;

  constructor(next: number, rpcsMax: number, bytesMax: number) {
    this.next = next;
    this.inflights = new Inflights(rpcsMax, bytesMax);
  }

  becomeProbe(): void {
    // After a snapshot the follower holds at least the snapshot's entries.
    const from = this.state === ProgressState.snapshot ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.reset(ProgressState.probe);
    this.next = from;
  }

  becomeReplicate(): void {
    this.reset(ProgressState.replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.reset(ProgressState.snapshot);
    this.pendingSnapshot = snapshotIndex;
    this.snapshotPosition = 0;
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotPosition = 0;
    this.inflights.reset();
  }

  /** A success ack up to `index`. Returns false for a stale (already known) ack. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejection of an append whose prevIndex was `rejected`; `matchHint` is the highest index
   * that could still match (from the follower's conflict hint). Returns false if stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.replicate) {
      // Appends after a rejection are rejected too; only the first one for a new next counts.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /**
   * Records an append just sent: `lastIndex` is its last entry's index (its prevIndex when it
   * carried no entries), `bytes` its data bytes. Empty appends (commit updates, probes) do not
   * occupy the window.
   */
  sentEntries(lastIndex: number, bytes: number, hasEntries: boolean): void {
    if (this.state === ProgressState.replicate) {
      if (!hasEntries) return;
      this.next = lastIndex + 1;
      this.inflights.add(lastIndex, bytes);
    } else if (this.state === ProgressState.probe) {
      this.probeSent = true;
    }
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.probe:
        return this.probeSent;
      case ProgressState.replicate:
        return this.inflights.full();
      case ProgressState.snapshot:
        return true;
    }
  }

  checkInvariants(lastIndex: number): void {
    assert(this.match < this.next, `progress: match ${this.match} >= next ${this.next}`);
    assert(this.match <= lastIndex, `progress: match ${this.match} > leader lastIndex ${lastIndex}`);
    assert(this.next <= lastIndex + 1, `progress: next ${this.next} > lastIndex + 1 (${lastIndex + 1})`);
    if (this.state !== ProgressState.replicate) assert(this.inflights.count() === 0, "inflights outside replicate");
    this.inflights.checkInvariants();
  }
}
