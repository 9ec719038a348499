import { type History, HistoryError, type Json, type Key, type Operation, show } from "./history.js";

/**
 * Sequential specifications for the linearizability checkers. All three models are a register per
 * key; they differ in which operations they accept. Because linearizability is local (Herlihy &
 * Wing 1990, §3.3: a history is linearizable iff each object's sub-history is), the checkers split
 * a history by key and run one single-register search per key, so a model state is one scalar.
 *
 * - `register`: read, write.
 * - `cas-register`: read, write, cas (`value` = [expected, new]; it takes effect only if the
 *   register holds `expected`, and a cas that found another value must be reported as `fail`).
 * - `kv`: get, put, append, and cas. `append` concatenates its string onto the key's value; an
 *   absent value (null) counts as "", a number as its decimal text.
 *
 * Every key starts at `init` (the CLI's `--init`, default null).
 */

export const ModelName = { register: "register", casRegister: "cas-register", kv: "kv" } as const;
export type ModelName = (typeof ModelName)[keyof typeof ModelName];

export const modelNames: readonly ModelName[] = Object.values(ModelName);

/** A register's value: linearizability models only hold JSON scalars. */
export type Scalar = string | number | boolean | null;

/** What an operation does to the register, after get/put are mapped onto read/write. */
export type StepKind = "read" | "write" | "cas" | "append";

/** An operation prepared for a model: validated values, and whether it must be linearized. */
export interface ModelOp {
  /** Dense within its key's partition: [0, ops kept). The WGL bitset is indexed by it. */
  readonly localId: number;
  readonly source: Operation;
  readonly kind: StepKind;
  /** Read: the value returned. Write: the value written. Cas: the new value. Append: the suffix. */
  readonly value: Scalar;
  /** Cas only: the value the register must hold. */
  readonly expected: Scalar;
  /**
   * true for `ok`: it happened, so it must be placed in the order. false for `info` (and for an
   * invoke that never completed): it may take effect at any point after its invoke, or never.
   */
  readonly required: boolean;
  /** Real-time position of the call and the return: line numbers; the return is +Infinity unless ok. */
  readonly call: number;
  readonly ret: number;
}

/** The operations on one key, in invoke order. */
export interface Partition {
  readonly key: Key | null;
  readonly ops: readonly ModelOp[];
}

const allowed: Readonly<Record<ModelName, ReadonlySet<string>>> = {
  register: new Set(["read", "write"]),
  "cas-register": new Set(["read", "write", "cas"]),
  kv: new Set(["get", "put", "append", "cas"]),
};

/**
 * Splits a history by key and validates each operation for the model. `fail` operations are
 * dropped (they did not happen), and so are `info` reads (they change nothing and their result is
 * unknown, so they constrain nothing: Knossos and Porcupine drop them too). With `prune` (the
 * default) indeterminate operations whose effect nobody observed are dropped too (see
 * pruneUnobserved). Throws HistoryError naming the line of an operation the model cannot
 * interpret.
 */
export function partitionHistory(history: History, model: ModelName, options: { readonly prune?: boolean } = {}): Partition[] {
  const byKey = new Map<string, { key: Key | null; ops: ModelOp[] }>();
  for (const op of history.operations) {
    if (!allowed[model].has(op.f)) {
      throw new HistoryError(`model ${model} has no "${op.f}" operation (it has ${[...allowed[model]].join(", ")})`, op.invokeLine);
    }
    if (op.outcome === "fail") continue;
    const kind = stepKind(op);
    if (kind === "read" && op.outcome !== "ok") continue;
    const tag = keyTag(op.key);
    let part = byKey.get(tag);
    if (part === undefined) {
      part = { key: op.key, ops: [] };
      byKey.set(tag, part);
    }
    part.ops.push(prepare(op, kind, -1));
  }
  return [...byKey.values()].map(({ key, ops }) => {
    const kept = options.prune === false ? ops : pruneUnobserved(ops);
    return { key, ops: kept.map((op, localId) => ({ ...op, localId })) };
  });
}

