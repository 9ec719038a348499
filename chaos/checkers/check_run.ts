import { type AppendCheckResult, checkAppends } from "./append_checker.js";
import { type FailoverReport, measureFailover } from "./failover.js";
import { type History, HistoryError, describeOperation, parseHistory, show } from "./history.js";
import { type CheckResult, checkLinearizable } from "./linearizability.js";
import type { ModelName, Scalar } from "./models.js";

/**
 * One history file checked end to end: parse, check, and describe the outcome in lines of text.
 * Shared by `dledger check`, the corpus runner and (later) the chaos runner's summary, so that all
 * three give the same verdict for the same bytes. Pure: the caller reads the file and the clock.
 */

export const ExitCode = { ok: 0, violation: 1, unknown: 2, badInput: 3 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A checker for a workload: a linearizability model, or the append workload's checker. */
export type CheckMode = ModelName | "append";

export type FileVerdict = "linearizable" | "not-linearizable" | "valid" | "invalid" | "unknown" | "bad-input";

export interface RunOptions {
  readonly mode: CheckMode;
  readonly init: Scalar;
  /** Per history; Infinity for none. */
  readonly timeLimitMs: number;
  readonly nowMs: () => number;
}

export interface FileOutcome {
  readonly verdict: FileVerdict;
  readonly exitCode: ExitCode;
  /** Detail lines: statistics, the failing operation, anomalies, failover. */
  readonly details: readonly string[];
  /** One line: the verdict first, then a short summary. */
  readonly summary: string;
  readonly elapsedMs: number;
  readonly linearizability: CheckResult | null;
  readonly appends: AppendCheckResult | null;
  readonly failover: FailoverReport | null;
}

/** How bad an exit code is when several files are checked: a proven violation outranks the rest. */
const severity: Readonly<Record<ExitCode, number>> = { 0: 0, 2: 1, 3: 2, 1: 3 };

/** The worst of several exit codes: 1 (violation) > 3 (bad input) > 2 (unknown) > 0. */
export function worstExitCode(codes: readonly ExitCode[]): ExitCode {
  return codes.reduce<ExitCode>((worst, c) => (severity[c] > severity[worst] ? c : worst), ExitCode.ok);
}

/** Parses and checks one history. Never throws for bad input: that is the verdict "bad-input". */
export function checkText(text: string, options: RunOptions): FileOutcome {
  const started = options.nowMs();
  try {
    const outcome = checkHistory(parseHistory(text), options);
    return { ...outcome, elapsedMs: options.nowMs() - started };
  } catch (err) {
    if (!(err instanceof HistoryError)) throw err;
    return {
      verdict: "bad-input",
      exitCode: ExitCode.badInput,
      details: [],
      summary: `bad-input: ${err.message}`,
      elapsedMs: options.nowMs() - started,
      linearizability: null,
      appends: null,
      failover: null,
    };
  }
}

/**
 * Checks a parsed history: the seam for the chaos runner, which keeps its history in memory. A
 * new workload (the broker's `queue`) adds a CheckMode and one case here. Throws HistoryError if
 * an operation does not fit the workload.
 */
export function checkHistory(history: History, options: RunOptions): FileOutcome {
  const started = options.nowMs();
  let outcome: CheckedPart;
  switch (options.mode) {
    case "append":
      outcome = appendOutcome(history);
      break;
    case "register":
    case "cas-register":
    case "kv":
      outcome = modelOutcome(history, options.mode, options);
      break;
  }
  const failover = history.nemesis.length > 0 ? measureFailover(history) : null;
  const details = failover === null ? outcome.details : [...outcome.details, failoverLine(failover)];
  return { ...outcome, details, failover, elapsedMs: options.nowMs() - started };
}

type CheckedPart = Omit<FileOutcome, "elapsedMs" | "failover">;

function modelOutcome(history: History, mode: ModelName, options: RunOptions): CheckedPart {
  const result = checkLinearizable(history, { model: mode, init: options.init, timeLimitMs: options.timeLimitMs, nowMs: options.nowMs });
  const s = result.stats;
  const stats = `${s.operations} operations, ${s.keys} keys, ${s.statesExplored} states explored, ${s.steps} steps`;
  const base = { linearizability: result, appends: null };
  switch (result.verdict) {
    case "linearizable":
      return { ...base, verdict: "linearizable", exitCode: ExitCode.ok, details: [], summary: `linearizable: ${stats}` };
    case "unknown": {
      const why = result.reason === "time_limit" ? `time limit of ${options.timeLimitMs / 1000} s reached` : "memo budget spent";
      const key = result.key === null ? "" : ` on key ${show(result.key)}`;
      return { ...base, verdict: "unknown", exitCode: ExitCode.unknown, details: [], summary: `unknown: ${why}${key}; ${stats}` };
    }
    case "not-linearizable": {
      const f = result.failure;
      const details = [
        `could not linearize ${describeOperation(f.operation)}`,
        `  ${f.key === null ? "" : `key ${show(f.key)}: `}${f.linearizedBefore} operations${f.key === null ? "" : " of the key"} were linearized before it`,
        `  model states tried there: ${f.statesTried.map((v) => show(v)).join(", ") || "(none)"}`,
      ];
      return { ...base, verdict: "not-linearizable", exitCode: ExitCode.violation, details, summary: `not-linearizable: ${stats}` };
    }
  }
}

function appendOutcome(history: History): CheckedPart {
  const r = checkAppends(history);
  const s = r.stats;
  const counts = Object.entries(r.counts)
    .map(([k, n]) => `${n} ${k}`)
    .join(", ");
  const stats = `${s.appends} appends (${s.ok} ok, ${s.info} info, ${s.fail} fail), ${s.reads} reads, last read ${s.lastReadEntries} entries, ${s.unverified} unverified; ${counts}`;
  const details = r.anomalies.map((a) => `${a.kind}: ${a.detail}`);
  const base = { linearizability: null, appends: r, details };
  if (r.verdict === "valid") return { ...base, verdict: "valid", exitCode: ExitCode.ok, summary: `valid: ${stats}` };
  if (r.verdict === "unknown") return { ...base, verdict: "unknown", exitCode: ExitCode.unknown, summary: `unknown: ${r.unknownReason ?? ""}; ${stats}` };
  return { ...base, verdict: "invalid", exitCode: ExitCode.violation, summary: `invalid: ${stats}` };
}

function failoverLine(r: FailoverReport): string {
  const ms = (ns: number | null): string => (ns === null ? "-" : `${(ns / 1e6).toFixed(1)} ms`);
  const faults = [...new Set(r.intervals.map((iv) => iv.fault))].join(", ");
  return `failover: ${r.intervals.length} faults (${faults}), ${r.measured} measured, median ${ms(r.medianNs)}, max ${ms(r.maxNs)}, ${r.unrecovered} without a later ok, ${r.untimed} untimed`;
}
