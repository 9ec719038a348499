/**
 * The data the Raft core consumes and produces. Everything here is plain readonly data with a
 * `type` field (STYLE.md rule 10); encoding to bytes lives only in codecs (raft/transport, storage).
 *
 * Index and term conventions (Raft paper §5): log indexes start at 1; index 0 with term 0 is the
 * empty prefix every log shares. Ranges are half-open, `[lo, hi)`, unless a name says otherwise.
 */

/** A replica's id within its group, e.g. "n1". Non-empty, at most 64 characters. */
export type ReplicaId = string;

/** Kinds of log entry. `noop` is the entry a new leader appends on election (Raft thesis §6.4). */
export const EntryType = { normal: "normal", noop: "noop" } as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One log entry. `data` is owned by the log once appended: nobody mutates it afterwards. */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** State that must be durable before the replica answers anything that depends on it. */
export interface HardState {
  readonly term: number;
  /** The candidate this replica voted for in `term`, or null. */
  readonly votedFor: ReplicaId | null;
  /** A commit index known to this replica: a hint, safe to persist lazily (it only speeds up restart). */
  readonly commit: number;
}

/** Identifies a snapshot: the state machine's state after applying every entry up to `index`. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly members: readonly ReplicaId[];
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

/* ---------------------------------------------------------------------------------------------
 * RPCs. Every RPC carries the sender's `term`, `from` and `to`. "RPC" here means one Raft message;
 * a transport may batch many in one frame.
 * ------------------------------------------------------------------------------------------- */

interface RpcBase {
  readonly term: number;
  readonly from: ReplicaId;
  readonly to: ReplicaId;
}

/**
 * RequestVote (Raft §5.2). With `preVote` the sender asks "would you vote for me at `term`?"
 * without either side changing term or vote (Raft thesis §9.6). `transfer` marks an election
 * started by TimeoutNow: receivers then disregard leader stickiness (thesis §3.10).
 */
export interface VoteRequest extends RpcBase {
  readonly type: "vote_request";
  readonly preVote: boolean;
  readonly transfer: boolean;
  readonly lastIndex: number;
  readonly lastTerm: number;
}

export interface VoteResponse extends RpcBase {
  readonly type: "vote_response";
  readonly preVote: boolean;
  readonly granted: boolean;
}

/**
 * AppendEntries (Raft §5.3). `entries` follow (`prevIndex`, `prevTerm`) contiguously.
 * `commit` is the leader's commit index.
 */
export interface AppendRequest extends RpcBase {
  readonly type: "append_request";
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

/**
 * The answer to an AppendRequest (or to a completed snapshot install). On success `index` is the
 * highest index the follower now durably holds in agreement with the leader. On rejection `index`
 * is the rejected `prevIndex`, and (`hintIndex`, `hintTerm`) is the follower's guess of the last
 * index that could match: the largest index ≤ min(prevIndex, lastIndex) whose term is ≤ prevTerm
 * (etcd-raft's fast backtracking; Raft paper §5.3 "optimization").
 */
export interface AppendResponse extends RpcBase {
  readonly type: "append_response";
  readonly success: boolean;
  readonly index: number;
  readonly hintIndex: number;
  readonly hintTerm: number;
}

/**
 * Heartbeat. `commit` is min(leader commit, the follower's known match), so a follower never
 * commits past what it is known to share with the leader. `readSeq` > 0 asks the follower to
 * confirm leadership for the ReadIndex requests numbered up to `readSeq` (thesis §6.4).
 */
export interface Heartbeat extends RpcBase {
  readonly type: "heartbeat";
  readonly commit: number;
  readonly readSeq: number;
}

export interface HeartbeatResponse extends RpcBase {
  readonly type: "heartbeat_response";
  readonly readSeq: number;
}

/**
 * One chunk of a snapshot. Chunks are sent in order starting at `position` 0; `done` marks the
 * last. Bytes `[position, position + data.length)` of the snapshot identified by `meta`.
 */
export interface SnapshotChunk extends RpcBase {
  readonly type: "snapshot_chunk";
  readonly meta: SnapshotMeta;
  readonly position: number;
  readonly data: Uint8Array;
  readonly done: boolean;
}

/**
 * Acknowledges snapshot chunks. `position` is the next byte the follower expects (so a chunk can
 * be resent after loss). `reject` asks the leader to restart the transfer from position 0. The
 * final acknowledgement of an installed snapshot is an AppendResponse with index = meta.index.
 */
export interface SnapshotResponse extends RpcBase {
  readonly type: "snapshot_response";
  readonly snapshotIndex: number;
  readonly position: number;
  readonly reject: boolean;
}

/** TimeoutNow (thesis §3.10): the leader tells a caught-up follower to start an election now. */
export interface TimeoutNow extends RpcBase {
  readonly type: "timeout_now";
}

export type Rpc =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | SnapshotChunk
  | SnapshotResponse
  | TimeoutNow;

export type RpcType = Rpc["type"];

export const rpcTypes: readonly RpcType[] = [
  "vote_request",
  "vote_response",
  "append_request",
  "append_response",
  "heartbeat",
  "heartbeat_response",
  "snapshot_chunk",
  "snapshot_response",
  "timeout_now",
];

/* ---------------------------------------------------------------------------------------------
 * Roles, results and the Ready batch.
 * ------------------------------------------------------------------------------------------- */

export const Role = {
  follower: "follower",
  preCandidate: "pre_candidate",
  candidate: "candidate",
  leader: "leader",
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Volatile state the driver may want to observe (for metrics, routing and logs). */
export interface SoftState {
  readonly role: Role;
  readonly leader: ReplicaId | null;
  readonly term: number;
}

/** Why a request was refused. Expected failures are values (STYLE.md rule 7). */
export type RefusalReason =
  | "not_leader"
  | "transferring"
  | "too_large"
  | "backpressure"
  | "malformed"
  | "unknown_peer";

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | {
      readonly ok: false;
      readonly reason: Extract<RefusalReason, "not_leader" | "transferring" | "too_large" | "backpressure">;
      readonly leaderHint: ReplicaId | null;
    };

export type StepResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: "malformed" | "unknown_peer"; readonly detail: string };

/** The answer of `readIndex` (R = "not_leader" | "backpressure") or `transferLeadership` (R = "not_leader" | "unknown_peer"). */
export type RequestResult<R extends RefusalReason = RefusalReason> =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: R; readonly leaderHint: ReplicaId | null };

