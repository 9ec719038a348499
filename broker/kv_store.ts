import { assert } from "../raft/base/assert.js";
import { KvOutcome, type KvCommand } from "./kv_entry.js";

/**
 * The key-value map behind dledger.v1.Kv: part of the ledger's state machine, changed only by
 * applying committed KV commands, in log order, so every replica holds the same map.
 *
 * Bounds (deterministic: they depend only on the map, never on a clock or a config that could
 * differ between replicas at apply time — every replica must run with the same limits):
 *   - at most `keysMax` keys; a put or cas that would add a key beyond it is refused ("full");
 *   - at most `bytesMax` bytes of keys plus values; a write that would go beyond it is refused.
 * A refused write changes nothing and is answered RESOURCE_EXHAUSTED kv_full. There is no delete
 * yet, so a full map stays full.
 */
export interface KvLimits {
  readonly keysMax: number;
  readonly bytesMax: number;
}

export const kvLimitsDefaults: KvLimits = { keysMax: 65_536, bytesMax: 64 * 1024 * 1024 };

export type KvExecution = { readonly outcome: KvOutcome; readonly current: Uint8Array | null };

/** The snapshot form: [key, value as base64], in insertion order. */
export type KvSnapshotJson = readonly (readonly [string, string])[];

export class KvStore {
  readonly limits: KvLimits;
  private map = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(limits: Partial<KvLimits> = {}) {
    this.limits = Object.freeze({ ...kvLimitsDefaults, ...limits });
    for (const [k, v] of Object.entries(this.limits)) assert(Number.isSafeInteger(v) && v > 0, `${k} (${v}) must be a positive integer`);
  }

  get keyCount(): number {
    return this.map.size;
  }

  /** Bytes of keys (UTF-8) plus values held. */
  get byteCount(): number {
    return this.bytes;
  }

  /** The value of `key`, or undefined. The caller must not modify it. */
  get(key: string): Uint8Array | undefined {
    return this.map.get(key);
  }

  /** Whether writing `valueBytes` to `key` now would be refused as full (a hint for the gateway). */
  wouldOverflow(key: string, valueBytes: number): boolean {
    const old = this.map.get(key);
    if (old === undefined && this.map.size >= this.limits.keysMax) return true;
    const delta = old === undefined ? Buffer.byteLength(key, "utf8") + valueBytes : valueBytes - old.byteLength;
    return this.bytes + delta > this.limits.bytesMax;
  }

  /** Applies a decoded command. Deterministic: the result depends only on the map and `c`. */
  execute(c: KvCommand): KvExecution {
    const old = this.map.get(c.key);
    if (c.kind === "cas" && !matches(old, c.expected)) return { outcome: KvOutcome.casMismatch, current: old ?? null };
    if (this.wouldOverflow(c.key, c.value.byteLength)) return { outcome: KvOutcome.full, current: null };
    // A copy: the command's value is a view into the log entry's bytes.
    const value = c.value.slice();
    this.bytes += old === undefined ? Buffer.byteLength(c.key, "utf8") + value.byteLength : value.byteLength - old.byteLength;
    this.map.set(c.key, value);
    assert(this.bytes >= 0, `kv bytes ${this.bytes} went negative`);
    assert(this.bytes <= this.limits.bytesMax, `kv bytes ${this.bytes} beyond bytesMax ${this.limits.bytesMax}`);
    assert(this.map.size <= this.limits.keysMax, `kv keys ${this.map.size} beyond keysMax ${this.limits.keysMax}`);
    return { outcome: KvOutcome.written, current: null };
  }

  toJson(): KvSnapshotJson {
    return [...this.map].map(([k, v]) => [k, Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64")] as const);
  }

  /** The map itself, read-only, in insertion order (for the binary snapshot). */
  entries(): ReadonlyMap<string, Uint8Array> {
    return this.map;
  }

  /** Replaces the map with a snapshot's (an absent `kv`, from snapshot version 1, is an empty map). */
  restoreJson(json: KvSnapshotJson | undefined): void {
    const map = new Map<string, Uint8Array>();
    for (const [k, b64] of json ?? []) map.set(k, new Uint8Array(Buffer.from(b64, "base64")));
    this.restoreMap(map);
  }

  /** Takes over `map` (from a snapshot) as the whole map. */
  restoreMap(map: Map<string, Uint8Array>): void {
    let bytes = 0;
    for (const [k, v] of map) bytes += Buffer.byteLength(k, "utf8") + v.byteLength;
    // A snapshot holds what a replica with these limits applied, so it fits them; a mismatch
    // means the replicas run with different limits, which would break determinism.
    assert(map.size <= this.limits.keysMax, `kv snapshot of ${map.size} keys exceeds keysMax ${this.limits.keysMax}`);
    assert(bytes <= this.limits.bytesMax, `kv snapshot of ${bytes} bytes exceeds bytesMax ${this.limits.bytesMax}`);
    this.map = map;
    this.bytes = bytes;
  }
}

function matches(current: Uint8Array | undefined, expected: Uint8Array | null): boolean {
  if (expected === null) return current === undefined;
  if (current === undefined) return false;
  return Buffer.compare(current, expected) === 0;
}
