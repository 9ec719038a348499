import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { ledgerService, type AppendRequest, type AppendSessionRequest, type AppendSessionResponse } from "../api/ledger_messages.js";
import { freePort, randomLoopbackHost } from "../../raft/transport/ports.js";
import { AppendSession } from "./append_session.js";

const req = (sequence: number): AppendRequest => ({ clientId: "c", sequence, body: new Uint8Array([sequence]) });

/**
 * A real gRPC server whose AppendSession answers only the appends whose sequence is in `answer`
 * (index = sequence), after `delayMs`; the others it holds forever.
 */
async function server(answer: (sequence: number) => boolean, delayMs = 0): Promise<{ address: string; stop: () => Promise<void> }> {
  const s = new grpc.Server();
  s.addService({ AppendSession: ledgerService.AppendSession } as grpc.ServiceDefinition, {
    AppendSession: (call: grpc.ServerDuplexStream<AppendSessionRequest, AppendSessionResponse>) => {
      call.on("data", (m: AppendSessionRequest) => {
        const results = m.appends
          .filter((t) => t.request !== null && answer(t.request.sequence))
          .map((t) => ({
            id: t.id,
            result: { code: 0, message: "", reason: "", outcomeUnknown: false, leaderId: "", leaderAddress: "", response: { index: t.request?.sequence ?? 0, term: 1, duplicate: false } },
          }));
        if (results.length > 0) setTimeout(() => call.write({ results }), delayMs);
      });
      call.on("error", () => {});
    },
  });
  const host = randomLoopbackHost();
  const port = await freePort(host);
  await new Promise<void>((resolve, reject) => s.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err === null ? resolve() : reject(err))));
  return { address: `${host}:${port}`, stop: () => new Promise((resolve) => s.tryShutdown(() => resolve())) };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An AppendSession on a fresh channel to `srv`; the session, the channel and the server are closed after the test. */
async function sessionTo(srv: { address: string; stop: () => Promise<void> }): Promise<AppendSession> {
  cleanups.push(srv.stop);
  const client = new grpc.Client(srv.address, grpc.credentials.createInsecure());
  const session = new AppendSession(client);
  cleanups.push(() => {
    session.close();
    client.close();
  });
  return session;
}

describe("AppendSession deadlines (one timer per session)", () => {
  it("fails each unanswered append at its own deadline, a later append with a shorter deadline first, and answers the answered one", async () => {
    const session = await sessionTo(await server((seq) => seq === 3));
    const order: string[] = [];
    const t0 = performance.now();
    const track = (name: string, p: ReturnType<AppendSession["append"]>) =>
      p.then((r) => {
        order.push(name);
        return { r, ms: performance.now() - t0 };
      });
    const long = track("long", session.append(req(1), 1500));
    const short = track("short", session.append(req(2), 300));
    const answered = track("answered", session.append(req(3), 5000));
    const [l, s, a] = await Promise.all([long, short, answered]);
    expect(a.r.ok).toBe(true);
    for (const x of [l, s]) {
      expect(x.r.ok).toBe(false);
      if (!x.r.ok) expect(x.r.failure.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    }
    // Only the deadlines decide this order; when the answer lands beside them depends on the box.
    expect(order.filter((n) => n !== "answered")).toEqual(["short", "long"]);
    // Never before its own deadline (timers may fire late, never early).
    expect(s.ms).toBeGreaterThanOrEqual(299);
    expect(l.ms).toBeGreaterThanOrEqual(1499);
    expect(session.inFlight).toBe(0);
  });

  it("an answer that comes after the deadline is ignored; appends answered in time keep succeeding", async () => {
    const session = await sessionTo(await server(() => true, 150));
    const late = await session.append(req(1), 50);
    expect(late.ok).toBe(false);
    if (!late.ok) expect(late.failure.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const rs = await Promise.all([2, 3, 4].map((s) => session.append(req(s), 5000)));
    expect(rs.map((r) => r.ok && r.value.index)).toEqual([2, 3, 4]);
    expect(session.inFlight).toBe(0);
    // With nothing waiting the deadline timer is disarmed: it must not hold the process for 5 s.
    expect((session as unknown as { deadlineTimer: unknown }).deadlineTimer).toBeNull();
  });
});
