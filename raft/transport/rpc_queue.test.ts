import { describe, expect, it } from "vitest";
import { AssertionError } from "../base/assert.js";
import type { Rpc } from "../core/types.js";
import { RpcQueue } from "./rpc_queue.js";

const hb = (readSeq: number): Rpc => ({ type: "heartbeat", from: "n1", to: "n2", term: 1, commit: 0, readSeq });
const seqs = (rpcs: readonly Rpc[]): number[] => rpcs.map((r) => (r as { readSeq: number }).readSeq);

describe("RpcQueue", () => {
  it("keeps order and takes batches up to a byte budget, at least one RPC each", () => {
    const q = new RpcQueue(100, 1000);
    for (let i = 1; i <= 5; i++) expect(q.push(hb(i), 30)).toBe(0);
    expect(q.queuedBytes).toBe(150);
    expect(seqs(q.take(60))).toEqual([1, 2]);
    expect(seqs(q.take(10))).toEqual([3]);
    expect(seqs(q.take(1000))).toEqual([4, 5]);
    expect(q.length).toBe(0);
    expect(q.queuedBytes).toBe(0);
    expect(q.take(1000)).toEqual([]);
  });

  it("drops the oldest RPCs beyond its count bound", () => {
    const q = new RpcQueue(3, 1000);
    let dropped = 0;
    for (let i = 1; i <= 7; i++) dropped += q.push(hb(i), 10);
    expect(dropped).toBe(4);
    expect(seqs(q.take(1000))).toEqual([5, 6, 7]);
  });

  it("drops the oldest RPCs beyond its byte bound", () => {
    const q = new RpcQueue(100, 100);
    q.push(hb(1), 40);
    q.push(hb(2), 40);
    expect(q.push(hb(3), 50)).toBe(1);
    expect(q.queuedBytes).toBe(90);
    expect(q.push(hb(4), 100)).toBe(2);
    expect(seqs(q.take(1000))).toEqual([4]);
  });

  it("refuses an RPC larger than the whole queue (the caller must check first)", () => {
    expect(() => new RpcQueue(10, 100).push(hb(1), 101)).toThrow(AssertionError);
  });

  it("stays bounded and ordered through many push/take cycles (compaction)", () => {
    const q = new RpcQueue(5000, 1 << 30);
    let next = 1;
    let expected = 1;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) q.push(hb(next++), 8);
      for (const seq of seqs(q.take(8 * 250))) expect(seq).toBe(expected++);
    }
    expect(q.length).toBe(next - expected);
    expect(q.clear()).toBe(next - expected);
    expect(q.length).toBe(0);
  });
});
