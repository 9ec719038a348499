import * as grpc from "@grpc/grpc-js";
import type { ReplicaId } from "../../raft/core/types.js";
import type { ProposalOutcome } from "../../raft/replica/contracts.js";
import type { Replica } from "../../raft/replica/replica.js";
import type { ErrorReason } from "../api/ledger_messages.js";
import type { LedgerFailure } from "./ledger_service.js";

/**
 * The refusals that every write API of a replica shares (dledger.v1.Ledger's Append and
 * dledger.v1.Kv's Put/Cas): whether this replica may take a write now, and what a failed Raft
 * proposal means for the client. One table, so the two services cannot drift apart.
 */

/** Builds a failure with the replica's current leader hint (LedgerService.failure). */
export type FailureOf = (code: grpc.status, reason: ErrorReason, message: string) => LedgerFailure;

/**
 * Rule (a) of ledger_state_machine.ts: only a leader that has applied an entry of its own term
 * takes writes, because until then its dedup table may miss entries it already holds.
 * null when ready.
 */
export function leaderReadiness(id: ReplicaId, replica: Pick<Replica, "status">, appliedTerm: number, failure: FailureOf): LedgerFailure | null {
  const s = replica.status();
  if (s.role !== "leader") return failure(grpc.status.FAILED_PRECONDITION, "not_leader", `replica ${id} is not the leader (role ${s.role})`);
  if (appliedTerm !== s.term) return failure(grpc.status.UNAVAILABLE, "leader_not_ready", `leader ${id} has not applied its term-${s.term} no-op yet`);
  return null;
}

/**
 * A proposal that did not apply, as a typed failure. Refused before proposing or overwritten:
 * outcome "failed"; stopped or replaced by a snapshot: outcome "unknown" (it may have applied).
 */
export function proposalFailure(id: ReplicaId, replica: Pick<Replica, "status">, o: Extract<ProposalOutcome, { ok: false }>, failure: FailureOf): LedgerFailure {
  const f = (code: grpc.status, reason: ErrorReason, message: string, unknown = false): LedgerFailure => ({
    ...failure(code, reason, message),
    outcomeUnknown: unknown,
    leaderId: o.leaderHint ?? replica.status().leader,
  });
  switch (o.reason) {
    case "not_leader":
      return f(grpc.status.FAILED_PRECONDITION, "not_leader", `replica ${id} is not the leader`);
    case "transferring":
      return f(grpc.status.UNAVAILABLE, "transferring", "leadership is being transferred; retry");
    case "too_large":
      return f(grpc.status.INVALID_ARGUMENT, "too_large", "entry exceeds the Raft core's entryBytesMax");
    case "backpressure":
      return f(grpc.status.RESOURCE_EXHAUSTED, "backpressure", "too many uncommitted bytes on the leader; retry later");
    case "overwritten":
      return f(grpc.status.ABORTED, "overwritten", "a new leader committed another entry at this index; it was not applied");
    case "stopped":
      return f(grpc.status.UNAVAILABLE, "stopped", "the replica stopped before the entry was applied", true);
    case "leader_changed":
      return f(grpc.status.UNAVAILABLE, "leader_changed", `replica ${id} stopped being the leader before the entry was applied; it may still be`, true);
    case "unknown":
      return f(grpc.status.UNAVAILABLE, "outcome_unknown", "a snapshot replaced the log around the entry", true);
  }
}
