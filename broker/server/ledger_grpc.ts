import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../raft/base/logger.js";
import {
  ledgerServerService,
  schemas,
  type AppendRequest,
  type AppendResponse,
  type AppendResult,
  type AppendSessionRequest,
  type AppendSessionResponse,
  type AppendStreamResponse,
  type TaggedResult,
  type GetRequest,
  type ReadRequest,
  type TransferLeadershipRequest,
} from "../api/ledger_messages.js";
import { sessionAppendsInFlightMax, streamRequestsMax, type Answer, type LedgerService } from "./ledger_service.js";

type Unary = grpc.ServerUnaryCall<Buffer, unknown>;
type Done = grpc.sendUnaryData<unknown>;

/**
 * Binds a LedgerService to a grpc-js server: decoding at the gateway, answers and typed errors.
 * A handler never throws into grpc-js: an unexpected error is logged and answered INTERNAL, and
 * the replica keeps serving.
 */
export function addLedgerService(server: grpc.Server, svc: LedgerService, logger: Logger): void {
  const log = logger.child({ component: "ledger_grpc" });
  const reply = <T>(done: Done, a: Answer<T>): void => (a.ok ? done(null, a.value) : done(svc.toStatus(a.failure)));
  const guard =
    (name: string, fn: (call: Unary, done: Done) => Promise<void> | void) =>
    (call: Unary, done: Done): void => {
      Promise.resolve()
        .then(() => fn(call, done))
        .catch((err: unknown) => {
          log.error({ method: name, err: String(err) }, "handler_failed");
          done({ code: grpc.status.INTERNAL, details: `${name} failed: ${String(err)}` });
        });
    };
  server.addService(ledgerServerService, {
    Append: guard("Append", async (call, done) => {
      const req = svc.decode<AppendRequest>(schemas.appendRequest, call.request);
      reply(done, req.ok ? await svc.append(req.value) : req);
    }),
    AppendStream: (call: grpc.ServerReadableStream<Buffer, AppendStreamResponse>, done: grpc.sendUnaryData<AppendStreamResponse>) =>
      appendStream(svc, log, call, done),
    AppendSession: (call: grpc.ServerDuplexStream<Buffer, AppendSessionResponse>) => appendSession(svc, log, call),
    Get: guard("Get", (call, done) => {
      const req = svc.decode<GetRequest>(schemas.getRequest, call.request);
      reply(done, req.ok ? svc.get(req.value.index) : req);
    }),
    Read: guard("Read", async (call, done) => {
      const req = svc.decode<ReadRequest>(schemas.readRequest, call.request);
      reply(done, req.ok ? await svc.read(req.value.index) : req);
    }),
    Metadata: guard("Metadata", (_call, done) => done(null, svc.metadata())),
    TransferLeadership: guard("TransferLeadership", async (call, done) => {
      const req = svc.decode<TransferLeadershipRequest>(schemas.transferRequest, call.request);
      reply(done, req.ok ? await svc.transferLeadership(req.value.to) : req);
    }),
  });
}

/**
 * Client-streaming batch append. Each request is proposed as it arrives (so a batch pipelines
 * through Raft); the answer lists one result per request once all have settled. A client that
 * disconnects mid-stream only loses its answer: the proposals already made settle on their own
 * (and a retry with the same (clientId, sequence) attaches to or finds them).
 */
function appendStream(
  svc: LedgerService,
  log: Logger,
  call: grpc.ServerReadableStream<Buffer, AppendStreamResponse>,
  done: grpc.sendUnaryData<AppendStreamResponse>,
): void {
  const answers: Promise<Answer<AppendResponse>>[] = [];
  let finished = false;
  const finish = (f: () => void): void => {
    if (finished) return;
    finished = true;
    f();
  };
  call.on("data", (bytes: Buffer) => {
    if (finished) return;
    if (answers.length >= streamRequestsMax) {
      const status = svc.toStatus(svc.failure(grpc.status.RESOURCE_EXHAUSTED, "bad_request", `AppendStream carries at most ${streamRequestsMax} requests`));
      return finish(() => done(status));
    }
    const req = svc.decode<AppendRequest>(schemas.appendRequest, bytes);
    if (!req.ok) return finish(() => done(svc.toStatus(req.failure)));
    answers.push(svc.append(req.value));
  });
  call.on("end", () => {
    if (finished) return;
    void Promise.all(answers).then(
      (all) => finish(() => done(null, { results: all.map((a) => svc.toResult(a)) })),
      (err: unknown) => finish(() => done({ code: grpc.status.INTERNAL, details: `AppendStream failed: ${String(err)}` })),
    );
  });
  const abandoned = (why: string): void => {
    if (finished) return;
    finished = true;
    log.info({ why, requests: answers.length }, "append_stream_abandoned");
  };
  call.on("cancelled", () => abandoned("cancelled"));
  call.on("error", (err: Error) => abandoned(`error: ${err.message}`));
}

