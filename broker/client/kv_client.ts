import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../raft/base/logger.js";
import { silentLogger } from "../../raft/base/logger.js";
import { kvService, type KvCasRequest, type KvCasResponse, type KvGetResponse, type KvPutRequest, type KvPutResponse } from "../api/kv_messages.js";
import { errorKeys } from "../api/ledger_messages.js";
import { ChannelPool } from "./channels.js";
import { type LeaderFollowingOptions, retryBackoffMs, type WriteFailure } from "./ledger_client.js";
import { SequenceWindow } from "./sequence_window.js";

/** The single-shot calls ignore the retry settings; the leader-following ones use them all. */
export type KvClientOptions = LeaderFollowingOptions;

export const kvClientDefaults = { attemptTimeoutMs: 2000, operationTimeoutMs: 10_000, attemptsMax: 12 } as const;
/** Leader-following writes of one KvClient unanswered at once (SequenceWindow); more wait. */
const kvWritesInFlightMax = 32;

/**
 * The outcome of ONE call to ONE replica, in Jepsen's terms:
 *   ok      — answered; for a write, applied exactly once;
 *   failed  — definitely had no effect: the replica said so (dledger-outcome "failed"), or the
 *             call never left this process (no connection could be established);
 *   unknown — it may have had an effect: a deadline, a lost connection, dledger-outcome
 *             "unknown", or any error without a dledger outcome.
 * `leaderAddress` is the replica's leader hint, when it gave one.
 */
export type KvCallOutcome<T> =
  | { readonly status: "ok"; readonly value: T }
  | {
      readonly status: "failed" | "unknown";
      readonly code: number;
      readonly reason: string;
      readonly message: string;
      readonly leaderId: string | null;
      readonly leaderAddress: string | null;
    };

/** The outcome of a leader-following put or cas (see KvCallOutcome; `attempts` RPCs were made). */
export type KvWriteOutcome<T> = { readonly ok: true; readonly value: T; readonly sequence: number; readonly attempts: number } | WriteFailure;

/** A typed failure of the leader-following get. */
export class KvError extends Error {
  override readonly name = "KvError";
  constructor(
    message: string,
    readonly code: number,
    readonly reason: string,
    readonly leaderId: string | null,
  ) {
    super(message);
  }
}

export interface KvOnceOptions {
  /** The call's deadline, in ms from now. */
  readonly timeoutMs: number;
  /** The write's sequence; the next one of this client when absent. Pass the same one to retry. */
  readonly sequence?: number;
}

/** Refusals after which the same request may succeed elsewhere or later; nothing was applied. */
const retryableRefusals: ReadonlySet<string> = new Set(["not_leader", "leader_not_ready", "transferring", "backpressure", "overwritten"]);

/**
 * A client of dledger.v1.Kv (broker/api/kv.proto), in two forms:
 *   - single-shot (`putOnce`, `casOnce`, `getOnce`): one RPC to one given replica with a
 *     deadline, never retried, answered as a KvCallOutcome. The chaos harness records these as
 *     Jepsen's ok / fail / info; "failed" is reported only when the call certainly had no effect.
 *   - leader-following (`put`, `cas`, `get`): finds the leader through hints, retries a write with
 *     the same (clientId, sequence) so it is applied once, bounded in attempts and time.
 */
export class KvClient {
  readonly clientId: string;
  private readonly opts: Required<Omit<KvClientOptions, "clientId" | "firstSequence" | "logger">>;
  private readonly log: Logger;
  private readonly channels = new ChannelPool("KvClient");
  private readonly known: string[];
  private leader: string;
  /** Sequences of the leader-following writes: at most 32 unanswered, within the dedup window. */
  private readonly window: SequenceWindow;

  constructor(options: KvClientOptions) {
    if (options.endpoints.length === 0) throw new RangeError("endpoints must name at least one replica");
    const first = options.firstSequence ?? 1;
    if (!Number.isSafeInteger(first) || first < 1) throw new RangeError(`firstSequence (${first}) must be a positive integer`);
    this.clientId = options.clientId ?? randomUUID();
    this.opts = {
      endpoints: [...options.endpoints],
      attemptTimeoutMs: options.attemptTimeoutMs ?? kvClientDefaults.attemptTimeoutMs,
      operationTimeoutMs: options.operationTimeoutMs ?? kvClientDefaults.operationTimeoutMs,
      attemptsMax: options.attemptsMax ?? kvClientDefaults.attemptsMax,
    };
    this.log = (options.logger ?? silentLogger).child({ component: "kv_client", clientId: this.clientId });
    this.known = [...options.endpoints];
    this.leader = this.known[0] as string;
    this.window = new SequenceWindow(first, kvWritesInFlightMax);
  }

