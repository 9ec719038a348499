/**
 * The Disk interface: the only way storage touches files, so that production (DiskOs) and the
 * simulator (DiskSim) run the same CommitLog code (DESIGN.md §3, §4). Everything is synchronous:
 * the CommitLog's read side is synchronous by contract, and on a local SSD the synchronous
 * fs calls are the cheapest path in Node (no libuv thread-pool hop; see anchors/fsync.mjs).
 *
 * Paths are POSIX strings joined with "/". Directory operations (create, remove, rename) are
 * durable only after `syncDir` of the parent: callers must pair them, as on a real file system.
 */

/** An open file. Positions and lengths are byte counts. */
export interface DiskFile {
  readonly path: string;
  /** Current length (including unsynced writes). */
  size(): number;
  /**
   * Reads up to `length` bytes at `position`. Returns fewer only at end of file. The returned
   * array is the caller's.
   */
  read(position: number, length: number): Uint8Array;
  /** Writes all of `data` at `position` (extending the file if needed). Not durable until sync. */
  write(data: Uint8Array, position: number): void;
  /** Sets the length. Not durable until sync. */
  truncate(length: number): void;
  /** fdatasync: makes every write and truncate of this file durable. Throws SyncFailedError. */
  sync(): void;
  /**
   * The same fdatasync, run off the calling thread (DiskOs: the libuv thread pool), so the event
   * loop keeps serving (sending to followers, taking client requests) while the disk flushes.
   * `done` runs exactly once, later, with null or a SyncFailedError. Optional: a binding without
   * it is synced with `sync()`. Writes issued while it runs are not covered by it.
   */
  syncAsync?(done: (err: Error | null) => void): void;
  close(): void;
}

export interface Disk {
  /** Opens `path`; creates it empty when `create` is true and it does not exist. */
  open(path: string, options: { readonly create: boolean }): DiskFile;
  exists(path: string): boolean;
  /** Names (not paths) of the entries of directory `path`, sorted. */
  list(path: string): string[];
  /** Creates `path` and its parents if missing. Durable only after syncDir of each parent. */
  mkdirs(path: string): void;
  /** Removes file `path` (no error if missing). Durable after syncDir of the parent. */
  remove(path: string): void;
  /**
   * The same removal, off the calling thread (DiskOs: the libuv pool): freeing a 64 MiB file's
   * extents takes ~17 ms on this machine's ext4, a stall the event loop should not take. `done`
   * runs exactly once, later, with null or the error. Optional: a binding without it is removed
   * with `remove()`. Only for files nothing will read or recreate under the same name.
   */
  removeAsync?(path: string, done: (err: Error | null) => void): void;
  /** Atomically renames a file. Durable after syncDir of the parent. */
  rename(from: string, to: string): void;
  /** fsync of directory `path`: makes its creations, removals and renames durable. */
  syncDir(path: string): void;
}

/** Joins path segments with "/" (storage paths are POSIX on every binding). */
export function joinPath(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

/** The parent directory of `path`. */
export function parentDir(path: string): string {
  const i = path.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return path.slice(0, i);
}

/** Reads a whole file (for small files: state, snapshots' headers). */
export function readAll(disk: Disk, path: string): Uint8Array {
  const file = disk.open(path, { create: false });
  try {
    return file.read(0, file.size());
  } finally {
    file.close();
  }
}
