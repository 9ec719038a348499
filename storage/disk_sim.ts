import { assert } from "../raft/base/assert.js";
import type { Prng } from "../raft/base/prng.js";
import { parentDir, type Disk, type DiskFile } from "./disk.js";
import { DiskError, SyncFailedError } from "./errors.js";

/**
 * An in-memory disk with a volatile layer (what reads see: the page cache) and a durable layer
 * (what survives `crash()`). It models the failures a CommitLog must survive:
 *   - writes, truncates, creations, removals and renames are lost on crash unless synced
 *     (file data by `DiskFile.sync`, directory entries by `syncDir` of the parent);
 *   - the last unsynced writes of a file may survive partly: a crash driven by a Prng keeps a
 *     random prefix of the pending writes, tears the last kept one at a random byte, and may zero
 *     one 512-byte sector inside it (sectors persist out of order on real devices);
 *   - latent bit flips in durable data, at most `bitFlipsMax` per disk (the fault budget);
 *   - a failing fsync (`failNextSync`), and a crash at the N-th operation (`crashAtOp`), which
 *     throws SimCrashError so tests can stop a store at every write boundary.
 * Everything is synchronous and allocation-light: an append + sync costs two memcpy's.
 */
export interface DiskSimOptions {
  /** Latent bit flips `flipRandomBit` may inject over the disk's life. Default 0. */
  readonly bitFlipsMax?: number;
}

/** Thrown by an operation at which `crashAtOp` armed a crash. The operation did not happen. */
export class SimCrashError extends Error {
  override readonly name = "SimCrashError";
  constructor(readonly op: number) {
    super(`simulated crash at disk operation ${op}`);
  }
}

export const sectorBytes = 512;

class Bytes {
  buf = new Uint8Array(0);
  length = 0;

  ensure(capacity: number): void {
    if (capacity <= this.buf.byteLength) return;
    const next = new Uint8Array(Math.max(capacity, this.buf.byteLength * 2, 4096));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  write(data: Uint8Array, position: number): void {
    const end = position + data.byteLength;
    this.ensure(end);
    if (position > this.length) this.buf.fill(0, this.length, position);
    this.buf.set(data, position);
    if (end > this.length) this.length = end;
  }

  truncate(length: number): void {
    if (length > this.length) {
      this.ensure(length);
      this.buf.fill(0, this.length, length);
    }
    this.length = length;
  }

  copy(): Bytes {
    const out = new Bytes();
    out.ensure(this.length);
    out.buf.set(this.buf.subarray(0, this.length));
    out.length = this.length;
    return out;
  }
}

type PendingOp = { readonly kind: "write"; readonly position: number; readonly data: Uint8Array } | { readonly kind: "truncate"; readonly length: number };

class Inode {
  volatile = new Bytes();
  durable = new Bytes();
  pending: PendingOp[] = [];
}

export interface DiskSimStats {
  writes: number;
  writtenBytes: number;
  syncs: number;
  dirSyncs: number;
}

export class DiskSim implements Disk {
  private files = new Map<string, Inode>();
  private durableFiles = new Map<string, Inode>();
  private dirs = new Set<string>(["/"]);
  private durableDirs = new Set<string>(["/"]);
  private opCount = 0;
  private crashAt = -1;
  private failSyncs = 0;
  private bitFlipsLeft: number;
  readonly stats: DiskSimStats = { writes: 0, writtenBytes: 0, syncs: 0, dirSyncs: 0 };

  constructor(options: DiskSimOptions = {}) {
    const max = options.bitFlipsMax ?? 0;
    assert(Number.isSafeInteger(max) && max >= 0, `bitFlipsMax must be a non-negative integer, got ${max}`);
    this.bitFlipsLeft = max;
  }

  /** Operations (writes, truncates, syncs, directory changes) performed so far. */
  get operations(): number {
    return this.opCount;
  }

  /** Arms a crash: operation number `op` (0-based, counting from disk creation) throws instead. */
  crashAtOp(op: number): void {
    this.crashAt = op;
  }

  /** The next `count` file syncs throw SyncFailedError (and lose their pending writes on crash). */
  failNextSync(count = 1): void {
    this.failSyncs = count;
  }

