import hdr from "hdr-histogram-js";

/** Latency histograms in microseconds (HDR, 3 significant digits, up to 60 s). */
export type Histogram = ReturnType<typeof hdr.build>;

export function histogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

/** Records one latency given in milliseconds. */
export function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.min(60_000_000, Math.max(1, Math.round(ms * 1000))));
}

/** A latency summary in milliseconds. */
export interface LatencyMs {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
  readonly count: number;
}

export function summarize(h: Histogram): LatencyMs {
  const ms = (us: number): number => Math.round(us) / 1000;
  if (h.totalCount === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0, count: 0 };
  return {
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
    count: h.totalCount,
  };
}

export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Parses "1,16,64" into positive integers; the message names the flag. */
export function intList(flag: string): (v: string) => number[] {
  return (v: string) => {
    const xs = v.split(",").map((s) => Number(s.trim()));
    if (xs.length === 0 || xs.some((x) => !Number.isSafeInteger(x) || x < 1)) throw new Error(`--${flag} (${JSON.stringify(v)}) must be a comma-separated list of integers ≥ 1`);
    return xs;
  };
}

/** Parses an integer flag ≥ lo. */
export function int(flag: string, lo: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < lo) throw new Error(`--${flag} (${JSON.stringify(v)}) must be an integer ≥ ${lo}`);
    return n;
  };
}

/** Parses a number flag > 0 (seconds may be fractional for smoke runs). */
export function positive(flag: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${flag} (${JSON.stringify(v)}) must be a number > 0`);
    return n;
  };
}
