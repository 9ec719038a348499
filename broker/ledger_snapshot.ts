import type { KvOutcome } from "./kv_entry.js";

/**
 * The ledger state machine's snapshot, version 3: binary, because the JSON form of versions 1
 * and 2 took 20–50 ms of event loop to build for a dedup table of ~2,000 producers (~130k
 * records), a stall every snapshot put straight into the append p99. This form is written in
 * one pass into one buffer sized beforehand, and read without building intermediate arrays.
 *
 * Layout (little-endian; f64 holds the safe integers indexes, terms and sequences are):
 *   magic "DLSM" | u8 version 3 | f64 appliedIndex | f64 appliedTerm
 *   u32 clients, each (least recently applied first):
 *     u16 id length | id UTF-8 | f64 floor | u32 records, each: f64 sequence | f64 index | f64 term | u8 KV outcome (0: none)
 *   u32 duplicates, each (oldest first): f64 index | f64 original index
 *   u32 KV keys, each (insertion order): u32 key length | key UTF-8 | u32 value length | value
 * No checksum of its own: the snapshot file's trailer CRC and the transport's frame CRC cover it.
 */
export const snapshotMagic = [0x44, 0x4c, 0x53, 0x4d] as const; // "DLSM"
export const binarySnapshotVersion = 3;

export interface AppliedRecord {
  readonly index: number;
  readonly term: number;
  readonly outcome?: KvOutcome;
}

export interface SnapshotClient {
  readonly floor: number;
  readonly sequences: ReadonlyMap<number, AppliedRecord>;
}

export interface LedgerSnapshotParts {
  readonly appliedIndex: number;
  readonly appliedTerm: number;
  readonly clients: ReadonlyMap<string, SnapshotClient>;
  readonly duplicates: ReadonlyMap<number, number>;
  readonly kv: ReadonlyMap<string, Uint8Array>;
}

/** A snapshot that cannot be read: truncated, trailing bytes, or a bad field. */
export class SnapshotFormatError extends Error {
  override readonly name = "SnapshotFormatError";
}

const headBytes = 4 + 1 + 8 + 8;
const recordBytes = 8 + 8 + 8 + 1;

