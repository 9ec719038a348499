import { assert } from "../../raft/base/assert.js";
import { Prng } from "../../raft/base/prng.js";
import type { ModelName, Scalar } from "./models.js";

/**
 * A seeded generator of client histories with a known verdict, for testing and timing the
 * checkers. A valid history is produced by running a real sequential model: each operation takes
 * effect at one random moment between its invoke and its completion (its linearization point),
 * so the history is linearizable by construction. Operations may fail before taking effect
 * (`fail`), crash (`info`) before or after taking effect — a crashed operation that has not taken
 * effect yet may still do so at any later moment, or never, like a request left in flight — and
 * interleave freely across client threads.
 *
 * Each valid history also yields corrupted variants whose violation is certain, not just likely.
 * Every written value is fresh (written by exactly one operation), which is what makes it certain:
 * - stale-read / lost-write: a read returns the value of write W1 although a later write W2
 *   started after W1 completed and completed before the read began, so W1 < W2 < read in every
 *   linearization and W1's value, written only by W1, cannot be current;
 * - phantom-read: a read returns a value nobody wrote;
 * - cas-twice: a second `ok` cas from the value another `ok` cas already replaced; that value was
 *   written once, so the register holds it during one interval, which the first cas ended;
 * - for the append workload: a duplicated, a lost, an unexpected (failed) and a reordered entry.
 */

export type CorpusMode = ModelName | "append";
export type ExpectedVerdict = "linearizable" | "not-linearizable" | "valid" | "invalid";

export interface CorpusHistory {
  readonly name: string;
  readonly mode: CorpusMode;
  readonly init: Scalar;
  readonly expected: ExpectedVerdict;
  /** JSON lines, one event per line. */
  readonly text: string;
  /** For an invalid append history: the anomaly the corruption must produce. */
  readonly anomaly?: string;
}

export interface GeneratorParams {
  readonly seed: number;
  readonly mode: CorpusMode;
  /** Client operations to invoke. */
  readonly ops: number;
  /** Client threads running at once. */
  readonly concurrency: number;
  readonly keys: number;
  /** Per step, the chance that a pending operation crashes (info) or fails. */
  readonly crashP: number;
  readonly failP: number;
}

export type Ev = Record<string, unknown>;

export interface GenOp {
  readonly f: string;
  readonly key: string | null;
  readonly value: Scalar | readonly Scalar[];
  invokeAt: number;
  completeAt: number;
  outcome: "ok" | "fail" | "info" | null;
  applied: boolean;
  /** Read result, or whether a cas found its expected value, or an append's index. */
  result: Scalar;
  casOk: boolean;
}

export interface Thread {
  process: number;
  op: GenOp | null;
}

/** Shared machinery of both generators: threads, events, crashes and late effects. */
export class Run {
  readonly events: Ev[] = [];
  readonly ops: GenOp[] = [];
  readonly limbo: GenOp[] = [];
  readonly threads: Thread[];
  nextProcess: number;
  fresh = 0;
  private clockNs = 0;

  constructor(
    readonly prng: Prng,
    readonly params: GeneratorParams,
  ) {
    this.threads = Array.from({ length: params.concurrency }, (_, i) => ({ process: i, op: null }));
    this.nextProcess = params.concurrency;
  }

  emit(ev: Ev): number {
    this.clockNs += 1000 + this.prng.int(0, 50_000);
    this.events.push({ ...ev, time: this.clockNs });
    return this.events.length - 1;
  }

  invoke(t: Thread, op: Omit<GenOp, "invokeAt" | "completeAt" | "outcome" | "applied" | "result" | "casOk">): GenOp {
    const full: GenOp = { ...op, invokeAt: -1, completeAt: -1, outcome: null, applied: false, result: null, casOk: false };
    full.invokeAt = this.emit(withKey({ process: t.process, type: "invoke", f: op.f, value: op.value }, op.key));
    this.ops.push(full);
    t.op = full;
    return full;
  }

  complete(t: Thread, outcome: "ok" | "fail" | "info", extra: Ev = {}): void {
    const op = t.op as GenOp;
    op.outcome = outcome;
    op.completeAt = this.emit(withKey({ process: t.process, type: outcome, f: op.f, ...extra }, op.key));
    t.op = null;
    if (outcome === "info") {
      t.process = this.nextProcess++; // Jepsen: an indeterminate process is retired
      if (!op.applied) this.limbo.push(op);
    }
  }

