import { assert, isCount } from "../base/assert.js";
import type { Entry, EntryType, ReplicaId, Rpc, RpcType, SnapshotMeta } from "../core/types.js";
import { crc32 } from "../base/crc32.js";

/**
 * The peer wire format: a frame carries a batch of Raft RPCs from one replica to one other replica
 * of the same group. All integers are little-endian (as in storage/entry_codec.ts); u64 fields hold
 * safe integers (< 2^53) as two u32 halves, low half first. Strings are UTF-8 with a u8 length.
 *
 * Frame:
 *    0 u32  magic, the bytes "DLPF" (44 4c 50 46)
 *    4 u8   version (1)
 *    5 u8   flags, reserved: must be 0
 *    6 u32  frameBytes: the length of the whole frame, trailer included
 *   10 u8   groupLen, then groupLen bytes of group id
 *      u8   fromLen,  then the sender's replica id
 *      u8   toLen,    then the receiver's replica id
 *      u32  count, then `count` RPCs
 *      u32  CRC-32 of bytes [0, frameBytes - 4)
 *
 * Every RPC starts with u8 type code (rpcTypeCode) and u64 term; `from` and `to` are not repeated
 * per RPC: they are the frame's. A frame is point-to-point, so naming the receiver costs a few
 * bytes and lets it refuse a frame meant for someone else (a peer that restarted on another
 * replica's old address). The rest, per type (flags are u8 bit sets; unknown bits are refused):
 *   vote_request       u8 flags (1 preVote, 2 transfer), u64 lastIndex, u64 lastTerm
 *   vote_response      u8 flags (1 preVote, 2 granted)
 *   append_request     u64 prevIndex, u64 prevTerm, u64 commit, u32 entryCount, entries
 *                      (each: u64 index, u64 term, u8 type (1 normal, 2 noop), u32 dataLen, data)
 *   append_response    u8 flags (1 success), u64 index, u64 hintIndex, u64 hintTerm
 *   heartbeat          u64 commit, u64 readSeq
 *   heartbeat_response u64 readSeq
 *   snapshot_chunk     u64 meta.index, u64 meta.term, u16 memberCount, members (u8 len + id),
 *                      u64 position, u8 flags (1 done), u32 dataLen, data
 *   snapshot_response  u64 snapshotIndex, u64 position, u8 flags (1 reject)
 *   timeout_now        nothing more
 *
 * Decoding checks the untrusted bytes once (size, magic, version, length, CRC, then every count
 * and length against the bytes left) and yields plain typed values. It does not check Raft
 * semantics (entry chaining, terms): the core's gateway (raft/core/validate.ts) does.
 */

export const frameMagic: readonly number[] = [0x44, 0x4c, 0x50, 0x46];
const magicBytes = Uint8Array.from(frameMagic);
export const frameVersion = 1;
/** Bytes before the group id: magic, version, flags, frameBytes. */
const fixedHeaderBytes = 10;
const crcBytes = 4;
/** The smallest possible frame: fixed header, three empty strings' lengths, count, CRC. */
export const frameBytesMin = fixedHeaderBytes + 3 + 4 + crcBytes;
/** Ids travel with a u8 length. Replica ids are ASCII and ≤ 64 characters (raft/core/config.ts). */
const idBytesMax = 255;
const u32Max = 0xffff_ffff;
const two32 = 0x1_0000_0000;
/** The high half of a safe integer is below 2^21. */
const safeHighMax = 0x1f_ffff;

export const rpcTypeCode: Readonly<Record<RpcType, number>> = {
  vote_request: 1,
  vote_response: 2,
  append_request: 3,
  append_response: 4,
  heartbeat: 5,
  heartbeat_response: 6,
  snapshot_chunk: 7,
  snapshot_response: 8,
  timeout_now: 9,
};
export const entryTypeCode: Readonly<Record<EntryType, number>> = { normal: 1, noop: 2 };
const entryTypeByCode: readonly (EntryType | undefined)[] = [undefined, "normal", "noop"];

/** Fixed bytes per RPC after the type code and term (variable parts are added by rpcEncodedBytes). */
const rpcBodyBytes: Readonly<Record<RpcType, number>> = {
  vote_request: 17,
  vote_response: 1,
  append_request: 28,
  append_response: 25,
  heartbeat: 16,
  heartbeat_response: 8,
  snapshot_chunk: 31,
  snapshot_response: 17,
  timeout_now: 0,
};
const rpcHeadBytes = 9;
const entryHeadBytes = 21;

