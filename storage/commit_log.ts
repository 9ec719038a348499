import { assert } from "../raft/base/assert.js";
import type { DurableLogStore, Entry, HardState, ReplicaId, Snapshot } from "../raft/core/types.js";
import { validateOptions, type CommitLogConfig, type CommitLogOptions } from "./config.js";
import { joinPath } from "./disk.js";
import { encodeEntries, encodedBytes } from "./entry_codec.js";
import { CorruptionCheck, CorruptionError, StorageClosedError } from "./errors.js";
import { loadSegments, logDirName, listLogDir } from "./recovery.js";
import { Segment } from "./segment.js";
import { SnapshotStore } from "./snapshot_store.js";
import { StateFile, type LogOrigin, type PersistedState } from "./state_file.js";
import { TailCache } from "./tail_cache.js";
import type { TermTable } from "./term_table.js";

/** What a sync still has to make durable. */
interface Pending {
  /** Entries appended since the last sync, contiguous, ending at lastIndex. */
  entries: Entry[];
  /** Lowest "drop entries after this index" requested since the last sync, or null. */
  truncateAfter: number | null;
  install: Snapshot | null;
  save: { snapshot: Snapshot; compactTo: number } | null;
  /** Term or vote changed: must be durable before anything that depends on it. */
  hardStateVotes: boolean;
}

/** What `open` found; exposed for logs and tests. */
export interface OpenReport {
  readonly fresh: boolean;
  readonly clean: boolean;
  readonly tornTail: { readonly file: string; readonly position: number; readonly detail: string } | null;
  readonly segments: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
}

/**
 * Opens (or creates) the CommitLog in `options.dir`, running recovery (storage/RECOVERY.md).
 * Throws CorruptionError when the directory fails a check recovery must not repair, and
 * StorageConfigError for bad options. The returned store is single-threaded and synchronous.
 *
 *   const log = openCommitLog({ disk: new DiskOs(), dir: "/var/lib/dledger/n1", members: ["n1", "n2", "n3"] });
 *   log.append(entries); log.setHardState(hs); log.sync();   // one write + one fsync
 */
export function openCommitLog(options: CommitLogOptions): CommitLog {
  return CommitLog.open(validateOptions(options));
}

/**
 * The CommitLog: the Raft log and the message store (DESIGN.md §3). Implements DurableLogStore:
 * reads are synchronous and reflect every append (buffered ones from the tail cache); writes are
 * buffered until `sync()`, which performs one write and one fdatasync for the entries of the
 * batch (group commit). A term or vote change adds the state file's two fsyncs before it; a
 * segment roll, snapshot or truncation adds its own. Any failure inside `sync()` is fatal: the
 * store refuses every later call and must be reopened (which runs recovery).
 */
export class CommitLog implements DurableLogStore {
  private segments: Segment[];
  private terms: TermTable;
  private readonly cache: TailCache;
  private origin: LogOrigin;
  private members: readonly ReplicaId[];
  private hard: HardState;
  private last: number;
  private durableLast: number;
  private pending: Pending = { entries: [], truncateAfter: null, install: null, save: null, hardStateVotes: false };
  private failure: unknown = null;
  private closed = false;
  /** True while a syncAsync's fdatasync runs: no write may start until it completes. */
  private syncing = false;
  /** Compacted segments whose files are being removed off the event loop (syncSave). */
  private readonly removing = new Set<Segment>();
  private syncsSincePersistedCommit = 0;
  private scratch = new Uint8Array(64 * 1024);

  private constructor(
    private readonly config: CommitLogConfig,
    private readonly stateFile: StateFile,
    readonly snapshots: SnapshotStore,
    loaded: { segments: Segment[]; terms: TermTable },
    readonly report: OpenReport,
  ) {
    const state = stateFile.state;
    this.segments = loaded.segments;
    this.terms = loaded.terms;
    this.origin = state.origin;
    this.members = state.members;
    this.hard = state.hardState;
    this.cache = new TailCache(config.tailCacheBytes);
    const lastSeg = this.segments[this.segments.length - 1] as Segment;
    this.last = Math.max(lastSeg.lastIndex, this.origin.firstIndex - 1);
    this.durableLast = this.last;
    this.cache.reset(this.last + 1);
  }

