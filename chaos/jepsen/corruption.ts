/**
 * The corruption nemesis's disk work: flip one byte inside the body of a committed entry of a
 * stopped replica's CommitLog, and put it back. The on-disk format is read only through the
 * storage module's own readers (decodeStateSlot, decodeSegmentHeader, scanSegment, decodeHeader),
 * never re-parsed here.
 *
 * Which entry: the replica must then refuse to start (storage/RECOVERY.md row E1,
 * `entry_body_crc`). Open rescans only the last segment after an unclean close, so the entry is
 * in the last segment, the data directory must not carry a clean-close mark, the entry must not
 * belong to the last write (damage there may be read as a torn tail and cut, rows T1–T3), and
 * its index is at most the commit index recorded in the state file (so it is committed). After
 * the flip, scanSegment must report exactly that: a non-torn `entry_body_crc` at that entry;
 * otherwise the byte is put back and another entry is tried.
 */
import { closeSync, fsyncSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { silentLogger } from "../../raft/base/logger.js";
import { DiskOs } from "../../storage/disk_os.js";
import { batchEndFlag, decodeHeader, decodeSegmentHeader, entryHeaderBytes, segmentHeaderBytes } from "../../storage/entry_codec.js";
import { CorruptionCheck } from "../../storage/errors.js";
import { listLogDir, logDirName } from "../../storage/recovery.js";
import { scanSegment, type ScanResult } from "../../storage/scan.js";
import { segmentFileName } from "../../storage/segment.js";
import { decodeStateSlot, stateFileName, stateSlotBytes, type PersistedState } from "../../storage/state_file.js";
import type { Corruption, NodeId } from "./contracts.js";

/** The data directory has no entry this fault may damage (the reason says why); nothing was changed. */
export class CorruptionUnavailableError extends Error {
  override readonly name = "CorruptionUnavailableError";
}

/** Entries tried before giving up (each try is one flip, one scan, maybe one undo). */
const attemptsMax = 8;

interface Candidate {
  readonly index: number;
  /** File offset of the entry's header. */
  readonly offset: number;
  readonly bodyLength: number;
}

/** The newest valid state slot of `dataDir`, read without opening the store for writing. */
export function readRecordedState(dataDir: string): PersistedState | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dataDir, stateFileName));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
  const slots = [0, stateSlotBytes].map((at) => decodeStateSlot(new Uint8Array(bytes.subarray(at, at + stateSlotBytes))));
  let best: { state: PersistedState; sequence: number } | null = null;
  for (const s of slots) if (s !== null && (best === null || s.sequence > best.sequence)) best = s;
  return best?.state ?? null;
}

/** Scans the last segment of `dataDir` with the storage module's reader. */
function scanLastSegment(dataDir: string): { path: string; firstIndex: number; scan: ScanResult } | null {
  const disk = new DiskOs();
  const logDir = join(dataDir, logDirName);
  if (!disk.exists(logDir)) return null;
  const first = listLogDir(disk, logDir, silentLogger).firstIndexes.at(-1);
  if (first === undefined) return null;
  const path = join(logDir, segmentFileName(first));
  const file = disk.open(path, { create: false });
  try {
    const header = decodeSegmentHeader(file.read(0, segmentHeaderBytes));
    if (typeof header === "string") throw new CorruptionUnavailableError(`segment ${path} has a bad header already: ${header}`);
    return { path, firstIndex: header.firstIndex, scan: scanSegment(file, header) };
  } finally {
    file.close();
  }
}

