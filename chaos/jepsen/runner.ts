import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Prng } from "../../raft/base/prng.js";
import { type FileOutcome, checkHistory } from "../checkers/check_run.js";
import { HistoryError, type Operation, parseHistory } from "../checkers/history.js";
import { type FaultInterval, median } from "../checkers/failover.js";
import type { FaultKind } from "./nemesis.js";
import type {
  ChaosCluster,
  FailoverByFault,
  HistoryRecorder,
  NemesisFamily,
  NodeId,
  ReportChecker,
  ReportFailingOperation,
  ReportFault,
  RunReport,
} from "./contracts.js";
import { compareReplicaLogs } from "./log_compare.js";
import { Progress, type ProgressSink } from "./progress.js";
import { JsonlHistoryRecorder } from "./recorder.js";
import { renderHtmlReport, renderTextSummary } from "../report/report.js";
import { workloadEntry } from "./workload_registry.js";

/**
 * One chaos run (`dledger chaos`), from cluster to verdict:
 *
 *   1. start the cluster (netns or process-only: the caller chose), open the history;
 *   2. fault phase, `timeLimitMs`: the seeded nemesis injects faults while the workload runs;
 *   3. heal: the nemesis stops every fault, then the runner makes sure (restart what is down,
 *      resume, remove partitions, link faults and clock skew); a replica that will not restart
 *      is an incident, with its log tail;
 *   4. recovery phase: the workload keeps running until some operation succeeds on the healed
 *      group (at least `recoveryMs`, at most `recoveryMaxMs`), then its signal aborts: it finishes
 *      what it has in flight (the append workload makes its final read);
 *   5. the replicas' logs are compared entry by entry (log_compare.ts), the cluster is stopped;
 *   6. the history is read back and checked (its workload's checker, failover times);
 *   7. report.json, report.html and summary.txt are written to `outDir`.
 *
 * Exit codes: 0 valid; 1 a checker found a violation; 2 a checker could not decide; 3 the harness
 * failed (bad input, a replica that would not restart, a workload that hung). An incident voids a
 * run: it is never reported valid, but a proven violation still wins (1).
 */

export const RunExit = { valid: 0, violation: 1, unknown: 2, harness: 3 } as const;
export type RunExit = (typeof RunExit)[keyof typeof RunExit];

/** What the runner needs from nemesis.ts: run faults until the signal aborts, then heal them all. */
export interface NemesisRunner {
  run(signal: AbortSignal): Promise<void>;
  /** Problems injecting or lifting faults (e.g. a replica that would not restart): each voids the run. */
  readonly incidents?: readonly string[];
}

export interface NemesisFactoryOptions {
  readonly cluster: ChaosCluster;
  readonly recorder: HistoryRecorder;
  readonly seed: number;
  readonly families: readonly NemesisFamily[];
  /** Repeat this one fault kind instead of mixing the families (e.g. "isolate-leader"). */
  readonly only?: FaultKind;
  /** Stop injecting after this many faults; the fault phase then ends early. */
  readonly faultsMax?: number;
  readonly print: (line: string) => void;
}

export interface ChaosRunDeps {
  readonly createCluster: (o: { readonly replicas: number; readonly dir: string; readonly print: (line: string) => void }) => Promise<ChaosCluster>;
  readonly createNemesis: (o: NemesisFactoryOptions) => NemesisRunner;
}

export interface ChaosRunOptions {
  readonly workload: string;
  /** The families asked for; `all` true when the user said `all` (unavailable ones are then skipped, not refused). */
  readonly families: readonly NemesisFamily[];
  readonly all: boolean;
  /** Repeat this one fault kind (its family must be in `families`). */
  readonly only?: FaultKind;
  /** Stop injecting after this many faults; the fault phase ends when the last one is healed. */
  readonly faultsMax?: number;
  readonly timeLimitMs: number;
  readonly seed: number;
  readonly outDir: string;
  readonly replicas: number;
  /** Why the run is process-only, when it is (printed and kept in the report). */
  readonly modeNote: string | null;
  readonly requestTimeoutMs?: number;
  readonly recoveryMs?: number;
  readonly recoveryMaxMs?: number;
  /** Bound on the nemesis healing after the fault phase. */
  readonly healMs?: number;
  /** Bound on the workload finishing after its signal aborts. */
  readonly drainMs?: number;
  /** Per-checker time limit (linearizability search). */
  readonly checkTimeLimitMs?: number;
}

