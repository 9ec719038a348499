import type { Logger } from "../raft/base/logger.js";
import { joinPath, type Disk } from "./disk.js";
import { decodeHeader, decodeSegmentHeader, entryHeaderBytes, getSlot, indexSlotBytes, segmentHeaderBytes, viewOf, type SegmentHeader } from "./entry_codec.js";
import { CorruptionCheck, CorruptionError } from "./errors.js";
import { scanSegment } from "./scan.js";
import { Segment, SlotBuffer, indexFileName, segmentFileName, segmentNamePattern } from "./segment.js";
import type { LogOrigin } from "./state_file.js";
import { TermTable } from "./term_table.js";

/**
 * Loading the segments of a log directory at open. The rules are the decision table in
 * storage/RECOVERY.md; each rule's id appears next to the code that applies it.
 */
export const logDirName = "log";

export interface LoadedSegments {
  readonly segments: Segment[];
  readonly terms: TermTable;
  /** Set when rule T1–T3 cut a torn tail: where, and why. */
  readonly tornTail: { readonly file: string; readonly position: number; readonly detail: string } | null;
}

interface Listed {
  readonly firstIndexes: number[];
  readonly hasIndex: Set<number>;
  readonly orphanIndexes: number[];
  readonly temps: string[];
}

export function listLogDir(disk: Disk, logDir: string, logger: Logger): Listed {
  const seg = new Set<number>();
  const idx = new Set<number>();
  const temps: string[] = [];
  for (const name of disk.list(logDir)) {
    const m = segmentNamePattern.exec(name);
    if (m !== null) (m[2] === "seg" ? seg : idx).add(Number(m[1]));
    else if (name.endsWith(".tmp")) temps.push(name);
    else logger.warn({ file: joinPath(logDir, name) }, "unknown_file_ignored"); // rule F3
  }
  const firstIndexes = [...seg].sort((a, b) => a - b);
  return { firstIndexes, hasIndex: idx, orphanIndexes: [...idx].filter((i) => !seg.has(i)), temps };
}

export function readSegmentHeader(disk: Disk, path: string, expectedFirst: number): SegmentHeader {
  const file = disk.open(path, { create: false });
  try {
    const h = decodeSegmentHeader(file.read(0, segmentHeaderBytes));
    if (typeof h === "string") throw new CorruptionError(path, 0, CorruptionCheck.segmentHeader, h); // rule S1
    if (h.firstIndex !== expectedFirst) throw new CorruptionError(path, 8, CorruptionCheck.segmentHeader, `header says first index ${h.firstIndex}, file name says ${expectedFirst}`);
    return h;
  } finally {
    file.close();
  }
}

/**
 * Loads every segment of `logDir` for a log whose durable origin is `origin`. Removes what rules
 * G1, C1 and F1/F2 say is garbage (unless `readOnly`), checks structure and chain between
 * segments, trusts index files of sealed segments (and of the last one after a clean close),
 * and rescans the last segment otherwise, cutting a torn tail (T1–T3).
 */