  /** See openCommitLog. */
  static open(config: CommitLogConfig): CommitLog {
    const { disk, dir, logger } = config;
    const logDir = joinPath(dir, logDirName);
    let stateFile = StateFile.open(disk, dir);
    const fresh = stateFile === null;
    if (stateFile === null) {
      refuseOrphanFiles(config, logDir);
      disk.mkdirs(logDir);
      disk.syncDir(dir);
      stateFile = StateFile.create(disk, dir, {
        hardState: { term: 0, votedFor: null, commit: 0 },
        members: config.members,
        origin: { generation: 1, firstIndex: 1, prevTerm: 0, prevCrc: 0, basePosition: 0 },
        clean: false,
      });
    } else if (!stateFile.mirrored()) {
      logger.warn({ file: StateFile.path(dir) }, "state_slot_repaired"); // rule H2
      stateFile.write(stateFile.state);
    }
    const state = stateFile.state;
    if (!disk.exists(logDir)) disk.mkdirs(logDir);
    const loaded = loadSegments(disk, logDir, state.origin, state.clean, logger, false);
    if (loaded.tornTail !== null) logger.warn(loaded.tornTail, "torn_tail_truncated");
    if (loaded.segments.length === 0) {
      loaded.segments.push(createSegment(config, logDir, state.origin));
    }
    const lastSeg = loaded.segments[loaded.segments.length - 1] as Segment;
    const lastIndex = Math.max(lastSeg.lastIndex, state.origin.firstIndex - 1);
    if (state.hardState.commit > lastIndex) {
      // Rule H3: an fsynced entry is gone. Serving this log could lose committed writes.
      throw new CorruptionError(lastSeg.dataPath, lastSeg.size, CorruptionCheck.commitBeyondLog, `state says commit ${state.hardState.commit} but the log ends at ${lastIndex}`);
    }
    const snapshots = SnapshotStore.open(disk, dir, { keep: config.snapshotsKept, chunkBytes: config.snapshotChunkBytes, logger });
    checkSnapshotCoversOrigin(snapshots, state.origin, dir);
    if (state.clean) stateFile.write({ ...state, clean: false }); // from now on a crash is not clean
    const report: OpenReport = { fresh, clean: state.clean, tornTail: loaded.tornTail, segments: loaded.segments.length, firstIndex: state.origin.firstIndex, lastIndex };
    logger.info({ ...report, tornTail: loaded.tornTail !== null }, "commit_log_opened");
    return new CommitLog(config, stateFile, snapshots, loaded, report);
  }

  /* ------------------------------------------------------------------ LogStore (read side) */

  initialState(): { readonly hardState: HardState; readonly members: readonly ReplicaId[] } {
    this.usable();
    return { hardState: this.hard, members: this.members };
  }

  firstIndex(): number {
    return this.origin.firstIndex;
  }

  lastIndex(): number {
    return this.last;
  }

  term(index: number): number | undefined {
    if (index === this.origin.firstIndex - 1) return this.origin.prevTerm;
    if (index < this.origin.firstIndex || index > this.last) return undefined;
    return this.terms.term(index);
  }

  entries(lo: number, hi: number, maxBytes: number): readonly Entry[] {
    this.usable();
    assert(lo >= this.origin.firstIndex, `entries: lo ${lo} < firstIndex ${this.origin.firstIndex}`);
    assert(lo <= hi, `entries: lo ${lo} > hi ${hi}`);
    assert(hi <= this.last + 1, `entries: hi ${hi} > lastIndex + 1 (${this.last + 1})`);
    const out: Entry[] = [];
    let budget = maxBytes;
    let next = lo;
    // Bounded: each pass returns at least one entry or stops.
    while (next < hi && next < this.cache.firstIndex) {
      const seg = this.segmentOf(next);
      const got = seg.read(next, Math.min(hi, seg.lastIndex + 1, this.cache.firstIndex), budget, out.length === 0);
      if (got.length === 0) return out;
      for (const e of got) {
        out.push(e);
        budget -= e.data.byteLength;
      }
      next += got.length;
    }
    if (next < hi) this.cache.collect(next, hi, budget, out);
    return out;
  }

