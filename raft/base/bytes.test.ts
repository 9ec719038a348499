import { describe, expect, it } from "vitest";
import { ByteSlab } from "./bytes.js";

describe("ByteSlab", () => {
  it("carves small arrays from one shared buffer, 8-byte aligned and zero-filled, and starts a new slab when one is full", () => {
    const slab = new ByteSlab(64, 32);
    const a = slab.alloc(5);
    const b = slab.alloc(20);
    expect(a.buffer).toBe(b.buffer);
    expect([a.byteOffset, b.byteOffset]).toEqual([0, 8]);
    expect([...b]).toEqual(new Array(20).fill(0));
    a.fill(1);
    expect(b.every((x) => x === 0)).toBe(true); // no overlap
    const c = slab.alloc(30); // 8 + 24 = 32 used; 32 + 30 > 64? no: fits
    expect(c.buffer).toBe(a.buffer);
    const d = slab.alloc(10); // 32 + 32 = 64 used: a new slab
    expect(d.buffer).not.toBe(a.buffer);
    expect(d.byteOffset).toBe(0);
  });

  it("gives arrays of largeMin bytes or more a buffer of their own", () => {
    const slab = new ByteSlab(64, 32);
    const small = slab.alloc(8);
    const large = slab.alloc(32);
    expect(large.buffer).not.toBe(small.buffer);
    expect(large.byteLength).toBe(32);
    expect(large.buffer.byteLength).toBe(32);
  });

  it("refuses a largeMin above the slab size", () => {
    expect(() => new ByteSlab(64, 65)).toThrow(RangeError);
  });
});
