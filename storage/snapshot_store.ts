import { assert } from "../raft/base/assert.js";
import { fromUtf8, utf8 } from "../raft/base/bytes.js";
import type { Logger } from "../raft/base/logger.js";
import type { ReplicaId, Snapshot, SnapshotMeta } from "../raft/core/types.js";
import { joinPath, type Disk, type DiskFile } from "./disk.js";
import { crc32, getU64, putU64, viewOf } from "./entry_codec.js";
import { CorruptionCheck, CorruptionError } from "./errors.js";

/**
 * Snapshots of the state machine, one file each: `snapshots/<index>-<term>.snap`.
 *
 * File: header (40 bytes: magic "DLSN" u32, version u16, 0 u16, index u64, term u64, members
 * length u32, 0 u32, header CRC u32 over the members JSON too, 0 u32) + members JSON + data +
 * trailer (data length u64, data CRC u32, trailer CRC u32). The data CRC lives in a trailer so
 * that a snapshot streamed in chunks can be written in one pass.
 *
 * Writes go to `<name>.tmp`, are fsynced, renamed, and the directory is fsynced: a snapshot is
 * either complete and durable under its final name, or absent. Leftover `.tmp` files are
 * removed at open. The newest `keep` snapshots are kept.
 */
const headerBytes = 40;
const trailerBytes = 16;
const snapMagic = 0x4e534c44; // "DLSN"
const snapVersion = 1;
export const snapshotDirName = "snapshots";
const namePattern = /^(\d{20})-(\d{20})\.snap$/;

export function snapshotFileName(index: number, term: number): string {
  return `${String(index).padStart(20, "0")}-${String(term).padStart(20, "0")}.snap`;
}

function encodeHeader(meta: SnapshotMeta): Uint8Array {
  const members = utf8(JSON.stringify(meta.members));
  const out = new Uint8Array(headerBytes + members.byteLength);
  const view = viewOf(out);
  view.setUint32(0, snapMagic, true);
  view.setUint16(4, snapVersion, true);
  putU64(view, 8, meta.index);
  putU64(view, 16, meta.term);
  view.setUint32(24, members.byteLength, true);
  out.set(members, headerBytes);
  view.setUint32(32, crc32(members, crc32(out.subarray(0, 32))), true);
  return out;
}

/** Streams one snapshot into the store. `finish` makes it durable; `abort` discards it. */
export class SnapshotWriter {
  private position = 0;
  private dataCrc = 0;
  private done = false;

  constructor(
    private readonly store: SnapshotStore,
    readonly meta: SnapshotMeta,
    private readonly file: DiskFile,
    private readonly headerLength: number,
  ) {}

  /** Bytes of data written so far (the next expected chunk position). */
  get written(): number {
    return this.position;
  }

  write(chunk: Uint8Array): void {
    assert(!this.done, "write after finish/abort");
    this.dataCrc = crc32(chunk, this.dataCrc);
    this.file.write(chunk, this.headerLength + this.position);
    this.position += chunk.byteLength;
  }

  finish(): void {
    assert(!this.done, "finish twice");
    this.done = true;
    const trailer = new Uint8Array(trailerBytes);
    const view = viewOf(trailer);
    putU64(view, 0, this.position);
    view.setUint32(8, this.dataCrc, true);
    view.setUint32(12, crc32(trailer.subarray(0, 12)), true);
    this.file.write(trailer, this.headerLength + this.position);
    this.file.sync();
    this.file.close();
    this.store.commitWrite(this.meta);
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.file.close();
    this.store.abortWrite(this.meta);
  }
}

interface Located {
  readonly meta: SnapshotMeta;
  readonly path: string;
  readonly dataStart: number;
  readonly dataLength: number;
  readonly dataCrc: number;
}

export class SnapshotStore {
  readonly dir: string;
  private cached: Snapshot | null = null;

  private constructor(
    private readonly disk: Disk,
    dir: string,
    private readonly keep: number,
    private readonly chunkBytes: number,
    private readonly logger: Logger,
  ) {
    this.dir = dir;
  }

  /** Opens (creating if needed) the store under `dataDir`; removes interrupted writes. */
  static open(disk: Disk, dataDir: string, options: { keep: number; chunkBytes: number; logger: Logger; readOnly?: boolean }): SnapshotStore {
    const dir = joinPath(dataDir, snapshotDirName);
    const store = new SnapshotStore(disk, dir, options.keep, options.chunkBytes, options.logger);
    if (!disk.exists(dir)) {
      if (options.readOnly === true) return store;
      disk.mkdirs(dir);
      disk.syncDir(dataDir);
    }
    for (const name of disk.list(dir)) {
      if (name.endsWith(".tmp") && options.readOnly !== true) {
        options.logger.info({ file: name }, "snapshot_tmp_removed");
        disk.remove(joinPath(dir, name));
      }
    }
    return store;
  }

  /** Metas of the snapshot files present, oldest first (names only; content checked on read). */
  list(): SnapshotMeta[] {
    if (!this.disk.exists(this.dir)) return [];
    const out: SnapshotMeta[] = [];
    for (const name of this.disk.list(this.dir)) {
      const m = namePattern.exec(name);
      if (m === null) continue;
      out.push(this.locate(joinPath(this.dir, name)).meta);
    }
    return out.sort((a, b) => a.index - b.index);
  }

  latestMeta(): SnapshotMeta | null {
    const all = this.list();
    return all.length === 0 ? null : (all[all.length - 1] as SnapshotMeta);
  }

  beginWrite(meta: SnapshotMeta): SnapshotWriter {
    const path = joinPath(this.dir, `${snapshotFileName(meta.index, meta.term)}.tmp`);
    this.disk.remove(path);
    const file = this.disk.open(path, { create: true });
    const header = encodeHeader(meta);
    file.write(header, 0);
    return new SnapshotWriter(this, meta, file, header.byteLength);
  }