  snapshot(): Snapshot | null {
    this.usable();
    const meta = this.snapshots.latestMeta();
    return meta === null ? null : this.snapshots.load(meta);
  }

  /* ----------------------------------------------------------- DurableLogStore (write side) */

  append(entries: readonly Entry[]): void {
    this.writable();
    if (entries.length === 0) return;
    const first = entries[0] as Entry;
    assert(first.index >= this.origin.firstIndex, `append at ${first.index} below firstIndex ${this.origin.firstIndex}`);
    assert(first.index <= this.last + 1, `append at ${first.index} leaves a gap after ${this.last}`);
    if (first.index <= this.last) this.dropSuffix(first.index - 1);
    let prevTerm = this.term(first.index - 1) ?? 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as Entry;
      assert(e.index === first.index + i, `append: entries not contiguous at ${e.index}`);
      assert(isCount(e.term) && e.term >= 1 && e.term >= prevTerm, `append: entry ${e.index} term ${e.term} after term ${prevTerm}`);
      assert(e.data.byteLength <= this.config.entryBytesMax, `append: entry ${e.index} of ${e.data.byteLength} bytes exceeds entryBytesMax ${this.config.entryBytesMax}`);
      prevTerm = e.term;
      this.terms.push(e.index, e.term);
      this.cache.push(e);
      this.pending.entries.push(e);
    }
    this.last = first.index + entries.length - 1;
  }

  setHardState(hardState: HardState): void {
    this.writable();
    assert(hardState.term >= this.hard.term, `hard state term went back from ${this.hard.term} to ${hardState.term}`);
    assert(hardState.commit >= this.hard.commit, `commit went back from ${this.hard.commit} to ${hardState.commit}`);
    assert(hardState.commit <= this.last, `commit ${hardState.commit} beyond lastIndex ${this.last}`);
    if (hardState.term !== this.hard.term || hardState.votedFor !== this.hard.votedFor) this.pending.hardStateVotes = true;
    this.hard = hardState;
  }

  installSnapshot(snapshot: Snapshot): void {
    this.writable();
    const { index, term } = snapshot.meta;
    assert(index >= this.hard.commit, `installSnapshot at ${index} would drop committed entries up to ${this.hard.commit}`);
    assert(term >= 1 && isCount(index), `installSnapshot: bad meta ${JSON.stringify(snapshot.meta)}`);
    this.pending = { entries: [], truncateAfter: null, install: snapshot, save: null, hardStateVotes: true };
    this.origin = { generation: this.origin.generation + 1, firstIndex: index + 1, prevTerm: term, prevCrc: 0, basePosition: this.nextPosition() };
    this.members = snapshot.meta.members;
    this.terms.reset(index + 1);
    this.cache.reset(index + 1);
    this.last = index;
  }

  saveSnapshot(snapshot: Snapshot, compactTo: number): void {
    this.writable();
    assert(compactTo <= snapshot.meta.index, `saveSnapshot: compactTo ${compactTo} > snapshot index ${snapshot.meta.index}`);
    assert(snapshot.meta.index <= this.last, `saveSnapshot: snapshot index ${snapshot.meta.index} > lastIndex ${this.last}`);
    assert(this.term(snapshot.meta.index) === snapshot.meta.term, `saveSnapshot: snapshot term ${snapshot.meta.term} disagrees with the log`);
    this.pending.save = { snapshot, compactTo };
  }

  /** Makes every buffered write durable. See the class comment for the I/O it performs. */
  sync(): void {
    this.writable();
    try {
      this.syncSteps();
    } catch (err) {
      this.failure = err;
      this.config.logger.error({ err: String(err) }, "commit_log_sync_failed");
      throw err;
    }
  }

  /**
   * Like `sync()`, but a plain batch's final fdatasync (entries, possibly after a term/vote write
   * or a suffix drop) runs off the event loop (DiskFile.syncAsync), so a leader keeps sending to
   * its followers and taking requests while its own disk flushes (DESIGN.md §4). Other work
   * (snapshots, or a Disk without syncAsync) is done synchronously, and then `done` runs before
   * this returns. `done` runs exactly once: null when every write before the call is durable, or
   * the error, which is fatal exactly as in `sync()`. Reads are allowed meanwhile (they see every
   * write); another write or sync before `done` is a caller bug (it throws).
   */
  syncAsync(done: (err: unknown) => void): void {
    this.writable();
    const p = this.pending;
    const file = this.activeSegment().data();
    if (p.entries.length === 0 || p.install !== null || p.save !== null || file.syncAsync === undefined) {
      try {
        this.sync();
      } catch (err) {
        return done(err);
      }
      return done(null);
    }
    let seg: Segment;
    try {
      if (p.hardStateVotes) this.stateFile.write(this.persisted(false));
      if (p.truncateAfter !== null) this.truncateSegments(p.truncateAfter);
      seg = this.writeEntries(p.entries, false);
    } catch (err) {
      return done(this.syncFailed(err));
    }
    this.pending = { entries: [], truncateAfter: null, install: null, save: null, hardStateVotes: false };
    const last = this.last;
    this.syncing = true;
    const flushed = (err: Error | null): void => {
      this.syncing = false;
      // After close() the files were synced and closed on the calling thread: nothing to record.
      if (this.closed) return done(null);
      if (err !== null) return done(this.syncFailed(err));
      this.durableLast = last;
      this.cache.evict(this.durableLast);
      this.syncsSincePersistedCommit++;
      done(null);
    };
    const data = seg.data();
    assert(data.syncAsync !== undefined, "segment file lost syncAsync");
    data.syncAsync(flushed);
  }

  private syncFailed(err: unknown): unknown {
    this.failure = err;
    this.config.logger.error({ err: String(err) }, "commit_log_sync_failed");
    return err;
  }

  /** Flushes, records a clean shutdown, and closes every file. The store is unusable after. */
  close(): void {
    if (this.closed) return;
    // A syncAsync still in flight covers writes already issued: fdatasync them here, on this
    // thread, so the clean-shutdown record never precedes them on disk.
    if (this.syncing && this.failure === null) this.activeSegment().data().sync();
    this.syncing = false;
    if (this.failure === null) {
      this.sync();
      const active = this.activeSegment();
      active.trimPreallocated(); // rule R1 trusts this index like a sealed one (I4: exact end)
      active.flushIndex();
      this.stateFile.write(this.persisted(true));
    }
    for (const seg of this.segments) seg.close();
    // Compacted segments still being removed in the background go now, on this thread.
    for (const seg of this.removing) seg.removeNow();
    this.removing.clear();
    this.stateFile.close();
    this.closed = true;
  }

  /* --------------------------------------------------------------------------- internals */

  private usable(): void {
    if (this.closed) throw new StorageClosedError("closed");
    if (this.failure !== null) throw new StorageClosedError("a previous sync failed", { cause: this.failure });
  }

  private writable(): void {
    this.usable();
    assert(!this.syncing, "write to the CommitLog while a syncAsync is in flight");
  }

  private syncSteps(): void {
    const p = this.pending;
    if (p.install !== null) this.syncInstall(p.install);
    else if (p.hardStateVotes) this.stateFile.write(this.persisted(false));
    if (p.truncateAfter !== null) this.truncateSegments(p.truncateAfter);
    if (p.entries.length > 0) this.writeEntries(p.entries, true);
    if (p.save !== null) this.syncSave(p.save.snapshot, p.save.compactTo);
    this.pending = { entries: [], truncateAfter: null, install: null, save: null, hardStateVotes: false };
    this.durableLast = this.last;
    this.cache.evict(this.durableLast);
    this.syncsSincePersistedCommit++;
  }

  /** The state to persist. The commit hint is clamped to what is durable on this replica. */
  private persisted(clean: boolean): PersistedState {
    const commit = Math.min(this.hard.commit, Math.max(this.durableLast, this.origin.firstIndex - 1));
    this.syncsSincePersistedCommit = 0;
    return { hardState: { ...this.hard, commit: Math.max(commit, this.stateFile.state.hardState.commit) }, members: this.members, origin: this.origin, clean };
  }

  /**
   * Group commit: encode the batch into one buffer, one write, and (with `fsync`) one fdatasync.
   * Returns the segment written, whose data file the caller syncs when `fsync` is false.
   */
  private writeEntries(entries: readonly Entry[], fsync: boolean): Segment {
    const bytes = encodedBytes(entries);
    let seg = this.activeSegment();
    if (seg.count > 0 && seg.size + bytes > this.config.segmentBytes) seg = this.roll();
    assert(seg.size + bytes < 2 ** 32, `batch of ${bytes} bytes does not fit a segment's u32 offsets`);
    assert((entries[0] as Entry).index === seg.lastIndex + 1, `batch starts at ${(entries[0] as Entry).index}, segment ends at ${seg.lastIndex}`);
    // One scratch buffer reused by every batch: the write copies it out before returning, and a
    // fresh 64 KiB allocation per batch cost ~10% in GC (node --cpu-prof, bench/README.md).
    if (this.scratch.byteLength < bytes) this.scratch = new Uint8Array(Math.max(bytes, this.scratch.byteLength * 2));
    const out = this.scratch.subarray(0, bytes);
    const slots = seg.slots;
    assert(slots !== null, "active segment has no slots");
    const base = seg.size;
    let k = 0;
    seg.lastCrc = encodeEntries(entries, out, seg.basePosition + base, seg.lastCrc, (delta, headerCrc) => {
      slots.push(base + delta, headerCrc, (entries[k++] as Entry).term);
    });
    // Zeros ahead of the write position, never past the segment's target size (the next roll).
    const preallocateTo = this.config.preallocateBytes === 0 ? 0 : Math.min(this.config.segmentBytes, base + bytes + this.config.preallocateBytes);
    seg.appendBytes(out, preallocateTo);
    seg.count += entries.length;
    seg.lastTerm = (entries[entries.length - 1] as Entry).term;
    if (fsync) seg.data().sync();
    return seg;
  }

  /** Seals the active segment and starts the next one (rule: sealed = data and index fsynced). */
  private roll(): Segment {
    const old = this.activeSegment();
    old.seal();
    const seg = Segment.create(this.config.disk, this.logDir(), {
      firstIndex: old.lastIndex + 1,
      basePosition: old.basePosition + old.size,
      generation: this.origin.generation,
      prevTerm: old.lastTerm,
      prevCrc: old.lastCrc,
    });
    this.config.disk.syncDir(this.logDir());
    this.segments.push(seg);
    // Persist the commit hint now and then so a restart need not relearn it from the leader.
    if (this.syncsSincePersistedCommit > 0) this.stateFile.write(this.persisted(false));
    return seg;
  }

  private syncInstall(snapshot: Snapshot): void {
    this.snapshots.write(snapshot);
    this.stateFile.write(this.persisted(false));
    // The state now names the new generation: older segments are stale (rule G1) even if the
    // removals below are lost in a crash.
    for (const seg of this.segments) seg.remove();
    this.segments = [createSegment(this.config, this.logDir(), this.origin)];
  }

  private syncSave(snapshot: Snapshot, compactTo: number): void {
    this.snapshots.write(snapshot);
    if (compactTo < this.origin.firstIndex) return;
    const seg = this.segmentOf(compactTo);
    const slot = seg.slot(compactTo);
    this.origin = { ...this.origin, firstIndex: compactTo + 1, prevTerm: slot.term, prevCrc: slot.headerCrc };
    this.stateFile.write(this.persisted(false));
    this.terms.compactBefore(compactTo + 1);
    // Rule C1: whole segments below the new first index go; the state already says so, so the
    // removals are garbage collection: they run off the event loop (unlinking a full 64 MiB
    // segment took ~17 ms here) and need no directory fsync (recovery removes a leftover).
    let removed = 0;
    while (this.segments.length > 1 && (this.segments[1] as Segment).firstIndex <= compactTo + 1) {
      const seg = this.segments.shift() as Segment;
      this.removing.add(seg);
      seg.removeInBackground((err) => {
        this.removing.delete(seg);
        if (err !== null) this.config.logger.warn({ err: String(err), firstIndex: seg.firstIndex }, "compacted_segment_remove_failed");
      });
      removed++;
    }
    this.config.logger.info({ compactTo, removedSegments: removed }, "log_compacted");
  }

  /** Buffers a suffix drop: pending entries go at once, durable ones at the next sync. */
  private dropSuffix(after: number): void {
    assert(after >= this.hard.commit, `truncation after ${after} would drop committed entries (commit ${this.hard.commit})`);
    assert(after >= this.origin.firstIndex - 1, `truncation after ${after} below firstIndex ${this.origin.firstIndex}`);
    const keepPending = Math.max(0, after - (this.last - this.pending.entries.length));
    this.pending.entries.length = keepPending;
    if (after < this.durableLast) this.pending.truncateAfter = Math.min(this.pending.truncateAfter ?? after, after);
    this.terms.truncateAfter(after);
    this.cache.truncateAfter(after);
    this.last = after;
  }

  /** Durable suffix truncation: remove later segments (then fsync the dir), then cut the file. */
  private truncateSegments(after: number): void {
    let removed = false;
    while (this.segments.length > 1 && (this.activeSegment().firstIndex > after)) {
      (this.segments.pop() as Segment).remove();
      removed = true;
    }
    if (removed) this.config.disk.syncDir(this.logDir());
    const seg = this.activeSegment();
    seg.activate();
    if (after < seg.lastIndex) seg.truncateAfter(Math.max(after, seg.firstIndex - 1));
    this.durableLast = Math.min(this.durableLast, after);
  }

  private activeSegment(): Segment {
    return this.segments[this.segments.length - 1] as Segment;
  }

  /** The segment holding `index`: binary search over the (few) segments. */
  private segmentOf(index: number): Segment {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.segments[mid] as Segment).firstIndex <= index) lo = mid;
      else hi = mid - 1;
    }
    const seg = this.segments[lo] as Segment;
    assert(index >= seg.firstIndex && index <= seg.lastIndex, `no segment holds index ${index}`);
    return seg;
  }

  private nextPosition(): number {
    const seg = this.activeSegment();
    return seg.basePosition + seg.size;
  }

  private logDir(): string {
    return joinPath(this.config.dir, logDirName);
  }
}

