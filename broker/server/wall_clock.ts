import { readFileSync } from "node:fs";
import type { Clock } from "../../raft/base/clock.js";
import type { Logger } from "../../raft/base/logger.js";

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

/** A clock skew: readings move at `rate` times real time (1 = real) and are shifted by offsetMs. */
export interface ClockSkew {
  readonly offsetMs: number;
  readonly rate: number;
}

/** The env variable that makes `dledger start` poll a clock-skew file (the chaos harness sets it). */
export const clockSkewFileEnv = "DLEDGER_CLOCK_SKEW_FILE";
const offsetMsMax = 86_400_000;
const rateMin = 0.01;
const rateMax = 100;

/**
 * Validates untrusted skew text (`{"offsetMs": 500, "rate": 1.5}`); an empty text means none.
 * Returns the skew or a message naming the field, rule and value.
 */
export function parseClockSkew(text: string): ClockSkew | string {
  if (text.trim() === "") return { offsetMs: 0, rate: 1 };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return `clock skew is not JSON: ${(e as Error).message}`;
  }
  const r = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
  const offsetMs = r["offsetMs"] ?? 0;
  const rate = r["rate"] ?? 1;
  if (typeof offsetMs !== "number" || !Number.isFinite(offsetMs) || Math.abs(offsetMs) > offsetMsMax) return `offsetMs (${String(offsetMs)}) must be a number in [-${offsetMsMax}, ${offsetMsMax}]`;
  if (typeof rate !== "number" || !(rate >= rateMin && rate <= rateMax)) return `rate (${String(rate)}) must be a number in [${rateMin}, ${rateMax}]`;
  return { offsetMs, rate };
}

/**
 * The wall clock with a skew that can change at runtime, for the chaos harness's clock nemesis
 * (libfaketime proved unusable on Node: changing its rate at runtime moves CLOCK_MONOTONIC
 * backwards, and libuv then stops firing timers). Timers run `rate` times faster than real time
 * (so a fast clock ticks Raft faster, a slow one starves heartbeats); readings move at `rate`
 * and include offsetMs, but never go backwards (the Clock contract): a backward step holds the
 * reading still until real time catches up, like a slewing NTP daemon.
 */
export class SkewableClock implements Clock {
  #anchorRealMs = performance.now();
  #anchorSkewedMs = this.#anchorRealMs;
  #skew: ClockSkew = { offsetMs: 0, rate: 1 };
  #lastMs = 0;

  get skew(): ClockSkew {
    return this.#skew;
  }

  nowMs(): number {
    const skewed = this.#anchorSkewedMs + (performance.now() - this.#anchorRealMs) * this.#skew.rate + this.#skew.offsetMs;
    this.#lastMs = Math.max(this.#lastMs, skewed);
    return this.#lastMs;
  }

  setTimer(delayMs: number, fn: () => void): () => void {
    if (delayMs <= 0) return wallClock.setTimer(0, fn);
    return wallClock.setTimer(Math.max(1, delayMs / this.#skew.rate), fn);
  }

  /** Applies a new skew from now on; readings stay continuous apart from the offset's change. */
  set(skew: ClockSkew): void {
    const realMs = performance.now();
    this.#anchorSkewedMs += (realMs - this.#anchorRealMs) * this.#skew.rate;
    this.#anchorRealMs = realMs;
    this.#skew = skew;
  }
}

/**
 * Polls `path` every pollMs (real time) and applies the skew it holds (parseClockSkew; a missing
 * file means none). Each change is logged as `clock_skew_applied` with the clock's reading and
 * real time, so a run's logs show the skew the process saw. Returns a stop function.
 */
export function watchClockSkewFile(clock: SkewableClock, path: string, logger: Logger, pollMs = 50): () => void {
  let lastText = "";
  let lastError = "";
  const poll = (): void => {
    let text = "";
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") text = lastText;
    }
    if (text === lastText) return;
    const skew = parseClockSkew(text);
    if (typeof skew === "string") {
      if (skew !== lastError) logger.warn({ path, error: skew }, "clock_skew_rejected");
      lastError = skew;
      return;
    }
    lastText = text;
    clock.set(skew);
    // Real time first: the skewed reading taken after it is then never behind by the gap between them.
    const realMs = performance.now();
    logger.info({ path, offsetMs: skew.offsetMs, rate: skew.rate, clockMs: clock.nowMs(), realMs }, "clock_skew_applied");
  };
  poll();
  const timer = setInterval(poll, pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
