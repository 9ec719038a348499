import { CpuMeter } from "../common/machine.js";
import { histogram, recordMs, sleep, summarize } from "../common/latency.js";
import type { LevelResult } from "../cluster/load_loops.js";

/** A peer system under comparison: one acknowledged 1 KiB write per `op` call. */
export interface PeerSystem {
  readonly name: string;
  /** Server PIDs, for CPU accounting. */
  readonly pids: readonly number[];
  /** One durable write by worker `w` of `workers`; rejects on failure. */
  op(w: number, workers: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Closed loop for peers, as ../shared/anchors/lib.mjs does it: `c` workers each issue the next
 * write as soon as the previous one is acknowledged; latency is send → ack.
 */
export async function peerClosedLoop(p: PeerSystem, c: number, warmupMs: number, durationMs: number): Promise<LevelResult> {
  const h = histogram();
  const errorSamples: Record<string, number> = {};
  const t0 = performance.now();
  const start = t0 + warmupMs;
  const end = start + durationMs;
  const meter = new CpuMeter(p.pids);
  const startMeter = setTimeout(() => meter.start(), warmupMs);
  let acked = 0;
  let errors = 0;
  const worker = async (w: number): Promise<void> => {
    // Bounded by the window's end.
    while (performance.now() < end) {
      const s = performance.now();
      try {
        await p.op(w, c);
        const e = performance.now();
        if (e >= start && e <= end) {
          acked++;
          recordMs(h, e - s);
        }
      } catch (err) {
        errors++;
        const k = String(err instanceof Error ? err.message : err).slice(0, 60);
        if (Object.keys(errorSamples).length < 10 || k in errorSamples) errorSamples[k] = (errorSamples[k] ?? 0) + 1;
        await sleep(10);
      }
    }
  };
  await Promise.all(Array.from({ length: c }, (_, w) => worker(w)));
  clearTimeout(startMeter);
  const cpu = meter.stop();
  return { mode: "closed", inFlight: c, targetRate: null, appendsPerSec: Math.round(acked / (durationMs / 1000)), errors, errorSamples, latencyMs: summarize(h), cpu, shed: 0 };
}
