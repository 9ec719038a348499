import type { History, Json, NemesisEvent } from "./history.js";

/**
 * Failover time from a history: for each fault the nemesis injected, the time from the fault being
 * in place to the first `ok` of an operation invoked after it. With the leader isolated this is the time
 * the group took to notice (by timeouts alone: no connection closes), elect a new leader, and
 * serve a request through it, as a client sees it.
 *
 * Nemesis notes are events whose `process` is a string. A fault starts with `f` "start" (or
 * "start-<fault>", Jepsen's naming) and ends with "stop" (or "stop-<fault>"). Its name is `value`
 * when that is a string, else `value.fault` or `value.name`, else the suffix of `f`. A nemesis
 * operation may be written as an invoke plus a completion: the fault counts as started at the
 * start's completion (when the nemesis reported it in place; the invoke alone if it has none) and
 * as stopped at the stop's invoke (healing begins there).
 */

export interface FaultInterval {
  readonly fault: string;
  readonly startLine: number;
  readonly startNs: number | null;
  readonly stopLine: number | null;
  readonly stopNs: number | null;
  /** The first client ok after the start, or null if none followed. */
  readonly firstOkLine: number | null;
  readonly firstOkNs: number | null;
  /** firstOkNs - startNs; null if either time is unknown or nothing succeeded after the fault. */
  readonly failoverNs: number | null;
  /** The first ok came only after the fault was healed. */
  readonly okAfterStop: boolean;
}

export interface FailoverReport {
  readonly intervals: readonly FaultInterval[];
  /** Intervals with a failover time. */
  readonly measured: number;
  /** Intervals after which no client operation succeeded. */
  readonly unrecovered: number;
  /** Intervals whose start or first ok had no `time`. */
  readonly untimed: number;
  readonly medianNs: number | null;
  readonly maxNs: number | null;
}

interface Open {
  fault: string;
  process: string;
  startLine: number;
  startNs: number | null;
  /** The start's invoke was seen and its completion may still move the start. */
  startPending: boolean;
  stopLine: number | null;
  stopNs: number | null;
  stopPending: boolean;
  firstOkLine: number | null;
  firstOkNs: number | null;
}

/** Measures every fault interval; `faults` keeps only the named faults (all when omitted). */
export function measureFailover(history: History, faults?: readonly string[]): FailoverReport {
  const intervals: Open[] = [];
  // An ok counts only for an operation invoked after the fault was in place: a request already
  // answered by the old leader (its reply merely arriving late) says nothing about recovery.
  const invokeLineOf = new Map<number, number>();
  for (const op of history.operations) if (op.completeLine !== null) invokeLineOf.set(op.completeLine, op.invokeLine);
  for (const e of history.events) {
    if (e.kind === "nemesis") {
      onNemesis(e, intervals);
      continue;
    }
    if (e.type !== "ok") continue;
    const invokeLine = invokeLineOf.get(e.line) ?? e.line;
    for (const iv of intervals) {
      if (iv.firstOkLine !== null || invokeLine < iv.startLine) continue;
      iv.firstOkLine = e.line;
      iv.firstOkNs = e.timeNs;
    }
  }
  const kept = intervals.filter((iv) => faults === undefined || faults.includes(iv.fault)).map(finish);
  const times = kept.flatMap((iv) => (iv.failoverNs === null ? [] : [iv.failoverNs])).sort((a, b) => a - b);
  return {
    intervals: kept,
    measured: times.length,
    unrecovered: kept.filter((iv) => iv.firstOkLine === null).length,
    untimed: kept.filter((iv) => iv.firstOkLine !== null && iv.failoverNs === null).length,
    medianNs: median(times),
    maxNs: times.at(-1) ?? null,
  };
}

function onNemesis(e: NemesisEvent, intervals: Open[]): void {
  const phase = e.f === "start" || e.f.startsWith("start-") ? "start" : e.f === "stop" || e.f.startsWith("stop-") ? "stop" : null;
  if (phase === null) return;
  const named = faultName(e.value, e.f);
  if (phase === "start") {
    const pending = intervals.find((iv) => iv.startPending && iv.process === e.process);
    if (pending !== undefined && e.type !== "invoke") {
      // The completion of a start: the fault is in place from here. Oks before it do not count.
      pending.startPending = false;
      pending.startLine = e.line;
      pending.startNs = e.timeNs;
      if (named !== null) pending.fault = named;
      pending.firstOkLine = null;
      pending.firstOkNs = null;
      return;
    }
    intervals.push({
      fault: named ?? "fault",
      process: e.process,
      startLine: e.line,
      startNs: e.timeNs,
      startPending: e.type === "invoke",
      stopLine: null,
      stopNs: null,
      stopPending: false,
      firstOkLine: null,
      firstOkNs: null,
    });
    return;
  }
  onStop(e, named, intervals);
}

function onStop(e: NemesisEvent, named: string | null, intervals: Open[]): void {
  const pending = intervals.find((iv) => iv.stopPending && iv.process === e.process);
  if (pending !== undefined && e.type !== "invoke") {
    pending.stopPending = false; // the stop's completion: the heal began at its invoke
    return;
  }
  const open = intervals.filter((iv) => iv.stopLine === null);
  const target = [...open].reverse().find((iv) => named === null || iv.fault === named) ?? open.at(-1);
  if (target === undefined) return;
  target.stopLine = e.line;
  target.stopNs = e.timeNs;
  target.stopPending = e.type === "invoke";
  target.startPending = false;
}

function faultName(value: Json | undefined, f: string): string | null {
  if (typeof value === "string" && value !== "") return value;
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const o = value as { readonly [k: string]: Json };
    for (const field of ["fault", "name"]) {
      const v = o[field];
      if (typeof v === "string" && v !== "") return v;
    }
  }
  const dash = f.indexOf("-");
  return dash === -1 ? null : f.slice(dash + 1);
}

function finish(iv: Open): FaultInterval {
  const timed = iv.startNs !== null && iv.firstOkNs !== null;
  return {
    fault: iv.fault,
    startLine: iv.startLine,
    startNs: iv.startNs,
    stopLine: iv.stopLine,
    stopNs: iv.stopNs,
    firstOkLine: iv.firstOkLine,
    firstOkNs: iv.firstOkNs,
    failoverNs: timed ? (iv.firstOkNs as number) - (iv.startNs as number) : null,
    okAfterStop: iv.firstOkLine !== null && iv.stopLine !== null && iv.firstOkLine > iv.stopLine,
  };
}

/** The median of sorted values (the mean of the middle two for an even count). */
export function median(sorted: readonly number[]): number | null {
  if (sorted.length === 0) return null;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