  /** One step for a thread with an operation that has not taken effect: fail, crash, or take effect. */
  pendingStep(t: Thread, apply: (op: GenOp) => void): void {
    const r = this.prng.float();
    if (r < this.params.failP) this.complete(t, "fail");
    else if (r < this.params.failP + this.params.crashP) this.complete(t, "info");
    else if (r < 0.6) apply(t.op as GenOp);
  }

  /** A crashed request still in flight takes effect late (or, if never picked, never). */
  maybeLateEffect(apply: (op: GenOp) => void): void {
    if (this.limbo.length === 0 || !this.prng.chance(0.03)) return;
    const i = this.prng.int(0, this.limbo.length);
    const op = this.limbo[i] as GenOp;
    this.limbo.splice(i, 1);
    apply(op);
  }

  text(events: readonly Ev[] = this.events): string {
    return events.map((e) => JSON.stringify(e)).join("\n") + "\n";
  }
}

export function withKey(ev: Ev, key: string | null): Ev {
  return key === null ? ev : { ...ev, key };
}

/** The register / cas-register / kv generator. */
function runRegister(run: Run, model: ModelName): Map<string, Scalar> {
  const { prng, params } = run;
  const state = new Map<string, Scalar>();
  const get = (key: string | null): Scalar => state.get(key ?? "") ?? null;
  const apply = (op: GenOp): void => {
    op.applied = true;
    const k = op.key ?? "";
    const before = get(op.key);
    if (op.f === "read" || op.f === "get") op.result = before;
    else if (op.f === "write" || op.f === "put") state.set(k, op.value as Scalar);
    else if (op.f === "append") state.set(k, (before === null ? "" : String(before)) + String(op.value));
    else {
      const [expected, next] = op.value as readonly Scalar[];
      op.casOk = before === expected;
      if (op.casOk) state.set(k, next as Scalar);
    }
  };
  let invoked = 0;
  while (invoked < params.ops || run.threads.some((t) => t.op !== null)) {
    run.maybeLateEffect(apply);
    const t = prng.pick(run.threads);
    if (t.op === null) {
      if (invoked >= params.ops) continue;
      invoked++;
      run.invoke(t, randomRegisterOp(run, model, get));
    } else if (!t.op.applied) run.pendingStep(t, apply);
    else if (prng.chance(params.crashP)) run.complete(t, "info");
    else completeApplied(run, t);
  }
  if (prng.chance(0.3)) run.invoke({ process: run.nextProcess++, op: null }, randomRegisterOp(run, model, get)); // never completes
  return state;
}

function completeApplied(run: Run, t: Thread): void {
  const op = t.op as GenOp;
  if (op.f === "read" || op.f === "get") run.complete(t, "ok", { value: op.result });
  else if (op.f === "cas") run.complete(t, op.casOk ? "ok" : "fail");
  else run.complete(t, "ok");
}

function randomRegisterOp(run: Run, model: ModelName, get: (key: string | null) => Scalar): Pick<GenOp, "f" | "key" | "value"> {
  const { prng, params } = run;
  const key = model === "kv" || params.keys > 1 ? `k${prng.int(0, params.keys)}` : null;
  const r = prng.float();
  const id = ++run.fresh;
  if (model === "kv") {
    if (r < 0.45) return { f: "get", key, value: null };
    return r < 0.6 ? { f: "put", key, value: `p${id}` } : { f: "append", key, value: `a${id}.` };
  }
  if (r < 0.45) return { f: "read", key, value: null };
  if (model === "register" || r < 0.7) return { f: "write", key, value: id };
  // Usually the current value, so that most cas operations succeed; otherwise a stale guess.
  const expected = prng.chance(0.6) ? get(key) : prng.chance(0.5) ? null : prng.int(1, id + 1);
  return { f: "cas", key, value: [expected, id] };
}

/** Mutations whose effect is a fresh value: writes, puts, successful cas; appends for kv. */
function okMutations(run: Run, key: string | null): GenOp[] {
  return run.ops.filter(
    (op) => op.key === key && op.outcome === "ok" && (op.f === "write" || op.f === "put" || op.f === "cas" || op.f === "append"),
  );
}

