import { assert } from "../raft/base/assert.js";
import type { Entry, Snapshot } from "../raft/core/types.js";
import type { StateMachine } from "../raft/replica/contracts.js";
import { decodeKvCommand, encodeKvApplyResult, type KvApplyResult, type KvCommand, type KvOutcome } from "./kv_entry.js";
import { KvStore, type KvLimits, type KvSnapshotJson } from "./kv_store.js";
import { decodeLedgerSnapshot, encodeLedgerSnapshot, isBinaryLedgerSnapshot } from "./ledger_snapshot.js";
import { ApplyKind, decodeClientEntry, encodeApplyResult, EntryFormatError, kvEntryVersion, type ApplyResult, type ClientEntry } from "./ledger_entry.js";

/**
 * The ledger's state machine. The log is the data: entries stay in the CommitLog and are read
 * back by index. What the machine keeps is the deduplication table, so that a client's retry is
 * applied once and answered with the original index.
 *
 * Exactly-once design (a retry carries the same (clientId, sequence) as the original):
 *   (a) A leader accepts Appends only once it has applied an entry of its own term (its election
 *       no-op; `appliedTerm` below). Every entry it holds below the no-op was committed by an
 *       earlier leader and is therefore already in this table, so its pre-proposal `lookup` sees
 *       every earlier acknowledged append. (Entries of earlier terms it does not hold were never
 *       committed and will be overwritten: re-proposing them is correct.)
 *   (b) A retry of a proposal still in flight on the same leader attaches to the pending one
 *       (ledger_service.ts keeps the map), so it does not create a second entry.
 *   (c) A duplicate that still reaches apply — a retry proposed while the original was in flight
 *       on another path — is a deterministic no-op on every replica: the result says "duplicate
 *       of index X", and Get of its index reports duplicateOf = X.
 *
 * Bounds (deterministic, so every replica evicts the same records at the same index):
 *   - per client, the `sequencesPerClientMax` highest applied sequences are kept with their index
 *     and term; evicting always drops the lowest, and `floor` remembers the highest evicted, so a
 *     sequence ≤ floor that is not kept is "expired" (it may or may not have been applied: the
 *     client must report its outcome as unknown). A client must keep fewer than that many appends
 *     in flight (LedgerClient does);
 *   - at most `clientsMax` clients, the least recently applied evicted first (Map order is apply
 *     order). A client evicted and then retrying would be applied twice: the bound is sized far
 *     above the number of concurrently active producers;
 *   - at most `duplicatesMax` remembered duplicate entries (for Get's duplicateOf).
 *
 * KV commands (version 2, kv_entry.ts) go through the same table: their record also keeps the
 * command's outcome (written / cas mismatch / full), so a retry is answered with the original's
 * outcome; the map itself is `kv` (kv_store.ts). An identity first used by a ledger append and
 * then by a KV command (or the reverse) is a client bug: KV answers it as an identity clash.
 */
export interface DedupLimits {
  readonly clientsMax: number;
  readonly sequencesPerClientMax: number;
  readonly duplicatesMax: number;
}

export const dedupLimitsDefaults: DedupLimits = { clientsMax: 8192, sequencesPerClientMax: 64, duplicatesMax: 4096 };

interface Applied {
  readonly index: number;
  readonly term: number;
  /** Only for KV commands: what the command did. */
  readonly outcome?: KvOutcome;
}

interface ClientRecord {
  /** Highest sequence evicted from `sequences` (0: none). */
  floor: number;
  /** sequence → where it was applied; at most sequencesPerClientMax. */
  readonly sequences: Map<number, Applied>;
}

export type Lookup =
  | { readonly kind: "new" }
  | { readonly kind: "duplicate"; readonly index: number; readonly term: number; readonly outcome?: KvOutcome }
  | { readonly kind: "expired"; readonly floor: number };

/**
 * Snapshots are written in the binary version 3 (ledger_snapshot.ts); restore also reads the
 * JSON versions 1 (before the KV map) and 2 that earlier releases wrote, and refuses others.
 */
const jsonSnapshotVersions = [1, 2];

