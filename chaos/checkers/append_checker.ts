import { type History, HistoryError, type Json, type Operation, show } from "./history.js";

/**
 * The `append` workload's checker: a set/queue check in the style of Jepsen's set and queue
 * checkers (lost, duplicated, unexpected), plus the log's own promises (an acknowledged index is
 * where the entry stays; indexes follow real-time order).
 *
 * Operations (any other `f` is bad input):
 * - `append`: invoke `value` = the payload, a string or a number, unique across the history (a
 *   duplicate payload could not be told apart from a duplicated entry, so it is rejected). An `ok`
 *   carries `index`: the log index the append was acknowledged at.
 * - `read`: an `ok` read's `value` is the whole log as the reader saw it, either
 *   - an array of `{ "index": i, "value": payload }` with strictly increasing indexes, or
 *   - an array of payloads, where the element at array position p (0-based) has index p + 1: the
 *     log read densely from its first entry. Append indexes must then be in the same 1-based
 *     space (the client numbers its own entries).
 *
 * The promises checked, for every `ok` read R:
 * - lost: an `ok` append acknowledged before R was invoked is missing from R;
 * - duplicated: a payload appears at two indexes of R;
 * - unexpected: R holds a payload never appended, or one whose append `fail`ed (Jepsen: `fail`
 *   means it definitely did not happen); `info` appends may appear or not;
 * - misplaced: R holds an `ok` append's payload at another index than the acknowledged one;
 * - divergent: two reads disagree on the payload at one index (the log is a single sequence).
 * Over the `ok` appends:
 * - index conflict: two appends acknowledged at the same index;
 * - reordered: A completed before B was invoked, yet index(A) >= index(B).
 * With no `ok` read, presence cannot be checked: the verdict is "unknown" unless another
 * promise is already broken.
 */

export const AnomalyKind = {
  lost: "lost",
  duplicated: "duplicated",
  unexpected: "unexpected",
  misplaced: "misplaced",
  divergent: "divergent",
  indexConflict: "index_conflict",
  reordered: "reordered",
} as const;
export type AnomalyKind = (typeof AnomalyKind)[keyof typeof AnomalyKind];

export interface Anomaly {
  readonly kind: AnomalyKind;
  readonly payload: string | number;
  /** A sentence with the lines and indexes involved. */
  readonly detail: string;
}

export interface AppendCheckResult {
  readonly verdict: "valid" | "invalid" | "unknown";
  /** Anomalies by kind, at most anomaliesPerKindMax of each; `counts` has the full numbers. */
  readonly anomalies: readonly Anomaly[];
  readonly counts: Readonly<Record<AnomalyKind, number>>;
  readonly stats: {
    readonly appends: number;
    readonly ok: number;
    readonly info: number;
    readonly fail: number;
    readonly reads: number;
    /** Entries in the last ok read. */
    readonly lastReadEntries: number;
    /** ok appends acknowledged after the last ok read was invoked: their presence is unchecked. */
    readonly unverified: number;
  };
  /** Why the verdict is unknown, else null. */
  readonly unknownReason: string | null;
}

/** Anomalies kept per kind; the rest are only counted (STYLE.md rule 13). */
export const anomaliesPerKindMax = 50;

type Payload = string | number;

interface LogEntry {
  readonly index: number;
  readonly payload: Payload;
}

interface ReadOp {
  readonly op: Operation;
  readonly entries: readonly LogEntry[];
}

class Findings {
  readonly anomalies: Anomaly[] = [];
  readonly counts: Record<AnomalyKind, number> = {
    lost: 0,
    duplicated: 0,
    unexpected: 0,
    misplaced: 0,
    divergent: 0,
    index_conflict: 0,
    reordered: 0,
  };

  add(kind: AnomalyKind, payload: Payload, detail: string): void {
    this.counts[kind]++;
    if (this.counts[kind] <= anomaliesPerKindMax) this.anomalies.push({ kind, payload, detail });
  }

  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
}