/** Committed entries with a body, in the last segment, before its last write. */
function candidates(dataDir: string, knownCommit: number): { path: string; list: Candidate[]; why: string } {
  const state = readRecordedState(dataDir);
  if (state === null) return { path: "", list: [], why: `no state file in ${dataDir}` };
  if (state.clean) return { path: "", list: [], why: "the replica closed cleanly, so open would not rescan its last segment" };
  const last = scanLastSegment(dataDir);
  if (last === null) return { path: "", list: [], why: `no segment in ${join(dataDir, logDirName)}` };
  const bytes = readFileSync(last.path);
  const entries: (Candidate & { writeEnd: boolean })[] = [];
  for (let i = 0; i < last.scan.slots.count; i++) {
    const offset = last.scan.slots.get(i).offset;
    const h = decodeHeader(bytes, offset);
    if (typeof h === "string") break; // scanSegment validated these; a change since means a live writer.
    entries.push({ index: h.index, offset, bodyLength: h.bodyLength, writeEnd: (h.flags & batchEndFlag) !== 0 });
  }
  // The last write is every entry after the last-but-one write end (or all of them).
  const ends = entries.flatMap((e, i) => (e.writeEnd ? [i] : []));
  const lastWriteStart = ends.length >= 2 ? (ends[ends.length - 2] as number) + 1 : 0;
  // The state file's commit index is persisted lazily; the replica's own report is fresher.
  const commit = Math.max(state.hardState.commit, knownCommit);
  const list = entries.slice(0, lastWriteStart).filter((e) => e.index <= commit && e.bodyLength > 0);
  const why = `no entry with a body at index <= the known commit ${commit} before the last write of ${last.path} (${entries.length} entries from ${last.firstIndex})`;
  return { path: last.path, list, why };
}

function readByte(path: string, offset: number): number {
  const fd = openSync(path, "r");
  try {
    const b = Buffer.alloc(1);
    if (readSync(fd, b, 0, 1, offset) !== 1) throw new Error(`cannot read byte ${offset} of ${path}`);
    return b[0] as number;
  } finally {
    closeSync(fd);
  }
}

function writeByte(path: string, offset: number, value: number): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, Buffer.from([value]), 0, 1, offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Flips one byte (XOR 0xff) in the body of a committed entry of `dataDir`, whose replica must be
 * stopped. `choose(n)` returns an integer in [0, n): it picks the entry, then the byte. Throws
 * CorruptionUnavailableError (having changed nothing) when no entry qualifies.
 */
export function corruptCommittedEntry(id: NodeId, dataDir: string, choose: (n: number) => number, knownCommit = 0): Corruption {
  const found = candidates(dataDir, knownCommit);
  const pool = [...found.list];
  for (let attempt = 0; attempt < attemptsMax && pool.length > 0; attempt++) {
    const [entry] = pool.splice(pick(choose, pool.length), 1) as [Candidate];
    const offset = entry.offset + entryHeaderBytes + pick(choose, entry.bodyLength);
    const original = readByte(found.path, offset);
    const flipped = original ^ 0xff;
    writeByte(found.path, offset, flipped);
    const after = scanLastSegment(dataDir)?.scan.problem ?? null;
    if (after !== null && after.check === CorruptionCheck.entryBodyCrc && !after.torn && after.position === entry.offset) {
      return { id, file: found.path, offset, original, flipped, entryIndex: entry.index };
    }
    // The scan would not refuse this one (e.g. it looks like a torn tail): undo and try another.
    writeByte(found.path, offset, original);
  }
  throw new CorruptionUnavailableError(`cannot corrupt ${id}: ${found.list.length === 0 ? found.why : `no candidate of ${found.list.length} made the scan report a non-torn entry_body_crc`}`);
}

function pick(choose: (n: number) => number, n: number): number {
  const i = choose(n);
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new RangeError(`choose(${n}) returned ${i}, not an integer in [0, ${n})`);
  return i;
}

/** Puts back the byte `corruptCommittedEntry` flipped; refuses if the byte is not the flipped one. */
export function repairCorruption(c: Corruption): void {
  const now = readByte(c.file, c.offset);
  if (now !== c.flipped) throw new Error(`cannot repair ${c.file} @${c.offset}: found ${now}, expected the flipped ${c.flipped}`);
  writeByte(c.file, c.offset, c.original);
}