interface SnapshotJson {
  readonly v: number;
  readonly appliedIndex: number;
  readonly appliedTerm: number;
  /** [clientId, floor, [sequence, index, term, KV outcome?][]], least recently applied first. */
  readonly clients: readonly (readonly [string, number, readonly (readonly [number, number, number, KvOutcome?])[]])[];
  /** [index, originalIndex], oldest first. */
  readonly duplicates: readonly (readonly [number, number])[];
  /** Version 2 on: the KV map. */
  readonly kv?: KvSnapshotJson;
}

/** What apply returns when no proposer waits for the result (StateMachine.apply's wantResult). */
const noResult = new Uint8Array(0);

export class LedgerStateMachine implements StateMachine {
  private readonly limits: DedupLimits;
  /** The KV map of dledger.v1.Kv; changed only by apply and restore. */
  readonly kv: KvStore;
  private clients = new Map<string, ClientRecord>();
  private duplicates = new Map<number, number>();
  private appliedIndexValue = 0;
  private appliedTermValue = 0;

  constructor(limits: Partial<DedupLimits> = {}, kvLimits: Partial<KvLimits> = {}) {
    this.limits = { ...dedupLimitsDefaults, ...limits };
    this.kv = new KvStore(kvLimits);
    for (const [k, v] of Object.entries(this.limits)) assert(Number.isSafeInteger(v) && v > 0, `${k} (${v}) must be a positive integer`);
  }

  /** Index of the last applied entry (0 before any). */
  get appliedIndex(): number {
    return this.appliedIndexValue;
  }

