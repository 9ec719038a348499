import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LedgerClient } from "../../broker/client/ledger_client.js";
import { LocalGroup, GroupError } from "../common/local_group.js";
import { median, round } from "../common/latency.js";
import { gitCommit, machineFacts, quietRule, waitQuiet } from "../common/machine.js";
import { electionCounters, type ElectionCounters } from "../common/scrape.js";
import { entryBody, LeaderTarget, type AppendRpc } from "./ledger_load.js";
import { closedLoop, openLoop, type LevelResult, type LoopOptions } from "./load_loops.js";

/**
 * `dledger bench cluster`: acknowledged appends against a 3-replica group (started here as child
 * processes, or `endpoints`). Modes, each repeated `reps` times on a fresh group:
 *   - `rate`: open loop at that rate (the soak uses this with a long duration);
 *   - `sweep`: closed loop at each concurrency, then (halfPeak) open loop at 50% of the peak;
 *   - otherwise: closed loop with `clients` appends in flight.
 */
export interface ClusterBenchOptions {
  readonly clients: number;
  readonly entryBytes: number;
  readonly duration: number;
  readonly warmup: number;
  readonly rate?: number;
  readonly sweep?: readonly number[];
  readonly halfPeak: boolean;
  readonly reps: number;
  readonly endpoints?: readonly string[];
  readonly batch: number;
  readonly channels: number;
  readonly appendRpc?: AppendRpc;
  readonly callTimeoutMs: number;
  readonly replicaNodeOptions?: string;
  readonly keepDir: boolean;
  readonly out?: string;
}

interface Target {
  readonly endpoints: readonly string[];
  readonly leaderAddress: string;
  readonly pids: readonly number[];
  readonly metrics: readonly string[];
  readonly stop: () => Promise<void>;
}

async function openTarget(o: ClusterBenchOptions): Promise<Target> {
  if (o.endpoints !== undefined) {
    const client = new LedgerClient({ endpoints: o.endpoints, attemptTimeoutMs: 1000 });
    try {
      const leader = await client.findLeader();
      if (leader === null) throw new GroupError(`no leader among ${o.endpoints.join(",")}`);
      return { endpoints: o.endpoints, leaderAddress: leader, pids: [], metrics: [], stop: async () => {} };
    } finally {
      client.close();
    }
  }
  const group = await LocalGroup.start({ keepDir: o.keepDir, ...(o.replicaNodeOptions === undefined ? {} : { replicaNodeOptions: o.replicaNodeOptions }) });
  try {
    const leader = await group.waitLeader();
    return { endpoints: group.endpoints, leaderAddress: leader.leaderAddress, pids: group.pids(), metrics: group.members.map((m) => m.metrics), stop: () => group.stop() };
  } catch (err) {
    await group.stop();
    throw err;
  }
}

async function elections(metrics: readonly string[]): Promise<ElectionCounters | null> {
  if (metrics.length === 0) return null;
  const all = await Promise.all(metrics.map((m) => electionCounters(m)));
  if (all.some((x) => x === null)) return null;
  return all.reduce<ElectionCounters>((a, x) => ({ elections: a.elections + (x?.elections ?? 0), leaderChanges: a.leaderChanges + (x?.leaderChanges ?? 0) }), { elections: 0, leaderChanges: 0 });
}

export interface RepResult {
  readonly levels: readonly LevelResult[];
  readonly halfPeak: LevelResult | null;
  readonly main: LevelResult;
  /** Increase of the group's election counters during the rep (null with --endpoints). */
  readonly electionsDuring: ElectionCounters | null;
}

async function runRep(o: ClusterBenchOptions, print: (l: string) => void): Promise<RepResult> {
  const target = await openTarget(o);
  const ch = new LeaderTarget(target.endpoints, target.leaderAddress, o.channels, o.appendRpc);
  try {
    const loop: LoopOptions = { body: entryBody(o.entryBytes), warmupMs: o.warmup * 1000, durationMs: o.duration * 1000, batchMax: o.batch, callTimeoutMs: o.callTimeoutMs, serverPids: target.pids };
    const before = await elections(target.metrics);
    const levels: LevelResult[] = [];
    let halfPeak: LevelResult | null = null;
    if (o.rate !== undefined) {
      levels.push(await openLoop(ch, o.rate, loop));
    } else {
      for (const c of o.sweep ?? [o.clients]) {
        levels.push(await closedLoop(ch, c, loop));
        printLevel(print, levels[levels.length - 1] as LevelResult);
      }
    }
    const main = levels.reduce((a, b) => (b.appendsPerSec > a.appendsPerSec ? b : a));
    if (o.rate !== undefined) printLevel(print, main);
    if (o.sweep !== undefined && o.halfPeak) {
      halfPeak = await openLoop(ch, Math.max(1, Math.round(main.appendsPerSec / 2)), loop);
      printLevel(print, halfPeak, "50% of peak");
    }
    const after = await elections(target.metrics);
    const electionsDuring = before === null || after === null ? null : { elections: after.elections - before.elections, leaderChanges: after.leaderChanges - before.leaderChanges };
    if (electionsDuring !== null) print(`  elections during the rep: +${electionsDuring.elections}, leader changes +${electionsDuring.leaderChanges} (summed over replicas)`);
    return { levels, halfPeak, main, electionsDuring };
  } finally {
    ch.close();
    await target.stop();
  }
}