/** What is wrong with a frame. Each kind is named in the error's message too. */
export const FrameErrorKind = {
  oversized: "oversized",
  truncated: "truncated",
  badMagic: "bad_magic",
  unknownVersion: "unknown_version",
  badFlags: "bad_flags",
  lengthMismatch: "length_mismatch",
  crcMismatch: "crc_mismatch",
  unknownRpcType: "unknown_rpc_type",
  lengthOutOfRange: "length_out_of_range",
  badField: "bad_field",
  trailingBytes: "trailing_bytes",
} as const;
export type FrameErrorKind = (typeof FrameErrorKind)[keyof typeof FrameErrorKind];

/** A frame that cannot be decoded. Expected (the bytes are untrusted): returned, not thrown. */
export class FrameError extends Error {
  override readonly name = "FrameError";
  constructor(
    readonly kind: FrameErrorKind,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(`${kind}: ${message}`, options);
  }
}

/** Who a frame is from and for. */
export interface FrameHeader {
  readonly groupId: string;
  readonly from: ReplicaId;
  readonly to: ReplicaId;
}

/** A decoded frame. Every RPC's `from`/`to` equal the header's. */
export interface Frame extends FrameHeader {
  readonly version: number;
  readonly rpcs: readonly Rpc[];
}

export type DecodeResult = { readonly ok: true; readonly frame: Frame } | { readonly ok: false; readonly error: FrameError };

export interface DecodeOptions {
  /** Frames longer than this are refused before any other check. */
  readonly frameBytesMax: number;
}

/* --- Sizes ---------------------------------------------------------------------------------- */

/**
 * The UTF-8 encodings of ids and group names, cached: a replica talks to a handful of peers, so
 * the same few strings are encoded for every frame. Bounded; cleared when full.
 */
const idCache = new Map<string, Uint8Array>();
const idCacheMax = 256;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder("utf-8", { fatal: true });

function idBytes(id: string): Uint8Array {
  let bytes = idCache.get(id);
  if (bytes === undefined) {
    bytes = textEncoder.encode(id);
    assert(bytes.byteLength <= idBytesMax, `id ${JSON.stringify(id.slice(0, 40))} is over ${idBytesMax} bytes`);
    if (idCache.size >= idCacheMax) idCache.clear();
    idCache.set(id, bytes);
  }
  return bytes;
}

/** Bytes of a frame's header and trailer: everything but the RPCs. */
export function frameOverheadBytes(header: FrameHeader): number {
  const strings = idBytes(header.groupId).byteLength + idBytes(header.from).byteLength + idBytes(header.to).byteLength;
  return fixedHeaderBytes + 3 + strings + 4 + crcBytes;
}

/** Exact bytes `rpc` takes in a frame. */
export function rpcEncodedBytes(rpc: Rpc): number {
  let bytes = rpcHeadBytes + rpcBodyBytes[rpc.type];
  if (rpc.type === "append_request") {
    for (const e of rpc.entries) bytes += entryHeadBytes + e.data.byteLength;
  } else if (rpc.type === "snapshot_chunk") {
    for (const m of rpc.meta.members) bytes += 1 + idBytes(m).byteLength;
    bytes += rpc.data.byteLength;
  }
  return bytes;
}

/* --- Encoding ------------------------------------------------------------------------------- */

/**
 * Appends fields to one pre-sized buffer. Values are asserted: encoding bad values is a caller bug.
 * The checks are written `if (bad) assert(false, message)` so the message is built only on failure.
 */
class Writer {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  position = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer, 0, size);
  }

  u8(value: number): void {
    this.view.setUint8(this.position, value);
    this.position += 1;
  }

  u16(value: number): void {
    if (value > 0xffff) assert(false, `u16 field out of range: ${value}`);
    this.view.setUint16(this.position, value, true);
    this.position += 2;
  }

  u32(value: number): void {
    if (!isCount(value) || value > u32Max) assert(false, `u32 field out of range: ${value}`);
    this.view.setUint32(this.position, value, true);
    this.position += 4;
  }

  u64(value: number): void {
    if (!isCount(value)) assert(false, `u64 field must be a safe non-negative integer, got ${value}`);
    this.view.setUint32(this.position, value >>> 0, true);
    this.view.setUint32(this.position + 4, Math.floor(value / two32), true);
    this.position += 8;
  }

  raw(data: Uint8Array): void {
    this.bytes.set(data, this.position);
    this.position += data.byteLength;
  }

  id(id: string): void {
    const b = idBytes(id);
    this.u8(b.byteLength);
    this.raw(b);
  }
}

