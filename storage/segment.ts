import { assert } from "../raft/base/assert.js";
import type { Entry } from "../raft/core/types.js";
import { joinPath, type Disk, type DiskFile } from "./disk.js";
import {
  crc32,
  decodeHeader,
  encodeSegmentHeader,
  entryHeaderBytes,
  getSlot,
  indexSlotBytes,
  putSlot,
  segmentHeaderBytes,
  viewOf,
  type EntryHeader,
  type IndexSlot,
  type SegmentHeader,
} from "./entry_codec.js";
import { CorruptionCheck, CorruptionError } from "./errors.js";

/** File names: the first index, zero-padded to 20 digits so names sort like numbers. */
export function segmentFileName(firstIndex: number): string {
  return `${String(firstIndex).padStart(20, "0")}.seg`;
}
export function indexFileName(firstIndex: number): string {
  return `${String(firstIndex).padStart(20, "0")}.idx`;
}
export const segmentNamePattern = /^(\d{20})\.(seg|idx)$/;

/** A growable array of 16-byte index slots kept in memory for the active segment. */
export class SlotBuffer {
  bytes = new Uint8Array(16 * 1024);
  view = viewOf(this.bytes);
  count = 0;

  push(offset: number, headerCrc: number, term: number): void {
    const at = this.count * indexSlotBytes;
    if (at + indexSlotBytes > this.bytes.byteLength) {
      const next = new Uint8Array(this.bytes.byteLength * 2);
      next.set(this.bytes);
      this.bytes = next;
      this.view = viewOf(next);
    }
    putSlot(this.view, at, { offset, headerCrc, term });
    this.count++;
  }

  get(i: number): IndexSlot {
    assert(i >= 0 && i < this.count, `slot ${i} outside [0, ${this.count})`);
    return getSlot(this.view, i * indexSlotBytes);
  }

  offsetOf(i: number): number {
    return this.view.getUint32(i * indexSlotBytes, true);
  }

  static from(bytes: Uint8Array): SlotBuffer {
    const out = new SlotBuffer();
    out.bytes = new Uint8Array(Math.max(bytes.byteLength * 2, 16 * 1024));
    out.bytes.set(bytes);
    out.view = viewOf(out.bytes);
    out.count = bytes.byteLength / indexSlotBytes;
    return out;
  }
}

/**
 * One segment: a data file `<first>.seg` (segment header, then entries) and its index file
 * `<first>.idx` (one 16-byte slot per entry). The last segment of the log is active: its slots
 * live in memory and reach the index file only when it is sealed or the log closes cleanly, so
 * an append costs exactly one write (group commit) — recovery rebuilds them after a crash.
 */
export class Segment {
  /** Set by removeNow(): a background removal must not touch the files again. */
  private removedNow = false;
  readonly firstIndex: number;
  readonly dataPath: string;
  readonly indexPath: string;
  /** Entries held. */
  count: number;
  /** Bytes of the data file that hold the header and whole entries. */
  size: number;
  /**
   * Length of the data file (≥ size): bytes after `size` are zeros written ahead by `appendBytes`
   * (preallocation). A sealed segment, and the last one after a clean close, are trimmed so that
   * fileBytes === size (rule I4); after a crash, open cuts the zeros (RECOVERY.md row Z1).
   */
  fileBytes: number;
  /** Header CRC of the last entry (or the header's prevCrc when empty): the next chain value. */
  lastCrc: number;
  lastTerm: number;
  /** In-memory slots while active; null when sealed (slots are read from the index file). */
  slots: SlotBuffer | null;
  private dataFile: DiskFile | null = null;
  private indexFile: DiskFile | null = null;

  constructor(
    private readonly disk: Disk,
    dir: string,
    readonly header: SegmentHeader,
    state: { count: number; size: number; lastCrc: number; lastTerm: number; slots: SlotBuffer | null },
  ) {
    this.firstIndex = header.firstIndex;
    this.dataPath = joinPath(dir, segmentFileName(header.firstIndex));
    this.indexPath = joinPath(dir, indexFileName(header.firstIndex));
    this.count = state.count;
    this.size = state.size;
    this.fileBytes = state.size;
    this.lastCrc = state.lastCrc;
    this.lastTerm = state.lastTerm;
    this.slots = state.slots;
  }

