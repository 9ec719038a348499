import { CpuMeter, type CpuUse } from "../common/machine.js";
import { histogram, recordMs, round, sleep, summarize, type LatencyMs } from "../common/latency.js";
import { isFailure, Producer, producerBatchMax, type LeaderTarget } from "./ledger_load.js";

/** One measured load level. Latency is per acknowledged append, in ms. */
export interface LevelResult {
  readonly mode: "closed" | "open";
  /** Closed loop: appends kept in flight. Open loop: mean in flight (Little's law). */
  readonly inFlight: number;
  /** Open loop only: the offered rate. */
  readonly targetRate: number | null;
  readonly appendsPerSec: number;
  readonly errors: number;
  readonly errorSamples: Readonly<Record<string, number>>;
  readonly latencyMs: LatencyMs;
  readonly cpu: CpuUse;
  /** Open loop only: arrivals that never got sent because the backlog bound was hit. */
  readonly shed: number;
}

export interface LoopOptions {
  readonly body: Uint8Array;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Appends per call at most (≤ 64). */
  readonly batchMax: number;
  /** Deadline of one call. */
  readonly callTimeoutMs: number;
  /** Server PIDs whose CPU is measured beside the generator's. */
  readonly serverPids: readonly number[];
}

interface Window {
  readonly start: number;
  readonly end: number;
}

function noteError(samples: Map<string, number>, raw: string): void {
  // Strip grpc-js's per-call timing details ("after 5.001s, LB pick: …") so alike errors group.
  const key = raw.split(/ after |,/)[0] ?? raw;
  if (samples.size < 20 || samples.has(key)) samples.set(key, (samples.get(key) ?? 0) + 1);
}

/** Splits `c` in-flight appends into workers of at most `batchMax` each, as evenly as possible. */
export function splitWorkers(c: number, batchMax: number): number[] {
  const b = Math.max(1, Math.min(batchMax, producerBatchMax, c));
  const w = Math.ceil(c / b);
  return Array.from({ length: w }, (_, i) => Math.floor(c / w) + (i < c % w ? 1 : 0));
}

/**
 * Closed loop: `c` appends always in flight, in workers that each send one call of their batch
 * and send the next as soon as it is answered. Latency is call start → answer.
 */
export async function closedLoop(ch: LeaderTarget, c: number, o: LoopOptions): Promise<LevelResult> {
  const h = histogram();
  const errorSamples = new Map<string, number>();
  const t0 = performance.now();
  const win: Window = { start: t0 + o.warmupMs, end: t0 + o.warmupMs + o.durationMs };
  const meter = new CpuMeter(o.serverPids);
  let acked = 0;
  let errors = 0;
  let cpu: CpuUse | null = null;
  const startMeter = setTimeout(() => meter.start(), o.warmupMs);
  const stopMeter = setTimeout(() => (cpu = meter.stop()), o.warmupMs + o.durationMs);
  const worker = async (batch: number): Promise<void> => {
    const p = new Producer(o.body);
    // Bounded by the window's end.
    while (performance.now() < win.end) {
      const s = performance.now();
      const r = await ch.send(p.requests(batch), o.callTimeoutMs);
      const e = performance.now();
      const inWindow = e >= win.start && e <= win.end;
      if (!r.ok) {
        if (inWindow) errors += batch;
        noteError(errorSamples, `${r.code} ${r.reason || r.details.slice(0, 60)}`);
        await sleep(10);
        continue;
      }
      for (const x of r.responses) {
        if (isFailure(x)) {
          if (inWindow) errors++;
          noteError(errorSamples, `${x.code} ${x.reason}`);
        } else if (inWindow) {
          acked++;
          recordMs(h, e - s);
        }
      }
    }
  };
  await Promise.all(splitWorkers(c, o.batchMax).map((b) => worker(b)));
  clearTimeout(startMeter);
  clearTimeout(stopMeter);
  cpu ??= meter.stop();
  const rate = acked / (o.durationMs / 1000);
  return { mode: "closed", inFlight: c, targetRate: null, appendsPerSec: Math.round(rate), errors, errorSamples: Object.fromEntries(errorSamples), latencyMs: summarize(h), cpu, shed: 0 };
}

