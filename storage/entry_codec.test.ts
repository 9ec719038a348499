import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Entry } from "../raft/core/types.js";
import {
  crc32,
  crc32Package,
  decodeHeader,
  decodeSegmentHeader,
  encodeEntries,
  encodeSegmentHeader,
  encodedBytes,
  entryHeaderBytes,
  getSlot,
  putSlot,
  viewOf,
} from "./entry_codec.js";

const arbEntry = (index: number): fc.Arbitrary<Entry> =>
  fc.record({
    index: fc.constant(index),
    term: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    type: fc.constantFrom("normal" as const, "noop" as const),
    data: fc.uint8Array({ maxLength: 300 }),
  });

describe("entry codec", () => {
  it("lays out a header byte by byte", () => {
    const e: Entry = { index: 0x1_0000_0002, term: 3, type: "noop", data: new Uint8Array([0xaa, 0xbb]) };
    const out = new Uint8Array(encodedBytes([e]));
    const crcs: number[] = [];
    const last = encodeEntries([e], out, 1000, 0x01020304, (_d, c) => crcs.push(c));
    expect(Array.from(out.subarray(0, 8))).toEqual([0x44, 0x4c, 1, 2, 1, 0, 0, 0]);
    expect(Array.from(out.subarray(8, 12))).toEqual([2, 0, 0, 0]);
    expect(Array.from(out.subarray(16, 24))).toEqual([2, 0, 0, 0, 1, 0, 0, 0]);
    expect(Array.from(out.subarray(24, 32))).toEqual([3, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(out.subarray(32, 40))).toEqual([0xe8, 0x03, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(out.subarray(40, 44))).toEqual([4, 3, 2, 1]);
    expect(viewOf(out).getUint32(44, true)).toBe(crc32(out.subarray(0, 44)));
    expect(Array.from(out.subarray(48))).toEqual([0xaa, 0xbb]);
    expect(crcs).toEqual([last]);
  });

  it("round-trips batches and chains their headers", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1, max: 8 }), fc.nat(), (first, n, position) => {
        const batch = fc.sample(fc.tuple(...Array.from({ length: n }, (_, i) => arbEntry(first + i))), 1)[0] as Entry[];
        const out = new Uint8Array(encodedBytes(batch));
        const offsets: number[] = [];
        encodeEntries(batch, out, position, 7, (d) => offsets.push(d));
        let chain = 7;
        batch.forEach((e, i) => {
          const h = decodeHeader(out, offsets[i] as number);
          if (typeof h === "string") throw new Error(h);
          expect(h).toMatchObject({ index: e.index, term: e.term, type: e.type, bodyLength: e.data.byteLength, position: position + (offsets[i] as number), prevCrc: chain });
          expect(h.flags).toBe(i === n - 1 ? 1 : 0);
          const at = (offsets[i] as number) + entryHeaderBytes;
          expect(out.subarray(at, at + h.bodyLength)).toEqual(e.data);
          expect(crc32(e.data)).toBe(h.bodyCrc);
          chain = h.headerCrc;
        });
      }),
      { numRuns: 200 },
    );
  });

  it("detects every single-bit flip in a header", () => {
    const e: Entry = { index: 5, term: 2, type: "normal", data: new Uint8Array([1, 2, 3]) };
    const out = new Uint8Array(encodedBytes([e]));
    encodeEntries([e], out, 0, 0, () => {});
    for (let bit = 0; bit < entryHeaderBytes * 8; bit++) {
      const copy = out.slice();
      copy[bit >> 3] = (copy[bit >> 3] as number) ^ (1 << (bit & 7));
      expect(typeof decodeHeader(copy, 0), `bit ${bit}`).toBe("string");
    }
  });

  it("round-trips segment headers and rejects damaged ones", () => {
    fc.assert(
      fc.property(fc.record({ firstIndex: fc.integer({ min: 1, max: 2 ** 50 }), basePosition: fc.nat(), generation: fc.integer({ min: 1, max: 1000 }), prevTerm: fc.nat(), prevCrc: fc.nat({ max: 0xffffffff }) }), fc.nat({ max: 64 * 8 - 1 }), (h, bit) => {
        const bytes = encodeSegmentHeader(h);
        expect(decodeSegmentHeader(bytes)).toEqual(h);
        bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
        const bad = decodeSegmentHeader(bytes);
        // Bits in the reserved tail before the CRC are covered; all 64 bytes are checked.
        expect(typeof bad).toBe("string");
      }),
    );
  });

  it("round-trips index slots", () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (offset, headerCrc, term) => {
        const b = new Uint8Array(16);
        putSlot(viewOf(b), 0, { offset, headerCrc, term });
        expect(getSlot(viewOf(b), 0)).toEqual({ offset, headerCrc, term });
      }),
    );
  });

  it("the native and package CRC-32 agree (including seeded continuation)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), fc.uint8Array({ maxLength: 3000 }), (a, b) => {
        expect(crc32(a)).toBe(crc32Package(a));
        expect(crc32(b, crc32(a))).toBe(crc32Package(b, crc32Package(a)));
      }),
    );
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
  });
});