/** Checks an append-workload history. Throws HistoryError for operations it cannot interpret. */
export function checkAppends(history: History): AppendCheckResult {
  const { appends, reads } = classify(history);
  const findings = new Findings();
  const byPayload = new Map<string, Operation>();
  for (const op of appends) byPayload.set(payloadTag(op.invokeValue as Payload), op);
  const okAppends = appends.filter((op) => op.outcome === "ok");
  checkIndexConflicts(okAppends, findings);
  checkRealTimeOrder(okAppends, findings);
  const divergence = new Map<number, { payload: Payload; line: number }>();
  const reported = new Set<number>();
  for (const read of reads) {
    checkRead(read, byPayload, findings);
    checkLost(read, okAppends, reported, findings);
    checkDivergence(read, divergence, findings);
  }
  const last = reads.at(-1);
  const unverified = last === undefined ? okAppends.length : okAppends.filter((a) => (a.completeLine as number) > last.op.invokeLine).length;
  const noRead = reads.length === 0;
  const verdict = findings.total > 0 ? "invalid" : noRead ? "unknown" : "valid";
  return {
    verdict,
    anomalies: findings.anomalies,
    counts: findings.counts,
    stats: {
      appends: appends.length,
      ok: okAppends.length,
      info: appends.filter((op) => op.outcome === "info").length,
      fail: appends.filter((op) => op.outcome === "fail").length,
      reads: reads.length,
      lastReadEntries: last?.entries.length ?? 0,
      unverified,
    },
    unknownReason: verdict === "unknown" ? "no ok read: the presence of acknowledged appends was not checked" : null,
  };
}

/** Validates the workload's operations: unique scalar payloads, indexes on ok appends, read shapes. */
function classify(history: History): { appends: Operation[]; reads: ReadOp[] } {
  const appends: Operation[] = [];
  const reads: ReadOp[] = [];
  const firstLine = new Map<string, number>();
  for (const op of history.operations) {
    if (op.f === "read") {
      if (op.outcome === "ok") reads.push({ op, entries: parseLog(op.resultValue, op.completeLine as number) });
      continue;
    }
    if (op.f !== "append") throw new HistoryError(`the append workload has only append and read operations; got "${op.f}"`, op.invokeLine);
    const v = op.invokeValue;
    if (typeof v !== "string" && typeof v !== "number") throw new HistoryError(`an append's value must be a string or a number; got ${show(v)}`, op.invokeLine);
    const tag = payloadTag(v);
    const seen = firstLine.get(tag);
    if (seen !== undefined) throw new HistoryError(`payload ${show(v)} was already appended on line ${seen}: payloads must be unique`, op.invokeLine);
    firstLine.set(tag, op.invokeLine);
    if (op.outcome === "ok" && op.index === null) throw new HistoryError(`an ok append must carry the "index" it was acknowledged at`, op.completeLine);
    appends.push(op);
  }
  return { appends, reads };
}

function parseLog(value: Json | undefined, line: number): LogEntry[] {
  if (!Array.isArray(value)) throw new HistoryError(`an ok read's value must be an array (the log); got ${show(value)}`, line);
  const items = value as readonly Json[];
  const paired = items.length > 0 && typeof items[0] === "object" && items[0] !== null;
  const entries: LogEntry[] = [];
  items.forEach((item, position) => {
    if (!paired) {
      if (typeof item !== "string" && typeof item !== "number") {
        throw new HistoryError(`read entry ${position} must be a payload (string or number) like the first; got ${show(item)}`, line);
      }
      entries.push({ index: position + 1, payload: item });
      return;
    }
    const o = item as { readonly [k: string]: Json };
    const index = typeof o === "object" && o !== null && !Array.isArray(o) ? o["index"] : undefined;
    const payload = typeof o === "object" && o !== null && !Array.isArray(o) ? o["value"] : undefined;
    if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0 || (typeof payload !== "string" && typeof payload !== "number")) {
      throw new HistoryError(`read entry ${position} must be {"index": n, "value": payload} like the first; got ${show(item)}`, line);
    }
    const prev = entries.at(-1);
    if (prev !== undefined && index <= prev.index) throw new HistoryError(`read entry ${position} has index ${index} after index ${prev.index}`, line);
    entries.push({ index, payload });
  });
  return entries;
}

function payloadTag(p: Payload): string {
  return typeof p === "number" ? `#${p}` : `s${p}`;
}