/**
 * Encodes `rpcs` into one new frame. Every RPC must be from `header.from` to `header.to` (a caller
 * bug otherwise: AssertionError). The caller keeps frames under the receiver's frameBytesMax
 * (see frameOverheadBytes and rpcEncodedBytes). The returned bytes are the caller's.
 */
export function encodeFrame(header: FrameHeader, rpcs: readonly Rpc[]): Uint8Array {
  let size = frameOverheadBytes(header);
  for (const rpc of rpcs) {
    if (rpc.from !== header.from) assert(false, `rpc from ${rpc.from} in a frame from ${header.from}`);
    if (rpc.to !== header.to) assert(false, `rpc to ${rpc.to} in a frame to ${header.to}`);
    size += rpcEncodedBytes(rpc);
  }
  assert(size <= u32Max, `frame of ${size} bytes exceeds the u32 length field`);
  const w = new Writer(size);
  w.raw(magicBytes);
  w.u8(frameVersion);
  w.u8(0);
  w.u32(size);
  w.id(header.groupId);
  w.id(header.from);
  w.id(header.to);
  w.u32(rpcs.length);
  for (const rpc of rpcs) writeRpc(w, rpc);
  assert(w.position === size - crcBytes, `frame size mismatch: wrote ${w.position + crcBytes} of ${size} bytes`);
  w.u32(crc32(w.bytes.subarray(0, size - crcBytes)));
  return w.bytes;
}

/** A u8 bit set: `a` is bit 0, `b` bit 1. Spelled out (no rest arguments) to stay allocation-free. */
function flags(a: boolean, b = false): number {
  return (a ? 1 : 0) | (b ? 2 : 0);
}

function writeRpc(w: Writer, rpc: Rpc): void {
  w.u8(rpcTypeCode[rpc.type]);
  w.u64(rpc.term);
  switch (rpc.type) {
    case "vote_request":
      w.u8(flags(rpc.preVote, rpc.transfer));
      w.u64(rpc.lastIndex);
      w.u64(rpc.lastTerm);
      return;
    case "vote_response":
      w.u8(flags(rpc.preVote, rpc.granted));
      return;
    case "append_request":
      w.u64(rpc.prevIndex);
      w.u64(rpc.prevTerm);
      w.u64(rpc.commit);
      w.u32(rpc.entries.length);
      for (const e of rpc.entries) writeEntry(w, e);
      return;
    case "append_response":
      w.u8(flags(rpc.success));
      w.u64(rpc.index);
      w.u64(rpc.hintIndex);
      w.u64(rpc.hintTerm);
      return;
    case "heartbeat":
      w.u64(rpc.commit);
      w.u64(rpc.readSeq);
      return;
    case "heartbeat_response":
      w.u64(rpc.readSeq);
      return;
    case "snapshot_chunk":
      writeSnapshotChunk(w, rpc.meta, rpc.position, rpc.done, rpc.data);
      return;
    case "snapshot_response":
      w.u64(rpc.snapshotIndex);
      w.u64(rpc.position);
      w.u8(flags(rpc.reject));
      return;
    case "timeout_now":
      return;
  }
}

function writeEntry(w: Writer, e: Entry): void {
  w.u64(e.index);
  w.u64(e.term);
  const code = entryTypeCode[e.type];
  if (code === undefined) assert(false, `unknown entry type ${String(e.type)}`);
  w.u8(code);
  w.u32(e.data.byteLength);
  w.raw(e.data);
}

function writeSnapshotChunk(w: Writer, meta: SnapshotMeta, position: number, done: boolean, data: Uint8Array): void {
  w.u64(meta.index);
  w.u64(meta.term);
  w.u16(meta.members.length);
  for (const m of meta.members) w.id(m);
  w.u64(position);
  w.u8(flags(done));
  w.u32(data.byteLength);
  w.raw(data);
}

/* --- Decoding ------------------------------------------------------------------------------- */

/**
 * Reads fields from a frame whose length and CRC were already checked; every read is bounded by
 * `end` (the CRC's position), so a count or length that points past it is refused, never trusted.
 */
