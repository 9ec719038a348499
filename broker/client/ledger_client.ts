import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../raft/base/logger.js";
import { silentLogger } from "../../raft/base/logger.js";
import {
  errorKeys,
  ledgerService,
  type AppendRequest,
  type AppendResponse,
  type AppendStreamResponse,
  type LedgerEntry,
  type MetadataResponse,
  type ReadResponse,
  type TransferLeadershipResponse,
} from "../api/ledger_messages.js";
import { AppendSession, notConnectedPattern, type CallFailure, type CallResult } from "./append_session.js";
import { ChannelPool } from "./channels.js";
import { SequenceWindow } from "./sequence_window.js";

/** What every leader-following client (LedgerClient, KvClient) is configured with. */
export interface LeaderFollowingOptions {
  /** "host:port" client addresses of some or all replicas; the leader is found from them. */
  readonly endpoints: readonly string[];
  /** Identifies this writer for deduplication; a random UUID by default. Not shared between clients. */
  readonly clientId?: string;
  /** First sequence to use (a restarted writer reusing its clientId must continue above its last). */
  readonly firstSequence?: number;
  /** Deadline of one attempt (one RPC). */
  readonly attemptTimeoutMs?: number;
  /** Deadline of one operation across all its attempts. */
  readonly operationTimeoutMs?: number;
  readonly attemptsMax?: number;
  readonly logger?: Logger;
}

export interface LedgerClientOptions extends LeaderFollowingOptions {
  /**
   * Appends in flight at once. Must stay below the server's per-client dedup window (64,
   * ledger_state_machine.ts), or a late retry could find its sequence expired.
   */
  readonly inflightMax?: number;
  /**
   * How appends travel: "session" (default) pipelines them on one long-lived AppendSession
   * stream per replica (far cheaper per append in grpc-js); "unary" makes one Append call each.
   * A replica that does not implement AppendSession is used with unary calls.
   */
  readonly appendRpc?: "session" | "unary";
}

export const ledgerClientDefaults = { attemptTimeoutMs: 2000, operationTimeoutMs: 10_000, attemptsMax: 12, inflightMax: 32, appendRpc: "session" } as const;

/**
 * The outcome of an append, reported honestly (Jepsen's ok / fail / info):
 *   ok      — applied exactly once, at `index` (duplicate: an earlier attempt of ours was);
 *   failed  — definitely not applied (refused before proposing, or overwritten);
 *   unknown — may or may not have been applied (a timeout, a crash, an expired sequence).
 */
export type AppendOutcome = { readonly ok: true; readonly index: number; readonly term: number; readonly duplicate: boolean; readonly sequence: number; readonly attempts: number } | WriteFailure;

/** A leader-following write (append, KV put or cas) that was not acknowledged: failed or unknown, after `attempts` RPCs. */
export interface WriteFailure {
  readonly ok: false;
  readonly outcome: "failed" | "unknown";
  readonly code: number;
  readonly reason: string;
  readonly message: string;
  readonly sequence: number;
  readonly attempts: number;
}

