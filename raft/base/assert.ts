/**
 * Assertions that stay on in production (TigerBeetle's habit): a failed assertion means the
 * process holds a state the design says is impossible, and continuing could corrupt data.
 */

/** Thrown when an invariant is broken. Never caught to continue: the process must stop. */
export class AssertionError extends Error {
  override readonly name = "AssertionError";
}

/** Throws AssertionError with `message` unless `condition` holds. */
export function assert(condition: boolean, message = "assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** For the default branch of an exhaustive switch: compile error if a case is missing. */
export function unreachable(value: never, what = "value"): never {
  throw new AssertionError(`unreachable: unexpected ${what} ${JSON.stringify(value)}`);
}

/** True for a safe, non-negative integer: the only valid shape of an index, term or count. */
export function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}