/**
 * The pipelined append stream (ledger.proto, AppendSession). Each tagged append is proposed as it
 * arrives and answered once with its id; the answers that settle together (typically a whole
 * applied batch) leave as one message, so the per-message cost of grpc-js is
 * paid per batch, not per append. A client that goes away only loses its answers: the
 * proposals settle on their own (a retry with the same (clientId, sequence) finds them). When
 * the replica stops, the session ends once its answers (all "stopped") are flushed.
 */
function appendSession(svc: LedgerService, log: Logger, call: grpc.ServerDuplexStream<Buffer, AppendSessionResponse>): void {
  let open = true;
  let halfClosed = false;
  let inFlight = 0;
  let outbox: TaggedResult[] = [];
  /** A flush is queued as a microtask (see `answer`). */
  let flushing = false;
  const finish = (how: () => void): void => {
    if (!open) return;
    open = false;
    deregister?.();
    how();
  };
  const flush = (): void => {
    flushing = false;
    if (!open) return;
    if (outbox.length > 0) {
      const results = outbox;
      outbox = [];
      call.write({ results });
    }
    if (inFlight === 0 && (halfClosed || stopping)) finish(() => call.end());
  };
  // The answers leave in a microtask queued by the first of them: a batch applied in one loop
  // turn settles its appends' promise chains in step, so they are all in the outbox by then, and
  // the message goes out in this event-loop iteration rather than the next (setImmediate).
  const scheduleFlush = (): void => {
    if (flushing) return;
    flushing = true;
    queueMicrotask(flush);
  };
  const answer = (id: number, result: AppendResult): void => {
    if (!open) return;
    outbox.push({ id, result });
    scheduleFlush();
  };
  let stopping = false;
  const deregister = svc.openSession(() => {
    stopping = true;
    scheduleFlush();
  });
  if (deregister === null) {
    const f = svc.failure(grpc.status.RESOURCE_EXHAUSTED, "backpressure", "too many AppendSessions open on this replica, or it is stopping");
    open = false;
    call.emit("error", svc.toStatus(f));
    return;
  }
  call.on("data", (bytes: Buffer) => {
    if (!open) return;
    const msg = svc.decode<AppendSessionRequest>(schemas.appendSessionRequest, bytes);
    // Without a decodable message there are no ids to answer: the stream cannot go on.
    if (!msg.ok) return finish(() => call.emit("error", svc.toStatus(msg.failure)));
    for (const t of msg.value.appends) propose(t.id, t.request);
  });
  const propose = (id: number, request: AppendRequest | null): void => {
    if (request === null) return answer(id, svc.toResult({ ok: false, failure: svc.failure(grpc.status.INVALID_ARGUMENT, "bad_request", `append ${id} has no request`) }));
    if (inFlight >= sessionAppendsInFlightMax || stopping) {
      const why = stopping ? "the replica is stopping" : `more than ${sessionAppendsInFlightMax} appends unanswered on this session`;
      return answer(id, svc.toResult({ ok: false, failure: svc.failure(grpc.status.RESOURCE_EXHAUSTED, "backpressure", why) }));
    }
    inFlight++;
    const settled = (a: Answer<AppendResponse>): void => {
      inFlight--;
      answer(id, svc.toResult(a));
    };
    svc.append(request).then(settled, (err: unknown) => {
      log.error({ err: String(err), id }, "session_append_failed");
      settled({ ok: false, failure: { ...svc.failure(grpc.status.INTERNAL, "malformed", `append failed: ${String(err)}`), outcomeUnknown: true } });
    });
  };
  // The client sends no more; answer what is in flight, then end with OK.
  call.on("end", () => {
    halfClosed = true;
    scheduleFlush();
  });
  const abandoned = (why: string): void => finish(() => log.debug({ why, inFlight }, "append_session_abandoned"));
  call.on("cancelled", () => abandoned("cancelled"));
  call.on("error", (err: Error) => abandoned(`error: ${err.message}`));
}