/** W1, W2 on one key, both ok, W1 completed before W2 was invoked; W1 sets a fresh value. */
function staleCandidates(run: Run, key: string | null, before: number): { w1: GenOp; w2: GenOp } | null {
  const muts = okMutations(run, key).filter((op) => op.completeAt < before);
  const w2 = muts.reduce<GenOp | null>((best, op) => (best === null || op.invokeAt > best.invokeAt ? op : best), null);
  if (w2 === null) return null;
  const w1 = muts.find((op) => op.f !== "append" && op.completeAt < w2.invokeAt);
  return w1 === undefined ? null : { w1, w2 };
}

function freshValue(op: GenOp): Scalar {
  return op.f === "cas" ? ((op.value as readonly Scalar[])[1] as Scalar) : (op.value as Scalar);
}

/** The corrupted variants of a register-model run whose violation is certain (see the file comment). */
function registerCorruptions(run: Run, model: ModelName): { name: string; events: Ev[] }[] {
  const out: { name: string; events: Ev[] }[] = [];
  const copy = (): Ev[] => run.events.map((e) => ({ ...e }));
  const reads = run.ops.filter((op) => (op.f === "read" || op.f === "get") && op.outcome === "ok");
  // The last reads have the most writes before them; a few tries find a candidate if one exists.
  for (const r of reads.slice(-8).reverse()) {
    const c = staleCandidates(run, r.key, r.invokeAt);
    if (c === null) continue;
    const events = copy();
    (events[r.completeAt] as Ev)["value"] = freshValue(c.w1);
    out.push({ name: "stale-read", events });
    break;
  }
  const lastKey = run.ops.at(-1)?.key ?? null;
  const lost = staleCandidates(run, lastKey, Number.POSITIVE_INFINITY);
  if (lost !== null) {
    const events = copy();
    const process = run.nextProcess + 1;
    const f = model === "kv" ? "get" : "read";
    events.push(withKey({ process, type: "invoke", f }, lastKey), withKey({ process, type: "ok", f, value: freshValue(lost.w1) }, lastKey));
    out.push({ name: "lost-write", events });
  }
  const victim = reads[run.prng.int(0, Math.max(1, reads.length))];
  if (victim !== undefined) {
    const events = copy();
    (events[victim.completeAt] as Ev)["value"] = model === "kv" ? "phantom" : -1;
    out.push({ name: "phantom-read", events });
  }
  const cas = run.ops.find((op) => op.f === "cas" && op.outcome === "ok");
  if (cas !== undefined) {
    const events = copy();
    const process = run.nextProcess + 2;
    const expected = (cas.value as readonly Scalar[])[0] as Scalar;
    events.push(withKey({ process, type: "invoke", f: "cas", value: [expected, -2] }, cas.key), withKey({ process, type: "ok", f: "cas" }, cas.key));
    out.push({ name: "cas-twice", events });
  }
  return out;
}

/** Deterministic parameters for seed `seed` of the corpus: the mode rotates, sizes vary. */
export function corpusParams(seed: number): GeneratorParams {
  const prng = new Prng(seed * 7919 + 13);
  const modes: readonly CorpusMode[] = ["register", "cas-register", "kv", "append"];
  const mode = modes[seed % modes.length] as CorpusMode;
  const big = seed % 10 === 9;
  const ops = big ? prng.int(1500, 4000) : prng.int(10, 400);
  const keys = mode === "kv" ? prng.int(1, 8) : mode === "append" ? 1 : prng.chance(0.5) ? 1 : prng.int(2, 6);
  return { seed, mode, ops, concurrency: prng.int(2, big ? 6 : 9), keys, crashP: prng.pick([0, 0.005, 0.02]), failP: prng.pick([0, 0.02, 0.05]) };
}

/** The valid history of a run plus its corrupted variants, all with their expected verdicts. */
export function registerHistories(params: GeneratorParams): CorpusHistory[] {
  assert(params.mode !== "append", "registerHistories: use appendHistories for the append workload");
  const model = params.mode;
  const run = new Run(new Prng(params.seed), params);
  runRegister(run, model);
  const base = `${model}-seed${params.seed}`;
  const result: CorpusHistory[] = [{ name: base, mode: model, init: null, expected: "linearizable", text: run.text() }];
  for (const c of registerCorruptions(run, model)) {
    if (c.name === "cas-twice" && model !== "cas-register") continue;
    result.push({ name: `${base}-${c.name}`, mode: model, init: null, expected: "not-linearizable", text: run.text(c.events) });
  }
  return result;
}
