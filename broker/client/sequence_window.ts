import { dedupLimitsDefaults } from "../ledger_state_machine.js";

/**
 * Hands out a client's (clientId, sequence) numbers for writes that retry with the same
 * sequence, keeping every unanswered write inside the server's dedup window.
 *
 * A cap on writes in flight is not enough by itself: a write retried across a leader change
 * keeps its old sequence while newer ones complete and free their slots, and once the server has
 * applied `window` newer sequences of this client it can no longer tell whether the old one was
 * applied (it answers sequence_expired, outcome unknown). So a write also waits while its
 * sequence would be `window` or more ahead of the oldest unanswered one.
 */
export class SequenceWindow {
  private next: number;
  private inflight = 0;
  private readonly unanswered = new Set<number>();
  private readonly waiting: (() => void)[] = [];

  constructor(
    first: number,
    private readonly inflightMax: number,
    private readonly window: number = dedupLimitsDefaults.sequencesPerClientMax,
  ) {
    if (!Number.isSafeInteger(first) || first < 1) throw new RangeError(`firstSequence (${first}) must be an integer ≥ 1`);
    if (!Number.isSafeInteger(inflightMax) || inflightMax < 1 || inflightMax >= window) throw new RangeError(`inflightMax (${inflightMax}) must be in [1, ${window - 1}]`);
    this.next = first;
  }

  /** The sequence the next write will get (nothing is taken). */
  peek(): number {
    return this.next;
  }

  /**
   * Waits for a slot and a sequence within the window; returns the sequence. The slot and the
   * number are taken in the same synchronous step as the check, so waiters woken together
   * re-check one after another and each sees what the ones before it took.
   */
  async acquire(): Promise<number> {
    // Bounded: each waiter is one write of the caller; the queue never exceeds them.
    while (this.inflight >= this.inflightMax || this.next - this.oldest() >= this.window) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.inflight++;
    const sequence = this.next++;
    this.unanswered.add(sequence);
    return sequence;
  }

  /**
   * `n` consecutive numbers for one batch call, taken at once and outside the window's wait
   * (LedgerClient.appendBatch documents what that costs: a retried item of a batch larger than
   * the window may come back expired, reported unknown).
   */
  reserve(n: number): number[] {
    const out = Array.from({ length: n }, (_, i) => this.next + i);
    this.next += n;
    return out;
  }

  /** The write with `sequence` is answered (ok, failed or unknown): its slot frees. */
  release(sequence: number): void {
    if (!this.unanswered.delete(sequence)) return;
    this.inflight--;
    // Every waiter re-checks: the answer may have moved the oldest sequence, not just freed a slot.
    for (const wake of this.waiting.splice(0)) wake();
  }

  private oldest(): number {
    let oldest = this.next;
    for (const s of this.unanswered) if (s < oldest) oldest = s;
    return oldest;
  }
}
