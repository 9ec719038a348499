import type { DiskFile } from "./disk.js";
import { batchEndFlag, crc32, decodeHeader, entryHeaderBytes, entryMagic, segmentHeaderBytes, type SegmentHeader } from "./entry_codec.js";
import { CorruptionCheck } from "./errors.js";
import { SlotBuffer } from "./segment.js";

/** The first failed check of a scan. `torn` means it looks like an interrupted last write. */
export interface ScanProblem {
  readonly position: number;
  readonly check: CorruptionCheck;
  readonly detail: string;
  readonly torn: boolean;
}

export interface ScanResult {
  readonly slots: SlotBuffer;
  /** Bytes of header + whole, valid entries: where a torn tail is cut. */
  readonly size: number;
  readonly lastCrc: number;
  readonly lastTerm: number;
  readonly fileSize: number;
  readonly problem: ScanProblem | null;
}

const sector = 512;

/**
 * Reads every entry of a segment data file in order and checks it: magic, header CRC, body CRC,
 * index continuity, non-decreasing term, position, and the chain. The entries end where the rest
 * of the file is zeros (preallocated space, storage/RECOVERY.md row Z1): that is not a problem,
 * and `size` < `fileSize` says there is a tail to cut. Otherwise the scan stops at the first
 * failure and classifies it (rows T1–T3): a failure is a torn write when the entry runs past the
 * end of the file, or its bytes include an all-zero 512-byte sector, or the file is all zeros
 * from inside it to the end — and, in every case, no complete later write follows it: an entry
 * flagged as the end of a write that is followed by more written (non-zero) data, which a
 * later write would have put there. A torn write can only be the last write, because each
 * write is fsynced before the next one starts; preallocated zeros after it are not a write.
 */
export function scanSegment(file: DiskFile, header: SegmentHeader): ScanResult {
  const fileSize = file.size();
  // The active segment is bounded by segmentBytes plus one batch, so reading it whole is fine.
  const bytes = file.read(0, fileSize);
  const slots = new SlotBuffer();
  let at = segmentHeaderBytes;
  let chain = header.prevCrc;
  let term = header.prevTerm;
  const result = (problem: ScanProblem | null): ScanResult => ({ slots, size: at, lastCrc: chain, lastTerm: term, fileSize, problem });
  const zeroTail = zeroTailStart(bytes);
  // Bounded: every iteration advances `at` by at least one header or returns.
  while (at < fileSize) {
    if (at >= zeroTail) return result(null); // Rule Z1: only zeros follow the last entry.
    const index = header.firstIndex + slots.count;
    const fail = (check: CorruptionCheck, detail: string, end: number, tornShape: boolean): ScanResult => {
      const torn = tornShape || zeroTail < end || hasZeroSector(bytes, at, Math.min(end, fileSize));
      const later = torn ? laterCompleteWrite(bytes, at + 1, zeroTail) : -1;
      const why = later >= 0 ? `${detail}; not a torn tail: a complete write ends at ${later}` : detail;
      return result({ position: at, check, detail: `entry ${index}: ${why}`, torn: torn && later < 0 });
    };
    if (at + entryHeaderBytes > fileSize) return fail(CorruptionCheck.entryMagic, "header runs past the end of the file", fileSize, true);
    const h = decodeHeader(bytes, at);
    if (typeof h === "string") return fail(h, h === "entry_magic" ? "bad magic or version" : "header CRC mismatch", at + entryHeaderBytes, false);
    const end = at + entryHeaderBytes + h.bodyLength;
    if (end > fileSize) return fail(CorruptionCheck.entryBodyCrc, `body of ${h.bodyLength} bytes runs past the end of the file`, fileSize, true);
    if (crc32(bytes.subarray(at + entryHeaderBytes, end)) !== h.bodyCrc) return fail(CorruptionCheck.entryBodyCrc, "body CRC mismatch", end, false);
    if (h.index !== index) return fail(CorruptionCheck.entryIndex, `header index ${h.index}`, -1, false);
    if (h.term < term || h.term < 1) return fail(CorruptionCheck.entryTerm, `term ${h.term} after term ${term}`, -1, false);
    if (h.position !== header.basePosition + at) return fail(CorruptionCheck.entryPosition, `header position ${h.position}, actual ${header.basePosition + at}`, -1, false);
    if (h.prevCrc !== chain) return fail(CorruptionCheck.chain, `prevCrc ${h.prevCrc} does not chain to ${chain}`, -1, false);
    slots.push(at, h.headerCrc, h.term);
    chain = h.headerCrc;
    term = h.term;
    at = end;
  }
  return result(null);
}

/** Smallest z such that bytes [z, end) are all zero. */
function zeroTailStart(bytes: Uint8Array): number {
  let z = bytes.byteLength;
  while (z > 0 && bytes[z - 1] === 0) z--;
  return z;
}

/** True when [from, to) overlaps a file-aligned 512-byte sector (clipped at EOF) of zeros. */
function hasZeroSector(bytes: Uint8Array, from: number, to: number): boolean {
  for (let s = Math.floor(from / sector) * sector; s < to; s += sector) {
    const e = Math.min(s + sector, bytes.byteLength);
    let zero = e > s;
    for (let i = s; i < e && zero; i++) if (bytes[i] !== 0) zero = false;
    if (zero) return true;
  }
  return false;
}

/**
 * End of a valid, write-ending entry header found after `from` whose end is followed by more
 * non-zero bytes (it ends before `zeroTail`, where the file's all-zero end starts), or -1.
 */
function laterCompleteWrite(bytes: Uint8Array, from: number, zeroTail: number): number {
  const lo = entryMagic & 0xff;
  const hi = entryMagic >> 8;
  for (let at = from; at + entryHeaderBytes <= bytes.byteLength; at++) {
    if (bytes[at] !== lo || bytes[at + 1] !== hi) continue;
    const h = decodeHeader(bytes, at);
    if (typeof h === "string" || (h.flags & batchEndFlag) === 0) continue;
    const end = at + entryHeaderBytes + h.bodyLength;
    if (end < zeroTail) return end;
  }
  return -1;
}
