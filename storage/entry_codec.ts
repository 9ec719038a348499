import { assert } from "../raft/base/assert.js";
import { crc32 } from "../raft/base/crc32.js";
import type { Entry, EntryType } from "../raft/core/types.js";

/**
 * The on-disk formats of the CommitLog: the entry header, the segment header and the index slot.
 * All integers are little-endian; 64-bit fields hold safe integers (< 2^53) as two u32 halves.
 *
 * Entry header, 48 bytes, then `bodyLength` bytes of body:
 *    0 u16 magic 0x4c44 ("DL")     2 u8 version (1)     3 u8 type (1 normal, 2 noop)
 *    4 u8 flags (bit 0: last entry of its write)         5..8 reserved, zero
 *    8 u32 bodyLength             12 u32 bodyCrc        16 u64 index        24 u64 term
 *   32 u64 position (global CommitLog byte position of this header)
 *   40 u32 prevCrc: headerCrc of entry index-1 (the chain; the segment header seeds it)
 *   44 u32 headerCrc: CRC-32 of bytes [0, 44)
 * The header CRC covers the body CRC and the previous header's CRC, so the chain binds every byte
 * of the log before an entry (a 32-bit hash chain, as TigerBeetle's header checksums do).
 * The batch-end flag lets recovery tell a torn last write from damage in an earlier, fsynced one.
 */
export const entryHeaderBytes = 48;
export const entryMagic = 0x4c44;
export const formatVersion = 1;
export const batchEndFlag = 1;
/** CRC-32 over the first 44 bytes; headerCrc sits at 44. */
const headerCrcOffset = 44;

export const entryTypeCode: Readonly<Record<EntryType, number>> = { normal: 1, noop: 2 };
const entryTypeByCode: readonly (EntryType | undefined)[] = [undefined, "normal", "noop"];

/** The CRC-32 of every format here (raft/base/crc32.ts: the package below 512 bytes, native zlib above). */
export { crc32, crc32Package } from "../raft/base/crc32.js";

const two32 = 0x1_0000_0000;

export function putU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / two32), true);
}

export function getU64(view: DataView, offset: number): number {
  return view.getUint32(offset + 4, true) * two32 + view.getUint32(offset, true);
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A decoded entry header. `position` is the global byte position of the header. */
export interface EntryHeader {
  readonly type: EntryType;
  readonly flags: number;
  readonly bodyLength: number;
  readonly bodyCrc: number;
  readonly index: number;
  readonly term: number;
  readonly position: number;
  readonly prevCrc: number;
  readonly headerCrc: number;
}

/** Bytes `entries` take on disk. */
export function encodedBytes(entries: readonly Entry[]): number {
  let total = 0;
  for (const e of entries) total += entryHeaderBytes + e.data.byteLength;
  return total;
}

/**
 * Encodes `entries` into `out` starting at `out[0]`. The first header sits at global `position`
 * and chains to `prevCrc`. Checksums are computed here, immediately before the write (STYLE.md
 * rule 6). Calls `onEntry(fileOffsetDelta, headerCrc)` per entry so the caller can fill index
 * slots without a second pass. Returns the last header CRC (the next chain value).
 */
export function encodeEntries(
  entries: readonly Entry[],
  out: Uint8Array,
  position: number,
  prevCrc: number,
  onEntry: (delta: number, headerCrc: number) => void,
): number {
  const view = viewOf(out);
  let at = 0;
  let chain = prevCrc;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    const bodyLength = e.data.byteLength;
    view.setUint16(at, entryMagic, true);
    view.setUint8(at + 2, formatVersion);
    view.setUint8(at + 3, entryTypeCode[e.type]);
    view.setUint32(at + 4, i === entries.length - 1 ? batchEndFlag : 0, true);
    view.setUint32(at + 8, bodyLength, true);
    view.setUint32(at + 12, crc32(e.data), true);
    putU64(view, at + 16, e.index);
    putU64(view, at + 24, e.term);
    putU64(view, at + 32, position + at);
    view.setUint32(at + 40, chain, true);
    chain = crc32(out.subarray(at, at + headerCrcOffset));
    view.setUint32(at + headerCrcOffset, chain, true);
    out.set(e.data, at + entryHeaderBytes);
    onEntry(at, chain);
    at += entryHeaderBytes + bodyLength;
  }
  assert(at === out.byteLength, `encodeEntries: wrote ${at} bytes into a ${out.byteLength}-byte buffer`);
  return chain;
}