export function encodeLedgerSnapshot(p: LedgerSnapshotParts): Uint8Array {
  // Pass 1: the exact size, so the buffer is allocated once.
  const ids: Buffer[] = [];
  let size = headBytes + 4;
  for (const [id, c] of p.clients) {
    const b = Buffer.from(id, "utf8");
    ids.push(b);
    size += 2 + b.byteLength + 8 + 4 + c.sequences.size * recordBytes;
  }
  size += 4 + p.duplicates.size * 16 + 4;
  const keys: Buffer[] = [];
  for (const [k, v] of p.kv) {
    const b = Buffer.from(k, "utf8");
    keys.push(b);
    size += 4 + b.byteLength + 4 + v.byteLength;
  }
  // Pass 2: the fields, through a DataView (TurboFan inlines its setters; Buffer's write*LE
  // methods measured twice as slow here).
  const out = Buffer.allocUnsafe(size);
  const v = new DataView(out.buffer, out.byteOffset, size);
  let at = 0;
  for (const m of snapshotMagic) out[at++] = m;
  out[at++] = binarySnapshotVersion;
  v.setFloat64(at, p.appliedIndex, true);
  v.setFloat64(at + 8, p.appliedTerm, true);
  v.setUint32(at + 16, p.clients.size, true);
  at += 20;
  let i = 0;
  for (const c of p.clients.values()) {
    const id = ids[i++] as Buffer;
    v.setUint16(at, id.byteLength, true);
    at += 2 + id.copy(out, at + 2);
    v.setFloat64(at, c.floor, true);
    v.setUint32(at + 8, c.sequences.size, true);
    at += 12;
    for (const [s, r] of c.sequences) {
      v.setFloat64(at, s, true);
      v.setFloat64(at + 8, r.index, true);
      v.setFloat64(at + 16, r.term, true);
      out[at + 24] = r.outcome ?? 0;
      at += recordBytes;
    }
  }
  v.setUint32(at, p.duplicates.size, true);
  at += 4;
  for (const [index, original] of p.duplicates) {
    v.setFloat64(at, index, true);
    v.setFloat64(at + 8, original, true);
    at += 16;
  }
  v.setUint32(at, p.kv.size, true);
  at += 4;
  i = 0;
  for (const value of p.kv.values()) {
    const k = keys[i++] as Buffer;
    v.setUint32(at, k.byteLength, true);
    at += 4 + k.copy(out, at + 4);
    v.setUint32(at, value.byteLength, true);
    out.set(value, at + 4);
    at += 4 + value.byteLength;
  }
  if (at !== size) throw new Error(`ledger snapshot: wrote ${at} bytes, sized ${size}`);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Whether `data` starts like a version-3 snapshot (versions 1 and 2 are JSON: they start with "{"). */
export function isBinaryLedgerSnapshot(data: Uint8Array): boolean {
  return data.byteLength >= 4 && snapshotMagic.every((m, i) => data[i] === m);
}

class Reader {
  private at = 0;
  private readonly buf: Buffer;

  constructor(data: Uint8Array) {
    this.buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }

  private need(n: number, what: string): void {
    if (this.at + n > this.buf.byteLength) throw new SnapshotFormatError(`ledger snapshot truncated in ${what} at byte ${this.at} of ${this.buf.byteLength}`);
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.at++] as number;
  }

  u16(what: string): number {
    this.need(2, what);
    const v = this.buf.readUInt16LE(this.at);
    this.at += 2;
    return v;
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  /** A non-negative safe integer stored as f64. */
  count(what: string): number {
    this.need(8, what);
    const v = this.buf.readDoubleLE(this.at);
    this.at += 8;
    if (!Number.isSafeInteger(v) || v < 0) throw new SnapshotFormatError(`ledger snapshot: ${what} ${v} is not a non-negative integer`);
    return v;
  }

  bytes(n: number, what: string): Buffer {
    this.need(n, what);
    const v = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }

  /** Records claimed by a count field must fit in what is left: no huge loop on a bad count. */
  fits(n: number, each: number, what: string): void {
    if (n * each > this.buf.byteLength - this.at) throw new SnapshotFormatError(`ledger snapshot: ${n} ${what} cannot fit in the ${this.buf.byteLength - this.at} bytes left`);
  }

  end(): void {
    if (this.at !== this.buf.byteLength) throw new SnapshotFormatError(`ledger snapshot: ${this.buf.byteLength - this.at} trailing bytes`);
  }
}

/** Reads a version-3 snapshot. Every count is checked against the bytes left before looping. */
export function decodeLedgerSnapshot(data: Uint8Array): {
  appliedIndex: number;
  appliedTerm: number;
  clients: Map<string, { floor: number; sequences: Map<number, AppliedRecord> }>;
  duplicates: Map<number, number>;
  kv: Map<string, Uint8Array>;
} {
  const r = new Reader(data);
  for (const m of snapshotMagic) if (r.u8("magic") !== m) throw new SnapshotFormatError("ledger snapshot: bad magic");
  const version = r.u8("version");
  if (version !== binarySnapshotVersion) throw new SnapshotFormatError(`ledger snapshot version ${version}, expected 1, 2 or ${binarySnapshotVersion}`);
  const appliedIndex = r.count("applied index");
  const appliedTerm = r.count("applied term");
  const clientCount = r.u32("client count");
  r.fits(clientCount, 2 + 8 + 4, "clients");
  const clients = new Map<string, { floor: number; sequences: Map<number, AppliedRecord> }>();
  for (let c = 0; c < clientCount; c++) {
    const id = r.bytes(r.u16("client id length"), "client id").toString("utf8");
    const floor = r.count("floor");
    const n = r.u32("record count");
    r.fits(n, recordBytes, "records");
    const sequences = new Map<number, AppliedRecord>();
    for (let k = 0; k < n; k++) {
      const s = r.count("sequence");
      const index = r.count("index");
      const term = r.count("term");
      const outcome = r.u8("outcome");
      if (outcome > 3) throw new SnapshotFormatError(`ledger snapshot: KV outcome ${outcome}`);
      sequences.set(s, outcome === 0 ? { index, term } : { index, term, outcome: outcome as KvOutcome });
    }
    clients.set(id, { floor, sequences });
  }
  const dupCount = r.u32("duplicate count");
  r.fits(dupCount, 16, "duplicates");
  const duplicates = new Map<number, number>();
  for (let d = 0; d < dupCount; d++) duplicates.set(r.count("duplicate index"), r.count("original index"));
  const keyCount = r.u32("key count");
  r.fits(keyCount, 8, "keys");
  const kv = new Map<string, Uint8Array>();
  for (let k = 0; k < keyCount; k++) {
    const key = r.bytes(r.u32("key length"), "key").toString("utf8");
    // A copy: the map outlives the snapshot buffer.
    kv.set(key, new Uint8Array(r.bytes(r.u32("value length"), "value")));
  }
  r.end();
  return { appliedIndex, appliedTerm, clients, duplicates, kv };
}
