import * as grpc from "@grpc/grpc-js";
import type { Clock } from "../../raft/base/clock.js";
import type { Logger } from "../../raft/base/logger.js";
import type { LogStore, ReplicaId } from "../../raft/core/types.js";
import type { ProposalOutcome } from "../../raft/replica/contracts.js";
import type { Replica } from "../../raft/replica/replica.js";
import {
  errorKeys,
  schemas,
  type AppendRequest,
  type AppendResponse,
  type AppendResult,
  type ErrorReason,
  type LedgerEntry,
  type MetadataResponse,
  type ReadResponse,
  type TransferLeadershipResponse,
} from "../api/ledger_messages.js";
import { decodeMessage, ProtoDecodeError, type MessageSchema } from "../api/proto_wire.js";
import { ApplyKind, clientIdBytesMax, decodeApplyResult, decodeClientEntry, encodeClientEntry, entryOverheadBytes } from "../ledger_entry.js";
import type { LedgerStateMachine } from "../ledger_state_machine.js";
import { leaderReadiness, proposalFailure } from "./replica_refusals.js";

/** A refused or failed request: becomes a gRPC status with the trailers of ledger.proto. */
export interface LedgerFailure {
  readonly code: grpc.status;
  readonly reason: ErrorReason;
  readonly message: string;
  /** True when the request may have taken effect (dledger-outcome: unknown). */
  readonly outcomeUnknown: boolean;
  readonly leaderId: ReplicaId | null;
}

export type Answer<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly failure: LedgerFailure };

export interface LedgerServiceDeps {
  readonly group: string;
  readonly id: ReplicaId;
  readonly members: readonly ReplicaId[];
  /** Client addresses by member, for leader hints. */
  readonly clientAddresses: Readonly<Record<ReplicaId, string>>;
  readonly replica: Pick<Replica, "propose" | "readBarrier" | "transferLeadership" | "status"> & Partial<Pick<Replica, "onStopped">>;
  readonly stateMachine: LedgerStateMachine;
  readonly logStore: Pick<LogStore, "entries" | "firstIndex">;
  /** Largest encoded entry (header + body) an Append may carry; the Raft core's entryBytesMax. */
  readonly entryBytesMax: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Propose-to-applied latency of each acknowledged append, in ms (metrics). */
  readonly onAppendApplied?: (ms: number) => void;
}

/** Requests one AppendStream call may carry; more are refused (RESOURCE_EXHAUSTED). */
export const streamRequestsMax = 100_000;
/** Appends one AppendSession may have unanswered at once; more are answered backpressure. */
export const sessionAppendsInFlightMax = 16_384;
/** AppendSessions open at once on one replica; more are refused (RESOURCE_EXHAUSTED). */
export const sessionsOpenMax = 4096;
/** How long TransferLeadership waits to see the new leader before answering "unknown". */
const transferWaitMs = 3000;
const transferPollMs = 10;

/**
 * The dledger.v1.Ledger service of one replica (ledger.proto): validates requests at the gateway,
 * enforces the exactly-once rules (a) and (b) of ledger_state_machine.ts, and maps every
 * expected failure to a typed status with a leader hint.
 */
export class LedgerService {
  private readonly deps: LedgerServiceDeps;
  private readonly log: Logger;
  /** Proposals in flight by "clientId\0sequence": a retry attaches to the original (rule b). */
  private readonly pending = new Map<string, Promise<Answer<AppendResponse>>>();
  /** Enders of the open AppendSessions, called when the replica stops. */
  private readonly sessions = new Set<() => void>();
  private stopped = false;

  constructor(deps: LedgerServiceDeps) {
    this.deps = deps;
    this.log = deps.logger.child({ component: "ledger_service" });
    deps.replica.onStopped?.(() => {
      this.stopped = true;
      for (const end of [...this.sessions]) end();
      this.sessions.clear();
    });
  }

  /**
   * Registers an open AppendSession: `end` is called when the replica stops (it then has no
   * more answers to give, and a graceful server shutdown waits for open streams). Returns the
   * deregistration, or null when no session may open (the replica stopped, or too many are open).
   */
  openSession(end: () => void): (() => void) | null {
    if (this.stopped || this.sessions.size >= sessionsOpenMax) return null;
    this.sessions.add(end);
    return () => this.sessions.delete(end);
  }

