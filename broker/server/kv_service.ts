import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../raft/base/logger.js";
import type { ReplicaId } from "../../raft/core/types.js";
import type { Replica } from "../../raft/replica/replica.js";
import {
  kvSchemas,
  kvServerService,
  type KvCasRequest,
  type KvCasResponse,
  type KvErrorReason,
  type KvGetRequest,
  type KvGetResponse,
  type KvPutRequest,
  type KvPutResponse,
} from "../api/kv_messages.js";
import { decodeKvApplyResult, encodeKvCommand, kvCommandBytes, kvKeyBytesMax, KvOutcome, type KvCommand } from "../kv_entry.js";
import { clientIdBytesMax } from "../ledger_entry.js";
import type { LedgerStateMachine } from "../ledger_state_machine.js";
import type { LedgerFailure, LedgerService } from "./ledger_service.js";
import { leaderReadiness, proposalFailure } from "./replica_refusals.js";

/** A refused or failed KV request: a LedgerFailure whose reason may also be a KV one. */
export type KvFailure = Omit<LedgerFailure, "reason"> & { readonly reason: KvErrorReason };

export type KvAnswer<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly failure: KvFailure };

export interface KvServiceDeps {
  readonly id: ReplicaId;
  /** The replica's Ledger service: its leader hints, trailers, request decoding and ReadIndex. */
  readonly ledger: Pick<LedgerService, "failure" | "toStatus" | "decode" | "read">;
  readonly replica: Pick<Replica, "propose" | "status">;
  readonly stateMachine: LedgerStateMachine;
  /** Largest encoded entry; the Raft core's entryBytesMax. */
  readonly entryBytesMax: number;
  readonly logger: Logger;
}

/** What a write did, whether answered from the dedup table or from its own apply. */
interface Written {
  readonly outcome: KvOutcome;
  readonly index: number;
  readonly term: number;
  readonly duplicate: boolean;
  /** For a cas mismatch applied now: the value it compared against (null: absent or not known). */
  readonly current: Uint8Array | null;
}

/**
 * The dledger.v1.Kv service of one replica (kv.proto). Writes follow the Ledger's exactly-once
 * rules (a)–(c) of ledger_state_machine.ts with the same dedup table; a retry of a write still in
 * flight here attaches to it. Every refusal happens before proposing (outcome "failed") unless
 * the entry may have been applied. Get is linearizable through the Ledger's ReadIndex path.
 */
export class KvService {
  private readonly deps: KvServiceDeps;
  private readonly log: Logger;
  /** Writes in flight by "clientId\0sequence" (rule b). Bounded by the replica's uncommitted bytes. */
  private readonly pending = new Map<string, Promise<KvAnswer<Written>>>();

  constructor(deps: KvServiceDeps) {
    this.deps = deps;
    this.log = deps.logger.child({ component: "kv_service" });
  }

  async put(req: KvPutRequest): Promise<KvAnswer<KvPutResponse>> {
    const w = await this.write({ kind: "put", clientId: req.clientId, sequence: req.sequence, key: req.key, value: req.value });
    if (!w.ok) return w;
    if (w.value.outcome === KvOutcome.written) return ok({ index: w.value.index, term: w.value.term, duplicate: w.value.duplicate });
    if (w.value.outcome === KvOutcome.full) return this.full(req.key);
    this.log.error({ outcome: w.value.outcome, index: w.value.index }, "put_applied_as_cas_mismatch");
    return fail(this.failure(grpc.status.INTERNAL, "malformed", `put at ${w.value.index} applied with outcome ${w.value.outcome}`));
  }

  async cas(req: KvCasRequest): Promise<KvAnswer<KvCasResponse>> {
    if (req.expectAbsent && req.expected.byteLength > 0) {
      return fail(this.failure(grpc.status.INVALID_ARGUMENT, "bad_request", `expected must be empty with expect_absent (got ${req.expected.byteLength} bytes)`));
    }
    const expected = req.expectAbsent ? null : req.expected;
    const w = await this.write({ kind: "cas", clientId: req.clientId, sequence: req.sequence, key: req.key, expected, value: req.value });
    if (!w.ok) return w;
    const { outcome, index, term, duplicate, current } = w.value;
    if (outcome === KvOutcome.full) return this.full(req.key);
    const succeeded = outcome === KvOutcome.written;
    return ok({ succeeded, currentValue: current ?? new Uint8Array(0), currentPresent: current !== null, index, term, duplicate });
  }

