import * as grpc from "@grpc/grpc-js";
import {
  errorKeys,
  ledgerService,
  type AppendRequest,
  type AppendResponse,
  type AppendResult,
  type AppendSessionRequest,
  type AppendSessionResponse,
  type TaggedAppend,
} from "../api/ledger_messages.js";

/** Why an append on a session (or a unary call) did not succeed, from the result or the status. */
export interface CallFailure {
  readonly code: number;
  readonly details: string;
  /** dledger-reason; "" when the failure came from gRPC itself (transport, deadline). */
  readonly reason: string;
  /** True when the append may have taken effect. */
  readonly outcomeUnknown: boolean;
  readonly leaderId: string | null;
  readonly leaderAddress: string | null;
}

export type CallResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly failure: CallFailure };

/** Appends one session holds unanswered at once (below the server's 16 384). */
export const sessionInFlightMax = 8192;
/** Appends packed into one stream message at most. */
const appendsPerMessageMax = 256;

/** A connection refused or never established: nothing was sent, so nothing can have happened. */
export const notConnectedPattern = /ECONNREFUSED|No connection established/;

interface Waiter {
  readonly resolve: (r: CallResult<AppendResponse>) => void;
  /** performance.now() at which it fails with DEADLINE_EXCEEDED. */
  readonly deadline: number;
  readonly timeoutMs: number;
}

type Duplex = grpc.ClientDuplexStream<AppendSessionRequest, AppendSessionResponse>;

/**
 * The client side of dledger.v1.Ledger/AppendSession on one channel: appends are tagged with
 * ids, packed into one message per event-loop turn, and matched to their results as they come.
 * The stream opens on first use and reopens after it ends. When it ends or breaks, every
 * unanswered append is settled as a failure whose outcome is unknown (unless the connection was
 * never made): the caller retries with the same (clientId, sequence) and the server's
 * deduplication applies it once. Each append has its own deadline; a late result is ignored.
 * One timer per session serves every deadline (see `sweep`), disarmed whenever nothing is
 * waiting: a Node timer per append cost a Timeout object each, the largest share (23%) of what
 * survived the load generator's scavenges at 18,000 appends/s.
 */
export class AppendSession {
  private call: Duplex | null = null;
  private readonly waiting = new Map<number, Waiter>();
  private queue: TaggedAppend[] = [];
  /** A flush is queued as a microtask. */
  private flushing = false;
  private nextId = 1;
  private closed = false;
  /** The deadline timer and the time it fires (Infinity: none armed). */
  private deadlineTimer: NodeJS.Timeout | null = null;
  private deadlineAt = Infinity;
  /** performance.now() of the last message from the server (or of the stream's opening). */
  private heardAt = 0;
  /** Streams opened so far (for tests and reports). */
  opened = 0;

  constructor(private readonly client: grpc.Client) {}