  /** Appends a client entry; resolves when it is applied here or definitely/possibly failed. */
  append(req: AppendRequest): Promise<Answer<AppendResponse>> {
    const invalid = this.validateAppend(req);
    if (invalid !== null) return Promise.resolve(fail(invalid));
    const notReady = this.leaderReadiness();
    if (notReady !== null) return Promise.resolve(fail(notReady));
    if (req.clientId === "") return this.propose(req);
    const seen = this.deps.stateMachine.lookup(req.clientId, req.sequence);
    if (seen.kind === "duplicate") return Promise.resolve({ ok: true, value: { index: seen.index, term: seen.term, duplicate: true } });
    if (seen.kind === "expired") return Promise.resolve(fail(this.expired(req, seen.floor)));
    const key = `${req.clientId}\u0000${req.sequence}`;
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) return inFlight;
    const p = this.propose(req).finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  private validateAppend(req: AppendRequest): LedgerFailure | null {
    const idBytes = Buffer.byteLength(req.clientId, "utf8");
    const bad = (message: string): LedgerFailure => this.failure(grpc.status.INVALID_ARGUMENT, "bad_request", message);
    if (idBytes > clientIdBytesMax) return bad(`client_id of ${idBytes} bytes exceeds ${clientIdBytesMax}`);
    if (idBytes === 0 && req.sequence !== 0) return bad(`sequence (${req.sequence}) must be 0 without a client_id`);
    if (idBytes > 0 && req.sequence === 0) return bad("sequence must be > 0 with a client_id");
    const bytes = entryOverheadBytes(req.clientId) + req.body.byteLength;
    if (bytes > this.deps.entryBytesMax) {
      return this.failure(grpc.status.INVALID_ARGUMENT, "too_large", `entry of ${bytes} bytes (body ${req.body.byteLength}) exceeds entryBytesMax (${this.deps.entryBytesMax})`);
    }
    return null;
  }

  /** Whether this replica is a leader ready for Appends now (rule a). */
  acceptsAppends(): boolean {
    return this.leaderReadiness() === null;
  }

  /** Rule (a): only a leader that has applied an entry of its own term takes Appends. */
  private leaderReadiness(): LedgerFailure | null {
    return leaderReadiness(this.deps.id, this.deps.replica, this.deps.stateMachine.appliedTerm, this.failure.bind(this));
  }

  private expired(req: AppendRequest, floor: number): LedgerFailure {
    const message = `sequence ${req.sequence} of client ${req.clientId} is at or below its dedup window floor ${floor}: whether it was applied is unknown`;
    return { ...this.failure(grpc.status.FAILED_PRECONDITION, "sequence_expired", message), outcomeUnknown: true };
  }

  private async propose(req: AppendRequest): Promise<Answer<AppendResponse>> {
    const t0 = this.deps.clock.nowMs();
    const outcome = await this.deps.replica.propose(encodeClientEntry(req));
    if (!outcome.ok) return fail(this.proposalFailure(outcome));
    const r = decodeApplyResult(outcome.result);
    switch (r.kind) {
      case ApplyKind.applied:
        this.deps.onAppendApplied?.(this.deps.clock.nowMs() - t0);
        return { ok: true, value: { index: r.index, term: r.term, duplicate: false } };
      case ApplyKind.duplicate:
        return { ok: true, value: { index: r.index, term: r.term, duplicate: true } };
      case ApplyKind.expired:
        return fail(this.expired(req, 0));
      default:
        this.log.error({ kind: r.kind, index: outcome.index }, "append_applied_as_malformed");
        return fail(this.failure(grpc.status.INTERNAL, "malformed", `entry at ${outcome.index} applied as kind ${r.kind}`));
    }
  }

  private proposalFailure(o: Extract<ProposalOutcome, { ok: false }>): LedgerFailure {
    return proposalFailure(this.deps.id, this.deps.replica, o, this.failure.bind(this));
  }

  /** A committed entry from this replica's log (any role). */
  get(index: number): Answer<LedgerEntry> {
    if (index < 1) return fail(this.failure(grpc.status.INVALID_ARGUMENT, "bad_request", `index (${index}) must be ≥ 1`));
    const first = this.deps.logStore.firstIndex();
    if (index < first) return fail(this.failure(grpc.status.NOT_FOUND, "compacted", `index ${index} is compacted on ${this.deps.id} (first index ${first})`));
    const applied = this.deps.stateMachine.appliedIndex;
    if (index > applied) {
      return fail(this.failure(grpc.status.OUT_OF_RANGE, "not_committed", `index ${index} is beyond ${this.deps.id}'s applied index ${applied}`));
    }
    const e = this.deps.logStore.entries(index, index + 1, Number.MAX_SAFE_INTEGER)[0];
    if (e === undefined) throw new Error(`log returned no entry at ${index} in [${first}, ${applied}]`);
    const duplicateOf = this.deps.stateMachine.duplicateOf(index) ?? 0;
    if (e.type === "noop") return { ok: true, value: { index, term: e.term, noop: true, clientId: "", sequence: 0, body: new Uint8Array(0), duplicateOf: 0 } };
    const c = decodeClientEntry(e.data);
    return { ok: true, value: { index, term: e.term, noop: false, clientId: c.clientId, sequence: c.sequence, body: c.body, duplicateOf } };
  }