  /** Creates both files with the header written and synced; the caller syncs the directory. */
  static create(disk: Disk, dir: string, header: SegmentHeader): Segment {
    const seg = new Segment(disk, dir, header, { count: 0, size: segmentHeaderBytes, lastCrc: header.prevCrc, lastTerm: header.prevTerm, slots: new SlotBuffer() });
    disk.open(seg.indexPath, { create: true }).close();
    const data = seg.data();
    data.truncate(0);
    data.write(encodeSegmentHeader(header), 0);
    data.sync();
    return seg;
  }

  get lastIndex(): number {
    return this.firstIndex + this.count - 1;
  }

  get basePosition(): number {
    return this.header.basePosition;
  }

  data(): DiskFile {
    this.dataFile ??= this.disk.open(this.dataPath, { create: true });
    return this.dataFile;
  }

  index(): DiskFile {
    this.indexFile ??= this.disk.open(this.indexPath, { create: true });
    return this.indexFile;
  }

  /** Index slot of `index` (firstIndex ≤ index ≤ lastIndex): O(1), from memory or one pread. */
  slot(index: number): IndexSlot {
    const i = index - this.firstIndex;
    assert(i >= 0 && i < this.count, `index ${index} is not in segment ${this.firstIndex} (+${this.count})`);
    if (this.slots !== null) return this.slots.get(i);
    return this.readSlots(i, 1)[0] as IndexSlot;
  }

  /** Slots [i, i + n) relative to firstIndex, read from the index file in one pread. */
  readSlots(i: number, n: number): IndexSlot[] {
    if (this.slots !== null) {
      const out: IndexSlot[] = [];
      for (let k = 0; k < n; k++) out.push(this.slots.get(i + k));
      return out;
    }
    const bytes = this.index().read(i * indexSlotBytes, n * indexSlotBytes);
    if (bytes.byteLength !== n * indexSlotBytes) {
      throw new CorruptionError(this.indexPath, i * indexSlotBytes, CorruptionCheck.indexSize, `index file ends before slot ${i + n - 1}`);
    }
    const view = viewOf(bytes);
    const out: IndexSlot[] = [];
    for (let k = 0; k < n; k++) out.push(getSlot(view, k * indexSlotBytes));
    return out;
  }

  /** End offset of entry `index` within the file. */
  endOf(index: number): number {
    return index === this.lastIndex ? this.size : this.slot(index + 1).offset;
  }

  /**
   * Appends an encoded batch at the end of the data file: one write, not yet durable. When the
   * batch would grow the file, zeros are also written from its end up to `preallocateTo` (when
   * that is further), so that the following batches overwrite blocks the file system already
   * allocated and their fdatasync need not commit size or extent changes. Both writes are covered
   * by the caller's next fdatasync.
   */
  appendBytes(bytes: Uint8Array, preallocateTo: number): void {
    assert(this.slots !== null, `append to sealed segment ${this.firstIndex}`);
    const end = this.size + bytes.byteLength;
    this.data().write(bytes, this.size);
    if (end > this.fileBytes) {
      if (preallocateTo > end) writeZeros(this.data(), end, preallocateTo);
      this.fileBytes = Math.max(end, preallocateTo);
    }
    this.size = end;
  }

  /**
   * Cuts the zeros after the last entry and makes the cut durable (before sealing, and before a
   * clean close): a trusted index must describe a file that ends with its last entry (rule I4).
   */
  trimPreallocated(): void {
    if (this.fileBytes === this.size) return;
    assert(this.fileBytes > this.size, `segment ${this.firstIndex}: file ${this.fileBytes} shorter than its entries ${this.size}`);
    this.data().truncate(this.size);
    this.data().sync();
    this.fileBytes = this.size;
  }

