import { decodeClientEntry, encodeClientEntry, entryOverheadBytes, EntryFormatError, kvEntryVersion } from "./ledger_entry.js";

/**
 * The bytes of a KV command inside a Raft entry's `data`, and of the result the state machine
 * hands back to its proposer. KV commands share the log with client entries (ledger_entry.ts,
 * version 1) and their (clientId, sequence) identity, so a retried put or cas is applied once
 * through the same dedup table (ledger_state_machine.ts).
 *
 * KV command, version 2 (big-endian):
 *   u8  version (2)
 *   u8  clientId length n (0..64); 0 means "no deduplication"
 *   n   clientId (UTF-8)
 *   u32 sequence, high 21 bits  } as in version 1: 0 exactly when n = 0
 *   u32 sequence, low 32 bits   }
 *   --- the command (what Ledger.Get shows as the body of this index):
 *   u8  kind: 1 put, 2 cas
 *   u16 key length k (1..256)
 *   k   key (UTF-8)
 *   put: value (the rest)
 *   cas: u8  flags: bit 0 = expect the key absent; the other bits are 0
 *        u32 expected length e (0 when expecting absent)
 *        e   expected value
 *        ... new value (the rest)
 *
 * Apply result of a KV command (big-endian):
 *   u8  kind: 1 done, 2 duplicate, 3 expired, 4 malformed, 5 identity_clash
 *   u8  outcome (done, duplicate): 1 written, 2 cas_mismatch, 3 full; otherwise 0
 *   f64 index, f64 term: the entry's own, or for a duplicate the original's
 *   u8  current present (1/0): only for done + cas_mismatch, else 0
 *   ... current value (the rest; only for done + cas_mismatch with the key present)
 */

export const kvKeyBytesMax = 256;
const commandFixedBytes = 1 + 2;
const casFixedBytes = 1 + 4;

export const KvCommandKind = { put: 1, cas: 2 } as const;
export type KvCommandKind = (typeof KvCommandKind)[keyof typeof KvCommandKind];