export function loadSegments(disk: Disk, logDir: string, origin: LogOrigin, clean: boolean, logger: Logger, readOnly: boolean): LoadedSegments {
  const listed = listLogDir(disk, logDir, logger);
  const garbage: string[] = [...listed.temps.map((n) => joinPath(logDir, n)), ...listed.orphanIndexes.map((i) => joinPath(logDir, indexFileName(i)))];
  const headers: SegmentHeader[] = [];
  for (const first of listed.firstIndexes) {
    const path = joinPath(logDir, segmentFileName(first));
    const h = readSegmentHeader(disk, path, first);
    if (h.generation < origin.generation) garbage.push(path, joinPath(logDir, indexFileName(first))); // rule G1
    else if (h.generation > origin.generation) throw new CorruptionError(path, 24, CorruptionCheck.generation, `segment generation ${h.generation} is newer than the state's ${origin.generation}`); // G2
    else headers.push(h);
  }
  // Rule C1: a segment whose successor starts at or below the log's first index is compacted.
  while (headers.length > 1 && (headers[1] as SegmentHeader).firstIndex <= origin.firstIndex) {
    const h = headers.shift() as SegmentHeader;
    garbage.push(joinPath(logDir, segmentFileName(h.firstIndex)), joinPath(logDir, indexFileName(h.firstIndex)));
  }
  if (!readOnly && garbage.length > 0) {
    for (const path of garbage) disk.remove(path);
    disk.syncDir(logDir);
    logger.info({ files: garbage }, "recovery_removed_garbage");
  }
  const first = headers[0];
  if (first !== undefined && first.firstIndex > origin.firstIndex) {
    throw new CorruptionError(joinPath(logDir, segmentFileName(first.firstIndex)), 0, CorruptionCheck.gap, `log must start at ${origin.firstIndex} but the first segment starts at ${first.firstIndex}`); // rule P1
  }
  const terms = new TermTable(first?.firstIndex ?? origin.firstIndex);
  const segments: Segment[] = [];
  let tornTail: LoadedSegments["tornTail"] = null;
  for (let k = 0; k < headers.length; k++) {
    const h = headers[k] as SegmentHeader;
    const prev = segments[segments.length - 1];
    if (prev !== undefined) checkJoin(prev, h, joinPath(logDir, segmentFileName(h.firstIndex)));
    const last = k === headers.length - 1;
    if (!last || clean) {
      if (!listed.hasIndex.has(h.firstIndex)) throw new CorruptionError(joinPath(logDir, indexFileName(h.firstIndex)), 0, CorruptionCheck.indexMissing, `index file of ${last ? "the last (cleanly closed)" : "sealed"} segment ${h.firstIndex} is missing`); // rule I1
      segments.push(loadIndexed(disk, logDir, h, terms, last));
    } else {
      const loaded = loadScanned(disk, logDir, h, terms, readOnly);
      segments.push(loaded.segment);
      tornTail = loaded.tornTail;
    }
  }
  return { segments, terms, tornTail };
}

/** Rules P2 and K1: consecutive segments must be contiguous in index, position and chain. */
function checkJoin(prev: Segment, h: SegmentHeader, path: string): void {
  if (h.firstIndex !== prev.lastIndex + 1) throw new CorruptionError(path, 8, CorruptionCheck.gap, `segment starts at ${h.firstIndex} but the previous one ends at ${prev.lastIndex}`);
  if (h.basePosition !== prev.basePosition + prev.size) throw new CorruptionError(path, 16, CorruptionCheck.entryPosition, `segment base position ${h.basePosition}, previous segment ends at ${prev.basePosition + prev.size}`);
  if (h.prevCrc !== prev.lastCrc || h.prevTerm !== prev.lastTerm) throw new CorruptionError(path, 32, CorruptionCheck.chain, `segment header chains to (crc ${h.prevCrc}, term ${h.prevTerm}), previous entry is (crc ${prev.lastCrc}, term ${prev.lastTerm})`);
}

/**
 * A segment whose index file is trusted: sealed (its data and index were fsynced before the next
 * segment was created) or the last one after a clean close. Checks cost O(slots) on the index
 * plus two entry headers (rules I2–I4).
 */
function loadIndexed(disk: Disk, logDir: string, h: SegmentHeader, terms: TermTable, active: boolean): Segment {
  const dataPath = joinPath(logDir, segmentFileName(h.firstIndex));
  const indexPath = joinPath(logDir, indexFileName(h.firstIndex));
  const index = disk.open(indexPath, { create: false });
  const data = disk.open(dataPath, { create: false });
  try {
    const indexSize = index.size();
    const count = indexSize / indexSlotBytes;
    if (!Number.isInteger(count) || (count === 0 && !active)) throw new CorruptionError(indexPath, indexSize, CorruptionCheck.indexSize, `index file of ${indexSize} bytes is not a whole, non-empty number of ${indexSlotBytes}-byte slots`);
    const bytes = index.read(0, indexSize);
    const view = viewOf(bytes);
    let prevOffset = segmentHeaderBytes - 1;
    let term = h.prevTerm;
    for (let i = 0; i < count; i++) {
      const slot = getSlot(view, i * indexSlotBytes);
      if (slot.offset <= prevOffset || slot.term < term) throw new CorruptionError(indexPath, i * indexSlotBytes, CorruptionCheck.indexSlot, `slot ${i} (offset ${slot.offset}, term ${slot.term}) is out of order`);
      prevOffset = slot.offset;
      term = slot.term;
      terms.push(h.firstIndex + i, slot.term);
    }
    const dataSize = data.size();
    const seg = new Segment(disk, logDir, h, { count, size: dataSize, lastCrc: h.prevCrc, lastTerm: h.prevTerm, slots: active ? SlotBuffer.from(bytes) : null });
    if (count === 0) {
      if (dataSize !== segmentHeaderBytes) throw new CorruptionError(dataPath, segmentHeaderBytes, CorruptionCheck.segmentLength, `empty segment has ${dataSize - segmentHeaderBytes} bytes of entries`);
      return seg;
    }
    const firstSlot = getSlot(view, 0);
    if (firstSlot.offset !== segmentHeaderBytes) throw new CorruptionError(indexPath, 0, CorruptionCheck.indexSlot, `first slot offset ${firstSlot.offset}, expected ${segmentHeaderBytes}`);
    const lastSlot = getSlot(view, (count - 1) * indexSlotBytes);
    const firstHeader = checkEntryAt(data, dataPath, h, h.firstIndex, firstSlot);
    if (firstHeader.prevCrc !== h.prevCrc) throw new CorruptionError(dataPath, segmentHeaderBytes, CorruptionCheck.chain, `first entry chains to ${firstHeader.prevCrc}, segment header says ${h.prevCrc}`);
    const lastHeader = checkEntryAt(data, dataPath, h, h.firstIndex + count - 1, lastSlot);
    const end = lastSlot.offset + entryHeaderBytes + lastHeader.bodyLength;
    if (end !== dataSize) throw new CorruptionError(dataPath, Math.min(end, dataSize), CorruptionCheck.segmentLength, `last entry ${h.firstIndex + count - 1} ends at ${end} but the file is ${dataSize} bytes (truncated or extended)`); // rule I4
    seg.lastCrc = lastSlot.headerCrc;
    seg.lastTerm = lastSlot.term;
    return seg;
  } finally {
    index.close();
    data.close();
  }
}

