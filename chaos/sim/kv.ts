import { assert } from "../../raft/base/assert.js";
import { fnv1a } from "../../raft/base/bytes.js";
import type { Entry } from "../../raft/core/types.js";

/**
 * The simulator's state machine: a tiny key-value register store. A normal entry's payload is
 * "put key := opId" — [opId u32 LE][key u8][padding] — so every write stores a value unique to
 * its operation and a read tells exactly which write it observed. The padding (a pattern derived
 * from the op id) varies entry sizes so byte-bounded batching is exercised.
 */

export const kvKeys = 8;
const headerBytes = 5;
const snapshotMagic = 0x4b565331; // "KVS1"

/** Encodes a put of `opId` to `key`, padded with `padBytes` pattern bytes. */
export function encodePut(opId: number, key: number, padBytes: number): Uint8Array {
  assert(key >= 0 && key < kvKeys, `kv key ${key} out of range`);
  const data = new Uint8Array(headerBytes + padBytes);
  data[0] = opId & 0xff;
  data[1] = (opId >>> 8) & 0xff;
  data[2] = (opId >>> 16) & 0xff;
  data[3] = (opId >>> 24) & 0xff;
  data[4] = key;
  for (let i = 0; i < padBytes; i++) data[headerBytes + i] = (opId + i) & 0xff;
  return data;
}

/** The op id of a put payload. */
export function putOpId(data: Uint8Array): number {
  assert(data.byteLength >= headerBytes, `kv payload of ${data.byteLength} bytes`);
  return ((data[0] as number) | ((data[1] as number) << 8) | ((data[2] as number) << 16) | ((data[3] as number) << 24)) >>> 0;
}

/** The key of a put payload. */
export function putKey(data: Uint8Array): number {
  const key = data[4] as number;
  assert(key < kvKeys, `kv payload key ${key}`);
  return key;
}

export class KvStateMachine {
  readonly values = new Uint32Array(kvKeys);
  applied: number;

  constructor(applied = 0) {
    this.applied = applied;
  }

  /** Applies one committed entry; entries must arrive in index order without gaps. */
  apply(entry: Entry): void {
    assert(entry.index === this.applied + 1, `kv applies ${entry.index} after ${this.applied}`);
    this.applied = entry.index;
    if (entry.type === "normal") this.values[putKey(entry.data)] = putOpId(entry.data);
  }

  get(key: number): number {
    return this.values[key] as number;
  }

  /**
   * Serializes the state: [magic][values × u32][padding][fnv1a of everything before]. The
   * padding makes snapshots span several chunks; the checksum makes a corrupted transfer fail.
   */
  snapshot(padBytes: number): Uint8Array {
    const bytes = 4 + kvKeys * 4 + padBytes + 4;
    const data = new Uint8Array(bytes);
    const view = new DataView(data.buffer);
    view.setUint32(0, snapshotMagic, true);
    for (let k = 0; k < kvKeys; k++) view.setUint32(4 + k * 4, this.values[k] as number, true);
    for (let i = 0; i < padBytes; i++) data[4 + kvKeys * 4 + i] = (i * 31 + 7) & 0xff;
    view.setUint32(bytes - 4, fnv1a(data.subarray(0, bytes - 4)), true);
    return data;
  }

  /** A state machine restored from `data` at `index`. Throws AssertionError on a corrupt snapshot. */
  static restore(data: Uint8Array, index: number): KvStateMachine {
    assert(data.byteLength >= 4 + kvKeys * 4 + 4, `kv snapshot of ${data.byteLength} bytes`);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    assert(view.getUint32(0, true) === snapshotMagic, "kv snapshot magic");
    const sum = fnv1a(data.subarray(0, data.byteLength - 4));
    assert(view.getUint32(data.byteLength - 4, true) === sum, `kv snapshot checksum mismatch at index ${index}`);
    const kv = new KvStateMachine(index);
    for (let k = 0; k < kvKeys; k++) kv.values[k] = view.getUint32(4 + k * 4, true);
    return kv;
  }
}