class Reader {
  private readonly view: DataView;
  position: number;

  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.position = start;
  }

  need(n: number, what: string): void {
    if (n > this.end - this.position) {
      throw new FrameError(
        FrameErrorKind.lengthOutOfRange,
        `${what} needs ${n} bytes at position ${this.position}, but the RPCs end at ${this.end}`,
      );
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.view.getUint8(this.position++);
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.position, true);
    this.position += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.position, true);
    this.position += 4;
    return v;
  }

  u64(what: string): number {
    this.need(8, what);
    const lo = this.view.getUint32(this.position, true);
    const hi = this.view.getUint32(this.position + 4, true);
    if (hi > safeHighMax) {
      throw new FrameError(FrameErrorKind.badField, `${what} at position ${this.position} is not a safe integer`);
    }
    this.position += 8;
    return hi * two32 + lo;
  }

  /** A zero-copy view of the next `n` bytes: it shares (and keeps alive) the frame's buffer. */
  sub(n: number, what: string): Uint8Array {
    this.need(n, what);
    const v = this.bytes.subarray(this.position, this.position + n);
    this.position += n;
    return v;
  }

  id(what: string): string {
    const n = this.u8(`${what} length`);
    if (n === 0) throw new FrameError(FrameErrorKind.badField, `${what} is empty`);
    const raw = this.sub(n, what);
    try {
      return textDecoder.decode(raw);
    } catch (cause) {
      throw new FrameError(FrameErrorKind.badField, `${what} is not valid UTF-8`, { cause });
    }
  }

  flags(what: string, bitCount: number): number {
    const f = this.u8(what);
    if (f >>> bitCount !== 0) {
      throw new FrameError(FrameErrorKind.badFlags, `${what} 0x${f.toString(16)} sets reserved bits`);
    }
    return f;
  }
}

/**
 * Decodes one frame from untrusted `bytes`. Never throws for bad input: the result names what is
 * wrong. Entry and snapshot data in the result are views into `bytes` (zero-copy), so the caller
 * must not reuse `bytes` afterwards; the frame's memory lives as long as any entry does.
 */
export function decodeFrame(bytes: Uint8Array, options: DecodeOptions): DecodeResult {
  try {
    return { ok: true, frame: decodeOrThrow(bytes, options) };
  } catch (err) {
    if (err instanceof FrameError) return { ok: false, error: err };
    throw err;
  }
}

function decodeOrThrow(bytes: Uint8Array, options: DecodeOptions): Frame {
  const end = checkEnvelope(bytes, options);
  const r = new Reader(bytes, fixedHeaderBytes, end);
  const groupId = r.id("group id");
  const from = r.id("sender id");
  const to = r.id("receiver id");
  const count = r.u32("rpc count");
  // Each RPC takes at least rpcHeadBytes, so a count above this cannot be honest; checking it
  // before allocating keeps a forged count from costing memory.
  if (count > (end - r.position) / rpcHeadBytes) {
    throw new FrameError(FrameErrorKind.lengthOutOfRange, `rpc count ${count} cannot fit in ${end - r.position} bytes`);
  }
  const rpcs: Rpc[] = new Array<Rpc>(count);
  for (let i = 0; i < count; i++) rpcs[i] = readRpc(r, from, to, i);
  if (r.position !== end) {
    throw new FrameError(FrameErrorKind.trailingBytes, `${end - r.position} bytes after the last rpc`);
  }
  return { version: frameVersion, groupId, from, to, rpcs };
}