export function printLevel(print: (l: string) => void, r: LevelResult, label = ""): void {
  const l = r.latencyMs;
  const what = r.mode === "closed" ? `closed ${String(r.inFlight).padStart(5)} in flight` : `open ${String(r.targetRate).padStart(6)}/s (${r.inFlight} in flight)`;
  const errs = r.errors > 0 ? `  errors ${r.errors} ${JSON.stringify(r.errorSamples)}` : "";
  print(
    `  ${what}${label === "" ? "" : ` [${label}]`}: ${r.appendsPerSec} appends/s  p50 ${l.p50} ms  p99 ${l.p99} ms  p99.9 ${l.p999} ms  max ${l.max} ms  ` +
      `cpu gen ${r.cpu.generatorCpuPct}% servers ${r.cpu.serversCpuPct}% box ${r.cpu.machineBusyPct}% foreign ${r.cpu.foreignCpuPct}%${r.shed > 0 ? `  shed ${r.shed}` : ""}${errs}`,
  );
}

/** Median of a field over reps, per level position. */
function medianLevel(reps: readonly RepResult[], pick: (r: RepResult) => LevelResult | null): Record<string, number> | null {
  const xs = reps.map(pick).filter((x): x is LevelResult => x !== null);
  if (xs.length === 0) return null;
  const m = (f: (x: LevelResult) => number): number => round(median(xs.map(f)), 3);
  return { inFlight: m((x) => x.inFlight), appendsPerSec: Math.round(median(xs.map((x) => x.appendsPerSec))), p50: m((x) => x.latencyMs.p50), p99: m((x) => x.latencyMs.p99), p999: m((x) => x.latencyMs.p999), generatorCpuPct: m((x) => x.cpu.generatorCpuPct), serversCpuPct: m((x) => x.cpu.serversCpuPct), foreignCpuPct: m((x) => x.cpu.foreignCpuPct), errors: m((x) => x.errors) };
}

export async function runClusterBench(o: ClusterBenchOptions, print: (line: string) => void): Promise<Record<string, unknown>> {
  const background = await waitQuiet(quietRule().pct, quietRule().maxWaitS, print);
  const mode = o.rate !== undefined ? `open loop at ${o.rate}/s` : o.sweep !== undefined ? `closed-loop sweep ${o.sweep.join(",")}` : `closed loop, ${o.clients} in flight`;
  print(`bench cluster: ${mode}, entry ${o.entryBytes} B, ${o.duration} s (+${o.warmup} s warm-up) per level, ${o.reps} rep(s), ${o.endpoints === undefined ? "own 3-replica group" : o.endpoints.join(",")}; background load ${background.busyPct}% (loadavg ${background.loadavg1})`);
  const reps: RepResult[] = [];
  for (let r = 0; r < o.reps; r++) {
    print(`rep ${r + 1}/${o.reps}`);
    reps.push(await runRep(o, print));
  }
  const levelCount = reps[0]?.levels.length ?? 0;
  const levels = Array.from({ length: levelCount }, (_, i) => medianLevel(reps, (r) => r.levels[i] ?? null));
  const main = medianLevel(reps, (r) => r.main) as Record<string, number>;
  const halfPeak = medianLevel(reps, (r) => r.halfPeak);
  const report = {
    kind: "bench-cluster",
    at: new Date().toISOString(),
    commit: gitCommit(),
    machine: machineFacts(),
    background,
    options: o,
    summary: { ...main, halfPeak },
    levels,
    reps,
  };
  const out = o.out ?? path.join(os.tmpdir(), `dledger-bench-cluster-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  print(`report: ${out}`);
  if (halfPeak !== null) print(`at 50% of peak (${halfPeak.inFlight} in flight): ${halfPeak.appendsPerSec} appends/s, p50 ${halfPeak.p50} ms, p99 ${halfPeak.p99} ms`);
  print(`cluster: ${main.appendsPerSec} appends/s, p50 ${main.p50} ms, p99 ${main.p99} ms at ${main.inFlight} in flight`);
  return report;
}
