import CRC32 from "crc-32";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AssertionError } from "../base/assert.js";
import type { Entry, Rpc } from "../core/types.js";
import {
  decodeFrame,
  encodeFrame,
  FrameError,
  frameOverheadBytes,
  rpcEncodedBytes,
  type FrameErrorKind,
  type FrameHeader,
} from "./codec.js";

const header: FrameHeader = { groupId: "g1", from: "n1", to: "n2" };
const limits = { frameBytesMax: 1 << 20 };
const base = { from: "n1", to: "n2" } as const;

/** Hex with spaces and `|` separators allowed, for readable golden bytes. */
function hex(text: string): Uint8Array {
  const clean = text.replace(/[\s|]/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHexString(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function le32(n: number): string {
  return toHexString(new Uint8Array(new Uint32Array([n]).buffer));
}

/**
 * Builds a frame the slow, obvious way from hex pieces: the reference the codec is checked
 * against. Header "DLPF", version 1, flags 0, length, "g1", "n1", "n2", count, body, CRC-32.
 */
function frameFromBody(count: number, bodyHex: string): Uint8Array {
  const head = hex("44 4c 50 46 | 01 | 00");
  const ids = hex("02 67 31 | 02 6e 31 | 02 6e 32");
  const body = hex(bodyHex);
  const length = head.length + 4 + ids.length + 4 + body.length + 4;
  const withoutCrc = hex(toHexString(head) + le32(length) + toHexString(ids) + le32(count) + toHexString(body));
  return hex(toHexString(withoutCrc) + le32(CRC32.buf(withoutCrc) >>> 0));
}

/** Rewrites the length field and the CRC so that a deliberately bad body passes the envelope. */
function reseal(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  view.setUint32(6, out.length, true);
  view.setUint32(out.length - 4, CRC32.buf(out.subarray(0, out.length - 4)) >>> 0, true);
  return out;
}

function errorKind(bytes: Uint8Array, frameBytesMax = limits.frameBytesMax): FrameErrorKind | "decoded" {
  const result = decodeFrame(bytes, { frameBytesMax });
  return result.ok ? "decoded" : result.error.kind;
}

const data3 = Uint8Array.of(0xaa, 0xbb, 0xcc);

/** One RPC of each type with its body bytes written out field by field. */
const golden: ReadonlyArray<readonly [string, Rpc, string]> = [
  [
    "vote_request",
    { type: "vote_request", ...base, term: 5, preVote: true, transfer: false, lastIndex: 0x1_0000_0002, lastTerm: 4 },
    "01 | 0500000000000000 | 01 | 0200000001000000 | 0400000000000000",
  ],
  ["vote_response", { type: "vote_response", ...base, term: 5, preVote: false, granted: true }, "02 | 0500000000000000 | 02"],
  [
    "append_request",
    {
      type: "append_request",
      ...base,
      term: 3,
      prevIndex: 9,
      prevTerm: 2,
      commit: 8,
      entries: [
        { index: 10, term: 3, type: "noop", data: new Uint8Array(0) },
        { index: 11, term: 3, type: "normal", data: data3 },
      ],
    },
    "03 | 0300000000000000 | 0900000000000000 | 0200000000000000 | 0800000000000000 | 02000000" +
      "| 0a00000000000000 | 0300000000000000 | 02 | 00000000" +
      "| 0b00000000000000 | 0300000000000000 | 01 | 03000000 | aabbcc",
  ],
  [
    "append_response",
    { type: "append_response", ...base, term: 3, success: false, index: 9, hintIndex: 7, hintTerm: 2 },
    "04 | 0300000000000000 | 00 | 0900000000000000 | 0700000000000000 | 0200000000000000",
  ],
  ["heartbeat", { type: "heartbeat", ...base, term: 5, commit: 7, readSeq: 3 }, "05 | 0500000000000000 | 0700000000000000 | 0300000000000000"],
  ["heartbeat_response", { type: "heartbeat_response", ...base, term: 5, readSeq: 3 }, "06 | 0500000000000000 | 0300000000000000"],
  [
    "snapshot_chunk",
    {
      type: "snapshot_chunk",
      ...base,
      term: 6,
      meta: { index: 100, term: 5, members: ["n1", "n2", "n3"] },
      position: 4096,
      data: data3,
      done: true,
    },
    "07 | 0600000000000000 | 6400000000000000 | 0500000000000000 | 0300 | 026e31 026e32 026e33" +
      "| 0010000000000000 | 01 | 03000000 | aabbcc",
  ],
  [
    "snapshot_response",
    { type: "snapshot_response", ...base, term: 6, snapshotIndex: 100, position: 8192, reject: true },
    "08 | 0600000000000000 | 6400000000000000 | 0020000000000000 | 01",
  ],
  ["timeout_now", { type: "timeout_now", ...base, term: 7 }, "09 | 0700000000000000"],
];

describe("codec golden bytes", () => {
  it.each(golden)("%s encodes to its documented bytes and back", (_name, rpc, bodyHex) => {
    const expected = frameFromBody(1, bodyHex);
    const encoded = encodeFrame(header, [rpc]);
    expect(toHexString(encoded)).toBe(toHexString(expected));
    expect(encoded.length).toBe(frameOverheadBytes(header) + rpcEncodedBytes(rpc));
    const decoded = decodeFrame(expected, limits);
    expect(decoded).toEqual({ ok: true, frame: { version: 1, ...header, rpcs: [rpc] } });
  });

  it("pins one whole frame, CRC included (checked independently with Python's zlib.crc32)", () => {
    const frame = encodeFrame(header, [{ type: "heartbeat", ...base, term: 5, commit: 7, readSeq: 3 }]);
    expect(toHexString(frame)).toBe(
      "444c5046" + "01" + "00" + "34000000" + "026731" + "026e31" + "026e32" + "01000000" +
        "05" + "0500000000000000" + "0700000000000000" + "0300000000000000" + "772971a2",
    );
  });

  it("encodes an empty batch and a batch of several RPCs in order", () => {
    expect(decodeFrame(encodeFrame(header, []), limits)).toEqual({ ok: true, frame: { version: 1, ...header, rpcs: [] } });
    const rpcs = golden.map(([, rpc]) => rpc);
    const bodies = golden.map(([, , body]) => body).join("|");
    expect(toHexString(encodeFrame(header, rpcs))).toBe(toHexString(frameFromBody(rpcs.length, bodies)));
  });

  it("decodes entry data as views into the frame (zero copy)", () => {
    const frame = encodeFrame(header, [golden[2]![1]]);
    const decoded = decodeFrame(frame, limits);
    expect(decoded.ok).toBe(true);
    if (!decoded.ok) return;
    const rpc = decoded.frame.rpcs[0]!;
    expect(rpc.type).toBe("append_request");
    if (rpc.type !== "append_request") return;
    expect(rpc.entries[1]!.data.buffer).toBe(frame.buffer);
  });

  it("refuses to encode an RPC whose from/to differ from the frame's (a caller bug)", () => {
    const rpc: Rpc = { type: "timeout_now", from: "n3", to: "n2", term: 1 };
    expect(() => encodeFrame(header, [rpc])).toThrow(AssertionError);
    const bad: Rpc = { type: "timeout_now", ...base, term: -1 };
    expect(() => encodeFrame(header, [bad])).toThrow(AssertionError);
  });
});

describe("codec refuses bad frames with a named error", () => {
  const good = frameFromBody(1, "05 | 0500000000000000 | 0700000000000000 | 0300000000000000");
  const mutate = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = new Uint8Array(good);
    f(b);
    return b;
  };
  const cases: ReadonlyArray<readonly [string, Uint8Array, FrameErrorKind]> = [
    ["empty input", new Uint8Array(0), "truncated"],
    ["garbage", new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad_magic"],
    ["bad magic", mutate((b) => (b[0] = 0x45)), "bad_magic"],
    ["version 2", mutate((b) => (b[4] = 2)), "unknown_version"],
    ["header flags set", mutate((b) => (b[5] = 1)), "bad_flags"],
    ["cut short", good.subarray(0, good.length - 1), "truncated"],
    ["a trailing byte", hex(toHexString(good) + "00"), "length_mismatch"],
    ["a flipped body bit", mutate((b) => (b[30] = b[30]! ^ 4)), "crc_mismatch"],
    ["a flipped CRC bit", mutate((b) => (b[b.length - 1] = b[b.length - 1]! ^ 0x80)), "crc_mismatch"],
    ["rpc type 0", reseal(frameFromBody(1, "00 | 0500000000000000")), "unknown_rpc_type"],
    ["rpc type 10", reseal(frameFromBody(1, "0a | 0500000000000000")), "unknown_rpc_type"],
    ["rpc count past the end", reseal(frameFromBody(1000, "09 | 0500000000000000")), "length_out_of_range"],
    ["rpc count one too many", reseal(frameFromBody(2, "09 | 0500000000000000")), "length_out_of_range"],
    ["count below the rpcs", reseal(frameFromBody(0, "09 | 0500000000000000")), "trailing_bytes"],
    [
      "entry count past the end",
      reseal(frameFromBody(1, "03 | 0300000000000000 | 0900000000000000 | 0200000000000000 | 0800000000000000 | ffffffff")),
      "length_out_of_range",
    ],
    [
      "entry data length past the end",
      reseal(frameFromBody(1, "03 | 030000000000000009000000000000000200000000000000080000000000000001000000" +
        "| 0a00000000000000 | 0300000000000000 | 01 | 10000000 | aabbcc")),
      "length_out_of_range",
    ],
    [
      "entry type 3",
      reseal(frameFromBody(1, "03 | 030000000000000009000000000000000200000000000000080000000000000001000000" +
        "| 0a00000000000000 | 0300000000000000 | 03 | 00000000")),
      "bad_field",
    ],
    ["term of 2^53", reseal(frameFromBody(1, "09 | 0000000000002000")), "bad_field"],
    ["vote flags with a reserved bit", reseal(frameFromBody(1, "02 | 0500000000000000 | 04")), "bad_flags"],
    ["snapshot member of invalid UTF-8", reseal(frameFromBody(1,
      "07 | 0600000000000000 | 6400000000000000 | 0500000000000000 | 0100 | 01ff | 0000000000000000 | 00 | 00000000")), "bad_field"],
  ];

  it.each(cases)("%s", (_name, bytes, kind) => {
    const result = decodeFrame(bytes, limits);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toBeInstanceOf(FrameError);
    expect(result.error.name).toBe("FrameError");
    expect(result.error.kind).toBe(kind);
    expect(result.error.message.startsWith(`${kind}: `)).toBe(true);
  });

  it("refuses an oversized frame before reading it", () => {
    expect(errorKind(good, good.length - 1)).toBe("oversized");
    expect(errorKind(good, good.length)).toBe("decoded");
  });

  it("refuses an empty replica id", () => {
    const bytes = new Uint8Array(good);
    bytes[13] = 0; // "n1" → length 0, which shifts the parse; reseal so only the id check can catch it
    expect(errorKind(reseal(bytes))).not.toBe("decoded");
  });
});

/* --- Properties ----------------------------------------------------------------------------- */

const idArb = fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/);
const nat = fc.maxSafeNat();
const dataArb = fc.uint8Array({ maxLength: 40 });

function entryArb(): fc.Arbitrary<Entry> {
  return fc.record({ index: nat, term: nat, type: fc.constantFrom("normal" as const, "noop" as const), data: dataArb });
}

function rpcArb(from: string, to: string): fc.Arbitrary<Rpc> {
  const b = { from: fc.constant(from), to: fc.constant(to), term: nat };
  return fc.oneof(
    fc.record({ type: fc.constant("vote_request" as const), ...b, preVote: fc.boolean(), transfer: fc.boolean(), lastIndex: nat, lastTerm: nat }),
    fc.record({ type: fc.constant("vote_response" as const), ...b, preVote: fc.boolean(), granted: fc.boolean() }),
    fc.record({ type: fc.constant("append_request" as const), ...b, prevIndex: nat, prevTerm: nat, commit: nat, entries: fc.array(entryArb(), { maxLength: 5 }) }),
    fc.record({ type: fc.constant("append_response" as const), ...b, success: fc.boolean(), index: nat, hintIndex: nat, hintTerm: nat }),
    fc.record({ type: fc.constant("heartbeat" as const), ...b, commit: nat, readSeq: nat }),
    fc.record({ type: fc.constant("heartbeat_response" as const), ...b, readSeq: nat }),
    fc.record({
      type: fc.constant("snapshot_chunk" as const),
      ...b,
      meta: fc.record({ index: nat, term: nat, members: fc.array(idArb, { maxLength: 5 }) }),
      position: nat,
      data: dataArb,
      done: fc.boolean(),
    }),
    fc.record({ type: fc.constant("snapshot_response" as const), ...b, snapshotIndex: nat, position: nat, reject: fc.boolean() }),
    fc.record({ type: fc.constant("timeout_now" as const), ...b }),
  );
}

const batchArb = fc
  .record({ groupId: idArb, from: idArb, to: idArb })
  .chain((h) => fc.record({ header: fc.constant(h), rpcs: fc.array(rpcArb(h.from, h.to), { maxLength: 6 }) }));

describe("codec properties", { timeout: 60_000 }, () => {
  it("round-trips any batch of RPCs exactly", () => {
    fc.assert(
      fc.property(batchArb, ({ header: h, rpcs }) => {
        const frame = encodeFrame(h, rpcs);
        let expectedBytes = frameOverheadBytes(h);
        for (const rpc of rpcs) expectedBytes += rpcEncodedBytes(rpc);
        expect(frame.length).toBe(expectedBytes);
        expect(decodeFrame(frame, { frameBytesMax: frame.length })).toEqual({ ok: true, frame: { version: 1, ...h, rpcs } });
      }),
      { numRuns: 500 },
    );
  });

  it("rejects any single-bit flip (never decodes to something else)", () => {
    fc.assert(
      fc.property(batchArb, fc.nat(), fc.integer({ min: 0, max: 7 }), ({ header: h, rpcs }, at, bit) => {
        const frame = encodeFrame(h, rpcs);
        const flipped = new Uint8Array(frame);
        const i = at % frame.length;
        flipped[i] = flipped[i]! ^ (1 << bit);
        expect(errorKind(flipped)).not.toBe("decoded");
      }),
      { numRuns: 1000 },
    );
  });

  it("rejects every truncation and every extension", () => {
    fc.assert(
      fc.property(batchArb, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }), ({ header: h, rpcs }, cut, extra) => {
        const frame = encodeFrame(h, rpcs);
        expect(errorKind(frame.subarray(0, cut % frame.length))).not.toBe("decoded");
        const longer = new Uint8Array(frame.length + extra.length);
        longer.set(frame);
        longer.set(extra, frame.length);
        expect(errorKind(longer)).not.toBe("decoded");
      }),
      { numRuns: 500 },
    );
  });

  it("never throws on random bytes, with or without a valid envelope", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        const prefixed = new Uint8Array(10 + junk.length + 4);
        prefixed.set([0x44, 0x4c, 0x50, 0x46, 1, 0]);
        prefixed.set(junk, 10);
        expect(() => decodeFrame(junk, limits)).not.toThrow();
        expect(() => decodeFrame(reseal(prefixed), limits)).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });
});
