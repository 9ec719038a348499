import { joinPath, type Disk } from "./disk.js";
import { decodeSegmentHeader, getSlot, indexSlotBytes, segmentHeaderBytes, viewOf, type SegmentHeader } from "./entry_codec.js";
import { CorruptionCheck, CorruptionError } from "./errors.js";
import { listLogDir, logDirName } from "./recovery.js";
import { scanSegment, type ScanResult } from "./scan.js";
import { indexFileName, segmentFileName } from "./segment.js";
import { SnapshotStore } from "./snapshot_store.js";
import { StateFile, type PersistedState } from "./state_file.js";
import { silentLogger } from "../raft/base/logger.js";

/**
 * `dledger verify`: checks a data directory offline, read-only, with the rules of
 * storage/RECOVERY.md plus a full read of every entry, every index slot and every snapshot.
 * It keeps going after a problem so one run names every damaged file.
 */
export interface VerifyFinding {
  /** `corrupt` fails verification; `note` is what open would repair on its own (a torn tail). */
  readonly severity: "corrupt" | "note";
  readonly file: string;
  readonly position: number;
  readonly check: CorruptionCheck | "torn_tail" | "stale_file";
  readonly detail: string;
}

export interface VerifyReport {
  readonly dir: string;
  readonly ok: boolean;
  readonly findings: readonly VerifyFinding[];
  readonly segments: number;
  readonly entries: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly snapshots: number;
}

interface SegmentResult {
  readonly header: SegmentHeader;
  readonly scan: ScanResult;
}

export function verifyDataDir(disk: Disk, dir: string): VerifyReport {
  const findings: VerifyFinding[] = [];
  const corrupt = (file: string, position: number, check: VerifyFinding["check"], detail: string): void => void findings.push({ severity: "corrupt", file, position, check, detail });
  const note = (file: string, position: number, check: VerifyFinding["check"], detail: string): void => void findings.push({ severity: "note", file, position, check, detail });
  const state = readState(disk, dir, corrupt, note);
  const logDir = joinPath(dir, logDirName);
  const results = disk.exists(logDir) ? verifySegments(disk, logDir, state, corrupt, note) : [];
  if (state === null && results.length > 0) corrupt(StateFile.path(dir), 0, CorruptionCheck.stateMissing, `state file missing but ${results.length} segment(s) exist`);
  const last = results[results.length - 1];
  const lastIndex = last === undefined ? (state?.origin.firstIndex ?? 1) - 1 : last.header.firstIndex + last.scan.slots.count - 1;
  if (state !== null && state.hardState.commit > lastIndex) {
    corrupt(StateFile.path(dir), 0, CorruptionCheck.commitBeyondLog, `state says commit ${state.hardState.commit} but the log ends at ${lastIndex}`);
  }
  const snapshots = verifySnapshots(disk, dir, state, corrupt);
  let entries = 0;
  for (const r of results) entries += r.scan.slots.count;
  return {
    dir,
    ok: findings.every((f) => f.severity !== "corrupt"),
    findings,
    segments: results.length,
    entries,
    firstIndex: state?.origin.firstIndex ?? 1,
    lastIndex,
    snapshots,
  };
}

type Report = (file: string, position: number, check: VerifyFinding["check"], detail: string) => void;

function readState(disk: Disk, dir: string, corrupt: Report, note: Report): PersistedState | null {
  try {
    const sf = StateFile.open(disk, dir);
    if (sf === null) return null;
    if (!sf.mirrored()) note(StateFile.path(dir), 0, CorruptionCheck.stateFile, "one state slot is damaged or behind (open repairs it)");
    const state = sf.state;
    sf.close();
    return state;
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    corrupt(err.file, err.position, err.check, err.detail);
    return null;
  }
}