/**
 * The outcome of a ReadIndex request. With ok, the read may be served once the local state
 * machine has applied `index`. `ctx` is the caller's opaque id from `readIndex(ctx)`.
 */
export type ReadState =
  | { readonly ctx: number; readonly ok: true; readonly index: number }
  | { readonly ctx: number; readonly ok: false; readonly reason: "lost_leadership" };

/**
 * What the driver must do now, in this order (DESIGN.md §4):
 *   1. send `messages` (they do not depend on this batch being durable);
 *   2. durably write `snapshot` (if any), then `entries` (if the first entry's index is ≤ the
 *      store's last index, the store first drops its suffix from that index: a follower
 *      truncating a divergent tail), then `hardState` (if any) — one write and one fsync;
 *   3. only after that fsync, send `messagesAfterSync` (vote grants and append acks);
 *   4. apply `committedEntries` in order (they are all covered by the fsync of step 2 or earlier);
 *   5. hand `readStates` to waiting readers;
 *   6. call `advance()`.
 * No other call into the core is allowed between `ready()` and `advance()`.
 */
export interface Ready {
  readonly softState: SoftState;
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Rpc[];
  readonly messagesAfterSync: readonly Rpc[];
  readonly readStates: readonly ReadState[];
}

/* ---------------------------------------------------------------------------------------------
 * The log store contract.
 * ------------------------------------------------------------------------------------------- */

/**
 * The durable log as the core sees it: read-only (STYLE.md, from etcd-raft's Storage). The core
 * never writes it; the driver writes what a Ready says and then calls `advance()`.
 *
 * Holds entries [firstIndex(), lastIndex()], and knows the term of firstIndex() - 1 (the index of
 * the latest snapshot, or 0). `lastIndex() === firstIndex() - 1` means no entries.
 * Reads are synchronous; a real store serves recent entries from a cache.
 */
export interface LogStore {
  /** The hard state and members as of the last durable write (used once, at core start). */
  initialState(): { readonly hardState: HardState; readonly members: readonly ReplicaId[] };
  firstIndex(): number;
  lastIndex(): number;
  /** Term of `index` for index in [firstIndex() - 1, lastIndex()]; undefined outside that range. */
  term(index: number): number | undefined;
  /**
   * Entries [lo, hi) with firstIndex() ≤ lo ≤ hi ≤ lastIndex() + 1. Returns at least one entry
   * when lo < hi, then stops before the total `data` bytes would exceed `maxBytes`.
   * The returned array is the caller's; the entries are shared and must not be mutated.
   */
  entries(lo: number, hi: number, maxBytes: number): readonly Entry[];
  /** The latest snapshot, or null when none was ever taken or installed. */
  snapshot(): Snapshot | null;
}

/**
 * The write side a driver (raft/replica, the simulator) uses. Writes are buffered until `sync()`;
 * nothing may be reported durable before `sync()` returns. A failed sync throws and is fatal.
 */
export interface DurableLogStore extends LogStore {
  /** Appends entries; if entries[0].index ≤ lastIndex() the suffix from there is dropped first. */
  append(entries: readonly Entry[]): void;
  setHardState(hardState: HardState): void;
  /** Replaces the whole log with `snapshot` (a snapshot received from the leader). */
  installSnapshot(snapshot: Snapshot): void;
  /**
   * Records a snapshot the local state machine took at an applied index, and drops the entries
   * ≤ `compactTo` (which must be ≤ snapshot.meta.index). Entries above stay.
   */
  saveSnapshot(snapshot: Snapshot, compactTo: number): void;
  /** Makes every write since the last sync durable. One fsync (group commit). */
  sync(): void;
}