/** Why a header failed to decode. */
export type HeaderProblem = "entry_magic" | "entry_header_crc";

/**
 * Decodes the 48-byte header at `bytes[at]`, verifying magic, version, reserved bytes and the
 * header CRC (verify just after every read). Returns the problem instead when a check fails.
 */
export function decodeHeader(bytes: Uint8Array, at: number): EntryHeader | HeaderProblem {
  assert(at + entryHeaderBytes <= bytes.byteLength, "decodeHeader: short buffer");
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, entryHeaderBytes);
  if (view.getUint16(0, true) !== entryMagic || view.getUint8(2) !== formatVersion) return "entry_magic";
  const headerCrc = view.getUint32(headerCrcOffset, true);
  if (crc32(bytes.subarray(at, at + headerCrcOffset)) !== headerCrc) return "entry_header_crc";
  const type = entryTypeByCode[view.getUint8(3)];
  // A valid CRC over an unknown type or nonzero reserved bits means a writer we do not know:
  // treat it as corrupt rather than guess.
  if (type === undefined || view.getUint8(5) !== 0 || view.getUint16(6, true) !== 0) return "entry_magic";
  return {
    type,
    flags: view.getUint8(4),
    bodyLength: view.getUint32(8, true),
    bodyCrc: view.getUint32(12, true),
    index: getU64(view, 16),
    term: getU64(view, 24),
    position: getU64(view, 32),
    prevCrc: view.getUint32(40, true),
    headerCrc,
  };
}

/** Segment header, 64 bytes at the start of every segment file. */
export const segmentHeaderBytes = 64;
const segmentMagic = 0x47534c44; // "DLSG"

export interface SegmentHeader {
  readonly firstIndex: number;
  /** Global CommitLog position of byte 0 of this file. */
  readonly basePosition: number;
  /** Bumped when a snapshot install replaces the whole log: older segments are stale. */
  readonly generation: number;
  /** Term of entry firstIndex - 1 (0 for none). */
  readonly prevTerm: number;
  /** Header CRC of entry firstIndex - 1: the first entry's prevCrc must equal it. */
  readonly prevCrc: number;
}

export function encodeSegmentHeader(h: SegmentHeader): Uint8Array {
  const out = new Uint8Array(segmentHeaderBytes);
  const view = viewOf(out);
  view.setUint32(0, segmentMagic, true);
  view.setUint16(4, formatVersion, true);
  putU64(view, 8, h.firstIndex);
  putU64(view, 16, h.basePosition);
  putU64(view, 24, h.generation);
  putU64(view, 32, h.prevTerm);
  view.setUint32(40, h.prevCrc, true);
  view.setUint32(60, crc32(out.subarray(0, 60)), true);
  return out;
}

/** Decodes and verifies a segment header; returns a reason string when it is invalid. */
export function decodeSegmentHeader(bytes: Uint8Array): SegmentHeader | string {
  if (bytes.byteLength < segmentHeaderBytes) return `short header (${bytes.byteLength} bytes)`;
  const view = viewOf(bytes);
  if (view.getUint32(0, true) !== segmentMagic) return "bad magic";
  if (view.getUint16(4, true) !== formatVersion) return `unknown version ${view.getUint16(4, true)}`;
  if (crc32(bytes.subarray(0, 60)) !== view.getUint32(60, true)) return "header CRC mismatch";
  return {
    firstIndex: getU64(view, 8),
    basePosition: getU64(view, 16),
    generation: getU64(view, 24),
    prevTerm: getU64(view, 32),
    prevCrc: view.getUint32(40, true),
  };
}

/**
 * Index slot, 16 bytes: u32 file offset of the entry header within its segment, u32 header CRC
 * (lets a reader check the slot against the data, and seeds the chain after reopen), u64 term
 * (lets open rebuild the term table from the index alone).
 */
export const indexSlotBytes = 16;

export interface IndexSlot {
  readonly offset: number;
  readonly headerCrc: number;
  readonly term: number;
}

export function putSlot(view: DataView, at: number, slot: IndexSlot): void {
  view.setUint32(at, slot.offset, true);
  view.setUint32(at + 4, slot.headerCrc, true);
  putU64(view, at + 8, slot.term);
}

export function getSlot(view: DataView, at: number): IndexSlot {
  return { offset: view.getUint32(at, true), headerCrc: view.getUint32(at + 4, true), term: getU64(view, at + 8) };
}