  /** The address currently believed to be the leader's. */
  get leaderAddress(): string {
    return this.leader;
  }

  /**
   * Takes the next sequence of this client (for a caller that retries single-shot calls itself).
   * Outside the write window: such a caller must keep fewer than 64 of its writes unanswered.
   */
  nextSequence(): number {
    return this.window.reserve(1)[0] as number;
  }

  /* --- Single-shot ---------------------------------------------------------------------------- */

  putOnce(endpoint: string, key: string, value: Uint8Array | string, o: KvOnceOptions): Promise<KvCallOutcome<KvPutResponse>> {
    const req: KvPutRequest = { key, value: bytesOf(value), clientId: this.clientId, sequence: o.sequence ?? this.nextSequence() };
    return this.unary(endpoint, kvService.Put, req, o.timeoutMs);
  }

  /** `expected` null: succeed only if the key is absent. */
  casOnce(endpoint: string, key: string, expected: Uint8Array | string | null, value: Uint8Array | string, o: KvOnceOptions): Promise<KvCallOutcome<KvCasResponse>> {
    const req: KvCasRequest = {
      key,
      expected: expected === null ? new Uint8Array(0) : bytesOf(expected),
      expectAbsent: expected === null,
      value: bytesOf(value),
      clientId: this.clientId,
      sequence: o.sequence ?? this.nextSequence(),
    };
    return this.unary(endpoint, kvService.Cas, req, o.timeoutMs);
  }

  getOnce(endpoint: string, key: string, o: Pick<KvOnceOptions, "timeoutMs">): Promise<KvCallOutcome<KvGetResponse>> {
    return this.unary(endpoint, kvService.Get, { key }, o.timeoutMs);
  }

  /* --- Leader-following ----------------------------------------------------------------------- */

  put(key: string, value: Uint8Array | string): Promise<KvWriteOutcome<KvPutResponse>> {
    return this.writeWithRetry((endpoint, timeoutMs, sequence) => this.putOnce(endpoint, key, value, { timeoutMs, sequence }));
  }

  cas(key: string, expected: Uint8Array | string | null, value: Uint8Array | string): Promise<KvWriteOutcome<KvCasResponse>> {
    return this.writeWithRetry((endpoint, timeoutMs, sequence) => this.casOnce(endpoint, key, expected, value, { timeoutMs, sequence }));
  }

  /** Linearizable read at the leader. Throws KvError when no leader answers in time. */
  async get(key: string): Promise<KvGetResponse> {
    const deadline = performance.now() + this.opts.operationTimeoutMs;
    let last: Exclude<KvCallOutcome<KvGetResponse>, { status: "ok" }> | null = null;
    for (let attempt = 0; attempt < this.opts.attemptsMax && performance.now() < deadline; attempt++) {
      const r = await this.getOnce(this.leader, key, { timeoutMs: this.attemptTimeout(deadline) });
      if (r.status === "ok") return r.value;
      last = r;
      // A read has no effect, so an unknown outcome is as retryable as a refusal.
      if (r.status === "failed" && !retryableRefusals.has(r.reason) && r.reason !== "") break;
      if (!this.follow(r)) await backoff(attempt);
    }
    if (last === null) throw new KvError("operation timed out before any attempt", grpc.status.DEADLINE_EXCEEDED, "", null);
    throw new KvError(last.message, last.code, last.reason, last.leaderId);
  }

  close(): void {
    this.channels.close();
  }

  /* --- Plumbing ------------------------------------------------------------------------------- */

  /**
   * Retries one write (same sequence) until ok, a definite refusal, or out of attempts/time.
   * Once any attempt may have applied, the write is never reported "failed": a later refusal
   * does not prove that the earlier attempt had no effect.
   */
  private async writeWithRetry<T>(send: (endpoint: string, timeoutMs: number, sequence: number) => Promise<KvCallOutcome<T>>): Promise<KvWriteOutcome<T>> {
    const sequence = await this.window.acquire();
    try {
      return await this.retryWrite(send, sequence);
    } finally {
      this.window.release(sequence);
    }
  }

