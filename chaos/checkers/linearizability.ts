import { assert } from "../../raft/base/assert.js";
import { Prng } from "../../raft/base/prng.js";
import type { History, Key, Operation } from "./history.js";
import { type ModelName, type ModelOp, type Partition, type Scalar, applyStep, partitionHistory } from "./models.js";

/**
 * Linearizability checking by the Wing & Gong search (Wing & Gong 1993, "Testing and verifying
 * concurrent objects") with Lowe's memoisation (Lowe 2017, "Testing for linearizability", the
 * WGL algorithm): the history is a doubly-linked list of call and return entries in real-time
 * order. The search repeatedly takes the first entry; a call may be linearized now if the model
 * accepts it, and is then "lifted" (its call and return are unlinked); reaching a return entry
 * means that operation's deadline passed without it being linearized, so the search backtracks
 * (unlifts the last choice and tries the next call). A configuration is (set of linearized
 * operations, model state); a configuration seen before cannot lead anywhere new, so it is
 * pruned. This is the same design as Porcupine's checker (Athalye) and Knossos's `wgl` (Kingsbury).
 *
 * Indeterminate operations (`info`) return "at infinity": their return entry sits after every
 * other, so the search may place them anywhere after their call. They need not be placed at all:
 * the search succeeds as soon as every `ok` operation is linearized (Jepsen's semantics: an info
 * operation may never have happened).
 *
 * Each key is checked on its own (P-compositionality, Horn & Kroening 2015): the cost of the search
 * grows with the concurrency within one key, not with the length of the whole history.
 */

export const Verdict = { linearizable: "linearizable", notLinearizable: "not-linearizable", unknown: "unknown" } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export interface CheckOptions {
  readonly model: ModelName;
  /** The value every key starts with. */
  readonly init: Scalar;
  /** Milliseconds; past it the answer is "unknown". Infinity for none. */
  readonly timeLimitMs: number;
  /** A monotonic millisecond clock, injected so that tests can run out of time deterministically. */
  readonly nowMs: () => number;
  /** Bytes the memo may hold before the answer becomes "unknown" (STYLE.md rule 13). */
  readonly memoBytesMax?: number;
}

export interface SearchStats {
  readonly operations: number;
  readonly keys: number;
  /** Configurations the search entered (memo insertions), summed over keys. */
  readonly statesExplored: number;
  /** Search steps (entries looked at), summed over keys. */
  readonly steps: number;
}

/** Why an operation could not be linearized. */
export interface LinearizationFailure {
  readonly key: Key | null;
  /** The operation whose return was reached, in the deepest attempt, before it could be placed. */
  readonly operation: Operation;
  /** How many operations of the key were linearized before the search got stuck on it. */
  readonly linearizedBefore: number;
  /** Distinct model states the search held when it got stuck on this operation (at most 16). */
  readonly statesTried: readonly Scalar[];
}

export type CheckResult =
  | { readonly verdict: "linearizable"; readonly stats: SearchStats }
  | { readonly verdict: "not-linearizable"; readonly failure: LinearizationFailure; readonly stats: SearchStats }
  | { readonly verdict: "unknown"; readonly reason: "time_limit" | "memo_limit"; readonly key: Key | null; readonly stats: SearchStats };

/** Default memo budget: enough for millions of configurations of a key with a few hundred ops. */
export const memoBytesDefault = 1 << 30;
/** The clock is read once per this many steps, so timing costs nothing measurable. */
const clockEverySteps = 1024;
const statesTriedMax = 16;

/**
 * Checks a parsed history against a model. Throws HistoryError if an operation does not fit the
 * model (see models.ts); returns a verdict otherwise.
 */
