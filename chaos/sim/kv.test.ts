import { describe, expect, it } from "vitest";
import { AssertionError } from "../../raft/base/assert.js";
import { KvStateMachine, encodePut, putKey, putOpId } from "./kv.js";

describe("kv payload and state machine", () => {
  it("round-trips a put", () => {
    const data = encodePut(0xdeadbeef, 5, 9);
    expect(data.byteLength).toBe(14);
    expect(putOpId(data)).toBe(0xdeadbeef);
    expect(putKey(data)).toBe(5);
  });
  it("applies in order and round-trips a snapshot", () => {
    const kv = new KvStateMachine();
    kv.apply({ index: 1, term: 1, type: "noop", data: new Uint8Array(0) });
    kv.apply({ index: 2, term: 1, type: "normal", data: encodePut(42, 3, 0) });
    const restored = KvStateMachine.restore(kv.snapshot(100), 2);
    expect(restored.get(3)).toBe(42);
    expect(restored.applied).toBe(2);
  });
  it("rejects a gap and a corrupted snapshot", () => {
    const kv = new KvStateMachine();
    expect(() => kv.apply({ index: 2, term: 1, type: "noop", data: new Uint8Array(0) })).toThrow(AssertionError);
    const snap = kv.snapshot(10);
    snap[7] = (snap[7] as number) ^ 1;
    expect(() => KvStateMachine.restore(snap, 0)).toThrow(AssertionError);
  });
});
