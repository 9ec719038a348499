/**
 * Typed storage errors (STYLE.md rule 7). Every error a caller may need to tell apart has its own
 * class with a stable `name`. Corruption errors name the file, the byte position and the check
 * that failed, so an operator can act on the message alone.
 */

/** A configuration value broke a rule. The message names the field, the rule and the value. */
export class StorageConfigError extends Error {
  override readonly name = "StorageConfigError";
  constructor(
    readonly field: string,
    readonly rule: string,
    readonly value: unknown,
  ) {
    super(`${field} (${JSON.stringify(value)}) ${rule}`);
  }
}

/**
 * The names of the checks recovery and reads perform. A `CorruptionError` carries one of them,
 * and storage/RECOVERY.md lists which rule raises which check.
 */
export const CorruptionCheck = {
  segmentHeader: "segment_header",
  entryHeaderCrc: "entry_header_crc",
  entryMagic: "entry_magic",
  entryBodyCrc: "entry_body_crc",
  entryIndex: "entry_index",
  entryTerm: "entry_term",
  entryPosition: "entry_position",
  chain: "chain",
  indexSlot: "index_slot",
  indexMissing: "index_missing",
  indexSize: "index_size",
  segmentLength: "segment_length",
  gap: "gap",
  stateFile: "state_file",
  stateMissing: "state_missing",
  commitBeyondLog: "commit_beyond_log",
  snapshot: "snapshot",
  generation: "generation",
  unknownFile: "unknown_file",
} as const;
export type CorruptionCheck = (typeof CorruptionCheck)[keyof typeof CorruptionCheck];

/** Bytes on disk failed a check. Open stops with this; a read that hits it throws it. */
export class CorruptionError extends Error {
  override readonly name = "CorruptionError";
  constructor(
    readonly file: string,
    readonly position: number,
    readonly check: CorruptionCheck,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${file} @${position}: ${check}: ${detail}`, options);
  }
}

/**
 * An fsync (or the write before it) failed. Fatal and never retried: after a failed fsync the
 * kernel may have dropped the dirty pages and cleared the error, so a retry that "succeeds" would
 * report lost data as durable (the PostgreSQL "fsyncgate" lesson, 2018).
 */
export class SyncFailedError extends Error {
  override readonly name = "SyncFailedError";
  constructor(
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(`fsync failed on ${file}; the store is unusable and must be reopened`, options);
  }
}

/** The store was used after `close()` or after a fatal failure. */
export class StorageClosedError extends Error {
  override readonly name = "StorageClosedError";
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`commit log is not usable: ${reason}`, options);
  }
}

/** A file the store expected does not exist, or an I/O call failed (other than fsync). */
export class DiskError extends Error {
  override readonly name = "DiskError";
  constructor(
    readonly path: string,
    readonly op: string,
    options?: { cause?: unknown },
  ) {
    super(`${op} failed on ${path}`, options);
  }
}