  /** Counts one mutating operation and fires an armed crash. */
  tick(): void {
    const op = this.opCount++;
    if (op === this.crashAt) {
      this.crashAt = -1;
      throw new SimCrashError(op);
    }
  }

  open(path: string, options: { readonly create: boolean }): DiskFile {
    let inode = this.files.get(path);
    if (inode === undefined) {
      if (!options.create) throw new DiskError(path, "open", { cause: new Error("ENOENT") });
      if (!this.dirs.has(parentDir(path))) throw new DiskError(path, "open", { cause: new Error("ENOENT: no parent") });
      this.tick();
      inode = new Inode();
      this.files.set(path, inode);
    }
    return new SimFile(this, path, inode);
  }

  exists(path: string): boolean {
    return this.files.has(path) || this.dirs.has(path);
  }

  list(path: string): string[] {
    if (!this.dirs.has(path)) throw new DiskError(path, "list", { cause: new Error("ENOENT") });
    const out: string[] = [];
    const prefix = path.endsWith("/") ? path : `${path}/`;
    for (const name of [...this.files.keys(), ...this.dirs]) {
      if (!name.startsWith(prefix)) continue;
      const rest = name.slice(prefix.length);
      if (rest.length > 0 && !rest.includes("/")) out.push(rest);
    }
    return out.sort();
  }

  mkdirs(path: string): void {
    const parts = path.split("/").filter((p) => p.length > 0);
    let current = "";
    for (const part of parts) {
      current = `${current}/${part}`;
      if (!this.dirs.has(current)) {
        this.tick();
        this.dirs.add(current);
      }
    }
  }

  remove(path: string): void {
    if (!this.files.has(path)) return;
    this.tick();
    this.files.delete(path);
  }

  rename(from: string, to: string): void {
    const inode = this.files.get(from);
    if (inode === undefined) throw new DiskError(from, `rename to ${to}`, { cause: new Error("ENOENT") });
    this.tick();
    this.files.delete(from);
    this.files.set(to, inode);
  }

  syncDir(path: string): void {
    this.tick();
    this.stats.dirSyncs++;
    const prefix = path.endsWith("/") ? path : `${path}/`;
    const isChild = (name: string): boolean => name.startsWith(prefix) && !name.slice(prefix.length).includes("/");
    for (const name of [...this.durableFiles.keys()]) if (isChild(name) && !this.files.has(name)) this.durableFiles.delete(name);
    for (const [name, inode] of this.files) if (isChild(name)) this.durableFiles.set(name, inode);
    for (const dir of this.dirs) if (isChild(dir)) this.durableDirs.add(dir);
    for (const dir of [...this.durableDirs]) if (isChild(dir) && !this.dirs.has(dir)) this.durableDirs.delete(dir);
  }

  /** Syncs a file's pending operations into its durable layer (called by SimFile.sync). */
  syncInode(path: string, inode: Inode): void {
    this.tick();
    this.stats.syncs++;
    if (this.failSyncs > 0) {
      this.failSyncs--;
      throw new SyncFailedError(path, { cause: new Error("EIO (simulated)") });
    }
    for (const op of inode.pending) {
      if (op.kind === "write") inode.durable.write(op.data, op.position);
      else inode.durable.truncate(op.length);
    }
    inode.pending = [];
  }

  /**
   * Power loss. Without a Prng every unsynced change is dropped. With one, each file may keep a
   * random prefix of its pending writes, the last of them torn (see the class comment).
   */
  crash(prng?: Prng): void {
    this.crashAt = -1;
    this.failSyncs = 0;
    this.files = new Map(this.durableFiles);
    this.dirs = new Set(this.durableDirs);
    const seen = new Set<Inode>();
    for (const inode of this.files.values()) {
      if (seen.has(inode)) continue;
      seen.add(inode);
      if (prng !== undefined && inode.pending.length > 0) keepTornPrefix(inode, prng);
      inode.pending = [];
      inode.volatile = inode.durable.copy();
    }
  }