  private async retryWrite<T>(send: (endpoint: string, timeoutMs: number, sequence: number) => Promise<KvCallOutcome<T>>, sequence: number): Promise<KvWriteOutcome<T>> {
    const deadline = performance.now() + this.opts.operationTimeoutMs;
    let mayHaveApplied = false;
    let last: Exclude<KvCallOutcome<T>, { status: "ok" }> | null = null;
    let attempts = 0;
    while (attempts < this.opts.attemptsMax && performance.now() < deadline) {
      attempts++;
      const r = await send(this.leader, this.attemptTimeout(deadline), sequence);
      if (r.status === "ok") return { ok: true, value: r.value, sequence, attempts };
      last = r;
      if (r.status === "unknown") mayHaveApplied = true;
      const retry = r.status === "unknown" ? r.reason !== "sequence_expired" : retryableRefusals.has(r.reason) || r.reason === "";
      if (!retry) break;
      this.log.debug({ sequence, attempt: attempts, status: r.status, code: r.code, reason: r.reason }, "kv_write_retry");
      if (!this.follow(r) || r.reason !== "not_leader") await backoff(attempts - 1);
    }
    const outcome = mayHaveApplied ? "unknown" : "failed";
    if (last === null) return { ok: false, outcome, code: grpc.status.DEADLINE_EXCEEDED, reason: "", message: "operation timed out before any attempt", sequence, attempts };
    return { ok: false, outcome, code: last.code, reason: last.reason, message: last.message, sequence, attempts };
  }

  private attemptTimeout(deadline: number): number {
    return Math.max(1, Math.min(this.opts.attemptTimeoutMs, deadline - performance.now()));
  }

  /**
   * Moves to the hinted leader, else (no hint) to the next known endpoint. Returns whether it
   * moved to a new hinted leader. A hint naming the current one keeps it (e.g. leader_not_ready).
   */
  private follow(f: { readonly leaderAddress: string | null }): boolean {
    if (f.leaderAddress !== null) {
      if (!this.known.includes(f.leaderAddress)) this.known.push(f.leaderAddress);
      const moved = f.leaderAddress !== this.leader;
      this.leader = f.leaderAddress;
      return moved;
    }
    const i = this.known.indexOf(this.leader);
    this.leader = this.known[(i + 1) % this.known.length] as string;
    return false;
  }

  private async unary<Req, Res>(address: string, m: grpc.MethodDefinition<Req, Res>, req: Req, timeoutMs: number): Promise<KvCallOutcome<Res>> {
    const { err, value } = await this.channels.unary(address, m, req, timeoutMs);
    return err === null && value !== undefined ? { status: "ok", value } : outcomeOf(err);
  }
}

/**
 * Classifies a failed call. Only two things prove that a call had no effect: the replica's own
 * dledger-outcome "failed", or a call that never got a connection (grpc-js fails it before
 * writing anything). Everything else — deadlines, resets, INTERNAL, statuses from proxies or
 * from grpc-js itself — may follow a request the replica received, so it is "unknown".
 */
export function outcomeOf(err: grpc.ServiceError | null): Exclude<KvCallOutcome<never>, { status: "ok" }> {
  const md = err?.metadata;
  const one = (k: string): string | null => {
    const v = md?.get(k)[0];
    return typeof v === "string" && v !== "" ? v : null;
  };
  const code = err?.code ?? grpc.status.UNKNOWN;
  const message = err?.details ?? "no response";
  const said = one(errorKeys.outcome);
  const neverSent = said === null && code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED/.test(message);
  const status = said === "failed" || neverSent ? "failed" : "unknown";
  return { status, code, reason: one(errorKeys.reason) ?? "", message, leaderId: one(errorKeys.leader), leaderAddress: one(errorKeys.leaderAddress) };
}

function bytesOf(v: Uint8Array | string): Uint8Array {
  return typeof v === "string" ? new TextEncoder().encode(v) : v;
}

function backoff(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, retryBackoffMs(attempt)));
}