  /** Term of the last applied entry: a leader is ready for Appends once this equals its term. */
  get appliedTerm(): number {
    return this.appliedTermValue;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  apply(entry: Entry, wantResult = true): Uint8Array {
    assert(entry.index === this.appliedIndexValue + 1, `apply ${entry.index} after ${this.appliedIndexValue}`);
    this.appliedIndexValue = entry.index;
    this.appliedTermValue = entry.term;
    if (entry.type === "noop") return wantResult ? encodeApplyResult({ kind: ApplyKind.noop, index: entry.index, term: entry.term }) : noResult;
    if (entry.data[0] === kvEntryVersion) return this.applyKv(entry, wantResult);
    let e: ClientEntry;
    try {
      e = decodeClientEntry(entry.data);
    } catch (err) {
      // The leader validates before proposing, so only a bug gets here; applying it as a no-op
      // keeps every replica identical instead of stopping the whole group.
      if (!(err instanceof EntryFormatError)) throw err;
      return wantResult ? encodeApplyResult({ kind: ApplyKind.malformed, index: entry.index, term: entry.term }) : noResult;
    }
    const r = this.applyClientEntry(entry, e);
    return wantResult ? encodeApplyResult(r) : noResult;
  }

  private applyClientEntry(entry: Entry, e: ClientEntry): ApplyResult {
    const here: ApplyResult = { kind: ApplyKind.applied, index: entry.index, term: entry.term };
    if (e.clientId === "") return here;
    const found = this.lookup(e.clientId, e.sequence);
    if (found.kind === "duplicate") {
      this.rememberDuplicate(entry.index, found.index);
      return { kind: ApplyKind.duplicate, index: found.index, term: found.term };
    }
    if (found.kind === "expired") {
      this.rememberDuplicate(entry.index, 0);
      return { kind: ApplyKind.expired, index: entry.index, term: entry.term };
    }
    this.record(e.clientId, e.sequence, { index: entry.index, term: entry.term });
    return here;
  }

  /**
   * A KV command: the dedup rules of a client entry, then the map. Every replica reaches the
   * same answer, so a malformed, duplicate or refused command is a deterministic no-op.
   */
  private applyKv(entry: Entry, wantResult: boolean): Uint8Array {
    const encode = (r: KvApplyResult): Uint8Array => (wantResult ? encodeKvApplyResult(r) : noResult);
    const at = { index: entry.index, term: entry.term };
    let c: KvCommand;
    try {
      c = decodeKvCommand(entry.data);
    } catch (err) {
      if (!(err instanceof EntryFormatError)) throw err;
      return encode({ kind: "malformed", ...at });
    }
    if (c.clientId !== "") {
      const found = this.lookup(c.clientId, c.sequence);
      if (found.kind === "duplicate") {
        this.rememberDuplicate(entry.index, found.index);
        if (found.outcome === undefined) return encode({ kind: "identityClash", ...at });
        return encode({ kind: "duplicate", outcome: found.outcome, index: found.index, term: found.term, current: null });
      }
      if (found.kind === "expired") {
        this.rememberDuplicate(entry.index, 0);
        return encode({ kind: "expired", ...at });
      }
    }
    const x = this.kv.execute(c);
    if (c.clientId !== "") this.record(c.clientId, c.sequence, { ...at, outcome: x.outcome });
    return encode({ kind: "done", outcome: x.outcome, ...at, current: x.current });
  }

  /** Whether (clientId, sequence) was applied (and, for a KV command, its outcome). Pure: does not touch recency. */
  lookup(clientId: string, sequence: number): Lookup {
    const c = this.clients.get(clientId);
    if (c === undefined) return { kind: "new" };
    const hit = c.sequences.get(sequence);
    if (hit !== undefined) return { kind: "duplicate", index: hit.index, term: hit.term, ...(hit.outcome === undefined ? {} : { outcome: hit.outcome }) };
    if (sequence <= c.floor) return { kind: "expired", floor: c.floor };
    return { kind: "new" };
  }

  /**
   * For Get: the original index when the entry at `index` was applied as a duplicate (or 0 when
   * it was an expired retry, or it is not remembered). undefined when it was not a duplicate.
   */
  duplicateOf(index: number): number | undefined {
    return this.duplicates.get(index);
  }

  private record(clientId: string, sequence: number, at: Applied): void {
    let c = this.clients.get(clientId);
    if (c === undefined) c = { floor: 0, sequences: new Map() };
    else this.clients.delete(clientId);
    // Re-inserting moves the client to the end: Map order is least recently applied first.
    this.clients.set(clientId, c);
    c.sequences.set(sequence, at);
    if (c.sequences.size > this.limits.sequencesPerClientMax) {
      let lowest = Infinity;
      for (const s of c.sequences.keys()) lowest = Math.min(lowest, s);
      c.sequences.delete(lowest);
      c.floor = Math.max(c.floor, lowest);
    }
    if (this.clients.size > this.limits.clientsMax) {
      const oldest = this.clients.keys().next();
      if (oldest.done !== true) this.clients.delete(oldest.value);
    }
  }

  private rememberDuplicate(index: number, originalIndex: number): void {
    this.duplicates.set(index, originalIndex);
    if (this.duplicates.size > this.limits.duplicatesMax) {
      const oldest = this.duplicates.keys().next();
      if (oldest.done !== true) this.duplicates.delete(oldest.value);
    }
  }

  snapshot(): Uint8Array {
    return encodeLedgerSnapshot({ appliedIndex: this.appliedIndexValue, appliedTerm: this.appliedTermValue, clients: this.clients, duplicates: this.duplicates, kv: this.kv.entries() });
  }

  restore(snapshot: Snapshot): void {
    if (isBinaryLedgerSnapshot(snapshot.data)) {
      const s = decodeLedgerSnapshot(snapshot.data);
      assert(s.appliedIndex === snapshot.meta.index, `ledger snapshot at ${s.appliedIndex}, meta says ${snapshot.meta.index}`);
      this.kv.restoreMap(s.kv);
      this.clients = s.clients;
      this.duplicates = s.duplicates;
      this.appliedIndexValue = s.appliedIndex;
      this.appliedTermValue = s.appliedTerm;
      return;
    }
    this.restoreJson(snapshot);
  }

  /** Versions 1 and 2, as earlier releases wrote them. */
  private restoreJson(snapshot: Snapshot): void {
    const json = JSON.parse(new TextDecoder().decode(snapshot.data)) as SnapshotJson;
    assert(jsonSnapshotVersions.includes(json.v), `ledger snapshot version ${json.v}, expected 1, 2 or 3`);
    assert(json.appliedIndex === snapshot.meta.index, `ledger snapshot at ${json.appliedIndex}, meta says ${snapshot.meta.index}`);
    const clients = new Map<string, ClientRecord>();
    for (const [id, floor, seqs] of json.clients) {
      clients.set(id, { floor, sequences: new Map(seqs.map(([s, index, term, outcome]) => [s, outcome === undefined ? { index, term } : { index, term, outcome }])) });
    }
    this.kv.restoreJson(json.kv);
    this.clients = clients;
    this.duplicates = new Map(json.duplicates);
    this.appliedIndexValue = json.appliedIndex;
    this.appliedTermValue = json.appliedTerm;
  }
}