/** A typed failure of get/read/metadata/transferLeadership. */
export class LedgerError extends Error {
  override readonly name = "LedgerError";
  constructor(
    message: string,
    readonly code: number,
    readonly reason: string,
    readonly leaderId: string | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** What to do after a failed attempt. */
type Next = { readonly stop: true; readonly outcome: "failed" | "unknown" } | { readonly stop: false; readonly mayHaveApplied: boolean; readonly backoff: boolean };

const backoffBaseMs = 20;
const backoffMaxMs = 400;

/** The pause before retry number `attempt` (0-based): exponential, capped, with jitter. Shared with KvClient. */
export function retryBackoffMs(attempt: number): number {
  return Math.min(backoffMaxMs, backoffBaseMs * 2 ** attempt) * (0.5 + Math.random() / 2);
}

/**
 * A client of dledger.v1.Ledger. It finds the leader (leader hints in error trailers, then
 * Metadata), follows it across elections, and retries appends with the same (clientId,
 * sequence) so a retried append is applied once. Every operation is bounded in attempts and
 * time. Appends return an AppendOutcome; the other calls throw LedgerError.
 */
export class LedgerClient {
  readonly clientId: string;
  private readonly opts: Required<Omit<LedgerClientOptions, "clientId" | "firstSequence" | "logger">>;
  private readonly log: Logger;
  private readonly channels = new ChannelPool("LedgerClient");
  private readonly sessions = new Map<string, AppendSession>();
  /** Replicas that answered AppendSession with UNIMPLEMENTED: appends go to them unary. */
  private readonly unaryOnly = new Set<string>();
  private readonly known: string[];
  private leader: string;
  /** Sequences of append() (SequenceWindow: inflightMax, and within the server's dedup window). */
  private readonly window: SequenceWindow;

  constructor(options: LedgerClientOptions) {
    if (options.endpoints.length === 0) throw new RangeError("endpoints must name at least one replica");
    this.clientId = options.clientId ?? randomUUID();
    this.opts = { ...ledgerClientDefaults, ...stripUndefined(options), endpoints: [...options.endpoints] };
    this.log = (options.logger ?? silentLogger).child({ component: "ledger_client", clientId: this.clientId });
    this.known = [...options.endpoints];
    this.leader = this.known[0] as string;
    this.window = new SequenceWindow(options.firstSequence ?? 1, this.opts.inflightMax);
  }

  /** The address currently believed to be the leader's. */
  get leaderAddress(): string {
    return this.leader;
  }

  /** Appends one entry; retries (same sequence) across leader changes until ok, failed or out of time. */
  async append(body: Uint8Array): Promise<AppendOutcome> {
    // Numbered only once it may go: the sequences unanswered at any moment then span fewer than
    // the server's dedup window (see acquire), so a retry can never find its own sequence expired.
    const sequence = await this.window.acquire();
    try {
      return await this.appendWithRetry({ clientId: this.clientId, sequence, body }, false, 0);
    } finally {
      this.window.release(sequence);
    }
  }

  /**
   * Appends a batch over one AppendStream call (pipelined on the server). Items that fail
   * retryably are retried one by one with their own sequence. Results are in input order.
   * A batch larger than the server's dedup window (64) still works, but a retried item that
   * fell out of the window is reported "unknown" rather than answered with its index.
   */
  async appendBatch(bodies: readonly Uint8Array[]): Promise<AppendOutcome[]> {
    const reqs = this.window.reserve(bodies.length).map((sequence, i) => ({ clientId: this.clientId, sequence, body: bodies[i] as Uint8Array }));
    // On a session, appends issued in one turn travel in one message: no batch call needed.
    if (this.opts.appendRpc === "session" && !this.unaryOnly.has(this.leader)) return Promise.all(reqs.map((req) => this.appendWithRetry(req, false, 0)));
    const r = await this.stream(this.leader, reqs);
    if (!r.ok) {
      this.follow(r.failure, true);
      return Promise.all(reqs.map((req) => this.appendWithRetry(req, true, 1)));
    }
    return Promise.all(
      reqs.map((req, i) => {
        const res = r.value.results[i];
        if (res === undefined) return this.appendWithRetry(req, true, 1);
        if (res.code === 0 && res.response !== null) return ok(req, res.response, 1);
        const failure: CallFailure = { code: res.code, details: res.message, reason: res.reason, outcomeUnknown: res.outcomeUnknown, leaderId: null, leaderAddress: null };
        const next = classify(failure);
        if (next.stop) return failed(req, failure, next.outcome, 1);
        return this.appendWithRetry(req, next.mayHaveApplied, 1);
      }),
    );
  }

  private async appendWithRetry(req: AppendRequest, mayHaveAppliedBefore: boolean, attemptsBefore: number): Promise<AppendOutcome> {
    const deadline = performance.now() + this.opts.operationTimeoutMs;
    let mayHaveApplied = mayHaveAppliedBefore;
    let last: CallFailure = { code: grpc.status.DEADLINE_EXCEEDED, details: "no attempt made", reason: "", outcomeUnknown: false, leaderId: null, leaderAddress: null };
    let attempts = attemptsBefore;
    for (let backoffs = 0; attempts < this.opts.attemptsMax && performance.now() < deadline; ) {
      attempts++;
      const timeout = Math.max(1, Math.min(this.opts.attemptTimeoutMs, deadline - performance.now()));
      const address = this.leader;
      const r = await this.appendOnce(address, req, timeout);
      if (r.ok) return ok(req, r.value, attempts);
      last = r.failure;
      if (r.failure.code === grpc.status.UNIMPLEMENTED && !r.failure.outcomeUnknown && !this.unaryOnly.has(address) && this.opts.appendRpc === "session") {
        this.unaryOnly.add(address);
        continue;
      }
      const next = classify(r.failure);
      if (next.stop) return failed(req, r.failure, next.outcome === "unknown" || mayHaveApplied || r.failure.outcomeUnknown ? "unknown" : "failed", attempts);
      mayHaveApplied ||= next.mayHaveApplied;
      this.log.debug({ sequence: req.sequence, attempt: attempts, code: r.failure.code, reason: r.failure.reason }, "append_retry");
      const hinted = this.follow(r.failure, next.mayHaveApplied || r.failure.reason === "");
      if (next.backoff || !hinted) await sleep(retryBackoffMs(backoffs++));
    }
    return failed(req, { ...last, details: `gave up after ${attempts} attempts: ${last.details}` }, mayHaveApplied ? "unknown" : "failed", attempts);
  }

  private appendOnce(address: string, req: AppendRequest, timeoutMs: number): Promise<CallResult<AppendResponse>> {
    if (this.opts.appendRpc === "unary" || this.unaryOnly.has(address)) return this.unary(address, ledgerService.Append, req, timeoutMs);
    let s = this.sessions.get(address);
    if (s === undefined) {
      s = new AppendSession(this.client(address));
      this.sessions.set(address, s);
    }
    return s.append(req, timeoutMs);
  }

  /** A committed entry from one replica (`endpoint`, or the current leader's). */
  async get(index: number, options: { readonly endpoint?: string } = {}): Promise<LedgerEntry> {
    return this.call(options.endpoint, (address, t) => this.unary(address, ledgerService.Get, { index }, t), options.endpoint === undefined);
  }

  /** Linearizable read at the leader: its read index, and the entry at `index` (> 0) if committed. */
  async read(index = 0): Promise<ReadResponse> {
    return this.call(undefined, (address, t) => this.unary(address, ledgerService.Read, { index }, t), true);
  }

  async metadata(options: { readonly endpoint?: string } = {}): Promise<MetadataResponse> {
    return this.call(options.endpoint, (address, t) => this.unary(address, ledgerService.Metadata, {}, t), options.endpoint === undefined);
  }

  async transferLeadership(to: string): Promise<TransferLeadershipResponse> {
    const r = await this.call(undefined, (address, t) => this.unary(address, ledgerService.TransferLeadership, { to }, t), true);
    // The answer names the new leader by id; its address comes from Metadata.
    await this.findLeader();
    return r;
  }

  /**
   * Asks every known endpoint for Metadata and adopts the leader the highest term reports.
   * Returns its client address, or null when no replica knows a leader.
   */
  async findLeader(): Promise<string | null> {
    const all = await Promise.all(this.known.map((a) => this.unary(a, ledgerService.Metadata, {}, this.opts.attemptTimeoutMs)));
    let best: MetadataResponse | null = null;
    for (const r of all) if (r.ok && r.value.leaderId !== "" && (best === null || r.value.term > best.term)) best = r.value;
    if (best === null || best.leaderAddress === "") return null;
    this.learn(best.leaderAddress);
    this.leader = best.leaderAddress;
    return best.leaderAddress;
  }

  close(): void {
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
    this.channels.close();
  }

  /* --- Plumbing ------------------------------------------------------------------------------ */

  private async call<T>(endpoint: string | undefined, fn: (address: string, timeoutMs: number) => Promise<CallResult<T>>, follow: boolean): Promise<T> {
    const deadline = performance.now() + this.opts.operationTimeoutMs;
    let last: CallFailure | null = null;
    for (let attempt = 0; attempt < this.opts.attemptsMax && performance.now() < deadline; attempt++) {
      const address = endpoint ?? this.leader;
      const r = await fn(address, Math.max(1, Math.min(this.opts.attemptTimeoutMs, deadline - performance.now())));
      if (r.ok) return r.value;
      last = r.failure;
      const retryable = r.failure.reason === "not_leader" || r.failure.reason === "leader_not_ready" || r.failure.reason === "transferring" || r.failure.reason === "";
      const transport = r.failure.reason === "" && (r.failure.code === grpc.status.UNAVAILABLE || r.failure.code === grpc.status.DEADLINE_EXCEEDED);
      if (!follow || !retryable || (r.failure.reason === "" && !transport)) break;
      if (!this.follow(r.failure, transport)) await sleep(Math.min(backoffMaxMs, backoffBaseMs * 2 ** attempt));
    }
    const f = last ?? { code: grpc.status.DEADLINE_EXCEEDED, details: "operation timed out", reason: "", outcomeUnknown: false, leaderId: null, leaderAddress: null };
    throw new LedgerError(f.details, f.code, f.reason, f.leaderId);
  }

  /** Moves to the hinted leader, or (when asked) to the next known endpoint. Returns whether a hint was followed. */
  private follow(f: CallFailure, rotateWithoutHint: boolean): boolean {
    if (f.leaderAddress !== null && f.leaderAddress !== this.leader) {
      this.learn(f.leaderAddress);
      this.leader = f.leaderAddress;
      return true;
    }
    if (rotateWithoutHint || f.reason === "not_leader") {
      const i = this.known.indexOf(this.leader);
      this.leader = this.known[(i + 1) % this.known.length] as string;
    }
    return false;
  }

  private learn(address: string): void {
    if (!this.known.includes(address)) this.known.push(address);
  }

  private client(address: string): grpc.Client {
    return this.channels.get(address);
  }

  private async unary<Req, Res>(address: string, m: grpc.MethodDefinition<Req, Res>, req: Req, timeoutMs: number): Promise<CallResult<Res>> {
    const { err, value } = await this.channels.unary(address, m, req, timeoutMs);
    return err !== null || value === undefined ? { ok: false, failure: toFailure(err) } : { ok: true, value };
  }

  private stream(address: string, reqs: readonly AppendRequest[]): Promise<CallResult<AppendStreamResponse>> {
    const m = ledgerService.AppendStream;
    return new Promise((resolve) => {
      const deadline = new Date(Date.now() + this.opts.attemptTimeoutMs);
      const call = this.client(address).makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), { deadline }, (err, value) => {
        if (err !== null || value === undefined) resolve({ ok: false, failure: toFailure(err) });
        else resolve({ ok: true, value });
      });
      for (const r of reqs) call.write(r);
      call.end();
    });
  }


}

