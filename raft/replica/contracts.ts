import type { Entry, ReplicaId, Rpc, Snapshot, SnapshotMeta } from "../core/types.js";

/**
 * The replicated state machine. It must be deterministic: the same entries in the same order
 * give the same state and results on every replica (DESIGN.md §5: no clocks while applying).
 */
export interface StateMachine {
  /**
   * Applies one committed entry (noop entries included, so the machine sees every index).
   * Returns the result handed to the proposer, if this replica proposed it. `wantResult` is
   * false when no proposer waits here (a follower, or a leader applying an earlier leader's
   * entry): the machine must change its state exactly the same way, but may skip encoding the
   * result and return an empty array.
   */
  apply(entry: Entry, wantResult?: boolean): Uint8Array;
  /** The state after the last applied entry, as bytes. */
  snapshot(): Uint8Array;
  /** Replaces the whole state with a snapshot's. */
  restore(snapshot: Snapshot): void;
}

/**
 * How a replica talks to its peers. `send` never blocks and may drop (Raft tolerates loss);
 * a transport may batch several RPCs for one peer into one frame.
 */
export interface Transport {
  send(rpcs: readonly Rpc[]): void;
  onReceive(handler: (rpcs: readonly Rpc[]) => void): void;
  /** Called when an established connection to `peer` is lost. */
  onPeerDown(handler: (peer: ReplicaId) => void): void;
}

/**
 * An optional extension of DurableLogStore (storage's CommitLog has it): `sync()` with the
 * fdatasync off the event loop. `done` runs exactly once, possibly before the call returns, with
 * null once every write before the call is durable, or with the (fatal) error. No write may be
 * issued to the store until `done` has run.
 */
export interface AsyncSyncLogStore {
  syncAsync?(done: (err: unknown) => void): void;
}

export type ProposalOutcome =
  | { readonly ok: true; readonly index: number; readonly term: number; readonly result: Uint8Array }
  | {
      readonly ok: false;
      /**
       * not_leader / transferring / too_large / backpressure: refused before it was proposed, so
       * it definitely did not happen. overwritten: a different entry was committed at its index,
       * so it definitely did not happen. stopped: the replica stopped first; leader_changed: this
       * replica stopped being the leader first (the entry may still commit under the next one);
       * unknown: a snapshot replaced the log around it. After stopped, leader_changed or unknown
       * the outcome is not known.
       */
      readonly reason: "not_leader" | "transferring" | "too_large" | "backpressure" | "overwritten" | "stopped" | "leader_changed" | "unknown";
      readonly leaderHint: ReplicaId | null;
    };

export type ReadOutcome =
  | { readonly ok: true; readonly index: number }
  | { readonly ok: false; readonly reason: "not_leader" | "lost_leadership" | "backpressure" | "stopped"; readonly leaderHint: ReplicaId | null };

export interface SnapshotPolicy {
  /**
   * Take a snapshot after this many entries, plus a random part of up to half as many (drawn per
   * snapshot from the replica's Prng), were applied since the last one: replicas then rarely
   * stall on a snapshot at the same moment.
   */
  readonly everyEntries: number;
  /** Entries kept below the snapshot index, so briefly lagging followers need no snapshot. */
  readonly keepEntries: number;
}

export type { SnapshotMeta };
