import { describe, expect, it } from "vitest";
import { ReadChecker } from "./read_checker.js";
import { ViolationLog } from "./violation.js";

/** A history: writes of key 7 at indexes 2 (value 20) and 5 (value 50); a no-op at 6. */
function setup(): { reads: ReadChecker; violations: ViolationLog } {
  const violations = new ViolationLog();
  const reads = new ReadChecker(violations);
  reads.onCanonicalIndex(1);
  reads.onCanonicalWrite(2, 7, 20);
  reads.onCanonicalWrite(3, 8, 30);
  reads.onCanonicalWrite(5, 7, 50);
  reads.onCanonicalIndex(6);
  return { reads, violations };
}

describe("ReadChecker", () => {
  it("passes reads that return the committed state at or after every earlier acknowledged write", () => {
    const { reads, violations } = setup();
    reads.onReadInvoke(1, 7);
    reads.onReadServe(1, "n1", 0, 1, 1);
    reads.onWriteAck(7, 2);
    reads.onReadInvoke(2, 7);
    reads.onReadServe(2, "n1", 20, 3, 3);
    reads.onReadInvoke(3, 7);
    reads.onWriteAck(7, 5);
    reads.onReadServe(3, "n2", 20, 4, 4); // concurrent with the ack of 5: may miss it
    reads.onReadInvoke(4, 9);
    reads.onReadServe(4, "n2", 0, 6, 6);
    expect(violations.count).toBe(0);
    expect(reads.readsChecked).toBe(4);
  });
  it("reports a stale read: an acknowledged write was missed", () => {
    const { reads, violations } = setup();
    reads.onWriteAck(7, 5);
    reads.onReadInvoke(1, 7);
    reads.onReadServe(1, "n3", 20, 4, 4); // a deposed leader answering from its old commit
    expect(violations.violations.map((v) => v.kind)).toEqual(["read_linearizability"]);
  });
  it("reports a value the committed log never held at that index", () => {
    const { reads, violations } = setup();
    reads.onReadInvoke(1, 7);
    reads.onReadServe(1, "n1", 50, 4, 4);
    expect(violations.violations.map((v) => v.kind)).toEqual(["read_linearizability"]);
  });
  it("reports a read served before its read index was applied", () => {
    const { reads, violations } = setup();
    reads.onReadInvoke(1, 7);
    reads.onReadServe(1, "n1", 20, 3, 5);
    expect(violations.violations.map((v) => v.kind)).toEqual(["read_linearizability"]);
  });
});