/** Decides the next step after a failed append attempt, from the status and its trailers. */
function classify(f: CallFailure): Next {
  switch (f.reason) {
    case "too_large":
    case "bad_request":
    case "malformed":
      return { stop: true, outcome: "failed" };
    case "sequence_expired":
      return { stop: true, outcome: "unknown" };
    case "not_leader":
      return { stop: false, mayHaveApplied: false, backoff: false };
    case "leader_not_ready":
    case "transferring":
    case "backpressure":
    case "overwritten":
      return { stop: false, mayHaveApplied: false, backoff: true };
    case "stopped":
    case "outcome_unknown":
    case "leader_changed":
      return { stop: false, mayHaveApplied: true, backoff: true };
    default:
      // A session that broke with this append unanswered: it may have been applied.
      if (f.outcomeUnknown) return { stop: false, mayHaveApplied: true, backoff: true };
      // Refused by gRPC before any handler ran (message too large for the server, unknown
      // method): definitely not applied, and retrying cannot help.
      if (f.code === grpc.status.RESOURCE_EXHAUSTED || f.code === grpc.status.UNIMPLEMENTED || f.code === grpc.status.INVALID_ARGUMENT) {
        return { stop: true, outcome: "failed" };
      }
      // No dledger reason: a transport failure, a deadline, or a session that broke. The request
      // may have reached the leader, so the append may have happened; the retry (same sequence)
      // will tell.
      return { stop: false, mayHaveApplied: f.outcomeUnknown || f.code !== grpc.status.UNAVAILABLE || !notConnectedPattern.test(f.details), backoff: true };
  }
}

function toFailure(err: grpc.ServiceError | null): CallFailure {
  const md = err?.metadata;
  const one = (k: string): string | null => {
    const v = md?.get(k)[0];
    return typeof v === "string" && v !== "" ? v : null;
  };
  return {
    code: err?.code ?? grpc.status.UNKNOWN,
    details: err?.details ?? "no response",
    reason: one(errorKeys.reason) ?? "",
    outcomeUnknown: one(errorKeys.outcome) === "unknown",
    leaderId: one(errorKeys.leader),
    leaderAddress: one(errorKeys.leaderAddress),
  };
}

function ok(req: AppendRequest, r: AppendResponse, attempts: number): AppendOutcome {
  return { ok: true, index: r.index, term: r.term, duplicate: r.duplicate, sequence: req.sequence, attempts };
}

function failed(req: AppendRequest, f: CallFailure, outcome: "failed" | "unknown", attempts: number): AppendOutcome {
  return { ok: false, outcome, code: f.code, reason: f.reason, message: f.details, sequence: req.sequence, attempts };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