/**
 * Drops indeterminate writes, cas operations and appends whose effect nobody observed. Such an
 * operation never has to be linearized (being info, it may be omitted), and omitting it from any
 * linearization leaves a legal one, so the verdict is unchanged; but the search no longer tries
 * every subset of these operations at every point after their invoke, which is what makes crashed
 * clients costly for WGL (each such operation can double the configurations reachable after it).
 *
 * Why omitting is legal: after an operation sets value v, until the next write every state holds
 * v, so a read or a cas there "sees" v. Without appends that means equality; with appends the
 * state is v extended by later suffixes (and an append of s leaves s inside the state), so it
 * means containing v's text. If no ok read returned, and no cas expected, a value that sees v, then
 * nothing sits between the operation and the next write except writes and appends no one reads,
 * and the sequence stays legal without it.
 */
function pruneUnobserved(ops: readonly ModelOp[]): readonly ModelOp[] {
  const observations: Scalar[] = [];
  for (const op of ops) {
    if (op.kind === "read") observations.push(op.value);
    else if (op.kind === "cas") observations.push(op.expected);
  }
  const appends = ops.some((op) => op.kind === "append");
  let seen: (v: Scalar) => boolean;
  if (!appends) {
    const values = new Set<Scalar>(observations);
    seen = (v) => values.has(v);
  } else {
    // null appends as "", which every text contains; hence text(null) = "".
    const text = (v: Scalar): string => (v === null ? "" : String(v));
    const texts = observations.map(text);
    seen = (v) => texts.some((t) => t.includes(text(v)));
  }
  return ops.filter((op) => op.required || op.kind === "read" || seen(op.value));
}

/** Distinguishes the key 1 from the key "1". */
export function keyTag(key: Key | null): string {
  return key === null ? "n" : typeof key === "number" ? `#${key}` : `s${key}`;
}

function stepKind(op: Operation): StepKind {
  switch (op.f) {
    case "read":
    case "get":
      return "read";
    case "write":
    case "put":
      return "write";
    case "cas":
      return "cas";
    case "append":
      return "append";
  }
}

function prepare(op: Operation, kind: StepKind, localId: number): ModelOp {
  const base = {
    localId,
    source: op,
    kind,
    required: op.outcome === "ok",
    call: op.invokeLine,
    // An info operation's effect may land after its info line (the request is still in flight),
    // so only an ok operation's return bounds where it can be linearized.
    ret: op.outcome === "ok" ? (op.completeLine as number) : Number.POSITIVE_INFINITY,
  };
  switch (kind) {
    case "read":
      return { ...base, value: scalar(op.resultValue, op.completeLine ?? op.invokeLine, "the value read"), expected: null };
    case "write":
      return { ...base, value: scalar(op.invokeValue, op.invokeLine, "the value written"), expected: null };
    case "append": {
      const v = op.invokeValue;
      if (typeof v !== "string") throw new HistoryError(`append needs a string "value"; got ${show(v)}`, op.invokeLine);
      return { ...base, value: v, expected: null };
    }
    case "cas": {
      const v = op.invokeValue;
      if (!Array.isArray(v) || v.length !== 2) throw new HistoryError(`cas needs "value": [expected, new]; got ${show(v)}`, op.invokeLine);
      const pair = v as readonly Json[];
      return {
        ...base,
        expected: scalar(pair[0], op.invokeLine, "cas expected value"),
        value: scalar(pair[1], op.invokeLine, "cas new value"),
      };
    }
  }
}

function scalar(v: Json | undefined, line: number, what: string): Scalar {
  if (v === undefined) throw new HistoryError(`${what} is missing`, line);
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  throw new HistoryError(`${what} must be a string, number, boolean or null; got ${show(v)}`, line);
}

/**
 * The sequential specification: the state after `op` runs in `state`, or undefined if `op`
 * cannot run there (a read that returns another value, a cas whose expected value is not held).
 */
export function applyStep(state: Scalar, op: ModelOp): Scalar | undefined {
  switch (op.kind) {
    case "read":
      return state === op.value ? state : undefined;
    case "write":
      return op.value;
    case "cas":
      return state === op.expected ? op.value : undefined;
    case "append":
      return (state === null ? "" : String(state)) + String(op.value);
  }
}

/** Validates `--init`: the value every absent key starts with. */
export function parseInit(text: string): Scalar {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new HistoryError(`--init must be JSON (e.g. null, 0, "x"); got ${text}`, null, { cause: err });
  }
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  throw new HistoryError(`--init must be a JSON scalar (string, number, boolean or null); got ${text}`, null);
}
