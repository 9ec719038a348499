import { assert } from "../../raft/base/assert.js";
import type { History } from "./history.js";
import { type ModelName, type ModelOp, type Scalar, applyStep, keyTag, partitionHistory } from "./models.js";

/**
 * The definition of linearizability, executed literally, as a reference for tests: try every
 * subset of the indeterminate operations and every order of the chosen operations that respects
 * real-time order (if A returned before B was called, A comes first), applying them to one map of
 * keys. No memo, no per-key split and no pruning, so it shares none of the WGL checker's
 * optimisations.
 * Exponential: for histories of a handful of operations only.
 */

/** Above this many operations the reference would take too long to be useful in a test. */
export const bruteForceOpsMax = 9;

export function bruteForceLinearizable(history: History, model: ModelName, init: Scalar): boolean {
  const ops = partitionHistory(history, model, { prune: false }).flatMap((p) => p.ops);
  assert(ops.length <= bruteForceOpsMax, `brute force: ${ops.length} operations is too many`);
  const optional = ops.filter((op) => !op.required);
  for (let mask = 0; mask < 1 << optional.length; mask++) {
    const chosen = ops.filter((op) => op.required || (mask & (1 << optional.indexOf(op))) !== 0);
    if (someOrder(chosen, new Map(), init)) return true;
  }
  return false;
}

/** Only an ok operation has a known return; an info one may still take effect at any later time. */
function returnedBefore(a: ModelOp, b: ModelOp): boolean {
  const done = a.source.completeLine;
  return a.source.outcome === "ok" && done !== null && done < b.source.invokeLine;
}

/** True if some real-time-respecting order of `remaining` is legal from `state`. */
function someOrder(remaining: readonly ModelOp[], state: ReadonlyMap<string, Scalar>, init: Scalar): boolean {
  if (remaining.length === 0) return true;
  for (const op of remaining) {
    // op may go next only if no other remaining operation returned before op was called. Computed
    // from the raw history (not ModelOp.ret) so that this reference does not share that code.
    if (remaining.some((other) => other !== op && returnedBefore(other, op))) continue;
    const tag = keyTag(op.source.key);
    const before = state.has(tag) ? (state.get(tag) as Scalar) : init;
    const after = applyStep(before, op);
    if (after === undefined) continue;
    const next = new Map(state);
    next.set(tag, after);
    if (someOrder(remaining.filter((o) => o !== op), next, init)) return true;
  }
  return false;
}
