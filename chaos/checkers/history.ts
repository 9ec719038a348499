/**
 * Client histories in Jepsen's semantics (DESIGN.md §6): the gateway where JSON lines become typed
 * values. Every checker in this folder takes a parsed History, never raw text, so each rule about
 * the file format is enforced exactly once, here.
 *
 * Format: one JSON object per line, lines in real-time order (an event on line 7 happened before
 * one on line 9). Blank lines are skipped; unknown fields are ignored. Fields:
 * - `process`: a non-negative integer for a client, or a non-empty string (e.g. "nemesis") for a
 *   fault note that the consistency checkers ignore;
 * - `type`: "invoke" | "ok" | "fail" | "info";
 * - `f`: for clients "read" | "write" | "cas" (registers), "get" | "put" | "append" (kv, and the
 *   append workload); for fault notes any string, e.g. "start" / "stop";
 * - `key` (optional, string or number): linearizability is checked per key;
 * - `value`: the written value, `[expected, new]` for cas, the value read on a read's `ok`;
 * - `index` (optional, on an append's `ok`): the log index the append was acknowledged at;
 * - `error` (optional, any JSON), `time` (optional, ns since the start of the run).
 *
 * An operation is an invoke plus the next completion of the same process. `ok` means it happened
 * once, `fail` that it definitely did not happen, `info` that its effect is unknown; after `info`
 * the process id is retired (Jepsen: a client that timed out may still have a request in flight,
 * so reusing its id would make two concurrent operations look sequential). An invoke still
 * pending at the end of the file is treated as `info`.
 */

/** A JSON value as JSON.parse returns it. */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

export const EventType = { invoke: "invoke", ok: "ok", fail: "fail", info: "info" } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export const ClientF = { read: "read", write: "write", cas: "cas", get: "get", put: "put", append: "append" } as const;
export type ClientF = (typeof ClientF)[keyof typeof ClientF];

/** How an operation ended. */
export type Outcome = "ok" | "fail" | "info";

/** A key: operations on different keys are independent (checked as separate histories). */
export type Key = string | number;

export interface ClientEvent {
  readonly kind: "client";
  /** 1-based line number in the file. */
  readonly line: number;
  readonly process: number;
  readonly type: EventType;
  readonly f: ClientF;
  readonly key: Key | null;
  /** undefined when the field is absent; null when it is JSON null. */
  readonly value: Json | undefined;
  readonly index: number | null;
  readonly error: Json | undefined;
  readonly timeNs: number | null;
}

export interface NemesisEvent {
  readonly kind: "nemesis";
  readonly line: number;
  readonly process: string;
  readonly type: EventType;
  readonly f: string;
  readonly value: Json | undefined;
  readonly timeNs: number | null;
}

export type HistoryEvent = ClientEvent | NemesisEvent;

/** An invoke paired with its completion. Positions are line numbers, so they are real-time order. */
export interface Operation {
  /** Dense id in invoke order: [0, operations.length). */
  readonly id: number;
  readonly process: number;
  readonly f: ClientF;
  readonly key: Key | null;
  readonly outcome: Outcome;
  /** The invoke's value: what a write writes, [expected, new] for cas, the payload of an append. */
  readonly invokeValue: Json | undefined;
  /** The completion's value: what a read returned. undefined when absent or never completed. */
  readonly resultValue: Json | undefined;
  /** The index an `ok` append was acknowledged at, else null. */
  readonly index: number | null;
  readonly error: Json | undefined;
  readonly invokeLine: number;
  /** null when the history ended before the operation completed (treated as info). */
  readonly completeLine: number | null;
  readonly invokeTimeNs: number | null;
  readonly completeTimeNs: number | null;
}

export interface History {
  readonly events: readonly HistoryEvent[];
  /** Client operations in invoke order. */
  readonly operations: readonly Operation[];
  readonly nemesis: readonly NemesisEvent[];
}

/** A history file that breaks the format. The message starts with "line N:" when a line is at fault. */
export class HistoryError extends Error {
  override readonly name = "HistoryError";
  constructor(
    message: string,
    readonly line: number | null,
    options?: { cause?: unknown },
  ) {
    super(line === null ? message : `line ${line}: ${message}`, options);
  }
}