function isCount(v: number): boolean {
  return Number.isSafeInteger(v) && v >= 0;
}

function createSegment(config: CommitLogConfig, logDir: string, origin: LogOrigin): Segment {
  const seg = Segment.create(config.disk, logDir, {
    firstIndex: origin.firstIndex,
    basePosition: origin.basePosition,
    generation: origin.generation,
    prevTerm: origin.prevTerm,
    prevCrc: origin.prevCrc,
  });
  config.disk.syncDir(logDir);
  return seg;
}

/** Rule H1: segments without a state file mean the state file was lost — never start fresh. */
function refuseOrphanFiles(config: CommitLogConfig, logDir: string): void {
  if (!config.disk.exists(logDir)) return;
  const listed = listLogDir(config.disk, logDir, config.logger);
  if (listed.firstIndexes.length > 0) {
    throw new CorruptionError(StateFile.path(config.dir), 0, CorruptionCheck.stateMissing, `state file missing but ${listed.firstIndexes.length} segment(s) exist`);
  }
}

/** Rule P3: a compacted log needs a snapshot at or above the compaction point. */
function checkSnapshotCoversOrigin(snapshots: SnapshotStore, origin: LogOrigin, dir: string): void {
  if (origin.firstIndex <= 1) return;
  const meta = snapshots.latestMeta();
  if (meta === null || meta.index < origin.firstIndex - 1) {
    throw new CorruptionError(joinPath(dir, "snapshots"), 0, CorruptionCheck.snapshot, `log starts at ${origin.firstIndex} but the newest snapshot is at ${meta?.index ?? "none"}`);
  }
}