  /**
   * Flips one random bit of one random durable file whose path contains `pathIncludes`, if the
   * fault budget allows. Returns what it did, or null when the budget is spent or no file fits.
   */
  flipRandomBit(prng: Prng, pathIncludes = ""): { path: string; position: number; bit: number } | null {
    if (this.bitFlipsLeft <= 0) return null;
    const candidates = [...this.durableFiles.entries()].filter(([p, i]) => p.includes(pathIncludes) && i.durable.length > 0);
    if (candidates.length === 0) return null;
    const [path, inode] = prng.pick(candidates);
    const position = prng.int(0, inode.durable.length);
    const bit = prng.int(0, 8);
    this.bitFlipsLeft--;
    this.flipBit(path, position, bit);
    return { path, position, bit };
  }

  /** Flips bit `bit` of byte `position` of `path` in both layers (a test's targeted fault). */
  flipBit(path: string, position: number, bit: number): void {
    const inode = this.files.get(path);
    assert(inode !== undefined, `flipBit: no file ${path}`);
    for (const layer of [inode.durable, inode.volatile]) {
      if (position < layer.length) layer.buf[position] = (layer.buf[position] as number) ^ (1 << bit);
    }
  }

  /** Durable length of `path` (tests use it to aim faults), or -1 when it is not durable. */
  durableSize(path: string): number {
    return this.durableFiles.get(path)?.durable.length ?? -1;
  }
}

function keepTornPrefix(inode: Inode, prng: Prng): void {
  const kept = prng.int(0, inode.pending.length + 1);
  for (let i = 0; i < kept; i++) {
    const op = inode.pending[i] as PendingOp;
    const last = i === kept - 1;
    if (op.kind === "truncate") {
      inode.durable.truncate(op.length);
    } else if (!last || prng.chance(0.25)) {
      inode.durable.write(op.data, op.position);
    } else {
      tearWrite(inode.durable, op, prng);
    }
  }
}

/** Applies a torn version of `op`: a random prefix, maybe a zeroed sector, maybe a grown size. */
function tearWrite(durable: Bytes, op: { readonly position: number; readonly data: Uint8Array }, prng: Prng): void {
  const cut = prng.int(0, op.data.byteLength + 1);
  const torn = op.data.slice(0, cut);
  const firstSector = Math.ceil(op.position / sectorBytes) * sectorBytes;
  if (cut > 0 && prng.chance(0.3) && firstSector + sectorBytes <= op.position + cut) {
    // Zero one whole, file-aligned sector inside the kept prefix: it "never reached the platter".
    const sectors = Math.floor((op.position + cut - firstSector) / sectorBytes);
    const sector = firstSector + prng.int(0, sectors) * sectorBytes;
    torn.fill(0, sector - op.position, sector - op.position + sectorBytes);
  }
  durable.write(torn, op.position);
  // The size update may reach the disk before the data (ext4 without data=ordered): zeros.
  if (prng.chance(0.3)) {
    const end = op.position + op.data.byteLength;
    if (end > durable.length) durable.truncate(end);
  }
}

class SimFile implements DiskFile {
  private closed = false;

  constructor(
    private readonly disk: DiskSim,
    readonly path: string,
    private readonly inode: Inode,
  ) {}

  size(): number {
    return this.inode.volatile.length;
  }

  read(position: number, length: number): Uint8Array {
    assert(!this.closed, `read after close: ${this.path}`);
    const v = this.inode.volatile;
    const end = Math.min(v.length, position + length);
    if (end <= position) return new Uint8Array(0);
    return v.buf.slice(position, end);
  }

  write(data: Uint8Array, position: number): void {
    assert(!this.closed, `write after close: ${this.path}`);
    this.disk.tick();
    this.disk.stats.writes++;
    this.disk.stats.writtenBytes += data.byteLength;
    this.inode.volatile.write(data, position);
    this.inode.pending.push({ kind: "write", position, data: data.slice() });
  }

  truncate(length: number): void {
    assert(!this.closed, `truncate after close: ${this.path}`);
    this.disk.tick();
    this.inode.volatile.truncate(length);
    this.inode.pending.push({ kind: "truncate", length });
  }

  sync(): void {
    assert(!this.closed, `sync after close: ${this.path}`);
    this.disk.syncInode(this.path, this.inode);
  }

  close(): void {
    this.closed = true;
  }
}
