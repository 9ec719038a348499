/** KvClient's honesty: the single-shot outcome of deadlines, refused connections and trailers. */
import { createServer, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../server/test_helpers.js";
import { KvClient, outcomeOf } from "./kv_client.js";

const sockets: Socket[] = [];
const silent = createServer((s) => sockets.push(s)); // accepts TCP, never speaks HTTP/2
let silentAddress = "";

beforeAll(async () => {
  const port = await new Promise<number>((r) => silent.listen(0, "127.0.0.1", () => r((silent.address() as { port: number }).port)));
  silentAddress = `127.0.0.1:${port}`;
});

afterAll(() => {
  for (const s of sockets) s.destroy();
  silent.close();
});

function serviceError(code: grpc.status, details: string, trailers: Record<string, string> = {}): grpc.ServiceError {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(trailers)) metadata.set(k, v);
  return Object.assign(new Error(details), { code, details, metadata });
}

describe("KvClient single-shot outcomes", () => {
  it("maps a deadline to 'unknown': the request may have reached a leader", async () => {
    const c = new KvClient({ endpoints: [silentAddress], clientId: "me" });
    try {
      const r = await c.putOnce(silentAddress, "k", "v", { timeoutMs: 200 });
      expect(r).toMatchObject({ status: "unknown", code: grpc.status.DEADLINE_EXCEEDED });
      expect(await c.casOnce(silentAddress, "k", null, "v", { timeoutMs: 200 })).toMatchObject({ status: "unknown", code: grpc.status.DEADLINE_EXCEEDED });
      expect(await c.getOnce(silentAddress, "k", { timeoutMs: 200 })).toMatchObject({ status: "unknown", code: grpc.status.DEADLINE_EXCEEDED });
      expect(c.nextSequence()).toBe(3);
    } finally {
      c.close();
    }
  });

  it("maps a refused connection to 'failed': nothing was sent", async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const c = new KvClient({ endpoints: [address] });
    try {
      expect(await c.putOnce(address, "k", "v", { timeoutMs: 1000 })).toMatchObject({ status: "failed", code: grpc.status.UNAVAILABLE, reason: "" });
    } finally {
      c.close();
    }
  });

  it("trusts only the replica's own dledger-outcome, or a call that never connected, for 'failed'", () => {
    const table: [grpc.ServiceError, "failed" | "unknown"][] = [
      [serviceError(grpc.status.FAILED_PRECONDITION, "not leader", { "dledger-reason": "not_leader", "dledger-outcome": "failed", leader: "n2", "leader-address": "127.0.0.1:2" }), "failed"],
      [serviceError(grpc.status.UNAVAILABLE, "stopped", { "dledger-reason": "stopped", "dledger-outcome": "unknown" }), "unknown"],
      [serviceError(grpc.status.UNAVAILABLE, "No connection established. Last error: connect ECONNREFUSED"), "failed"],
      [serviceError(grpc.status.UNAVAILABLE, "Connection dropped"), "unknown"],
      [serviceError(grpc.status.INTERNAL, "Put failed: TypeError"), "unknown"],
      [serviceError(grpc.status.INVALID_ARGUMENT, "from a proxy, without our trailers"), "unknown"],
      [serviceError(grpc.status.CANCELLED, "Cancelled on client"), "unknown"],
      [serviceError(grpc.status.DEADLINE_EXCEEDED, "Deadline exceeded"), "unknown"],
    ];
    for (const [err, status] of table) expect(outcomeOf(err).status, err.details).toBe(status);
    expect(outcomeOf(table[0]?.[0] ?? null)).toMatchObject({ reason: "not_leader", leaderId: "n2", leaderAddress: "127.0.0.1:2" });
  });
});

describe("KvClient leader-following writes", () => {
  it("reports 'unknown' once an attempt timed out, and 'failed' when no replica ever accepted a connection", async () => {
    const silentClient = new KvClient({ endpoints: [silentAddress], attemptsMax: 2, attemptTimeoutMs: 200 });
    const refused = new KvClient({ endpoints: [`127.0.0.1:${await freePort()}`], attemptsMax: 3, attemptTimeoutMs: 500 });
    try {
      expect(await silentClient.put("k", "v")).toMatchObject({ ok: false, outcome: "unknown", attempts: 2, sequence: 1 });
      expect(await refused.cas("k", "a", "b")).toMatchObject({ ok: false, outcome: "failed", attempts: 3 });
      await expect(refused.get("k")).rejects.toMatchObject({ name: "KvError", code: grpc.status.UNAVAILABLE });
    } finally {
      silentClient.close();
      refused.close();
    }
  });

  it("refuses an empty endpoint list and a bad firstSequence", () => {
    expect(() => new KvClient({ endpoints: [] })).toThrow(/at least one replica/);
    expect(() => new KvClient({ endpoints: ["127.0.0.1:1"], firstSequence: 0 })).toThrow(/firstSequence \(0\)/);
  });
});