  /** Writes a whole snapshot durably, in chunks of `chunkBytes`. */
  write(snapshot: Snapshot): void {
    const writer = this.beginWrite(snapshot.meta);
    const data = snapshot.data;
    // Bounded: data.byteLength / chunkBytes iterations.
    for (let p = 0; p < data.byteLength; p += this.chunkBytes) writer.write(data.subarray(p, Math.min(data.byteLength, p + this.chunkBytes)));
    writer.finish();
    this.cached = snapshot;
  }

  /** Called by SnapshotWriter.finish: rename into place, fsync the directory, prune. */
  commitWrite(meta: SnapshotMeta): void {
    const name = snapshotFileName(meta.index, meta.term);
    this.disk.rename(joinPath(this.dir, `${name}.tmp`), joinPath(this.dir, name));
    this.disk.syncDir(this.dir);
    this.cached = null;
    this.prune();
  }

  abortWrite(meta: SnapshotMeta): void {
    this.disk.remove(joinPath(this.dir, `${snapshotFileName(meta.index, meta.term)}.tmp`));
  }

  /** Removes all but the newest `keep` snapshots. */
  prune(): void {
    const all = this.list();
    for (const meta of all.slice(0, Math.max(0, all.length - this.keep))) {
      this.disk.remove(joinPath(this.dir, snapshotFileName(meta.index, meta.term)));
      this.logger.info({ index: meta.index, term: meta.term }, "snapshot_pruned");
    }
  }

  /** Reads `length` data bytes at data `position` of snapshot `meta` (for streaming to a peer). */
  readChunk(meta: SnapshotMeta, position: number, length: number): Uint8Array {
    const at = this.locate(joinPath(this.dir, snapshotFileName(meta.index, meta.term)));
    assert(position >= 0 && position <= at.dataLength, `snapshot chunk position ${position} outside [0, ${at.dataLength}]`);
    const file = this.disk.open(at.path, { create: false });
    try {
      return file.read(at.dataStart + position, Math.min(length, at.dataLength - position));
    } finally {
      file.close();
    }
  }

  /** Data length of snapshot `meta`. */
  dataLength(meta: SnapshotMeta): number {
    return this.locate(joinPath(this.dir, snapshotFileName(meta.index, meta.term))).dataLength;
  }

  /** Loads and verifies a whole snapshot. */
  load(meta: SnapshotMeta): Snapshot {
    if (this.cached !== null && this.cached.meta.index === meta.index && this.cached.meta.term === meta.term) return this.cached;
    const at = this.locate(joinPath(this.dir, snapshotFileName(meta.index, meta.term)));
    const file = this.disk.open(at.path, { create: false });
    try {
      const data = file.read(at.dataStart, at.dataLength);
      if (data.byteLength !== at.dataLength || crc32(data) !== at.dataCrc) {
        throw new CorruptionError(at.path, at.dataStart, CorruptionCheck.snapshot, "snapshot data CRC mismatch");
      }
      this.cached = { meta: at.meta, data };
      return this.cached;
    } finally {
      file.close();
    }
  }

  /** Verifies a snapshot's data CRC in chunks without holding it all in memory. */
  verify(meta: SnapshotMeta): void {
    const at = this.locate(joinPath(this.dir, snapshotFileName(meta.index, meta.term)));
    const file = this.disk.open(at.path, { create: false });
    try {
      let crc = 0;
      for (let p = 0; p < at.dataLength; p += this.chunkBytes) {
        crc = crc32(file.read(at.dataStart + p, Math.min(this.chunkBytes, at.dataLength - p)), crc);
      }
      if (crc !== at.dataCrc) throw new CorruptionError(at.path, at.dataStart, CorruptionCheck.snapshot, "snapshot data CRC mismatch");
    } finally {
      file.close();
    }
  }

  /** Reads and verifies header and trailer of a snapshot file. */
  private locate(path: string): Located {
    const file = this.disk.open(path, { create: false });
    try {
      const size = file.size();
      const fail = (position: number, detail: string): CorruptionError => new CorruptionError(path, position, CorruptionCheck.snapshot, detail);
      const head = file.read(0, headerBytes);
      if (head.byteLength < headerBytes) throw fail(0, "file shorter than the snapshot header");
      const view = viewOf(head);
      if (view.getUint32(0, true) !== snapMagic || view.getUint16(4, true) !== snapVersion) throw fail(0, "bad magic or version");
      const membersLength = view.getUint32(24, true);
      if (headerBytes + membersLength + trailerBytes > size) throw fail(24, "members length runs past the file end");
      const membersBytes = file.read(headerBytes, membersLength);
      if (crc32(membersBytes, crc32(head.subarray(0, 32))) !== view.getUint32(32, true)) throw fail(32, "header CRC mismatch");
      const trailer = file.read(size - trailerBytes, trailerBytes);
      const tv = viewOf(trailer);
      if (crc32(trailer.subarray(0, 12)) !== tv.getUint32(12, true)) throw fail(size - trailerBytes, "trailer CRC mismatch (incomplete snapshot?)");
      const dataStart = headerBytes + membersLength;
      const dataLength = getU64(tv, 0);
      if (dataStart + dataLength + trailerBytes !== size) throw fail(size - trailerBytes, `data length ${dataLength} disagrees with file size ${size}`);
      const members = JSON.parse(fromUtf8(membersBytes)) as ReplicaId[];
      const meta: SnapshotMeta = { index: getU64(view, 8), term: getU64(view, 16), members };
      return { meta, path, dataStart, dataLength, dataCrc: tv.getUint32(8, true) };
    } finally {
      file.close();
    }
  }
}