/** Virtual producers an open loop may use at once (each with one call outstanding). */
const openProducersMax = 1024;

/**
 * Open loop: arrivals at `rate`/s on a fixed schedule, independent of answers. Every ~1 ms the
 * arrivals due are sent, batched per call, by free producers; when none is free they wait in a
 * bounded backlog. Latency runs from each arrival's scheduled time, so queueing in the generator
 * counts (no coordinated omission).
 */
export async function openLoop(ch: LeaderTarget, rate: number, o: LoopOptions): Promise<LevelResult> {
  const h = histogram();
  const errorSamples = new Map<string, number>();
  const t0 = performance.now();
  const win: Window = { start: t0 + o.warmupMs, end: t0 + o.warmupMs + o.durationMs };
  const backlogMax = Math.max(1000, rate * 2);
  const free: Producer[] = Array.from({ length: openProducersMax }, () => new Producer(o.body));
  const backlog: number[] = [];
  let head = 0;
  let issued = 0;
  let acked = 0;
  let errors = 0;
  let shed = 0;
  let outstanding = 0;
  let inFlightArea = 0;
  let lastAreaAt = win.start;
  const meter = new CpuMeter(o.serverPids);
  let metering = false;
  const area = (now: number): void => {
    const from = Math.max(lastAreaAt, win.start);
    const to = Math.min(now, win.end);
    if (to > from) inFlightArea += (outstanding + backlog.length - head) * (to - from);
    lastAreaAt = now;
  };
  const dispatch = (): void => {
    while (head < backlog.length && free.length > 0) {
      const p = free.pop() as Producer;
      const n = Math.min(o.batchMax, backlog.length - head);
      const due = backlog.slice(head, head + n);
      head += n;
      outstanding += n;
      void ch.send(p.requests(n), o.callTimeoutMs).then((r) => {
        const e = performance.now();
        area(e);
        outstanding -= n;
        free.push(p);
        settle(r, due, e);
        dispatch();
      });
    }
    if (head > 4096 && head * 2 > backlog.length) {
      backlog.splice(0, head);
      head = 0;
    }
  };
  const settle = (r: Awaited<ReturnType<LeaderTarget["send"]>>, due: readonly number[], e: number): void => {
    due.forEach((t, i) => {
      const inWindow = t >= win.start && t <= win.end;
      const x = r.ok ? r.responses[i] : undefined;
      if (x === undefined || isFailure(x)) {
        if (inWindow) errors++;
        noteError(errorSamples, r.ok ? `${x === undefined ? "missing" : `${x.code} ${x.reason}`}` : `${r.code} ${r.reason || r.details.slice(0, 60)}`);
      } else if (inWindow) {
        acked++;
        recordMs(h, e - t);
      }
    });
  };
  // The pacer: bounded by the window's end; each turn sleeps ~1 ms.
  while (performance.now() < win.end) {
    const now = performance.now();
    if (!metering && now >= win.start) {
      meter.start();
      metering = true;
    }
    area(now);
    const due = Math.floor((rate * (now - t0)) / 1000);
    for (; issued < due; issued++) {
      if (backlog.length - head >= backlogMax) shed++;
      else backlog.push(t0 + (issued * 1000) / rate);
    }
    dispatch();
    await sleep(1);
  }
  const cpu = meter.stop();
  area(win.end);
  for (let waited = 0; outstanding > 0 && waited < o.callTimeoutMs + 1000; waited += 10) await sleep(10);
  const achieved = acked / (o.durationMs / 1000);
  const inFlight = round(inFlightArea / o.durationMs, 1);
  return { mode: "open", inFlight, targetRate: rate, appendsPerSec: Math.round(achieved), errors, errorSamples: Object.fromEntries(errorSamples), latencyMs: summarize(h), cpu, shed };
}