  /**
   * Drops entries after `index` (firstIndex - 1 ≤ index ≤ lastIndex) and makes the cut durable
   * at once, so that stale entries can never reappear behind newer ones after a crash.
   */
  truncateAfter(index: number): void {
    assert(index >= this.firstIndex - 1 && index <= this.lastIndex, `truncateAfter(${index}) outside segment ${this.firstIndex}..${this.lastIndex}`);
    this.activate();
    const keep = index - this.firstIndex + 1;
    const slots = this.slots as SlotBuffer;
    const cut = keep === this.count ? this.size : slots.offsetOf(keep);
    if (keep > 0) {
      const last = slots.get(keep - 1);
      this.lastCrc = last.headerCrc;
      this.lastTerm = last.term;
    } else {
      this.lastCrc = this.header.prevCrc;
      this.lastTerm = this.header.prevTerm;
    }
    slots.count = keep;
    this.count = keep;
    this.size = cut;
    this.fileBytes = cut;
    this.data().truncate(cut);
    this.data().sync();
  }

  /** Loads the slots into memory so the segment can take appends (it became the last one). */
  activate(): void {
    if (this.slots !== null) return;
    const bytes = this.index().read(0, this.count * indexSlotBytes);
    assert(bytes.byteLength === this.count * indexSlotBytes, `index ${this.indexPath} shorter than ${this.count} slots`);
    this.slots = SlotBuffer.from(bytes);
  }

  /** Writes the in-memory slots to the index file and fsyncs it. Keeps them in memory. */
  flushIndex(): void {
    if (this.slots === null) return;
    const file = this.index();
    const bytes = this.slots.bytes.subarray(0, this.count * indexSlotBytes);
    file.truncate(bytes.byteLength);
    if (bytes.byteLength > 0) file.write(bytes, 0);
    file.sync();
  }

  /** Trims, flushes the index and drops the in-memory slots: the segment takes no more appends. */
  seal(): void {
    this.trimPreallocated();
    this.flushIndex();
    this.slots = null;
  }

  close(): void {
    this.dataFile?.close();
    this.indexFile?.close();
    this.dataFile = null;
    this.indexFile = null;
  }

  /** Removes both files (data first: an orphan index is harmless, an orphan segment is not). */
  remove(): void {
    this.close();
    this.disk.remove(this.dataPath);
    this.disk.remove(this.indexPath);
  }

  /**
   * `remove()` off the event loop where the Disk can (Disk.removeAsync), in the same order. Only
   * for a segment the log's state already calls garbage (compacted, rule C1), so neither a crash
   * in between nor a late `done` can matter to recovery. `done` runs exactly once.
   */
  removeInBackground(done: (err: Error | null) => void): void {
    this.close();
    const removeAsync = this.disk.removeAsync?.bind(this.disk);
    if (removeAsync === undefined) {
      try {
        this.remove();
      } catch (err) {
        return done(err instanceof Error ? err : new Error(String(err)));
      }
      return done(null);
    }
    removeAsync(this.dataPath, (err) => {
      // removeNow() ran meanwhile (the log closed): both files are gone already.
      if (err !== null || this.removedNow) return done(err);
      removeAsync(this.indexPath, done);
    });
  }

  /**
   * Finishes a background removal on the calling thread, so that when the log's close() returns
   * nothing of it is left to happen: a reopen in the same process lists the directory at once.
   */
  removeNow(): void {
    this.removedNow = true;
    this.remove();
  }

  /**
   * Reads entries [lo, hi) of this segment, stopping before `budget` body bytes would be
   * exceeded (but always at least one entry when `atLeastOne`). Every entry is verified against
   * its slot, its header CRC, its body CRC and the chain. Returns the entries read.
   */
  read(lo: number, hi: number, budget: number, atLeastOne: boolean): Entry[] {
    assert(lo >= this.firstIndex && hi <= this.lastIndex + 1 && lo < hi, `read [${lo}, ${hi}) outside segment ${this.firstIndex}..${this.lastIndex}`);
    const n = Math.min(hi - lo, readSlotsMax);
    const base = lo - this.firstIndex;
    // One extra slot gives the end of the last entry (and the chain value before lo).
    const withNext = base + n < this.count ? n + 1 : n;
    const slots = this.readSlots(base, withNext);
    const prevCrc = base === 0 ? this.header.prevCrc : this.slot(lo - 1).headerCrc;
    const ends: number[] = [];
    let take = 0;
    let bytes = 0;
    for (let k = 0; k < n; k++) {
      const start = (slots[k] as IndexSlot).offset;
      const end = k + 1 < slots.length ? (slots[k + 1] as IndexSlot).offset : this.size;
      const body = end - start - entryHeaderBytes;
      if (bytes + body > budget && (take > 0 || !atLeastOne)) break;
      bytes += body;
      ends.push(end);
      take++;
    }
    if (take === 0) return [];
    const from = (slots[0] as IndexSlot).offset;
    const to = ends[take - 1] as number;
    const chunk = this.data().read(from, to - from);
    if (chunk.byteLength !== to - from) {
      throw new CorruptionError(this.dataPath, from + chunk.byteLength, CorruptionCheck.segmentLength, `file ends before entry data at ${to}`);
    }
    return this.decodeChunk(chunk, from, slots, take, lo, prevCrc);
  }