  /** Linearizable: ReadIndex on the leader (Ledger.Read's path), then this replica's map. */
  async get(req: KvGetRequest): Promise<KvAnswer<KvGetResponse>> {
    const invalid = this.validateKey(req.key);
    if (invalid !== null) return fail(invalid);
    const r = await this.deps.ledger.read(0);
    if (!r.ok) return r;
    const value = this.deps.stateMachine.kv.get(req.key);
    return ok({ present: value !== undefined, value: value ?? new Uint8Array(0), readIndex: r.value.readIndex });
  }

  private write(cmd: KvCommand): Promise<KvAnswer<Written>> {
    const invalid = this.validateWrite(cmd);
    if (invalid !== null) return Promise.resolve(fail(invalid));
    const notReady = leaderReadiness(this.deps.id, this.deps.replica, this.deps.stateMachine.appliedTerm, this.deps.ledger.failure.bind(this.deps.ledger));
    if (notReady !== null) return Promise.resolve(fail(notReady));
    if (cmd.clientId === "") return this.looksFull(cmd) ? Promise.resolve(this.full(cmd.key)) : this.propose(cmd);
    const seen = this.deps.stateMachine.lookup(cmd.clientId, cmd.sequence);
    if (seen.kind === "duplicate") {
      if (seen.outcome === undefined) return Promise.resolve(fail(this.identityClash(cmd, seen.index)));
      return Promise.resolve(ok({ outcome: seen.outcome, index: seen.index, term: seen.term, duplicate: true, current: null }));
    }
    if (seen.kind === "expired") return Promise.resolve(fail(this.expired(cmd, seen.floor)));
    const key = `${cmd.clientId}\u0000${cmd.sequence}`;
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined) return inFlight;
    // After the dedup lookup and the in-flight check: a retry of a write that is applied or may
    // still apply must not be answered "failed" because the map filled up meanwhile.
    if (this.looksFull(cmd)) return Promise.resolve(this.full(cmd.key));
    const p = this.propose(cmd).finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  private validateWrite(cmd: KvCommand): KvFailure | null {
    const bad = (message: string): KvFailure => this.failure(grpc.status.INVALID_ARGUMENT, "bad_request", message);
    const idBytes = Buffer.byteLength(cmd.clientId, "utf8");
    if (idBytes > clientIdBytesMax) return bad(`client_id of ${idBytes} bytes exceeds ${clientIdBytesMax}`);
    if (idBytes === 0 && cmd.sequence !== 0) return bad(`sequence (${cmd.sequence}) must be 0 without a client_id`);
    if (idBytes > 0 && cmd.sequence === 0) return bad("sequence must be > 0 with a client_id");
    const key = this.validateKey(cmd.key);
    if (key !== null) return key;
    const bytes = kvCommandBytes(cmd);
    if (bytes > this.deps.entryBytesMax) {
      const expected = cmd.kind === "cas" ? `, expected ${cmd.expected?.byteLength ?? 0}` : "";
      return this.failure(grpc.status.INVALID_ARGUMENT, "too_large", `KV command of ${bytes} bytes (value ${cmd.value.byteLength}${expected}) exceeds entryBytesMax (${this.deps.entryBytesMax})`);
    }
    return null;
  }

  /**
   * Whether a put would be refused as full now. Only a hint (the apply decides, the same way on
   * every replica): refusing here spares the log an entry. A cas is left to the apply, which
   * compares first.
   */
  private looksFull(cmd: KvCommand): boolean {
    return cmd.kind === "put" && this.deps.stateMachine.kv.wouldOverflow(cmd.key, cmd.value.byteLength);
  }

  private validateKey(key: string): KvFailure | null {
    const keyBytes = Buffer.byteLength(key, "utf8");
    if (keyBytes === 0) return this.failure(grpc.status.INVALID_ARGUMENT, "bad_request", "key must not be empty");
    if (keyBytes > kvKeyBytesMax) return this.failure(grpc.status.INVALID_ARGUMENT, "too_large", `key of ${keyBytes} bytes exceeds ${kvKeyBytesMax}`);
    return null;
  }