export const chaosRunDefaults = {
  requestTimeoutMs: 1000,
  recoveryMs: 3000,
  recoveryMaxMs: 20_000,
  healMs: 60_000,
  drainMs: 60_000,
  checkTimeLimitMs: 120_000,
} as const;

export interface ChaosRunIo {
  /** Lines for the operator (stdout). */
  readonly print: (line: string) => void;
  /** Progress display (stderr). */
  readonly progress: ProgressSink;
}

export interface ChaosRunResult {
  readonly exitCode: RunExit;
  /** null when the run could not start (the message says why). */
  readonly report: RunReport | null;
  readonly summary: string;
}

/** Which fault families need which capability; the others only need processes and files. */
function familyAvailable(f: NemesisFamily, caps: ChaosCluster["capabilities"]): string | null {
  const why = (what: string): string => `${what} unavailable (${caps.limitations.join("; ") || `mode ${caps.mode}`})`;
  switch (f) {
    case "partition":
      return caps.partitions ? null : why("partitions");
    case "netem":
      return caps.loss || caps.delay ? null : why("packet loss and delay");
    case "clock":
      return caps.clock ? null : why("clock skew");
    case "kill":
    case "pause":
    case "corrupt":
      return null;
  }
}

export async function runChaos(opts: ChaosRunOptions, deps: ChaosRunDeps, io: ChaosRunIo): Promise<ChaosRunResult> {
  const o = { ...chaosRunDefaults, ...definedOnly(opts) } as Required<ChaosRunOptions>;
  const entry = workloadEntry(o.workload);
  const outDir = resolve(o.outDir);
  mkdirSync(outDir, { recursive: true });
  const historyPath = join(outDir, "history.jsonl");
  const startedAt = new Date().toISOString();
  io.print(`chaos: workload ${o.workload}, nemesis ${o.all ? "all" : o.families.join(",")}, ${o.timeLimitMs / 1000} s, seed ${o.seed}, ${o.replicas} replicas, out ${outDir}`);
  if (o.modeNote !== null) io.print(`chaos: process-only mode: ${o.modeNote}`);
  const incidents: string[] = [];
  let cluster: ChaosCluster;
  try {
    cluster = await deps.createCluster({ replicas: o.replicas, dir: join(outDir, "cluster"), print: io.print });
  } catch (err) {
    const message = `chaos: cannot build the cluster: ${errorMessage(err)}`;
    io.print(message);
    return { exitCode: RunExit.harness, report: null, summary: message };
  }
  const recorder = JsonlHistoryRecorder.open(historyPath);
  let families: NemesisFamily[] = [];
  let faultPhaseNs = 0;
  let logChecker: ReportChecker | null = null;
  let liveness: ReportChecker | null = null;
  try {
    const refused = await startAndChooseFamilies(cluster, o, io, incidents);
    if (refused !== null) {
      io.print(refused);
      return { exitCode: RunExit.harness, report: null, summary: refused };
    }
    families = o.families.filter((f) => familyAvailable(f, cluster.capabilities) === null);
    const phases = await runPhases(cluster, o, deps, io, recorder, families, incidents);
    faultPhaseNs = phases.faultPhaseNs;
    liveness = phases.liveness;
    for (const e of cluster.takeUnexpectedExits()) incidents.push(`replica ${e.id} exited on its own (code ${e.code}, signal ${e.signal}); log tail:\n${e.logTail}`);
    const running = cluster.nodes.filter((n) => cluster.isRunning(n.id));
    if (running.length < cluster.nodes.length) incidents.push(`replicas not running at the end: ${cluster.nodes.filter((n) => !running.includes(n)).map((n) => n.id).join(", ")}`);
    logChecker = await compareReplicaLogs(running, { requestTimeoutMs: Math.max(1000, o.requestTimeoutMs) });
  } catch (err) {
    incidents.push(`harness failure: ${errorMessage(err)}`);
  } finally {
    recorder.close();
    await cluster.stop();
  }
  const report = buildReport({ o, entry, recorder, historyPath, startedAt, families, faultPhaseNs, incidents, logChecker, liveness, capabilities: cluster.capabilities, nodes: cluster.nodes.map((n) => n.id) });
  return finish(report, outDir, io);
}

