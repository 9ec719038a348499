import { assert } from "../raft/base/assert.js";
import { fromUtf8, utf8 } from "../raft/base/bytes.js";
import type { HardState, ReplicaId } from "../raft/core/types.js";
import { joinPath, type Disk, type DiskFile } from "./disk.js";
import { crc32, getU64, putU64, viewOf } from "./entry_codec.js";
import { CorruptionCheck, CorruptionError } from "./errors.js";

/**
 * The state file: hard state (term, vote, commit hint), the members, where the log begins, and
 * the clean-shutdown mark. Everything here changes rarely (a new term, a vote, a snapshot), so it
 * does not sit on the append path.
 *
 * Format: two 4 KiB slots, each `magic u32 | version u16 | 0 u16 | sequence u64 | length u32 |
 * JSON payload | crc u32` with the CRC over everything before it. Every update writes slot A,
 * fsyncs, then writes slot B and fsyncs. Why two mirrored slots instead of temp + rename:
 *   - a torn write can damage only the slot being written; the other still holds a complete state
 *     (the old one while A is written, the new one while B is written), so no update is lost
 *     that had completed, and none is half-applied;
 *   - a later latent sector error in either slot is survived too, because both hold the same
 *     state at rest: with alternating single writes a flip in the newer slot would silently roll
 *     back a vote (an unsafe double vote), and with temp + rename it would stop the replica;
 *   - no directory-entry traffic on the vote path: two fdatasyncs of a preallocated file.
 * Reading takes the valid slot with the highest sequence; no valid slot is corruption.
 */
export const stateSlotBytes = 4096;
const stateMagic = 0x53484c44; // "DLHS"
const stateVersion = 1;
const slotHeaderBytes = 20;
export const stateFileName = "state";

/** Where the log begins and how it is stamped; see SegmentHeader for the fields' meaning. */
export interface LogOrigin {
  readonly generation: number;
  /** The first index the log may hold: entries below it are compacted away. */
  readonly firstIndex: number;
  readonly prevTerm: number;
  readonly prevCrc: number;
  /** Global position a first segment starts at, when the log holds no segment yet. */
  readonly basePosition: number;
}

export interface PersistedState {
  readonly hardState: HardState;
  readonly members: readonly ReplicaId[];
  readonly origin: LogOrigin;
  /** True only between a clean close and the next open: the last index file is then trusted. */
  readonly clean: boolean;
}

export function encodeStateSlot(state: PersistedState, sequence: number): Uint8Array {
  const payload = utf8(JSON.stringify(state));
  if (slotHeaderBytes + payload.byteLength + 4 > stateSlotBytes) {
    throw new RangeError(`state payload of ${payload.byteLength} bytes does not fit a ${stateSlotBytes}-byte slot (too many or too long member ids)`);
  }
  const out = new Uint8Array(stateSlotBytes);
  const view = viewOf(out);
  view.setUint32(0, stateMagic, true);
  view.setUint16(4, stateVersion, true);
  putU64(view, 8, sequence);
  view.setUint32(16, payload.byteLength, true);
  out.set(payload, slotHeaderBytes);
  const end = slotHeaderBytes + payload.byteLength;
  view.setUint32(end, crc32(out.subarray(0, end)), true);
  return out;
}

/** Decodes one slot; returns null when it is not a complete, checksummed slot. */
export function decodeStateSlot(slot: Uint8Array): { state: PersistedState; sequence: number } | null {
  if (slot.byteLength < slotHeaderBytes + 4) return null;
  const view = viewOf(slot);
  if (view.getUint32(0, true) !== stateMagic || view.getUint16(4, true) !== stateVersion) return null;
  const length = view.getUint32(16, true);
  const end = slotHeaderBytes + length;
  if (end + 4 > slot.byteLength) return null;
  if (crc32(slot.subarray(0, end)) !== view.getUint32(end, true)) return null;
  try {
    const state = JSON.parse(fromUtf8(slot.subarray(slotHeaderBytes, end))) as PersistedState;
    return { state: validateState(state), sequence: getU64(view, 8) };
  } catch {
    return null;
  }
}

function validateState(s: PersistedState): PersistedState {
  const counts = [s.hardState.term, s.hardState.commit, s.origin.generation, s.origin.firstIndex, s.origin.prevTerm, s.origin.prevCrc, s.origin.basePosition];
  for (const c of counts) if (!Number.isSafeInteger(c) || c < 0) throw new TypeError("bad count");
  if (s.origin.firstIndex < 1) throw new TypeError("firstIndex < 1");
  if (!Array.isArray(s.members) || typeof s.clean !== "boolean") throw new TypeError("bad shape");
  return s;
}

/** The state file of one data directory. Single writer. */
export class StateFile {
  private sequence: number;

  private constructor(
    private readonly file: DiskFile,
    sequence: number,
    private current: PersistedState,
  ) {
    this.sequence = sequence;
  }

  get state(): PersistedState {
    return this.current;
  }

  /** Creates the file durably (temp, fsync, rename, fsync dir): it must never exist half-made. */
  static create(disk: Disk, dir: string, state: PersistedState): StateFile {
    const path = joinPath(dir, stateFileName);
    const temp = `${path}.tmp`;
    disk.remove(temp);
    const file = disk.open(temp, { create: true });
    const slot = encodeStateSlot(state, 1);
    const both = new Uint8Array(2 * stateSlotBytes);
    both.set(slot, 0);
    both.set(slot, stateSlotBytes);
    file.write(both, 0);
    file.sync();
    file.close();
    disk.rename(temp, path);
    disk.syncDir(dir);
    return new StateFile(disk.open(path, { create: false }), 1, state);
  }

  /** Reads the state file of `dir`, or returns null when there is none. */
  static open(disk: Disk, dir: string): StateFile | null {
    const path = joinPath(dir, stateFileName);
    if (!disk.exists(path)) return null;
    const file = disk.open(path, { create: false });
    const a = decodeStateSlot(file.read(0, stateSlotBytes));
    const b = decodeStateSlot(file.read(stateSlotBytes, stateSlotBytes));
    const best = a === null ? b : b === null || a.sequence >= b.sequence ? a : b;
    if (best === null) {
      file.close();
      throw new CorruptionError(path, 0, CorruptionCheck.stateFile, "neither state slot holds a valid checksummed state");
    }
    return new StateFile(file, best.sequence, best.state);
  }

  /** Reports whether both slots hold the current state (false after a torn write or a flip). */
  mirrored(): boolean {
    const a = decodeStateSlot(this.file.read(0, stateSlotBytes));
    const b = decodeStateSlot(this.file.read(stateSlotBytes, stateSlotBytes));
    return a !== null && b !== null && a.sequence === b.sequence;
  }

  /** Durably replaces the state: slot A, fsync, slot B, fsync (see the file comment). */
  write(state: PersistedState): void {
    assert(state.hardState.term >= this.current.hardState.term, `term went back from ${this.current.hardState.term} to ${state.hardState.term}`);
    this.sequence++;
    const slot = encodeStateSlot(state, this.sequence);
    this.file.write(slot, 0);
    this.file.sync();
    this.file.write(slot, stateSlotBytes);
    this.file.sync();
    this.current = state;
  }

  close(): void {
    this.file.close();
  }

  /** For `disk` users that need the path (verify reports). */
  static path(dir: string): string {
    return joinPath(dir, stateFileName);
  }
}