  /** Appends `req`; resolves once with the server's result, or a failure at `timeoutMs`. */
  append(req: AppendRequest, timeoutMs: number): Promise<CallResult<AppendResponse>> {
    if (this.closed) return Promise.resolve(failure(grpc.status.CANCELLED, "append session closed", false));
    if (this.waiting.size >= sessionInFlightMax) {
      return Promise.resolve({ ok: false, failure: { ...failure(grpc.status.RESOURCE_EXHAUSTED, `more than ${sessionInFlightMax} appends in flight on one session`, false).failure, reason: "backpressure" } });
    }
    const id = this.nextId++;
    return new Promise((resolve) => {
      const deadline = performance.now() + timeoutMs;
      this.waiting.set(id, { resolve, deadline, timeoutMs });
      if (deadline < this.deadlineAt) this.armDeadline(deadline);
      this.queue.push({ id, request: req });
      // One message for the appends issued together: the flush runs as a microtask, after the
      // code that issued this append (and the promise continuations already queued) has run.
      if (!this.flushing) {
        this.flushing = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  /** Appends unanswered now. */
  get inFlight(): number {
    return this.waiting.size;
  }

  /** Ends the stream; unanswered appends settle as unknown. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.disarmDeadline();
    const call = this.call;
    this.call = null;
    call?.cancel();
    this.failAll(grpc.status.CANCELLED, "append session closed", "", true);
  }

  private disarmDeadline(): void {
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    this.deadlineAt = Infinity;
  }

  private armDeadline(at: number): void {
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
    this.deadlineAt = at;
    this.deadlineTimer = setTimeout(() => this.sweep(), Math.max(0, at - performance.now()));
  }

  /**
   * The earliest deadline is due: fails every append past its deadline and re-arms for the
   * earliest one left. Answered appends do not move the timer (only an empty session disarms
   * it), so under steady load it fires about once per timeout, finds nothing due, and re-arms:
   * one scan of the waiting appends each time.
   */
  private sweep(): void {
    this.deadlineTimer = null;
    this.deadlineAt = Infinity;
    const now = performance.now();
    const due: [number, number][] = [];
    for (const [id, w] of this.waiting) if (w.deadline <= now) due.push([id, w.timeoutMs]);
    for (const [id, timeoutMs] of due) this.timedOut(id, timeoutMs);
    // A timeout may have ended the stream and settled the rest: re-arm for what is left.
    if (!this.closed && this.waiting.size > 0) this.armDeadline(this.earliestDeadline());
  }

  private earliestDeadline(): number {
    let next = Infinity;
    for (const w of this.waiting.values()) if (w.deadline < next) next = w.deadline;
    return next;
  }

  private timedOut(id: number, timeoutMs: number): void {
    this.settle(id, failure(grpc.status.DEADLINE_EXCEEDED, `no result within ${Math.round(timeoutMs)} ms`, true));
    // Nothing at all came back for a whole deadline: the stream (or its connection) is likely
    // dead or stuck; drop it, so the retry starts on a fresh one.
    if (this.call !== null && performance.now() - this.heardAt >= timeoutMs) {
      const call = this.call;
      this.ended(call, { code: grpc.status.UNAVAILABLE, details: "no answer within a deadline", metadata: new grpc.Metadata() });
      call.cancel();
    }
  }

  private flush(): void {
    this.flushing = false;
    if (this.closed || this.queue.length === 0) return;
    const call = this.call ?? this.open();
    const all = this.queue;
    this.queue = [];
    for (let i = 0; i < all.length; i += appendsPerMessageMax) call.write({ appends: all.slice(i, i + appendsPerMessageMax) });
  }

  private open(): Duplex {
    const m = ledgerService.AppendSession;
    const call: Duplex = this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), {});
    this.call = call;
    this.opened++;
    this.heardAt = performance.now();
    call.on("data", (msg: AppendSessionResponse) => {
      this.heardAt = performance.now();
      for (const t of msg.results) this.settle(t.id, fromResult(t.result));
    });
    // A non-OK status is emitted as 'error' and then as 'status'; 'status' does the work.
    call.on("error", () => {});
    call.on("status", (s: grpc.StatusObject) => this.ended(call, s));
    return call;
  }

  /** The stream is over: whatever it still owed is unknown (or failed, if it never connected). */
  private ended(call: Duplex, s: grpc.StatusObject): void {
    if (this.call !== call) return;
    this.call = null;
    const code = s.code === grpc.status.OK ? grpc.status.UNAVAILABLE : s.code;
    const reason = s.metadata.get(errorKeys.reason)[0];
    // A server without AppendSession refuses the whole stream before reading it: nothing applied.
    const neverRead = s.code === grpc.status.UNIMPLEMENTED || notConnectedPattern.test(s.details);
    this.failAll(code, `append session ended: ${s.details}`, typeof reason === "string" && neverRead ? reason : "", !neverRead);
  }

  private failAll(code: number, details: string, reason: string, unknown: boolean): void {
    this.queue = [];
    for (const id of [...this.waiting.keys()]) this.settle(id, { ok: false, failure: { ...failure(code, details, unknown).failure, reason } });
  }

  private settle(id: number, r: CallResult<AppendResponse>): void {
    const w = this.waiting.get(id);
    if (w === undefined) return; // timed out before, or an id we never sent: ignore
    this.waiting.delete(id);
    // Nothing left to time out: the timer must not keep the process alive on its own.
    if (this.waiting.size === 0) this.disarmDeadline();
    w.resolve(r);
  }
}

function failure(code: number, details: string, outcomeUnknown: boolean): { ok: false; failure: CallFailure } {
  return { ok: false, failure: { code, details, reason: "", outcomeUnknown, leaderId: null, leaderAddress: null } };
}

function fromResult(r: AppendResult | null): CallResult<AppendResponse> {
  if (r === null) return failure(grpc.status.INTERNAL, "result without a body", true);
  if (r.code === grpc.status.OK && r.response !== null) return { ok: true, value: r.response };
  const f: CallFailure = {
    code: r.code === grpc.status.OK ? grpc.status.INTERNAL : r.code,
    details: r.message,
    reason: r.reason,
    outcomeUnknown: r.outcomeUnknown,
    leaderId: r.leaderId === "" ? null : r.leaderId,
    leaderAddress: r.leaderAddress === "" ? null : r.leaderAddress,
  };
  return { ok: false, failure: f };
}
