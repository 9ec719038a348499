import { type Command, InvalidArgumentError } from "commander";
import { formatViolation } from "../checkers/violation.js";
import { defaultWorkers, describeFailure, passed, quantile, replayCommand, runBatch, summaryLine, type BatchSummary } from "./runner.js";
import type { SimStore } from "./replica_host.js";
import { runSeed } from "./simulator.js";

/**
 * `dledger sim`: run simulator seeds, or replay one with a trace. The last line printed is always
 * the summary line (runner.ts: summaryLine); the exit code is 1 on any violation or liveness
 * failure.
 */

interface SimCliOptions {
  readonly seeds: number;
  readonly first: number;
  readonly seed?: number;
  readonly replicas: number;
  readonly store: SimStore;
  readonly workers: number;
  readonly json?: boolean;
  readonly trace?: boolean;
  readonly traceLines: number;
}

/** Largest seed count one command accepts (a bound, not a target). */
const seedsMax = 1_000_000;

function parseCount(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new InvalidArgumentError(`must be an integer in [0, ${max}], got ${value}`);
    return n;
  };
}

function parseSeed(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`must be a non-negative integer, got ${value}`);
  return n;
}

function parseStore(value: string): SimStore {
  if (value !== "commitlog" && value !== "memory") throw new InvalidArgumentError(`must be commitlog or memory, got ${value}`);
  return value;
}

function parseReplicas(value: string): number {
  if (value !== "3" && value !== "5") throw new InvalidArgumentError(`must be 3 or 5, got ${value}`);
  return Number(value);
}

export function registerSimCommand(program: Command, _groups: { readonly bench: Command }): void {
  program
    .command("sim")
    .description("run the deterministic Raft simulator: N seeds, or replay one seed with a trace")
    .option("--seeds <n>", "number of seeds to run", parseCount(seedsMax), 100)
    .option("--first <s>", "first seed of the batch", parseSeed, 1)
    .option("--seed <s>", "replay one seed exactly; prints a step trace if it fails", parseSeed)
    .option("--replicas <n>", "replicas per group: 3 or 5", parseReplicas, 3)
    .option("--store <kind>", "log store under each replica: commitlog (the real CommitLog on a simulated disk) or memory", parseStore, "commitlog" as SimStore)
    .option("--workers <n>", "worker threads for batches (0 = in process)", parseCount(64), defaultWorkers())
    .option("--json", "print a JSON report (one line) before the summary line")
    .option("--trace", "with --seed: print the trace even when the seed passes")
    .option("--trace-lines <n>", "with --seed: trace lines to print, from the end (0 = all)", parseCount(100_000_000), 400)
    .action(async (opts: SimCliOptions) => {
      const ok = opts.seed !== undefined ? replay(opts.seed, opts) : await batch(opts);
      if (!ok) process.exitCode = 1;
    });
}

async function batch(opts: SimCliOptions): Promise<boolean> {
  const seeds: number[] = [];
  for (let i = 0; i < opts.seeds; i++) seeds.push(opts.first + i);
  const summary = await runBatch({
    seeds,
    replicas: opts.replicas,
    store: opts.store,
    workers: opts.workers,
    onFailure: opts.json === true ? undefined : (r) => console.log(describeFailure(r)),
  });
  if (opts.json === true) console.log(JSON.stringify(jsonReport(summary)));
  else if (summary.livenessUs.length > 0) console.log(livenessLine(summary));
  console.log(summaryLine(summary));
  return summary.failures.length === 0;
}

function livenessLine(s: BatchSummary): string {
  const ms = (q: number): string => (quantile(s.livenessUs, q) / 1000).toFixed(1);
  return `liveness after healing: p50 ${ms(0.5)} ms, p99 ${ms(0.99)} ms, max ${ms(1)} ms; ${s.events} events`;
}

function jsonReport(s: BatchSummary): Record<string, unknown> {
  return {
    seeds: s.seeds,
    replicas: s.replicas,
    violations: s.violations,
    livenessFailures: s.livenessFailures,
    simulatedS: s.simulatedUs / 1e6,
    wallS: s.wallMs / 1000,
    events: s.events,
    livenessMs: { p50: quantile(s.livenessUs, 0.5) / 1000, p99: quantile(s.livenessUs, 0.99) / 1000, max: quantile(s.livenessUs, 1) / 1000 },
    failures: s.failures.map((r) => ({
      seed: r.seed,
      replicas: r.replicas,
      violation: r.violation,
      livenessFailure: r.livenessFailure,
      simulatedMs: r.simulatedUs / 1000,
      replay: replayCommand(r.seed, r.replicas, r.store),
    })),
  };
}

/** Fault and lifecycle lines (crashes, restarts, pauses, partitions, snapshots), at most 60. */
function keyEvents(trace: readonly string[]): string[] {
  const keyEventsMax = 60;
  const pattern = /fault:|CRASH|restart|PAUSE|resume| snapshot |liveness/;
  return trace.filter((line) => pattern.test(line)).slice(-keyEventsMax);
}

function replay(seed: number, opts: SimCliOptions): boolean {
  const started = performance.now();
  const { result, trace } = runSeed({ seed, replicas: opts.replicas, store: opts.store, trace: true });
  const wallMs = performance.now() - started;
  const ok = passed(result);
  if ((!ok || opts.trace === true) && trace !== null && opts.json !== true) {
    const lines = opts.traceLines === 0 ? trace : trace.slice(-opts.traceLines);
    if (lines.length < trace.length) {
      console.log(`... ${trace.length - lines.length} earlier trace lines omitted (--trace-lines 0 prints all); the faults first:`);
      for (const line of keyEvents(trace.slice(0, trace.length - lines.length))) console.log(line);
      console.log("... then the last steps:");
    }
    for (const line of lines) console.log(line);
  }
  const summary: BatchSummary = {
    seeds: 1,
    replicas: opts.replicas,
    violations: result.violation === null ? 0 : 1,
    livenessFailures: result.livenessFailure === null ? 0 : 1,
    simulatedUs: result.simulatedUs,
    wallMs,
    failures: ok ? [] : [result],
    livenessUs: ok ? [result.livenessUs] : [],
    events: result.events,
  };
  if (opts.json === true) console.log(JSON.stringify({ ...jsonReport(summary), result }));
  else {
    console.log(`seed ${seed}: ${result.events} events, trace hash ${result.traceHash.toString(16)}, stats ${JSON.stringify(result.stats)}`);
    if (result.violation !== null) console.log(`violation: ${formatViolation(result.violation)}`);
    if (!ok) console.log(describeFailure(result));
  }
  console.log(summaryLine(summary));
  return ok;
}