  private async propose(cmd: KvCommand): Promise<KvAnswer<Written>> {
    const outcome = await this.deps.replica.propose(encodeKvCommand(cmd));
    if (!outcome.ok) return fail(proposalFailure(this.deps.id, this.deps.replica, outcome, this.deps.ledger.failure.bind(this.deps.ledger)));
    const r = decodeKvApplyResult(outcome.result);
    switch (r.kind) {
      case "done":
      case "duplicate":
        return ok({ outcome: r.outcome, index: r.index, term: r.term, duplicate: r.kind === "duplicate", current: r.current });
      case "expired":
        return fail(this.expired(cmd, 0));
      case "identityClash":
        return fail(this.identityClash(cmd, 0));
      case "malformed":
        this.log.error({ index: outcome.index }, "kv_command_applied_as_malformed");
        return fail(this.failure(grpc.status.INTERNAL, "malformed", `KV command at ${outcome.index} applied as malformed`));
    }
  }

  private full(key: string): { readonly ok: false; readonly failure: KvFailure } {
    const { keysMax, bytesMax } = this.deps.stateMachine.kv.limits;
    const { keyCount, byteCount } = this.deps.stateMachine.kv;
    const message = `the KV map is full: writing ${JSON.stringify(key.slice(0, 64))} would exceed keysMax (${keysMax}, holding ${keyCount}) or bytesMax (${bytesMax}, holding ${byteCount})`;
    return fail(this.failure(grpc.status.RESOURCE_EXHAUSTED, "kv_full", message));
  }

  private expired(cmd: KvCommand, floor: number): KvFailure {
    const message = `sequence ${cmd.sequence} of client ${cmd.clientId} is at or below its dedup window floor ${floor}: whether it was applied is unknown`;
    return { ...this.failure(grpc.status.FAILED_PRECONDITION, "sequence_expired", message), outcomeUnknown: true };
  }

  private identityClash(cmd: KvCommand, index: number): KvFailure {
    const at = index > 0 ? ` at index ${index}` : "";
    return this.failure(grpc.status.INVALID_ARGUMENT, "bad_request", `(client_id ${cmd.clientId}, sequence ${cmd.sequence}) was used by a Ledger append${at}: use a client_id of its own for KV`);
  }

  private failure(code: grpc.status, reason: KvErrorReason, message: string): KvFailure {
    return { code, reason, message, outcomeUnknown: false, leaderId: this.deps.replica.status().leader };
  }

  /** The status grpc-js sends for `f`: the Ledger's trailers (reason, outcome, leader hints). */
  toStatus(f: KvFailure): Partial<grpc.StatusObject> {
    return this.deps.ledger.toStatus(f as LedgerFailure);
  }

  /** Decodes an untrusted request; a malformed one becomes INVALID_ARGUMENT (reason "malformed"). */
  decode<T>(schema: (typeof kvSchemas)[keyof typeof kvSchemas], bytes: Buffer): KvAnswer<T> {
    return this.deps.ledger.decode<T>(schema, bytes);
  }
}

function ok<T>(value: T): KvAnswer<T> {
  return { ok: true, value };
}

function fail(failure: KvFailure): { readonly ok: false; readonly failure: KvFailure } {
  return { ok: false, failure };
}

type Unary = grpc.ServerUnaryCall<Buffer, unknown>;
type Done = grpc.sendUnaryData<unknown>;

/**
 * Binds a KvService to a grpc-js server (the replica's client server, next to the Ledger). A
 * handler never throws into grpc-js: an unexpected error is logged and answered INTERNAL, with
 * no dledger-outcome trailer, which clients must read as "unknown".
 */
export function addKvService(server: grpc.Server, svc: KvService, logger: Logger): void {
  const log = logger.child({ component: "kv_grpc" });
  const handler =
    <Req>(name: string, schema: (typeof kvSchemas)[keyof typeof kvSchemas], run: (req: Req) => Promise<KvAnswer<unknown>>) =>
    (call: Unary, done: Done): void => {
      Promise.resolve()
        .then(async () => {
          const req = svc.decode<Req>(schema, call.request);
          const a = req.ok ? await run(req.value) : req;
          if (a.ok) done(null, a.value);
          else done(svc.toStatus(a.failure));
        })
        .catch((err: unknown) => {
          log.error({ method: name, err: String(err) }, "handler_failed");
          done({ code: grpc.status.INTERNAL, details: `${name} failed: ${String(err)}` });
        });
    };
  server.addService(kvServerService, {
    Put: handler<KvPutRequest>("Put", kvSchemas.putRequest, (r) => svc.put(r)),
    Cas: handler<KvCasRequest>("Cas", kvSchemas.casRequest, (r) => svc.cas(r)),
    Get: handler<KvGetRequest>("Get", kvSchemas.getRequest, (r) => svc.get(r)),
  });
}
