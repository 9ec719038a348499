/**
 * Time, injected. Production passes a wall clock; the simulator passes a simulated one. Nothing
 * outside an OS binding or an entry point may read Date.now or performance.now directly.
 */
export interface Clock {
  /** Milliseconds on a monotonic scale (never goes backwards within a process). */
  nowMs(): number;
  /**
   * Calls `fn` once after `delayMs`; returns a cancel function. A delay of 0 means "after the
   * I/O callbacks already due in this turn" (setImmediate in production), which lets a driver
   * gather everything that arrived together into one batch.
   */
  setTimer(delayMs: number, fn: () => void): () => void;
}
