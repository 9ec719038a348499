/**
 * The client API against three in-process replicas over real loopback gRPC (peer and client),
 * each with its own CommitLog in a temp dir. Every wait is bounded.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ledgerService, type AppendRequest, type AppendResponse, type AppendStreamResponse } from "../api/ledger_messages.js";
import { LedgerClient, LedgerError } from "../client/ledger_client.js";
import { LedgerNode } from "./ledger_node.js";
import { InProcessGroup, waitFor } from "./test_helpers.js";

const text = (s: string) => new TextEncoder().encode(s);
const entryBytesMax = 64 * 1024;

let g: InProcessGroup;

beforeAll(async () => {
  g = await InProcessGroup.start({ prefix: "dledger-node-", entryBytesMax, snapshots: { everyEntries: 40, keepEntries: 5 } });
}, 30_000);

afterAll(async () => {
  await g.stop();
});

/** The leader that has applied its own no-op (ready for Appends), or null. */
const leaderNode = (): LedgerNode | null => g.leaderNode();

function follower(): LedgerNode {
  const f = [...g.nodes.values()].find((n) => n.service.metadata().role === "follower");
  if (f === undefined) throw new Error("no follower");
  return f;
}

function rawClient(address: string): grpc.Client {
  return g.rawClient(address);
}

/** One raw Append call; resolves with the response or the ServiceError. */
function rawAppend(address: string, req: AppendRequest): Promise<AppendResponse | grpc.ServiceError> {
  const m = ledgerService.Append;
  return new Promise((resolve) => {
    rawClient(address).makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, (err, v) => resolve(err ?? (v as AppendResponse)));
  });
}

const isError = (v: unknown): v is grpc.ServiceError => v instanceof Error;