/** Starts the cluster and checks the families asked for; returns a refusal message, or null. */
async function startAndChooseFamilies(cluster: ChaosCluster, o: Required<ChaosRunOptions>, io: ChaosRunIo, incidents: string[]): Promise<string | null> {
  try {
    await cluster.start();
  } catch (err) {
    return `chaos: the cluster did not start: ${errorMessage(err)}; replica logs under ${cluster.dir}`;
  }
  const caps = cluster.capabilities;
  io.print(`chaos: cluster up in ${caps.mode} mode: ${cluster.nodes.map((n) => `${n.id}=${n.clientAddress}`).join(" ")}`);
  for (const l of caps.limitations) io.print(`chaos: limitation: ${l}`);
  const missing = o.families.map((f) => [f, familyAvailable(f, caps)] as const).filter(([, why]) => why !== null);
  if (missing.length > 0 && !o.all) {
    return `chaos: --nemesis ${missing.map(([f]) => f).join(",")} cannot run here: ${missing.map(([, why]) => why).join("; ")}. Run as root with ip/nft/tc installed (not --no-netns), or leave those families out.`;
  }
  for (const [f, why] of missing) io.print(`chaos: skipping nemesis ${f}: ${why}`);
  if (o.families.length === missing.length) incidents.push("no fault family can run here; the run injected nothing");
  return null;
}

interface Phases {
  readonly faultPhaseNs: number;
  readonly liveness: ReportChecker;
}