/** Checks size, magic, version, flags, length and CRC; returns where the RPCs end (the CRC). */
function checkEnvelope(bytes: Uint8Array, options: DecodeOptions): number {
  const length = bytes.byteLength;
  if (length > options.frameBytesMax) {
    throw new FrameError(FrameErrorKind.oversized, `frame of ${length} bytes exceeds frameBytesMax (${options.frameBytesMax})`);
  }
  for (let i = 0; i < frameMagic.length && i < length; i++) {
    if (bytes[i] !== frameMagic[i]) {
      throw new FrameError(FrameErrorKind.badMagic, `byte ${i} is 0x${(bytes[i] ?? 0).toString(16)}, expected "DLPF"`);
    }
  }
  if (length < frameBytesMin) {
    throw new FrameError(FrameErrorKind.truncated, `frame of ${length} bytes is below the minimum ${frameBytesMin}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  const version = view.getUint8(4);
  if (version !== frameVersion) {
    throw new FrameError(FrameErrorKind.unknownVersion, `version ${version}, this build speaks ${frameVersion}`);
  }
  const headerFlags = view.getUint8(5);
  if (headerFlags !== 0) throw new FrameError(FrameErrorKind.badFlags, `frame flags 0x${headerFlags.toString(16)}`);
  const declared = view.getUint32(6, true);
  if (declared > length) throw new FrameError(FrameErrorKind.truncated, `frame declares ${declared} bytes, got ${length}`);
  if (declared !== length) {
    throw new FrameError(FrameErrorKind.lengthMismatch, `frame declares ${declared} bytes, got ${length}`);
  }
  const end = length - crcBytes;
  const expected = view.getUint32(end, true);
  const actual = crc32(bytes.subarray(0, end));
  if (expected !== actual) {
    throw new FrameError(FrameErrorKind.crcMismatch, `crc 0x${actual.toString(16)} over ${end} bytes, frame says 0x${expected.toString(16)}`);
  }
  return end;
}

function readRpc(r: Reader, from: ReplicaId, to: ReplicaId, i: number): Rpc {
  const at = r.position;
  const code = r.u8("rpc type");
  const term = r.u64("rpc term");
  const base = { term, from, to };
  switch (code) {
    case 1: {
      const f = r.flags("vote_request flags", 2);
      return { type: "vote_request", ...base, preVote: (f & 1) !== 0, transfer: (f & 2) !== 0, lastIndex: r.u64("lastIndex"), lastTerm: r.u64("lastTerm") };
    }
    case 2: {
      const f = r.flags("vote_response flags", 2);
      return { type: "vote_response", ...base, preVote: (f & 1) !== 0, granted: (f & 2) !== 0 };
    }
    case 3:
      return readAppendRequest(r, base);
    case 4: {
      const success = r.flags("append_response flags", 1) !== 0;
      return { type: "append_response", ...base, success, index: r.u64("index"), hintIndex: r.u64("hintIndex"), hintTerm: r.u64("hintTerm") };
    }
    case 5:
      return { type: "heartbeat", ...base, commit: r.u64("commit"), readSeq: r.u64("readSeq") };
    case 6:
      return { type: "heartbeat_response", ...base, readSeq: r.u64("readSeq") };
    case 7:
      return readSnapshotChunk(r, base);
    case 8: {
      const snapshotIndex = r.u64("snapshotIndex");
      const position = r.u64("position");
      return { type: "snapshot_response", ...base, snapshotIndex, position, reject: r.flags("snapshot_response flags", 1) !== 0 };
    }
    case 9:
      return { type: "timeout_now", ...base };
    default:
      throw new FrameError(FrameErrorKind.unknownRpcType, `rpc[${i}] at position ${at} has type code ${code}`);
  }
}

interface RpcFields {
  readonly term: number;
  readonly from: ReplicaId;
  readonly to: ReplicaId;
}

function readAppendRequest(r: Reader, base: RpcFields): Rpc {
  const prevIndex = r.u64("prevIndex");
  const prevTerm = r.u64("prevTerm");
  const commit = r.u64("commit");
  const count = r.u32("entry count");
  if (count > (r.end - r.position) / entryHeadBytes) {
    throw new FrameError(FrameErrorKind.lengthOutOfRange, `entry count ${count} cannot fit in ${r.end - r.position} bytes`);
  }
  const entries: Entry[] = new Array<Entry>(count);
  for (let i = 0; i < count; i++) {
    const index = r.u64("entry index");
    const term = r.u64("entry term");
    const typeCode = r.u8("entry type");
    const type = entryTypeByCode[typeCode];
    if (type === undefined) throw new FrameError(FrameErrorKind.badField, `entries[${i}] has type code ${typeCode}`);
    const length = r.u32("entry data length");
    entries[i] = { index, term, type, data: r.sub(length, "entry data") };
  }
  return { type: "append_request", ...base, prevIndex, prevTerm, commit, entries };
}

function readSnapshotChunk(r: Reader, base: RpcFields): Rpc {
  const index = r.u64("meta.index");
  const term = r.u64("meta.term");
  const memberCount = r.u16("member count");
  if (memberCount > (r.end - r.position) / 2) {
    throw new FrameError(FrameErrorKind.lengthOutOfRange, `member count ${memberCount} cannot fit in ${r.end - r.position} bytes`);
  }
  const members: ReplicaId[] = new Array<ReplicaId>(memberCount);
  for (let i = 0; i < memberCount; i++) members[i] = r.id("snapshot member");
  const position = r.u64("position");
  const done = r.flags("snapshot_chunk flags", 1) !== 0;
  const length = r.u32("snapshot data length");
  const data = r.sub(length, "snapshot data");
  return { type: "snapshot_chunk", ...base, meta: { index, term, members }, position, data, done };
}