describe("dledger.v1.Ledger in process", () => {
  it("a client given only a follower finds the leader, appends, and every replica serves the entry", async () => {
    const f = follower();
    const client = new LedgerClient({ endpoints: [g.layout.client[f.id] as string] });
    try {
      const r = await client.append(text("hello"));
      expect(r).toMatchObject({ ok: true, duplicate: false, attempts: 2 });
      if (!r.ok) return;
      for (const id of g.layout.ids) {
        await waitFor(`${id} applies ${r.index}`, () => (g.nodes.get(id)?.service.metadata().appliedIndex ?? 0) >= r.index);
        const e = await client.get(r.index, { endpoint: g.layout.client[id] as string });
        expect(new TextDecoder().decode(e.body)).toBe("hello");
        expect(e.clientId).toBe(client.clientId);
      }
      const read = await client.read(r.index);
      expect(read.readIndex).toBeGreaterThanOrEqual(r.index);
      expect(read.entry?.index).toBe(r.index);
      const md = await client.metadata({ endpoint: g.layout.client[f.id] as string });
      expect(md.leaderAddress).toBe(client.leaderAddress);
      expect(md.members.map((m) => m.id)).toEqual(["n1", "n2", "n3"]);
    } finally {
      client.close();
    }
  });

  it("answers a retried (clientId, sequence) with the original index, and concurrent retries attach to one proposal", async () => {
    const leader = leaderNode();
    if (leader === null) throw new Error("no leader");
    const address = g.layout.client[leader.id] as string;
    const first = await rawAppend(address, { clientId: "dup", sequence: 1, body: text("once") });
    const again = await rawAppend(address, { clientId: "dup", sequence: 1, body: text("once") });
    if (isError(first) || isError(again)) throw new Error("append failed");
    expect(again).toEqual({ ...first, duplicate: true });
    const both = await Promise.all([2, 2, 2].map(() => rawAppend(address, { clientId: "dup", sequence: 2, body: text("twice?") })));
    const indexes = new Set(both.map((b) => (isError(b) ? -1 : b.index)));
    expect(indexes.size).toBe(1);
    const client = new LedgerClient({ endpoints: [address] });
    try {
      let copies = 0;
      const commit = leader.service.metadata().appliedIndex;
      for (let i = leader.service.metadata().firstIndex; i <= commit; i++) {
        const e = await client.get(i);
        if (e.clientId === "dup" && e.sequence === 2) copies++;
      }
      expect(copies).toBe(1);
    } finally {
      client.close();
    }
  });

  it("a follower refuses an Append with FAILED_PRECONDITION and the leader's id and address in the trailers", async () => {
    const err = await rawAppend(g.layout.client[follower().id] as string, { clientId: "", sequence: 0, body: text("x") });
    if (!isError(err)) throw new Error("a follower accepted an append");
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    const leader = leaderNode();
    expect(err.metadata.get("leader")[0]).toBe(leader?.id);
    expect(err.metadata.get("leader-address")[0]).toBe(g.layout.client[leader?.id ?? ""]);
    expect(err.metadata.get("dledger-reason")[0]).toBe("not_leader");
  });

  it("refuses an oversized entry and a malformed request with INVALID_ARGUMENT, and keeps serving", async () => {
    const leader = leaderNode();
    if (leader === null) throw new Error("no leader");
    const address = g.layout.client[leader.id] as string;
    const big = await rawAppend(address, { clientId: "", sequence: 0, body: new Uint8Array(entryBytesMax) });
    if (!isError(big)) throw new Error("oversized entry accepted");
    expect(big.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(big.details).toMatch(/exceeds entryBytesMax \(65536\)/);
    const garbage = await new Promise<grpc.ServiceError | null>((resolve) => {
      rawClient(address).makeUnaryRequest("/dledger.v1.Ledger/Append", (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff, 0xff]), (err) => resolve(err));
    });
    expect(garbage?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(garbage?.details).toMatch(/malformed AppendRequest/);
    expect(isError(await rawAppend(address, { clientId: "", sequence: 0, body: text("still serving") }))).toBe(false);
  });

  it("AppendStream answers per item in order; a client cancelling mid-stream wedges nothing", async () => {
    const leader = leaderNode();
    if (leader === null) throw new Error("no leader");
    const address = g.layout.client[leader.id] as string;
    const client = new LedgerClient({ endpoints: [address] });
    try {
      const out = await client.appendBatch([text("a"), text("b"), new Uint8Array(entryBytesMax), text("c")]);
      expect(out.map((o) => (o.ok ? "ok" : o.outcome))).toEqual(["ok", "ok", "failed", "ok"]);
      const idx = out.flatMap((o) => (o.ok ? [o.index] : []));
      expect(idx).toEqual([...idx].sort((a, b) => a - b));
      const m = ledgerService.AppendStream;
      const cancelled = await new Promise<grpc.ServiceError | AppendStreamResponse | undefined>((resolve) => {
        const call = rawClient(address).makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, (err, v) => resolve(err ?? v));
        call.write({ clientId: "cancel", sequence: 1, body: text("x") });
        call.write({ clientId: "cancel", sequence: 2, body: text("y") });
        setTimeout(() => call.cancel(), 5);
      });
      expect(isError(cancelled) ? cancelled.code : "answered").toBe(grpc.status.CANCELLED);
      const after = await client.append(text("after cancel"));
      expect(after.ok).toBe(true);
    } finally {
      client.close();
    }
  });

  it("Get distinguishes not yet committed from compacted, with typed statuses", async () => {
    const leader = leaderNode();
    if (leader === null) throw new Error("no leader");
    const client = new LedgerClient({ endpoints: [g.layout.client[leader.id] as string] });
    try {
      for (let i = 0; i < 60; i++) expect((await client.append(text(`fill ${i}`))).ok).toBe(true);
      await waitFor("a compacted log", () => leader.service.metadata().firstIndex > 2);
      const beyond = await client.get(1_000_000).catch((e: unknown) => e);
      expect(beyond).toBeInstanceOf(LedgerError);
      expect(beyond).toMatchObject({ code: grpc.status.OUT_OF_RANGE, reason: "not_committed" });
      const compacted = await client.get(1).catch((e: unknown) => e);
      expect(compacted).toMatchObject({ code: grpc.status.NOT_FOUND, reason: "compacted" });
    } finally {
      client.close();
    }
  });

  it("TransferLeadership moves the leader, and the client follows it", async () => {
    const leader = leaderNode();
    if (leader === null) throw new Error("no leader");
    const to = follower().id;
    const client = new LedgerClient({ endpoints: Object.values(g.layout.client) });
    try {
      const r = await client.transferLeadership(to);
      expect(r.leaderId).toBe(to);
      expect(client.leaderAddress).toBe(g.layout.client[to]);
      const a = await client.append(text("after transfer"));
      expect(a.ok).toBe(true);
    } finally {
      client.close();
    }
  });
});