export function checkLinearizable(history: History, options: CheckOptions): CheckResult {
  const partitions = partitionHistory(history, options.model);
  const deadline = options.nowMs() + options.timeLimitMs;
  const totals = { operations: history.operations.length, keys: partitions.length, statesExplored: 0, steps: 0 };
  let unknown: { reason: "time_limit" | "memo_limit"; key: Key | null } | null = null;
  // Smaller keys first: a violation in a small key is found, and reported, cheaply.
  const ordered = [...partitions].sort((a, b) => a.ops.length - b.ops.length);
  for (const part of ordered) {
    const outcome = searchPartition(part, options, deadline);
    totals.statesExplored += outcome.states;
    totals.steps += outcome.steps;
    if (outcome.kind === "fail") return { verdict: "not-linearizable", failure: outcome.failure, stats: { ...totals } };
    if (outcome.kind === "unknown") {
      unknown ??= { reason: outcome.reason, key: part.key };
      if (outcome.reason === "time_limit") break;
    }
  }
  if (unknown !== null) return { verdict: "unknown", ...unknown, stats: { ...totals } };
  return { verdict: "linearizable", stats: { ...totals } };
}

type PartitionOutcome = { readonly states: number; readonly steps: number } & (
  | { readonly kind: "ok" }
  | { readonly kind: "fail"; readonly failure: LinearizationFailure }
  | { readonly kind: "unknown"; readonly reason: "time_limit" | "memo_limit" }
);