function checkIndexConflicts(okAppends: readonly Operation[], findings: Findings): void {
  const byIndex = new Map<number, Operation>();
  for (const op of okAppends) {
    const index = op.index as number;
    const other = byIndex.get(index);
    if (other === undefined) byIndex.set(index, op);
    else {
      findings.add("index_conflict", op.invokeValue as Payload, `appends on lines ${other.invokeLine} and ${op.invokeLine} were both acknowledged at index ${index}`);
    }
  }
}

/**
 * If A completed before B was invoked, index(A) < index(B). Sorting ok appends by completion and
 * keeping a running maximum makes this O(n log n): B is compared with the largest index among the
 * appends that completed before its invoke.
 */
function checkRealTimeOrder(okAppends: readonly Operation[], findings: Findings): void {
  const byCompletion = [...okAppends].sort((a, b) => (a.completeLine as number) - (b.completeLine as number));
  const prefixMax: Operation[] = [];
  for (const op of byCompletion) {
    const best = prefixMax.at(-1);
    prefixMax.push(best === undefined || (op.index as number) > (best.index as number) ? op : best);
  }
  for (const b of okAppends) {
    // Count the appends that completed before b was invoked (binary search on completion lines).
    let lo = 0;
    let hi = byCompletion.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (((byCompletion[mid] as Operation).completeLine as number) < b.invokeLine) lo = mid + 1;
      else hi = mid;
    }
    const a = lo === 0 ? undefined : prefixMax[lo - 1];
    if (a !== undefined && (a.index as number) >= (b.index as number)) {
      findings.add(
        "reordered",
        b.invokeValue as Payload,
        `append ${show(a.invokeValue)} (ok on line ${a.completeLine}, index ${a.index}) completed before append ${show(b.invokeValue)} was invoked (line ${b.invokeLine}) but got index ${b.index}`,
      );
    }
  }
}

function checkRead(read: ReadOp, byPayload: ReadonlyMap<string, Operation>, findings: Findings): void {
  const line = read.op.completeLine as number;
  const firstIndex = new Map<string, number>();
  for (const { index, payload } of read.entries) {
    const tag = payloadTag(payload);
    const earlier = firstIndex.get(tag);
    if (earlier !== undefined) {
      findings.add("duplicated", payload, `read on line ${line} holds ${show(payload)} at indexes ${earlier} and ${index}`);
      continue;
    }
    firstIndex.set(tag, index);
    const op = byPayload.get(tag);
    if (op === undefined) findings.add("unexpected", payload, `read on line ${line} holds ${show(payload)} at index ${index}, which was never appended`);
    else if (op.outcome === "fail") {
      findings.add("unexpected", payload, `read on line ${line} holds ${show(payload)} at index ${index}, whose append failed on line ${op.completeLine}`);
    } else if (op.outcome === "ok" && op.index !== index) {
      findings.add("misplaced", payload, `read on line ${line} holds ${show(payload)} at index ${index}; it was acknowledged at index ${op.index} on line ${op.completeLine}`);
    }
  }
}

/** Each ok append acknowledged before the read was invoked must be in it; each loss is reported once. */
function checkLost(read: ReadOp, okAppends: readonly Operation[], reported: Set<number>, findings: Findings): void {
  const present = new Set(read.entries.map((e) => payloadTag(e.payload)));
  for (const op of okAppends) {
    if ((op.completeLine as number) > read.op.invokeLine || reported.has(op.id)) continue;
    if (present.has(payloadTag(op.invokeValue as Payload))) continue;
    reported.add(op.id);
    findings.add(
      "lost",
      op.invokeValue as Payload,
      `append ${show(op.invokeValue)} acknowledged at index ${op.index} on line ${op.completeLine} is missing from the read invoked on line ${read.op.invokeLine}`,
    );
  }
}

function checkDivergence(read: ReadOp, seen: Map<number, { payload: Payload; line: number }>, findings: Findings): void {
  const line = read.op.completeLine as number;
  for (const { index, payload } of read.entries) {
    const earlier = seen.get(index);
    if (earlier === undefined) seen.set(index, { payload, line });
    else if (earlier.payload !== payload) {
      findings.add("divergent", payload, `index ${index} holds ${show(earlier.payload)} in the read on line ${earlier.line} but ${show(payload)} in the read on line ${line}`);
    }
  }
}