/** Reads and checks the entry header a slot points at (rule I3). */
function checkEntryAt(data: ReturnType<Disk["open"]>, path: string, h: SegmentHeader, index: number, slot: { offset: number; headerCrc: number; term: number }): { prevCrc: number; bodyLength: number } {
  const bytes = data.read(slot.offset, entryHeaderBytes);
  if (bytes.byteLength < entryHeaderBytes) throw new CorruptionError(path, slot.offset, CorruptionCheck.segmentLength, `index slot of entry ${index} points past the end of the file`);
  const e = decodeHeader(bytes, 0);
  if (typeof e === "string") throw new CorruptionError(path, slot.offset, e, `entry ${index}: ${e === "entry_magic" ? "bad magic or version" : "header CRC mismatch"}`);
  if (e.index !== index || e.headerCrc !== slot.headerCrc || e.term !== slot.term) {
    throw new CorruptionError(path, slot.offset, CorruptionCheck.indexSlot, `index slot of entry ${index} (crc ${slot.headerCrc}, term ${slot.term}) disagrees with the entry there (index ${e.index}, crc ${e.headerCrc}, term ${e.term})`);
  }
  if (e.position !== h.basePosition + slot.offset) throw new CorruptionError(path, slot.offset, CorruptionCheck.entryPosition, `entry ${index}: header position ${e.position}, actual ${h.basePosition + slot.offset}`);
  return e;
}

/** The last segment after a crash: rescan it and rebuild its slots (rules Z1, T1–T3, E1–E2). */
function loadScanned(disk: Disk, logDir: string, h: SegmentHeader, terms: TermTable, readOnly: boolean): { segment: Segment; tornTail: LoadedSegments["tornTail"] } {
  const seg = new Segment(disk, logDir, h, { count: 0, size: segmentHeaderBytes, lastCrc: h.prevCrc, lastTerm: h.prevTerm, slots: null });
  const scan = scanSegment(seg.data(), h);
  let tornTail: LoadedSegments["tornTail"] = null;
  if (scan.problem !== null) {
    if (!scan.problem.torn) throw new CorruptionError(seg.dataPath, scan.problem.position, scan.problem.check, scan.problem.detail);
    tornTail = { file: seg.dataPath, position: scan.problem.position, detail: scan.problem.detail };
  }
  seg.slots = scan.slots;
  seg.count = scan.slots.count;
  seg.size = scan.size;
  seg.lastCrc = scan.lastCrc;
  seg.lastTerm = scan.lastTerm;
  for (let i = 0; i < seg.count; i++) terms.push(h.firstIndex + i, scan.slots.get(i).term);
  seg.fileBytes = scan.fileSize;
  if (!readOnly && scan.fileSize !== scan.size) {
    // Cut the torn tail, or the preallocated zeros (Z1), durably before anything is appended
    // after it: the log then ends exactly at its last entry, as after a seal.
    seg.data().truncate(scan.size);
    seg.data().sync();
    seg.fileBytes = scan.size;
  }
  return { segment: seg, tornTail };
}