/** Upper bound on events in one history (STYLE.md rule 13): far above any run we record. */
export const historyEventsMax = 50_000_000;

const eventTypes: ReadonlySet<string> = new Set(Object.values(EventType));
const clientFs: ReadonlySet<string> = new Set(Object.values(ClientF));

/** Parses JSON-lines text. Throws HistoryError naming the first bad line. */
export function parseHistory(text: string): History {
  const events: HistoryEvent[] = [];
  let lineNo = 0;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    lineNo++;
    const raw = text.slice(start, end).trim();
    start = end + 1;
    if (raw === "") continue;
    if (events.length >= historyEventsMax) throw new HistoryError(`more than ${historyEventsMax} events`, lineNo);
    events.push(parseEvent(raw, lineNo));
  }
  return { events, ...pairOperations(events) };
}

function parseEvent(raw: string, line: number): HistoryEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new HistoryError(`not valid JSON (${(err as Error).message})`, line, { cause: err });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new HistoryError(`an event must be a JSON object, got ${clip(raw)}`, line);
  }
  const o = parsed as Record<string, Json | undefined>;
  const type = o["type"];
  if (typeof type !== "string" || !eventTypes.has(type)) {
    throw new HistoryError(`"type" must be one of invoke, ok, fail, info; got ${show(type)}`, line);
  }
  const timeNs = parseTime(o["time"], line);
  const process = o["process"];
  if (typeof process === "string") {
    if (process === "") throw new HistoryError(`"process" must not be an empty string`, line);
    const f = o["f"];
    if (typeof f !== "string") throw new HistoryError(`"f" of a ${process} event must be a string; got ${show(f)}`, line);
    return { kind: "nemesis", line, process, type: type as EventType, f, value: o["value"], timeNs };
  }
  if (typeof process !== "number" || !Number.isSafeInteger(process) || process < 0) {
    throw new HistoryError(`"process" must be a non-negative integer or a string; got ${show(process)}`, line);
  }
  const f = o["f"];
  if (typeof f !== "string" || !clientFs.has(f)) {
    throw new HistoryError(`"f" must be one of ${[...clientFs].join(", ")}; got ${show(f)}`, line);
  }
  return {
    kind: "client",
    line,
    process,
    type: type as EventType,
    f: f as ClientF,
    key: parseKey(o["key"], line),
    value: o["value"],
    index: parseIndex(o["index"], line),
    error: o["error"],
    timeNs,
  };
}

function parseTime(time: Json | undefined, line: number): number | null {
  if (time === undefined || time === null) return null;
  if (typeof time !== "number" || !Number.isFinite(time) || time < 0) {
    throw new HistoryError(`"time" must be a non-negative number of ns; got ${show(time)}`, line);
  }
  return time;
}

function parseKey(key: Json | undefined, line: number): Key | null {
  if (key === undefined || key === null) return null;
  if (typeof key === "string") return key;
  if (typeof key === "number" && Number.isFinite(key)) return key;
  throw new HistoryError(`"key" must be a string or a number; got ${show(key)}`, line);
}

function parseIndex(index: Json | undefined, line: number): number | null {
  if (index === undefined || index === null) return null;
  if (typeof index === "number" && Number.isSafeInteger(index) && index >= 0) return index;
  throw new HistoryError(`"index" must be a non-negative integer; got ${show(index)}`, line);
}

interface Pending {
  readonly invoke: ClientEvent;
  readonly id: number;
}

/** Pairs each invoke with the next completion of its process, enforcing Jepsen's process rules. */
function pairOperations(events: readonly HistoryEvent[]): Omit<History, "events"> {
  const pending = new Map<number, Pending>();
  /** Process id → line of the `info` that retired it. */
  const retired = new Map<number, number>();
  const slots: (Operation | null)[] = [];
  const nemesis: NemesisEvent[] = [];
  for (const e of events) {
    if (e.kind === "nemesis") {
      nemesis.push(e);
      continue;
    }
    const retiredAt = retired.get(e.process);
    if (retiredAt !== undefined) {
      throw new HistoryError(`process ${e.process} was retired by the info on line ${retiredAt} and cannot be used again`, e.line);
    }
    const open = pending.get(e.process);
    if (e.type === "invoke") {
      if (open !== undefined) {
        throw new HistoryError(`process ${e.process} invoked again while its invoke on line ${open.invoke.line} is still pending`, e.line);
      }
      pending.set(e.process, { invoke: e, id: slots.length });
      slots.push(null);
      continue;
    }
    if (open === undefined) throw new HistoryError(`"${e.type}" for process ${e.process} without a pending invoke`, e.line);
    pending.delete(e.process);
    if (e.type === "info") retired.set(e.process, e.line);
    slots[open.id] = complete(open, e);
  }
  for (const open of pending.values()) slots[open.id] = complete(open, null);
  const operations = slots.map((op) => {
    if (op === null) throw new HistoryError("internal: an operation slot was never filled", null);
    return op;
  });
  return { operations, nemesis };
}