function verifySegments(disk: Disk, logDir: string, state: PersistedState | null, corrupt: Report, note: Report): SegmentResult[] {
  const listed = listLogDir(disk, logDir, silentLogger);
  const headers: SegmentHeader[] = [];
  for (const first of listed.firstIndexes) {
    const path = joinPath(logDir, segmentFileName(first));
    const file = disk.open(path, { create: false });
    const h = decodeSegmentHeader(file.read(0, segmentHeaderBytes));
    file.close();
    if (typeof h === "string") corrupt(path, 0, CorruptionCheck.segmentHeader, h);
    else if (h.firstIndex !== first) corrupt(path, 8, CorruptionCheck.segmentHeader, `header says first index ${h.firstIndex}, file name says ${first}`);
    else if (state !== null && h.generation < state.origin.generation) note(path, 24, "stale_file", "segment of an older generation (open removes it)");
    else if (state !== null && h.generation > state.origin.generation) corrupt(path, 24, CorruptionCheck.generation, `segment generation ${h.generation} is newer than the state's ${state.origin.generation}`);
    else headers.push(h);
  }
  const origin = state?.origin.firstIndex ?? 1;
  while (headers.length > 1 && (headers[1] as SegmentHeader).firstIndex <= origin) {
    note(joinPath(logDir, segmentFileName((headers.shift() as SegmentHeader).firstIndex)), 0, "stale_file", "compacted segment (open removes it)");
  }
  const first = headers[0];
  if (first !== undefined && first.firstIndex > origin) corrupt(joinPath(logDir, segmentFileName(first.firstIndex)), 0, CorruptionCheck.gap, `log must start at ${origin} but the first segment starts at ${first.firstIndex}`);
  const results: SegmentResult[] = [];
  for (let k = 0; k < headers.length; k++) {
    const h = headers[k] as SegmentHeader;
    const path = joinPath(logDir, segmentFileName(h.firstIndex));
    const prev = results[results.length - 1];
    if (prev !== undefined && prev.scan.problem === null) checkJoin(prev, h, path, corrupt);
    const file = disk.open(path, { create: false });
    const scan = scanSegment(file, h);
    file.close();
    const last = k === headers.length - 1;
    const p = scan.problem;
    if (p !== null && p.torn && last && state?.clean !== true) note(path, p.position, "torn_tail", `${p.detail} (open cuts it)`);
    else if (p !== null && p.torn) corrupt(path, p.position, CorruptionCheck.segmentLength, `segment damaged or truncated: ${p.detail}`);
    else if (p !== null) corrupt(path, p.position, p.check, p.detail);
    const trusted = !last || state?.clean === true;
    // Rule I4 (as open applies it): a sealed or cleanly closed segment ends with its last entry;
    // only the last segment after a crash may carry preallocated zeros (Z1, which open cuts).
    if (p === null && trusted && scan.size !== scan.fileSize) corrupt(path, scan.size, CorruptionCheck.segmentLength, `last entry ends at ${scan.size} but the file is ${scan.fileSize} bytes (extended)`);
    verifyIndex(disk, logDir, h, scan, trusted, listed.hasIndex.has(h.firstIndex), corrupt);
    results.push({ header: h, scan });
  }
  return results;
}

function checkJoin(prev: SegmentResult, h: SegmentHeader, path: string, corrupt: Report): void {
  const prevLast = prev.header.firstIndex + prev.scan.slots.count - 1;
  if (h.firstIndex !== prevLast + 1) corrupt(path, 8, CorruptionCheck.gap, `segment starts at ${h.firstIndex} but the previous one ends at ${prevLast}`);
  else if (h.basePosition !== prev.header.basePosition + prev.scan.size) corrupt(path, 16, CorruptionCheck.entryPosition, `segment base position ${h.basePosition}, previous segment ends at ${prev.header.basePosition + prev.scan.size}`);
  else if (h.prevCrc !== prev.scan.lastCrc || h.prevTerm !== prev.scan.lastTerm) corrupt(path, 32, CorruptionCheck.chain, "segment header does not chain to the previous segment's last entry");
}

/** Every slot of a trusted index must equal what the scan of the data found. */
function verifyIndex(disk: Disk, logDir: string, h: SegmentHeader, scan: ScanResult, trusted: boolean, present: boolean, corrupt: Report): void {
  const path = joinPath(logDir, indexFileName(h.firstIndex));
  if (!trusted) return; // The active segment's index is rebuilt by open after a crash.
  if (!present) {
    corrupt(path, 0, CorruptionCheck.indexMissing, `index file of segment ${h.firstIndex} is missing`);
    return;
  }
  const file = disk.open(path, { create: false });
  const bytes = file.read(0, file.size());
  file.close();
  if (bytes.byteLength % indexSlotBytes !== 0 || (scan.problem === null && bytes.byteLength !== scan.slots.count * indexSlotBytes)) {
    corrupt(path, bytes.byteLength, CorruptionCheck.indexSize, `index holds ${bytes.byteLength} bytes; the segment holds ${scan.slots.count} entries (${scan.slots.count * indexSlotBytes} bytes)`);
    return;
  }
  const view = viewOf(bytes);
  const n = Math.min(scan.slots.count, bytes.byteLength / indexSlotBytes);
  for (let i = 0; i < n; i++) {
    const a = getSlot(view, i * indexSlotBytes);
    const b = scan.slots.get(i);
    if (a.offset !== b.offset || a.headerCrc !== b.headerCrc || a.term !== b.term) {
      corrupt(path, i * indexSlotBytes, CorruptionCheck.indexSlot, `slot of entry ${h.firstIndex + i} says (offset ${a.offset}, crc ${a.headerCrc}, term ${a.term}), data says (offset ${b.offset}, crc ${b.headerCrc}, term ${b.term})`);
      return;
    }
  }
}

function verifySnapshots(disk: Disk, dir: string, state: PersistedState | null, corrupt: Report): number {
  const store = SnapshotStore.open(disk, dir, { keep: 1_000_000, chunkBytes: 1 << 20, logger: silentLogger, readOnly: true });
  let metas: ReturnType<SnapshotStore["list"]> = [];
  try {
    metas = store.list();
    for (const m of metas) store.verify(m);
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    corrupt(err.file, err.position, err.check, err.detail);
  }
  const origin = state?.origin.firstIndex ?? 1;
  const newest = metas[metas.length - 1];
  if (origin > 1 && (newest === undefined || newest.index < origin - 1)) {
    corrupt(joinPath(dir, "snapshots"), 0, CorruptionCheck.snapshot, `log starts at ${origin} but the newest snapshot is at ${newest?.index ?? "none"}`);
  }
  return metas.length;
}

/** One line per finding, for the CLI. */
export function formatFinding(f: VerifyFinding): string {
  return `${f.severity} ${f.check} ${f.file} @${f.position}: ${f.detail}`;
}