async function runPhases(
  cluster: ChaosCluster,
  o: Required<ChaosRunOptions>,
  deps: ChaosRunDeps,
  io: ChaosRunIo,
  recorder: JsonlHistoryRecorder,
  families: readonly NemesisFamily[],
  incidents: string[],
): Promise<Phases> {
  const prng = new Prng(o.seed);
  const workloadRandom = prng.fork();
  const nemesisAbort = new AbortController();
  const workloadAbort = new AbortController();
  let phase = "faults";
  const startedMs = performance.now();
  const progress = new Progress(io.progress, () => {
    const fault = recorder.currentFault();
    return {
      phase,
      elapsedMs: Math.min(performance.now() - startedMs, o.timeLimitMs),
      limitMs: o.timeLimitMs,
      ok: recorder.counts.ok,
      fail: recorder.counts.fail,
      info: recorder.counts.info,
      faults: recorder.faultsStarted(),
      fault: fault === null ? null : `${fault.fault} ${fault.nodes.join(",")}`,
    };
  });
  let interrupted: string | null = null;
  let wake: () => void = () => {};
  const onSignal = (s: NodeJS.Signals): void => {
    interrupted ??= `interrupted by ${s}`;
    wake();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  progress.start();
  try {
    const nemesis = families.length === 0 ? null : deps.createNemesis({
            cluster,
            recorder,
            seed: o.seed,
            families,
            ...(o.only === undefined ? {} : { only: o.only }),
            ...(o.faultsMax === undefined ? {} : { faultsMax: o.faultsMax }),
            print: (l) => progress.note(l),
          });
    const workload = workloadEntry(o.workload).create();
    const workloadDone = settle(workload.run({ nodes: cluster.nodes, recorder, random: () => workloadRandom.float(), signal: workloadAbort.signal, requestTimeoutMs: o.requestTimeoutMs }));
    const nemesisDone = nemesis === null ? Promise.resolve(null) : settle(nemesis.run(nemesisAbort.signal));
    // Fault phase: until the time limit, an interrupt, or the workload ending early (a bug).
    // With --faults N the phase also ends once the nemesis has injected and healed its N faults.
    const nemesisFinished = o.faultsMax === undefined ? new Promise<never>(() => {}) : nemesisDone;
    // The time-limit timer is cleared when another branch wins: a pending timer would keep the
    // process alive for the rest of the time limit after the run has finished.
    let limitTimer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((r) => (limitTimer = setTimeout(r, o.timeLimitMs)));
    await Promise.race([limit, new Promise<void>((r) => (wake = r)), workloadDone, nemesisFinished]).finally(() => clearTimeout(limitTimer));
    if (interrupted !== null) incidents.push(interrupted);
    const faultPhaseNs = recorder.nowNs();
    phase = "healing";
    nemesisAbort.abort();
    const nemesisError = await withTimeout(nemesisDone, o.healMs);
    if (nemesisError === "timeout") incidents.push(`the nemesis did not stop and heal within ${o.healMs} ms`);
    else if (nemesisError !== null) incidents.push(`the nemesis failed: ${errorMessage(nemesisError)}`);
    incidents.push(...(nemesis?.incidents ?? []).map((i) => `nemesis: ${i}`));
    await healEverything(cluster, families, incidents, (l) => progress.note(l));
    phase = "recovery";
    const healedNs = recorder.nowNs();
    const okAtHeal = recorder.counts.ok;
    await recover(o, () => recorder.counts.ok > okAtHeal);
    workloadAbort.abort();
    phase = "draining";
    const workloadError = await withTimeout(workloadDone, o.drainMs);
    if (workloadError === "timeout") incidents.push(`the workload did not finish within ${o.drainMs} ms of the end of the run`);
    else if (workloadError !== null) incidents.push(`the workload failed: ${errorMessage(workloadError)}`);
    const okAfterHeal = recorder.counts.ok - okAtHeal;
    const liveness: ReportChecker =
      okAfterHeal > 0
        ? { name: "liveness after heal", verdict: "recovered", ok: true, summary: `${okAfterHeal} operations succeeded after every fault was healed`, details: [] }
        : {
            name: "liveness after heal",
            verdict: "stuck",
            ok: false,
            summary: `no operation succeeded in the ${((recorder.nowNs() - healedNs) / 1e9).toFixed(1)} s after every fault was healed`,
            details: [],
          };
    return { faultPhaseNs, liveness };
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    progress.stop();
  }
}

/** The recovery phase: at least recoveryMs, then until `recovered()` or recoveryMaxMs. */
async function recover(o: Required<ChaosRunOptions>, recovered: () => boolean): Promise<void> {
  await sleep(o.recoveryMs);
  const deadline = performance.now() + Math.max(0, o.recoveryMaxMs - o.recoveryMs);
  while (!recovered() && performance.now() < deadline) await sleep(100);
}

/**
 * Belt and braces after the nemesis stopped: every replica running and resumed, no partition, no
 * link fault, no clock skew. A replica that will not restart becomes an incident naming it.
 */
async function healEverything(cluster: ChaosCluster, families: readonly NemesisFamily[], incidents: string[], note: (line: string) => void): Promise<void> {
  const caps = cluster.capabilities;
  const used = (f: NemesisFamily): boolean => families.includes(f);
  const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      incidents.push(`${what}: ${errorMessage(err)}`);
      note(`chaos: ${what}: ${errorMessage(err)}`);
    }
  };
  for (const n of cluster.nodes) {
    if (!cluster.isRunning(n.id)) await attempt(`replica ${n.id} will not restart after the faults were healed`, () => cluster.restart(n.id));
    else await attempt(`resume ${n.id}`, () => cluster.resume(n.id));
    if (caps.clock && used("clock")) await attempt(`clear the clock skew of ${n.id}`, () => cluster.setClockSkew(n.id, null));
  }
  if (caps.partitions && used("partition")) await attempt("heal the network", () => cluster.heal());
  if ((caps.loss || caps.delay) && used("netem")) await attempt("clear packet loss and delay", () => cluster.setLinkFaults(null));
}

