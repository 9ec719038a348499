import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { assert } from "../../raft/base/assert.js";
import { formatViolation } from "../checkers/violation.js";
import { runSeed, type SeedResult } from "./simulator.js";
import type { SimStore } from "./replica_host.js";

/**
 * Runs many seeds: in worker threads (one per core) from the compiled dist/ JavaScript, or in
 * process when running from TypeScript sources (vitest) where a worker could not load the .ts
 * module. Seeds are handed out in small chunks so a slow seed does not idle the other core.
 */

export interface BatchSummary {
  readonly seeds: number;
  readonly replicas: number;
  readonly violations: number;
  readonly livenessFailures: number;
  readonly simulatedUs: number;
  readonly wallMs: number;
  /** Failing seeds, ascending. */
  readonly failures: readonly SeedResult[];
  /** Liveness-phase latencies (µs) of the passing seeds, ascending. */
  readonly livenessUs: readonly number[];
  readonly events: number;
}

export interface BatchOptions {
  readonly seeds: readonly number[];
  readonly replicas: number;
  readonly store: SimStore;
  /** Worker threads; 0 runs in process. */
  readonly workers: number;
  /** Called for each failing seed as soon as it is known (for streaming output). */
  readonly onFailure?: ((result: SeedResult) => void) | undefined;
}

/** Seeds per message to a worker: small enough to balance, big enough to amortize messaging. */
const chunkSeeds = 8;

/** Workers need the compiled .js sibling; under vitest (or ts sources) there is none. */
export function workersAvailable(): boolean {
  return import.meta.url.endsWith(".js") && process.env["VITEST"] === undefined;
}

export function defaultWorkers(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

export async function runBatch(options: BatchOptions): Promise<BatchSummary> {
  const started = performance.now();
  const results = options.workers > 0 && workersAvailable() ? await runInWorkers(options) : runInProcess(options);
  return summarize(results, options.replicas, performance.now() - started);
}

function runInProcess(options: BatchOptions): SeedResult[] {
  const out: SeedResult[] = [];
  for (const seed of options.seeds) {
    const { result } = runSeed({ seed, replicas: options.replicas, store: options.store });
    if (!passed(result)) options.onFailure?.(result);
    out.push(result);
  }
  return out;
}

async function runInWorkers(options: BatchOptions): Promise<SeedResult[]> {
  const pending = [...options.seeds];
  const out: SeedResult[] = [];
  const workerCount = Math.min(options.workers, Math.ceil(pending.length / chunkSeeds));
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL("./worker.js", import.meta.url));
      const next = (): void => {
        const seeds = pending.splice(0, chunkSeeds);
        if (seeds.length === 0) {
          void worker.terminate().then(() => resolve());
          return;
        }
        worker.postMessage({ seeds, replicas: options.replicas, store: options.store });
      };
      worker.on("message", (msg: { readonly results: readonly SeedResult[] }) => {
        for (const r of msg.results) {
          if (!passed(r)) options.onFailure?.(r);
          out.push(r);
        }
        next();
      });
      worker.on("error", (err) => reject(new SimWorkerError("simulator worker failed", { cause: err })));
      next();
    });
  const workers: Promise<void>[] = [];
  for (let i = 0; i < workerCount; i++) workers.push(one());
  await Promise.all(workers);
  assert(out.length === options.seeds.length, `workers returned ${out.length} of ${options.seeds.length} seeds`);
  return out;
}

export class SimWorkerError extends Error {
  override readonly name = "SimWorkerError";
}

export function passed(r: SeedResult): boolean {
  return r.violation === null && r.livenessFailure === null;
}

function summarize(results: SeedResult[], replicas: number, wallMs: number): BatchSummary {
  results.sort((a, b) => a.seed - b.seed);
  let simulatedUs = 0;
  let events = 0;
  const liveness: number[] = [];
  for (const r of results) {
    simulatedUs += r.simulatedUs;
    events += r.events;
    if (passed(r)) liveness.push(r.livenessUs);
  }
  liveness.sort((a, b) => a - b);
  return {
    seeds: results.length,
    replicas,
    violations: results.filter((r) => r.violation !== null).length,
    livenessFailures: results.filter((r) => r.livenessFailure !== null).length,
    simulatedUs,
    wallMs,
    failures: results.filter((r) => !passed(r)),
    livenessUs: liveness,
    events,
  };
}

/** The command that replays one seed with a trace. */
export function replayCommand(seed: number, replicas: number, store: SimStore = "commitlog"): string {
  return `dledger sim --seed ${seed} --replicas ${replicas}${store === "commitlog" ? "" : ` --store ${store}`}`;
}

/** One line naming what failed and how to replay it. */
export function describeFailure(r: SeedResult): string {
  const what = r.violation !== null ? `violation ${formatViolation(r.violation)}` : `liveness failure: ${r.livenessFailure ?? "?"}`;
  return `FAIL seed ${r.seed} (${r.replicas} replicas) at ${(r.simulatedUs / 1000).toFixed(3)} ms: ${what} — replay: ${replayCommand(r.seed, r.replicas, r.store)}`;
}

/** The last line of every `dledger sim` run (its exact shape is part of the CLI contract). */
export function summaryLine(s: BatchSummary): string {
  return `sim: ${s.seeds} seeds, ${s.violations} violations, ${s.livenessFailures} liveness failures, ${(s.simulatedUs / 1e6).toFixed(1)} simulated s in ${(s.wallMs / 1000).toFixed(1)} wall s`;
}

/** The value at quantile q (0..1) of an ascending array, or -1 when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return -1;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