/** One node of the WGL list: a call or a return. */
interface Entry {
  readonly op: ModelOp | null;
  readonly isCall: boolean;
  /** A call's return entry; null for returns and the head. */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

/** Builds the list: calls and returns by position; the head is a sentinel. */
function buildList(ops: readonly ModelOp[]): Entry {
  const points: { pos: number; entry: Entry }[] = [];
  for (const op of ops) {
    const call: Entry = { op, isCall: true, match: null, prev: null, next: null };
    const ret: Entry = { op, isCall: false, match: null, prev: null, next: null };
    call.match = ret;
    points.push({ pos: op.call, entry: call }, { pos: op.ret, entry: ret });
  }
  // Positions are distinct line numbers, except returns at infinity, whose order is irrelevant.
  points.sort((a, b) => (a.pos === b.pos ? 0 : a.pos < b.pos ? -1 : 1));
  const head: Entry = { op: null, isCall: false, match: null, prev: null, next: null };
  let last = head;
  for (const { entry } of points) {
    last.next = entry;
    entry.prev = last;
    last = entry;
  }
  return head;
}

/** Unlinks a call and its return: the operation is now linearized. */
function lift(call: Entry): void {
  const ret = call.match as Entry;
  (call.prev as Entry).next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  (ret.prev as Entry).next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Relinks what lift unlinked, in the reverse order (dancing links). */
function unlift(call: Entry): void {
  const ret = call.match as Entry;
  (ret.prev as Entry).next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  (call.prev as Entry).next = call;
  if (call.next !== null) call.next.prev = call;
}

/**
 * The memo of configurations. A bitset of linearized operations is hashed incrementally with
 * Zobrist hashing (two random 32-bit words per operation, XORed in and out as bits flip), so a
 * lookup costs O(1) until a hash matches; a match is confirmed by comparing the bitsets, so a hash
 * collision can never prune a configuration that was not seen (which could hide a linearization).
 */
class Memo {
  readonly words: Uint32Array;
  private h1 = 0;
  private h2 = 0;
  private readonly z1: Uint32Array;
  private readonly z2: Uint32Array;
  private readonly table = new Map<number, MemoSlot>();
  private readonly stateIds = new Map<string, number>();
  size = 0;
  readonly capacity: number;

  constructor(opCount: number, memoBytesMax: number) {
    this.words = new Uint32Array(Math.max(1, Math.ceil(opCount / 32)));
    const prng = new Prng(0x5eed ^ opCount);
    this.z1 = Uint32Array.from({ length: opCount }, () => prng.u32());
    this.z2 = Uint32Array.from({ length: opCount }, () => prng.u32());
    const slotBytes = this.words.length * 4 + 96;
    this.capacity = Math.max(1024, Math.floor(memoBytesMax / slotBytes));
  }

  flip(id: number): void {
    this.words[id >>> 5] = (this.words[id >>> 5] as number) ^ (1 << (id & 31));
    this.h1 ^= this.z1[id] as number;
    this.h2 ^= this.z2[id] as number;
  }

  /** Interns a model state as a small integer. Strings can grow (appends), so compare them once. */
  stateId(state: Scalar): number {
    const tag = typeof state === "string" ? `s${state}` : `${String(state)}`;
    let id = this.stateIds.get(tag);
    if (id === undefined) {
      id = this.stateIds.size + 1;
      this.stateIds.set(tag, id);
    }
    return id;
  }

  /** Adds (current bitset, state); false if it was already there. */
  add(sid: number): boolean {
    const hash = ((this.h1 ^ Math.imul(sid, 0x9e3779b1)) >>> 0) * 0x200000 + ((this.h2 ^ Math.imul(sid, 0x85ebca6b)) >>> 11);
    const first = this.table.get(hash);
    for (let slot = first; slot !== undefined; slot = slot.next) {
      if (slot.sid === sid && equalWords(slot.words, this.words)) return false;
    }
    this.table.set(hash, { sid, words: this.words.slice(), next: first });
    this.size++;
    return true;
  }
}

interface MemoSlot {
  readonly sid: number;
  readonly words: Uint32Array;
  readonly next: MemoSlot | undefined;
}

function equalWords(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface Frame {
  readonly call: Entry;
  readonly state: Scalar;
}

/** Where the search got stuck on each operation: the deepest point and the states held there. */
class StuckLog {
  private best: { op: ModelOp; depth: number } | null = null;
  private readonly states = new Map<number, Scalar[]>();

  record(op: ModelOp, depth: number, state: Scalar): void {
    const b = this.best;
    if (b === null || depth > b.depth || (depth === b.depth && op.ret < b.op.ret)) this.best = { op, depth };
    let list = this.states.get(op.localId);
    if (list === undefined) {
      list = [];
      this.states.set(op.localId, list);
    }
    if (list.length < statesTriedMax && !list.includes(state)) list.push(state);
  }

  failure(key: Key | null): LinearizationFailure {
    const b = this.best;
    assert(b !== null, "wgl: a failed search must have reached a return entry");
    return { key, operation: b.op.source, linearizedBefore: b.depth, statesTried: this.states.get(b.op.localId) ?? [] };
  }
}

/** The WGL search on one key. */
function searchPartition(part: Partition, options: CheckOptions, deadline: number): PartitionOutcome {
  const ops = part.ops;
  const required = ops.reduce((n, op) => n + (op.required ? 1 : 0), 0);
  const head = buildList(ops);
  const memo = new Memo(ops.length, options.memoBytesMax ?? memoBytesDefault);
  const stuck = new StuckLog();
  const stack: Frame[] = [];
  let state = options.init;
  let placed = 0;
  let steps = 0;
  let entry = head.next;
  while (placed < required) {
    steps++;
    if (steps % clockEverySteps === 0 && options.nowMs() > deadline) return { kind: "unknown", reason: "time_limit", states: memo.size, steps };
    // Only info returns (at infinity) follow the last ok return, so with ok operations left unplaced
    // the walk always meets one of their returns before the end of the list.
    assert(entry !== null, "wgl: walked off the list with required operations left");
    const op = entry.op as ModelOp;
    if (entry.isCall) {
      const next = applyStep(state, op);
      if (next !== undefined) {
        memo.flip(op.localId);
        if (memo.add(memo.stateId(next))) {
          if (memo.size > memo.capacity) return { kind: "unknown", reason: "memo_limit", states: memo.size, steps };
          stack.push({ call: entry, state });
          state = next;
          if (op.required) placed++;
          lift(entry);
          entry = head.next;
          continue;
        }
        memo.flip(op.localId);
      }
      entry = entry.next;
      continue;
    }
    // A return entry: its operation had to be linearized by now. Undo the latest choice.
    stuck.record(op, stack.length, state);
    const top = stack.pop();
    if (top === undefined) return { kind: "fail", failure: stuck.failure(part.key), states: memo.size, steps };
    const undone = top.call.op as ModelOp;
    memo.flip(undone.localId);
    if (undone.required) placed--;
    state = top.state;
    unlift(top.call);
    entry = top.call.next;
  }
  return { kind: "ok", states: memo.size, steps };
}