function complete({ invoke, id }: Pending, done: ClientEvent | null): Operation {
  if (done !== null) checkCompletion(invoke, done);
  const outcome: Outcome = done === null ? "info" : (done.type as Outcome);
  return {
    id,
    process: invoke.process,
    f: invoke.f,
    key: invoke.key,
    outcome,
    invokeValue: invoke.value,
    resultValue: done?.value,
    index: outcome === "ok" ? (done?.index ?? null) : null,
    error: done?.error,
    invokeLine: invoke.line,
    completeLine: done?.line ?? null,
    invokeTimeNs: invoke.timeNs,
    completeTimeNs: done?.timeNs ?? null,
  };
}

/** A completion must describe the operation it completes. */
function checkCompletion(invoke: ClientEvent, done: ClientEvent): void {
  if (done.f !== invoke.f) {
    throw new HistoryError(`completion has f "${done.f}" but the invoke on line ${invoke.line} has "${invoke.f}"`, done.line);
  }
  if (!sameKey(done.key, invoke.key) && done.key !== null) {
    throw new HistoryError(`completion has key ${show(done.key)} but the invoke on line ${invoke.line} has ${show(invoke.key)}`, done.line);
  }
  if (done.type !== "ok") return;
  const isRead = invoke.f === "read" || invoke.f === "get";
  if (isRead && done.value === undefined) throw new HistoryError(`an ok ${invoke.f} must carry the "value" it read`, done.line);
  if (!isRead && done.value !== undefined && !jsonEqual(done.value, invoke.value)) {
    throw new HistoryError(
      `ok ${invoke.f} carries value ${show(done.value)} but its invoke on line ${invoke.line} has ${show(invoke.value)}`,
      done.line,
    );
  }
}

function sameKey(a: Key | null, b: Key | null): boolean {
  return a === b;
}

/** Structural equality of JSON values (object key order ignored). */
export function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x: Json, i: number) => jsonEqual(x, b[i] as Json));
  }
  const ao = a as { readonly [k: string]: Json };
  const bo = b as { readonly [k: string]: Json };
  const keys = Object.keys(ao);
  if (keys.length !== Object.keys(bo).length) return false;
  return keys.every((k) => Object.hasOwn(bo, k) && jsonEqual(ao[k], bo[k]));
}

/** A JSON value for an error message, cut to a readable length. */
export function show(value: Json | undefined): string {
  return value === undefined ? "(absent)" : clip(JSON.stringify(value));
}

function clip(s: string): string {
  const clipChars = 80;
  return s.length <= clipChars ? s : `${s.slice(0, clipChars)}…`;
}

/** Completion position for ordering: an operation that never completed returns "at infinity". */
export function completePosition(op: Operation): number {
  return op.completeLine ?? Number.POSITIVE_INFINITY;
}

/** One-line description of an operation for reports: `line 12 (process 3) cas [1,2] ok`. */
export function describeOperation(op: Operation): string {
  const key = op.key === null ? "" : ` key ${show(op.key)}`;
  const isRead = op.f === "read" || op.f === "get";
  const value = isRead ? (op.outcome === "ok" ? ` -> ${show(op.resultValue)}` : "") : ` ${show(op.invokeValue)}`;
  const ended = op.completeLine === null ? "never completed" : `${op.outcome} on line ${op.completeLine}`;
  return `line ${op.invokeLine} (process ${op.process}) ${op.f}${key}${value}, ${ended}`;
}