interface BuildInput {
  readonly o: Required<ChaosRunOptions>;
  readonly entry: ReturnType<typeof workloadEntry>;
  readonly recorder: JsonlHistoryRecorder;
  readonly historyPath: string;
  readonly startedAt: string;
  readonly families: readonly NemesisFamily[];
  readonly faultPhaseNs: number;
  readonly incidents: string[];
  readonly logChecker: ReportChecker | null;
  readonly liveness: ReportChecker | null;
  readonly capabilities: ChaosCluster["capabilities"];
  readonly nodes: readonly NodeId[];
}

/** Reads the history back, runs the checkers and assembles the RunReport. */
function buildReport(b: BuildInput): RunReport {
  const checkers: ReportChecker[] = [];
  let outcome: FileOutcome | null = null;
  try {
    const history = parseHistory(readFileSync(b.historyPath, "utf8"));
    outcome = checkHistory(history, { mode: b.entry.checkMode, init: null, timeLimitMs: b.o.checkTimeLimitMs, nowMs: () => performance.now() });
    checkers.push(workloadChecker(b.entry.checkerName, outcome));
  } catch (err) {
    const why = err instanceof HistoryError ? `the recorded history is malformed (a harness bug): ${err.message}` : `the checker failed: ${errorMessage(err)}`;
    b.incidents.push(why);
    checkers.push({ name: b.entry.checkerName, verdict: "unknown", ok: null, summary: why, details: [] });
  }
  if (b.logChecker !== null) checkers.push(b.logChecker);
  if (b.liveness !== null) checkers.push(b.liveness);
  const intervals = outcome?.failover?.intervals ?? [];
  const faults = reportFaults(b.recorder, intervals);
  if (b.families.length > 0 && faults.length === 0 && b.faultPhaseNs > 0) b.incidents.push("the nemesis injected no fault during the run");
  const failover = outcome?.failover ?? null;
  if (failover !== null) {
    const ms = (ns: number | null): string => (ns === null ? "-" : `${(ns / 1e6).toFixed(0)} ms`);
    checkers.push({
      name: "failover",
      verdict: "measured",
      ok: true,
      summary: `${failover.measured} of ${failover.intervals.length} faults measured: median ${ms(failover.medianNs)}, max ${ms(failover.maxNs)}; ${failover.unrecovered} without a later ok`,
      details: [],
    });
  }
  const valid = checkers.every((c) => c.ok === true) && b.incidents.length === 0;
  return {
    workload: b.o.workload,
    nemeses: b.families,
    seed: b.o.seed,
    startedAt: b.startedAt,
    durationNs: b.recorder.nowNs(),
    capabilities: b.capabilities,
    nodes: b.nodes,
    historyPath: b.historyPath,
    counts: { ...b.recorder.counts },
    operations: b.recorder.operations(),
    faults,
    checkers,
    failover: {
      measured: failover?.measured ?? 0,
      medianMs: failover?.medianNs == null ? null : failover.medianNs / 1e6,
      maxMs: failover?.maxNs == null ? null : failover.maxNs / 1e6,
      byFault: failoverByFault(faults),
    },
    incidents: b.incidents,
    valid,
  };
}