  private decodeChunk(chunk: Uint8Array, from: number, slots: IndexSlot[], take: number, lo: number, prevCrc: number): Entry[] {
    const out: Entry[] = [];
    let chain = prevCrc;
    for (let k = 0; k < take; k++) {
      const slot = slots[k] as IndexSlot;
      const at = slot.offset - from;
      const where = (check: CorruptionCheck, detail: string): CorruptionError => new CorruptionError(this.dataPath, slot.offset, check, detail);
      if (at + entryHeaderBytes > chunk.byteLength) throw where(CorruptionCheck.indexSlot, `slot for index ${lo + k} points past its entry range`);
      const h = decodeHeader(chunk, at);
      if (typeof h === "string") throw where(h, `entry ${lo + k}: ${h === "entry_magic" ? "bad magic/version" : "header CRC mismatch"}`);
      checkHeaderAgainst(h, { index: lo + k, term: slot.term, position: this.basePosition + slot.offset, prevCrc: chain, headerCrc: slot.headerCrc }, where);
      const body = chunk.subarray(at + entryHeaderBytes, at + entryHeaderBytes + h.bodyLength);
      if (body.byteLength !== h.bodyLength || crc32(body) !== h.bodyCrc) throw where(CorruptionCheck.entryBodyCrc, `entry ${lo + k}: body CRC mismatch`);
      out.push({ index: h.index, term: h.term, type: h.type, data: body });
      chain = h.headerCrc;
    }
    return out;
  }
}

/** Zeros are written in pieces of at most this size, from one shared buffer. */
const zeroChunkBytes = 256 * 1024;
let zeroChunk: Uint8Array | null = null;

/** Writes zeros over [from, to) of `file`: at most ceil((to - from) / 256 KiB) writes. */
function writeZeros(file: DiskFile, from: number, to: number): void {
  assert(from <= to, `writeZeros: from ${from} > to ${to}`);
  zeroChunk ??= new Uint8Array(zeroChunkBytes);
  for (let at = from; at < to; at += zeroChunkBytes) {
    const n = Math.min(zeroChunkBytes, to - at);
    file.write(n === zeroChunkBytes ? zeroChunk : zeroChunk.subarray(0, n), at);
  }
}

/** Most slots one read looks at: bounds the pread of the index file. */
const readSlotsMax = 4096;

/** What a header must agree with: its slot (or the scan's expectation) and the chain. */
export interface Expected {
  readonly index: number;
  readonly term: number;
  readonly position: number;
  readonly prevCrc: number;
  readonly headerCrc: number;
}

export function checkHeaderAgainst(h: EntryHeader, e: Expected, where: (check: CorruptionCheck, detail: string) => CorruptionError): void {
  if (h.index !== e.index) throw where(CorruptionCheck.entryIndex, `expected index ${e.index}, header says ${h.index}`);
  if (h.headerCrc !== e.headerCrc) throw where(CorruptionCheck.indexSlot, `index slot CRC ${e.headerCrc} disagrees with header CRC ${h.headerCrc} of entry ${e.index}`);
  if (h.term !== e.term) throw where(CorruptionCheck.indexSlot, `index slot term ${e.term} disagrees with header term ${h.term} of entry ${e.index}`);
  if (h.position !== e.position) throw where(CorruptionCheck.entryPosition, `entry ${e.index}: header position ${h.position}, actual ${e.position}`);
  if (h.prevCrc !== e.prevCrc) throw where(CorruptionCheck.chain, `entry ${e.index}: prevCrc ${h.prevCrc} does not chain to ${e.prevCrc}`);
}

