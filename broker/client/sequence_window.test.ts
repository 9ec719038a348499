import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SequenceWindow } from "./sequence_window.js";

const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe("SequenceWindow", () => {
  it("hands out increasing numbers, at most inflightMax unanswered, all within the window of the oldest", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(1000), { minLength: 1, maxLength: 200 }), fc.integer({ min: 1, max: 7 }), async (ops, inflightMax) => {
        const w = new SequenceWindow(5, inflightMax, 8);
        const got: number[] = [];
        const open = new Set<number>();
        // Many writers queue at once: the case where waiters are woken together.
        const writers = ops.map(() => w.acquire().then((s) => (got.push(s), open.add(s))));
        await flush();
        for (const r of ops) {
          const list = [...open];
          if (list.length === 0) break;
          expect(list.length).toBeLessThanOrEqual(inflightMax);
          expect(Math.max(...list) - Math.min(...list)).toBeLessThan(8);
          const s = list[r % list.length] as number;
          open.delete(s);
          w.release(s);
          await flush();
        }
        // Answer the rest in order so every writer finishes (bounded: one per writer).
        for (let i = 0; i < ops.length && open.size > 0; i++) {
          const s = Math.min(...open);
          open.delete(s);
          w.release(s);
          await flush();
        }
        await Promise.all(writers);
        expect(got).toEqual(Array.from({ length: ops.length }, (_, i) => 5 + i));
      }),
      { numRuns: 100 },
    );
  });

  it("an old unanswered sequence holds back new ones at the window's edge, not just at the slot cap", async () => {
    const w = new SequenceWindow(1, 3, 4);
    const old = await w.acquire();
    expect(old).toBe(1);
    for (const expected of [2, 3]) w.release(await w.acquire().then((s) => (expect(s).toBe(expected), s)));
    // Slots are free (only 1 is unanswered), but 4 - 1 = 3 is the last number the window allows.
    expect(await w.acquire()).toBe(4);
    let fifth: number | null = null;
    void w.acquire().then((s) => (fifth = s));
    await flush();
    expect(fifth).toBeNull();
    w.release(old);
    await flush();
    expect(fifth).toBe(5);
  });

  it("refuses an inflightMax that reaches the window, and a bad first sequence", () => {
    expect(() => new SequenceWindow(1, 64)).toThrow(/inflightMax \(64\) must be in \[1, 63\]/);
    expect(() => new SequenceWindow(0, 8)).toThrow(/firstSequence \(0\)/);
  });
});
