import type { Clock } from "../../raft/base/clock.js";

/**
 * The production Clock (an OS binding, so it may read real time): monotonic milliseconds from
 * performance.now, timers from setTimeout, and 0 ms timers from setImmediate so that a replica's
 * loop turn runs after the I/O callbacks already due (see Clock.setTimer).
 */
export const wallClock: Clock = {
  nowMs: () => performance.now(),
  setTimer(delayMs, fn) {
    if (delayMs <= 0) {
      const i = setImmediate(fn);
      return () => clearImmediate(i);
    }
    const t = setTimeout(fn, delayMs);
    return () => clearTimeout(t);
  },
};
