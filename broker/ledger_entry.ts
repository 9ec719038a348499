/**
 * The bytes of one client entry inside a Raft entry's `data`, and of the result the state
 * machine hands back to the proposer. The log is the data (DESIGN.md §3): this small header is
 * all the ledger adds to a client's body.
 *
 * Client entry, version 1 (big-endian):
 *   u8  version (1)
 *   u8  clientId length n (0..64); 0 means "no deduplication"
 *   n   clientId (UTF-8)
 *   u32 sequence, high 21 bits  } a sequence in [0, 2^53); 0 exactly when n = 0
 *   u32 sequence, low 32 bits   }
 *   ... body (the rest)
 *
 * Version 2 is a KV command (broker/kv_entry.ts documents it): the same identity header with
 * version byte 2, then the command instead of a body. decodeClientEntry accepts both versions,
 * so Ledger.Get of a KV command's index answers its clientId and sequence, with the command
 * bytes (from its kind byte on) as the body.
 */

import { ByteSlab } from "../raft/base/bytes.js";

export const entryVersion = 1;
export const kvEntryVersion = 2;
export const clientIdBytesMax = 64;
const fixedBytes = 1 + 1 + 8;

export interface ClientEntry {
  readonly clientId: string;
  readonly sequence: number;
  readonly body: Uint8Array;
}

/** Untrusted bytes that are not a client entry (only a bug or corruption gets one into the log). */
export class EntryFormatError extends Error {
  override readonly name = "EntryFormatError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
/** Entries' bytes: they live in the log's tail cache and leave it oldest first (ByteSlab). */
const entrySlab = new ByteSlab();

/**
 * UTF-8 of recent clientIds. A producer sends many appends under one id, and encoding it twice
 * per append (size check, then the entry) was 4% of a leader's CPU at 30k appends/s. Bounded:
 * cleared when full; ids over the limit are not kept (they are refused anyway).
 */
const idBytesCache = new Map<string, Uint8Array>();
const idBytesCacheMax = 4096;

function idBytes(clientId: string): Uint8Array {
  let b = idBytesCache.get(clientId);
  if (b === undefined) {
    b = encoder.encode(clientId);
    if (idBytesCache.size >= idBytesCacheMax) idBytesCache.clear();
    if (b.byteLength <= clientIdBytesMax) idBytesCache.set(clientId, b);
  }
  return b;
}

/** Header bytes an entry with `clientId` adds to its body. */
export function entryOverheadBytes(clientId: string): number {
  return fixedBytes + idBytes(clientId).byteLength;
}

/**
 * Encodes a client entry (or, with `version` 2, the identity header of a KV command around its
 * command bytes). Throws EntryFormatError for a clientId/sequence that break the rules above.
 */
export function encodeClientEntry(e: ClientEntry, version: typeof entryVersion | typeof kvEntryVersion = entryVersion): Uint8Array {
  const id = idBytes(e.clientId);
  checkIdentity(id.byteLength, e.sequence);
  const out = entrySlab.alloc(fixedBytes + id.byteLength + e.body.byteLength);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[0] = version;
  out[1] = id.byteLength;
  out.set(id, 2);
  const at = 2 + id.byteLength;
  view.setUint32(at, Math.floor(e.sequence / 2 ** 32));
  view.setUint32(at + 4, e.sequence % 2 ** 32);
  out.set(e.body, at + 8);
  return out;
}

export function decodeClientEntry(data: Uint8Array): ClientEntry {
  if (data.byteLength < fixedBytes) throw new EntryFormatError(`entry of ${data.byteLength} bytes is shorter than the ${fixedBytes}-byte header`);
  if (data[0] !== entryVersion && data[0] !== kvEntryVersion) {
    throw new EntryFormatError(`entry version ${String(data[0])}, expected ${entryVersion} or ${kvEntryVersion}`);
  }
  const n = data[1] as number;
  if (data.byteLength < fixedBytes + n) throw new EntryFormatError(`entry of ${data.byteLength} bytes is shorter than its header`);
  let clientId: string;
  try {
    clientId = decoder.decode(data.subarray(2, 2 + n));
  } catch (err) {
    throw new EntryFormatError("entry clientId is not valid UTF-8", { cause: err });
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const high = view.getUint32(2 + n);
  const sequence = high * 2 ** 32 + view.getUint32(2 + n + 4);
  checkIdentity(n, sequence);
  return { clientId, sequence, body: data.subarray(fixedBytes + n) };
}

function checkIdentity(idBytes: number, sequence: number): void {
  if (idBytes > clientIdBytesMax) throw new EntryFormatError(`clientId of ${idBytes} bytes exceeds ${clientIdBytesMax}`);
  if (!Number.isSafeInteger(sequence) || sequence < 0) throw new EntryFormatError(`sequence (${sequence}) must be an integer in [0, 2^53)`);
  if (idBytes === 0 && sequence !== 0) throw new EntryFormatError(`sequence (${sequence}) must be 0 without a clientId`);
  if (idBytes > 0 && sequence === 0) throw new EntryFormatError("sequence must be > 0 with a clientId");
}

/* --- Apply results --------------------------------------------------------------------------- */

/**
 * What applying an entry did, as seen by the proposer. `applied`: a new entry at its own index.
 * `duplicate`: a retry of (clientId, sequence) first applied at `index` (term `term`); this entry
 * changed nothing. `expired`: its sequence is older than the client's dedup window, so whether it
 * was applied before is not known; this entry changed nothing. `malformed`: not a client entry.
 */
export const ApplyKind = { applied: 0, duplicate: 1, expired: 2, malformed: 3, noop: 4 } as const;
export type ApplyKind = (typeof ApplyKind)[keyof typeof ApplyKind];

export interface ApplyResult {
  readonly kind: ApplyKind;
  readonly index: number;
  readonly term: number;
}

/**
 * The f64 fields go through one scratch buffer: a DataView over the result's own `.buffer`
 * would make V8 give every 17-byte result an ArrayBuffer of its own (small typed arrays live
 * on the heap until their buffer is asked for), one more per append for the scavenger to sweep.
 */
const f64Scratch = new DataView(new ArrayBuffer(8));
const f64Bytes = new Uint8Array(f64Scratch.buffer);

function putF64(out: Uint8Array, at: number, v: number): void {
  f64Scratch.setFloat64(0, v);
  out.set(f64Bytes, at);
}

function getF64(bytes: Uint8Array, at: number): number {
  for (let i = 0; i < 8; i++) f64Bytes[i] = bytes[at + i] as number;
  return f64Scratch.getFloat64(0);
}

export function encodeApplyResult(r: ApplyResult): Uint8Array {
  const out = new Uint8Array(17);
  out[0] = r.kind;
  putF64(out, 1, r.index);
  putF64(out, 9, r.term);
  return out;
}

export function decodeApplyResult(bytes: Uint8Array): ApplyResult {
  if (bytes.byteLength !== 17) throw new EntryFormatError(`apply result of ${bytes.byteLength} bytes, expected 17`);
  const kind = bytes[0] as number;
  if (kind > ApplyKind.noop) throw new EntryFormatError(`apply result kind ${kind}`);
  return { kind: kind as ApplyKind, index: getF64(bytes, 1), term: getF64(bytes, 9) };
}