  /** Linearizable read (ReadIndex): the read index, and the entry at `index` if asked. */
  async read(index: number): Promise<Answer<ReadResponse>> {
    const r = await this.deps.replica.readBarrier();
    if (!r.ok) {
      const code = r.reason === "backpressure" ? grpc.status.RESOURCE_EXHAUSTED : r.reason === "stopped" ? grpc.status.UNAVAILABLE : grpc.status.FAILED_PRECONDITION;
      const reason: ErrorReason = r.reason === "backpressure" ? "backpressure" : r.reason === "stopped" ? "stopped" : "not_leader";
      return fail({ ...this.failure(code, reason, `read refused: ${r.reason}`), leaderId: r.leaderHint ?? this.deps.replica.status().leader });
    }
    if (index === 0 || index > r.index) return { ok: true, value: { readIndex: r.index, entry: null } };
    const e = this.get(index);
    return e.ok ? { ok: true, value: { readIndex: r.index, entry: e.value } } : e;
  }

  metadata(): MetadataResponse {
    const s = this.deps.replica.status();
    return {
      group: this.deps.group,
      replicaId: this.deps.id,
      role: s.role,
      leaderId: s.leader ?? "",
      leaderAddress: s.leader === null ? "" : (this.deps.clientAddresses[s.leader] ?? ""),
      term: s.term,
      members: this.deps.members.map((id) => ({ id, clientAddress: this.deps.clientAddresses[id] ?? "" })),
      commitIndex: s.commit,
      appliedIndex: this.deps.stateMachine.appliedIndex,
      firstIndex: s.firstIndex,
      lastIndex: s.lastIndex,
    };
  }

  /** Starts a transfer on the leader and waits (bounded) to see `to` lead. */
  async transferLeadership(to: string): Promise<Answer<TransferLeadershipResponse>> {
    if (!this.deps.members.includes(to)) {
      return fail(this.failure(grpc.status.INVALID_ARGUMENT, "bad_request", `to (${JSON.stringify(to)}) must be one of ${this.deps.members.join(", ")}`));
    }
    const r = this.deps.replica.transferLeadership(to);
    if (!r.ok) {
      const code = r.reason === "not_leader" ? grpc.status.FAILED_PRECONDITION : grpc.status.UNAVAILABLE;
      const reason: ErrorReason = r.reason === "not_leader" ? "not_leader" : "transferring";
      return fail({ ...this.failure(code, reason, `transfer to ${to} refused: ${r.reason}`), leaderId: r.leaderHint ?? this.deps.replica.status().leader });
    }
    this.log.info({ to }, "leadership_transfer_requested");
    for (let waited = 0; waited <= transferWaitMs; waited += transferPollMs) {
      const s = this.deps.replica.status();
      if (s.leader === to) return { ok: true, value: { leaderId: to, term: s.term } };
      await new Promise<void>((resolve) => this.deps.clock.setTimer(transferPollMs, resolve));
    }
    return fail({ ...this.failure(grpc.status.UNAVAILABLE, "transferring", `${to} did not become leader within ${transferWaitMs} ms`), outcomeUnknown: true });
  }

  /** A failure with this replica's current leader hint. */
  failure(code: grpc.status, reason: ErrorReason, message: string): LedgerFailure {
    return { code, reason, message, outcomeUnknown: false, leaderId: this.deps.replica.status().leader };
  }

  /** The status object grpc-js sends for `f`, trailers included. */
  toStatus(f: LedgerFailure): Partial<grpc.StatusObject> {
    const md = new grpc.Metadata();
    md.set(errorKeys.reason, f.reason);
    md.set(errorKeys.outcome, f.outcomeUnknown ? "unknown" : "failed");
    if (f.leaderId !== null) {
      md.set(errorKeys.leader, f.leaderId);
      const address = this.deps.clientAddresses[f.leaderId];
      if (address !== undefined) md.set(errorKeys.leaderAddress, address);
    }
    return { code: f.code, details: f.message, metadata: md };
  }

  /** An AppendStream or AppendSession item's result (the leader hint as in toStatus). */
  toResult(a: Answer<AppendResponse>): AppendResult {
    if (a.ok) return { code: grpc.status.OK, message: "", reason: "", outcomeUnknown: false, response: a.value, leaderId: "", leaderAddress: "" };
    const f = a.failure;
    const leaderId = f.leaderId ?? "";
    const leaderAddress = f.leaderId === null ? "" : (this.deps.clientAddresses[f.leaderId] ?? "");
    return { code: f.code, message: f.message, reason: f.reason, outcomeUnknown: f.outcomeUnknown, response: null, leaderId, leaderAddress };
  }

  /**
   * Decodes an untrusted request; a malformed one becomes INVALID_ARGUMENT. Its bytes fields
   * (append bodies) are views into grpc-js's message buffer, which nothing writes to: propose
   * copies a body into its entry.
   */
  decode<T>(schema: MessageSchema, bytes: Buffer): Answer<T> {
    try {
      return { ok: true, value: decodeMessage<T>(schema, bytes, { aliasBytes: true }) };
    } catch (err) {
      if (!(err instanceof ProtoDecodeError)) throw err;
      return fail(this.failure(grpc.status.INVALID_ARGUMENT, "malformed", `malformed ${schema.name}: ${err.message}`));
    }
  }
}

function fail<T>(failure: LedgerFailure): Answer<T> {
  return { ok: false, failure };
}

export { schemas };
