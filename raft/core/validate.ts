import { isCount } from "../base/assert.js";
import { EntryType, type Entry, type Rpc } from "./types.js";

/**
 * The gateway check for RPCs (STYLE.md rule 5): everything step() needs to trust about an RPC's
 * shape, checked once, before any state changes. Returns null when the RPC is well formed, or a
 * sentence saying what is wrong. Checks that depend on the receiver's state (an index beyond the
 * leader's log, say) are made by the handlers, also before they change anything.
 */
export function rpcShapeError(rpc: Rpc, self: string): string | null {
  if (typeof rpc !== "object" || rpc === null) return "rpc is not an object";
  if (!isCount(rpc.term)) return `term must be a non-negative integer, got ${String(rpc.term)}`;
  if (typeof rpc.from !== "string" || rpc.from === self) return `from must be another replica, got ${String(rpc.from)}`;
  if (rpc.to !== self) return `to must be this replica (${self}), got ${String(rpc.to)}`;
  switch (rpc.type) {
    case "vote_request":
      if (!isBool(rpc.preVote) || !isBool(rpc.transfer)) return "preVote and transfer must be booleans";
      if (!isCount(rpc.lastIndex) || !isCount(rpc.lastTerm)) return "lastIndex and lastTerm must be counts";
      if (rpc.lastTerm > rpc.term) return `lastTerm ${rpc.lastTerm} above the request's term ${rpc.term}`;
      return positionalCheck(rpc.lastIndex, rpc.lastTerm, "last");
    case "vote_response":
      return isBool(rpc.preVote) && isBool(rpc.granted) ? null : "preVote and granted must be booleans";
    case "append_request":
      return appendRequestError(rpc.term, rpc.prevIndex, rpc.prevTerm, rpc.commit, rpc.entries);
    case "append_response":
      if (!isBool(rpc.success)) return "success must be a boolean";
      if (!isCount(rpc.index) || !isCount(rpc.hintIndex) || !isCount(rpc.hintTerm)) return "index and hints must be counts";
      return null;
    case "heartbeat":
      return isCount(rpc.commit) && isCount(rpc.readSeq) ? null : "commit and readSeq must be counts";
    case "heartbeat_response":
      return isCount(rpc.readSeq) ? null : "readSeq must be a count";
    case "snapshot_chunk":
      return snapshotChunkError(rpc.term, rpc.meta, rpc.position, rpc.data, rpc.done);
    case "snapshot_response":
      if (!isCount(rpc.snapshotIndex) || !isCount(rpc.position)) return "snapshotIndex and position must be counts";
      return isBool(rpc.reject) ? null : "reject must be a boolean";
    case "timeout_now":
      return null;
    default:
      return `unknown rpc type ${JSON.stringify((rpc as { type?: unknown }).type)}`;
  }
}

function appendRequestError(
  term: number,
  prevIndex: unknown,
  prevTerm: unknown,
  commit: unknown,
  entries: unknown,
): string | null {
  if (!isCount(prevIndex) || !isCount(prevTerm) || !isCount(commit)) return "prevIndex, prevTerm and commit must be counts";
  if (prevTerm > term) return `prevTerm ${prevTerm} above the request's term ${term}`;
  const positional = positionalCheck(prevIndex, prevTerm, "prev");
  if (positional !== null) return positional;
  if (!Array.isArray(entries)) return "entries must be an array";
  let lastTerm = prevTerm;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Entry;
    const err = entryError(e, prevIndex + 1 + i, lastTerm, term);
    if (err !== null) return `entries[${i}]: ${err}`;
    lastTerm = e.term;
  }
  return null;
}

/** An entry must sit at `index`, with a term between the previous entry's and the RPC's. */
function entryError(e: Entry, index: number, minTerm: number, maxTerm: number): string | null {
  if (typeof e !== "object" || e === null) return "not an object";
  if (e.index !== index) return `index ${String(e.index)} does not chain (expected ${index})`;
  if (!isCount(e.term) || e.term < 1) return `term must be a positive integer, got ${String(e.term)}`;
  if (e.term < minTerm) return `term ${e.term} below the previous entry's term ${minTerm}`;
  if (e.term > maxTerm) return `term ${e.term} above the request's term ${maxTerm}`;
  if (e.type !== EntryType.normal && e.type !== EntryType.noop) return `unknown entry type ${String(e.type)}`;
  if (!(e.data instanceof Uint8Array)) return "data must be a Uint8Array";
  if (!Number.isSafeInteger(index + 1)) return "index out of range";
  return null;
}

function snapshotChunkError(term: number, meta: unknown, position: unknown, data: unknown, done: unknown): string | null {
  const m = meta as { index?: unknown; term?: unknown; members?: unknown } | null;
  if (typeof m !== "object" || m === null) return "meta must be an object";
  if (!isCount(m.index) || !isCount(m.term) || m.index < 1) return "meta.index and meta.term must be counts, index ≥ 1";
  if (m.term < 1 || m.term > term) return `meta.term ${m.term} must be in [1, ${term}]`;
  if (!Array.isArray(m.members) || m.members.length === 0 || !m.members.every((x) => typeof x === "string")) {
    return "meta.members must be a non-empty array of ids";
  }
  if (!isCount(position)) return "position must be a count";
  if (!(data instanceof Uint8Array)) return "data must be a Uint8Array";
  return isBool(done) ? null : "done must be a boolean";
}

/** Index 0 is the empty prefix and has term 0; every later index has a positive term. */
function positionalCheck(index: number, term: number, what: string): string | null {
  if (index === 0 && term !== 0) return `${what}Index 0 must have ${what}Term 0, got ${term}`;
  if (index > 0 && term === 0) return `${what}Index ${index} must have a positive ${what}Term`;
  return null;
}

function isBool(v: unknown): v is boolean {
  return typeof v === "boolean";
}
