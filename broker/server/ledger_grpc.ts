import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../raft/base/logger.js";
import {
  ledgerServerService,
  schemas,
  type AppendRequest,
  type AppendResponse,
  type AppendStreamResponse,
  type GetRequest,
  type ReadRequest,
  type TransferLeadershipRequest,
} from "../api/ledger_messages.js";
import { streamRequestsMax, type Answer, type LedgerService } from "./ledger_service.js";

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