export type KvCommand =
  | { readonly kind: "put"; readonly clientId: string; readonly sequence: number; readonly key: string; readonly value: Uint8Array }
  | {
      readonly kind: "cas";
      readonly clientId: string;
      readonly sequence: number;
      readonly key: string;
      /** null: succeed only when the key is absent. */
      readonly expected: Uint8Array | null;
      readonly value: Uint8Array;
    };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Bytes of the encoded command (what counts against the Raft core's entryBytesMax). */
export function kvCommandBytes(c: KvCommand): number {
  const key = encoder.encode(c.key).byteLength;
  const cas = c.kind === "cas" ? casFixedBytes + (c.expected?.byteLength ?? 0) : 0;
  return entryOverheadBytes(c.clientId) + commandFixedBytes + key + cas + c.value.byteLength;
}

/** Encodes a KV command. Throws EntryFormatError for a key or identity that breaks the rules above. */
export function encodeKvCommand(c: KvCommand): Uint8Array {
  const key = encoder.encode(c.key);
  checkKey(key.byteLength);
  const expected = c.kind === "cas" ? c.expected : null;
  const casBytes = c.kind === "cas" ? casFixedBytes + (expected?.byteLength ?? 0) : 0;
  const out = new Uint8Array(commandFixedBytes + key.byteLength + casBytes + c.value.byteLength);
  const view = new DataView(out.buffer);
  out[0] = KvCommandKind[c.kind];
  view.setUint16(1, key.byteLength);
  out.set(key, 3);
  let at = 3 + key.byteLength;
  if (c.kind === "cas") {
    out[at] = expected === null ? 1 : 0;
    view.setUint32(at + 1, expected?.byteLength ?? 0);
    if (expected !== null) out.set(expected, at + casFixedBytes);
    at += casBytes;
  }
  out.set(c.value, at);
  return encodeClientEntry({ clientId: c.clientId, sequence: c.sequence, body: out }, kvEntryVersion);
}

/** Decodes untrusted bytes into a KV command; throws EntryFormatError on anything else. */
export function decodeKvCommand(data: Uint8Array): KvCommand {
  if (data[0] !== kvEntryVersion) throw new EntryFormatError(`entry version ${String(data[0])} is not a KV command (${kvEntryVersion})`);
  const { clientId, sequence, body } = decodeClientEntry(data);
  if (body.byteLength < commandFixedBytes) throw new EntryFormatError(`KV command of ${body.byteLength} bytes is shorter than its ${commandFixedBytes}-byte header`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const kind = body[0] as number;
  const keyBytes = view.getUint16(1);
  checkKey(keyBytes);
  if (body.byteLength < commandFixedBytes + keyBytes) throw new EntryFormatError(`KV command key of ${keyBytes} bytes runs past the end`);
  let key: string;
  try {
    key = decoder.decode(body.subarray(3, 3 + keyBytes));
  } catch (err) {
    throw new EntryFormatError("KV command key is not valid UTF-8", { cause: err });
  }
  const at = 3 + keyBytes;
  if (kind === KvCommandKind.put) return { kind: "put", clientId, sequence, key, value: body.subarray(at) };
  if (kind !== KvCommandKind.cas) throw new EntryFormatError(`KV command kind ${kind}`);
  if (body.byteLength < at + casFixedBytes) throw new EntryFormatError("KV cas command is shorter than its flags and expected length");
  const flags = body[at] as number;
  const expectedBytes = view.getUint32(at + 1);
  if (flags > 1) throw new EntryFormatError(`KV cas flags ${flags}: only bit 0 is defined`);
  if (flags === 1 && expectedBytes !== 0) throw new EntryFormatError(`KV cas expects absent but carries ${expectedBytes} expected bytes`);
  if (expectedBytes > body.byteLength - at - casFixedBytes) throw new EntryFormatError(`KV cas expected value of ${expectedBytes} bytes runs past the end`);
  const valueAt = at + casFixedBytes + expectedBytes;
  const expected = flags === 1 ? null : body.subarray(at + casFixedBytes, valueAt);
  return { kind: "cas", clientId, sequence, key, expected, value: body.subarray(valueAt) };
}

function checkKey(keyBytes: number): void {
  if (keyBytes === 0) throw new EntryFormatError("KV key must not be empty");
  if (keyBytes > kvKeyBytesMax) throw new EntryFormatError(`KV key of ${keyBytes} bytes exceeds ${kvKeyBytesMax}`);
}

/* --- Apply results --------------------------------------------------------------------------- */

/**
 * What a KV command did to the map. `written`: put, or a cas whose comparison held. `casMismatch`:
 * the comparison failed, nothing changed. `full`: refused because the map is at its key-count or
 * byte bound, nothing changed. The dedup table stores this next to (clientId, sequence), so a
 * retry is answered with the original's outcome.
 */
export const KvOutcome = { written: 1, casMismatch: 2, full: 3 } as const;
export type KvOutcome = (typeof KvOutcome)[keyof typeof KvOutcome];

/**
 * The result of applying a KV command, for its proposer. `done`: applied at `index`.
 * `duplicate`: a retry of a command first applied at `index`, with that one's outcome (a cas
 * mismatch's current value is not remembered: `current` is null). `expired`: its sequence is
 * below the client's dedup window; whether it was applied before is unknown. `malformed`: not a
 * KV command. `identityClash`: (clientId, sequence) was already used by a ledger append.
 * Every kind except `done` changed nothing.
 */
export type KvApplyResult =
  | { readonly kind: "done" | "duplicate"; readonly outcome: KvOutcome; readonly index: number; readonly term: number; readonly current: Uint8Array | null }
  | { readonly kind: "expired" | "malformed" | "identityClash"; readonly index: number; readonly term: number };

const resultKinds = ["done", "duplicate", "expired", "malformed", "identityClash"] as const;
const resultFixedBytes = 1 + 1 + 8 + 8 + 1;

export function encodeKvApplyResult(r: KvApplyResult): Uint8Array {
  const withOutcome = r.kind === "done" || r.kind === "duplicate";
  const current = withOutcome ? r.current : null;
  const out = new Uint8Array(resultFixedBytes + (current?.byteLength ?? 0));
  const view = new DataView(out.buffer);
  out[0] = resultKinds.indexOf(r.kind) + 1;
  out[1] = withOutcome ? r.outcome : 0;
  view.setFloat64(2, r.index);
  view.setFloat64(10, r.term);
  out[18] = current === null ? 0 : 1;
  if (current !== null) out.set(current, resultFixedBytes);
  return out;
}

export function decodeKvApplyResult(bytes: Uint8Array): KvApplyResult {
  if (bytes.byteLength < resultFixedBytes) throw new EntryFormatError(`KV apply result of ${bytes.byteLength} bytes, expected at least ${resultFixedBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const kind = resultKinds[(bytes[0] as number) - 1];
  if (kind === undefined) throw new EntryFormatError(`KV apply result kind ${String(bytes[0])}`);
  const index = view.getFloat64(2);
  const term = view.getFloat64(10);
  if (kind !== "done" && kind !== "duplicate") return { kind, index, term };
  const outcome = bytes[1] as number;
  if (outcome < KvOutcome.written || outcome > KvOutcome.full) throw new EntryFormatError(`KV apply result outcome ${outcome}`);
  const current = bytes[18] === 1 ? bytes.slice(resultFixedBytes) : null;
  return { kind, outcome: outcome as KvOutcome, index, term, current };
}