function workloadChecker(name: string, outcome: FileOutcome): ReportChecker {
  const ok = outcome.exitCode === 0 ? true : outcome.exitCode === 1 ? false : null;
  const failing = outcome.linearizability?.verdict === "not-linearizable" ? outcome.linearizability.failure.operation : null;
  return {
    name,
    verdict: outcome.verdict,
    ok,
    summary: outcome.summary,
    details: outcome.details.filter((d) => !d.startsWith("failover")),
    ...(failing === null ? {} : { failingOperation: toFailing(failing) }),
  };
}

function toFailing(op: Operation): ReportFailingOperation {
  return {
    process: op.process,
    f: op.f,
    ...(op.key === null ? {} : { key: op.key }),
    outcome: op.outcome,
    ...(op.invokeValue === undefined ? {} : { invokeValue: op.invokeValue }),
    ...(op.resultValue === undefined ? {} : { resultValue: op.resultValue }),
    invokeNs: op.invokeTimeNs,
    completeNs: op.completeTimeNs,
    invokeLine: op.invokeLine,
    completeLine: op.completeLine,
  };
}

/** One ReportFault per "start" note, in order; failover from the matching interval (same order). */
function reportFaults(recorder: JsonlHistoryRecorder, intervals: readonly FaultInterval[]): ReportFault[] {
  const starts = recorder.notes().filter((n) => n.f === "start");
  return starts.map((n, i) => {
    const iv = intervals[i];
    const matches = iv !== undefined && iv.fault === n.value.fault;
    return {
      fault: n.value.fault,
      nodes: n.value.nodes,
      startNs: n.timeNs,
      stopNs: matches ? iv.stopNs : null,
      failoverMs: matches && iv.failoverNs !== null ? iv.failoverNs / 1e6 : null,
    };
  });
}

/** Failover figures per fault kind: a mixed median hides the leader faults behind the harmless ones. */
export function failoverByFault(faults: readonly ReportFault[]): FailoverByFault[] {
  const kinds = [...new Set(faults.map((f) => f.fault))];
  return kinds.map((fault) => {
    const all = faults.filter((f) => f.fault === fault);
    const ms = all.map((f) => f.failoverMs).filter((m): m is number => m !== null).sort((a, b) => a - b);
    return { fault, count: all.length, measured: ms.length, medianMs: median(ms), maxMs: ms.length === 0 ? null : (ms[ms.length - 1] as number) };
  });
}

/** Writes report.json, report.html and summary.txt; prints the summary; decides the exit code. */
function finish(report: RunReport, outDir: string, io: ChaosRunIo): ChaosRunResult {
  const summary = renderTextSummary(report);
  writeFileSync(join(outDir, "report.json"), `${JSON.stringify(report, null, 1)}\n`);
  writeFileSync(join(outDir, "report.html"), renderHtmlReport(report));
  const paths = `history ${report.historyPath}\nreport  ${join(outDir, "report.html")}\n`;
  writeFileSync(join(outDir, "summary.txt"), `${summary.trimEnd()}\n${paths}`);
  for (const i of report.incidents) io.print(`chaos: incident: ${i.split("\n")[0] ?? ""}`);
  io.print(paths.trimEnd());
  io.print(summary.trimEnd());
  return { exitCode: exitCodeOf(report), report, summary };
}

export function exitCodeOf(report: RunReport): RunExit {
  if (report.checkers.some((c) => c.ok === false)) return RunExit.violation;
  if (report.incidents.length > 0) return RunExit.harness;
  if (report.checkers.length === 0 || report.checkers.some((c) => c.ok === null)) return RunExit.unknown;
  return report.valid ? RunExit.valid : RunExit.harness;
}

/* --- Small helpers ---------------------------------------------------------------------------- */

/** Resolves with null on success, the error on failure (never rejects). */
function settle(p: Promise<void>): Promise<unknown> {
  return p.then(
    () => null,
    (e: unknown) => e ?? new Error("rejected without a reason"),
  );
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<unknown>((r) => (timer = setTimeout(() => r("timeout"), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
