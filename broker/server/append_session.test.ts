/**
 * dledger.v1.Ledger/AppendSession against three in-process replicas over real loopback gRPC:
 * tagging and order, typed per-append errors, a client that vanishes mid-stream, and retries
 * after a broken stream that deduplication applies once. Every wait is bounded.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeMessage } from "../api/proto_wire.js";
import { ledgerService, schemas, type AppendRequest, type AppendSessionResponse, type TaggedAppend, type TaggedResult } from "../api/ledger_messages.js";
import { AppendSession } from "../client/append_session.js";
import { LedgerClient } from "../client/ledger_client.js";
import { LedgerNode } from "./ledger_node.js";
import { InProcessGroup, waitFor } from "./test_helpers.js";

const text = (s: string) => new TextEncoder().encode(s);
const entryBytesMax = 8 * 1024;

let g: InProcessGroup;

beforeAll(async () => {
  g = await InProcessGroup.start({ prefix: "dledger-session-", entryBytesMax, seedOffset: 7 });
}, 30_000);

afterAll(async () => {
  await g.stop();
});

const leaderNode = (): LedgerNode | null => g.leaderNode();
const rawClient = (address: string): grpc.Client => g.rawClient(address);

function leaderAddress(): string {
  const l = leaderNode();
  if (l === null) throw new Error("no leader");
  return g.layout.client[l.id] as string;
}


type RawSession = grpc.ClientDuplexStream<Buffer, AppendSessionResponse>;

/** A raw AppendSession whose messages we write as bytes (to send malformed ones too). */
function rawSession(address: string): { call: RawSession; results: TaggedResult[]; status: Promise<grpc.StatusObject> } {
  const m = ledgerService.AppendSession;
  const call = rawClient(address).makeBidiStreamRequest(m.path, (b: Buffer) => b, m.responseDeserialize, new grpc.Metadata(), {});
  const results: TaggedResult[] = [];
  call.on("data", (msg: AppendSessionResponse) => results.push(...msg.results));
  call.on("error", () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  return { call, results, status };
}

function message(appends: readonly TaggedAppend[]): Buffer {
  const bytes = encodeMessage(schemas.appendSessionRequest, { appends });
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const req = (clientId: string, sequence: number, body = text(`${clientId}/${sequence}`)): AppendRequest => ({ clientId, sequence, body });

/** Committed entries [lo, hi] of one replica, through Get. */
async function entriesOf(client: LedgerClient, address: string, lo: number, hi: number) {
  const out = [];
  for (let i = lo; i <= hi; i++) out.push(await client.get(i, { endpoint: address }));
  return out;
}

describe("AppendSession", () => {
  it("answers every tagged append once with its id; appends of one message commit in message order", async () => {
    const s = rawSession(leaderAddress());
    const ids = [41, 7, 1000, 3, 99];
    s.call.write(message(ids.map((id, i) => ({ id, request: req("order", i + 1) }))));
    await waitFor("5 results", () => s.results.length >= 5);
    expect(s.results.map((r) => r.id).sort((a, b) => a - b)).toEqual([...ids].sort((a, b) => a - b));
    const byId = new Map(s.results.map((r) => [r.id, r.result]));
    const indexes = ids.map((id) => byId.get(id)?.response?.index ?? -1);
    for (const r of byId.values()) expect(r).toMatchObject({ code: 0, reason: "", outcomeUnknown: false });
    // Proposed in arrival order: strictly increasing indexes in the order of the message.
    for (let i = 1; i < indexes.length; i++) expect(indexes[i]).toBeGreaterThan(indexes[i - 1] as number);
    s.call.end();
    expect((await s.status).code).toBe(grpc.status.OK);
  });

  it("gives each append its own typed result: the valid ones in a message succeed beside refused ones", async () => {
    const s = rawSession(leaderAddress());
    s.call.write(
      message([
        { id: 1, request: req("mixed", 1) },
        { id: 2, request: req("mixed", 2, new Uint8Array(entryBytesMax + 1)) },
        { id: 3, request: { clientId: "mixed", sequence: 0, body: text("no sequence") } },
        { id: 4, request: req("mixed", 4) },
      ]),
    );
    await waitFor("4 results", () => s.results.length >= 4);
    const byId = new Map(s.results.map((r) => [r.id, r.result]));
    expect(byId.get(1)).toMatchObject({ code: 0, response: { duplicate: false } });
    expect(byId.get(2)).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: "too_large", outcomeUnknown: false, response: null });
    expect(byId.get(2)?.message).toMatch(/exceeds entryBytesMax/);
    expect(byId.get(3)).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: "bad_request", outcomeUnknown: false });
    expect(byId.get(4)).toMatchObject({ code: 0 });
    s.call.end();
    await s.status;
  });

  it("a follower answers each append not_leader with the leader's id and address", async () => {
    const leader = leaderNode();
    const f = [...g.nodes.values()].find((n) => n !== leader && n.service.metadata().role === "follower");
    if (f === undefined || leader === null) throw new Error("no follower");
    const s = rawSession(g.layout.client[f.id] as string);
    s.call.write(message([{ id: 5, request: req("follower", 1) }, { id: 6, request: req("follower", 2) }]));
    await waitFor("2 results", () => s.results.length >= 2);
    for (const r of s.results) {
      expect(r.result).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: "not_leader", leaderId: leader.id, leaderAddress: g.layout.client[leader.id] });
    }
    s.call.end();
    await s.status;
  });

  it("a malformed message ends the stream with INVALID_ARGUMENT (malformed), and the replica keeps serving", async () => {
    const s = rawSession(leaderAddress());
    s.call.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    const st = await s.status;
    expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(st.metadata.get("dledger-reason")).toEqual(["malformed"]);
    const client = new LedgerClient({ endpoints: [leaderAddress()] });
    try {
      expect(await client.append(text("after malformed"))).toMatchObject({ ok: true });
    } finally {
      client.close();
    }
  });

  it("a client that disconnects mid-stream leaves the replica serving, and its retries are applied once", async () => {
    const address = leaderAddress();
    const s = rawSession(address);
    const n = 40;
    s.call.write(message(Array.from({ length: n }, (_, i) => ({ id: i + 1, request: req("vanisher", i + 1) }))));
    s.call.cancel();
    expect((await s.status).code).toBe(grpc.status.CANCELLED);
    // The same producer retries every sequence on a fresh session: each lands exactly once.
    const session = new AppendSession(rawClient(address));
    try {
      const again = await Promise.all(Array.from({ length: n }, (_, i) => session.append(req("vanisher", i + 1), 5000)));
      expect(again.every((r) => r.ok)).toBe(true);
      const indexes = again.map((r) => (r.ok ? r.value.index : -1));
      expect(new Set(indexes).size).toBe(n);
      const client = new LedgerClient({ endpoints: [address] });
      try {
        const hi = Math.max(...indexes);
        const log = await entriesOf(client, address, 1, hi);
        const mine = log.filter((e) => e.clientId === "vanisher" && e.duplicateOf === 0);
        expect(mine.map((e) => e.sequence).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      } finally {
        client.close();
      }
    } finally {
      session.close();
    }
  });

  it("when the stream breaks with appends unanswered, LedgerClient retries them and each is applied once", async () => {
    const address = leaderAddress();
    const proxy = await holdingProxy(address);
    const client = new LedgerClient({ endpoints: [proxy.address], attemptTimeoutMs: 3000, operationTimeoutMs: 20_000 });
    try {
      // A first append opens the session (HTTP/2 settings have crossed the proxy).
      const first = await client.append(text("warm"));
      expect(first.ok).toBe(true);
      const applied0 = leaderNode()?.service.metadata().appliedIndex ?? 0;
      proxy.holdResponses(true);
      const n = 20;
      const outcomes = client.appendBatch(Array.from({ length: n }, (_, i) => text(`broken ${i}`)));
      // The leader applies all of them; their answers sit in the proxy. Then the stream breaks.
      await waitFor("the leader applies the batch", () => (leaderNode()?.service.metadata().appliedIndex ?? 0) >= applied0 + n);
      proxy.breakConnections();
      const all = await outcomes;
      expect(all.every((o) => o.ok)).toBe(true);
      // Answered by deduplication with the original indexes.
      expect(all.every((o) => o.ok && o.duplicate && o.attempts >= 2)).toBe(true);
      const hi = Math.max(...all.map((o) => (o.ok ? o.index : 0)));
      const log = await entriesOf(client, address, 1, hi);
      const mine = log.filter((e) => e.clientId === client.clientId && e.duplicateOf === 0);
      expect(mine.map((e) => e.sequence).sort((a, b) => a - b)).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1));
    } finally {
      client.close();
      await proxy.close();
    }
  }, 30_000);
});

/**
 * A TCP proxy to `target` that can hold server→client bytes (requests still flow) and then
 * break every connection, as a network fault after delivery would.
 */
async function holdingProxy(target: string): Promise<{ address: string; holdResponses(on: boolean): void; breakConnections(): void; close(): Promise<void> }> {
  const [host, port] = target.split(":") as [string, string];
  const sockets: Socket[] = [];
  let hold = false;
  const server: Server = createServer((down) => {
    const up = connect(Number(port), host);
    sockets.push(down, up);
    down.on("data", (b) => up.write(b));
    up.on("data", (b) => {
      if (!hold) down.write(b);
    });
    const end = (): void => {
      down.destroy();
      up.destroy();
    };
    down.on("error", end);
    up.on("error", end);
    down.on("close", end);
    up.on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const a = server.address();
  const address = `127.0.0.1:${typeof a === "object" && a !== null ? a.port : 0}`;
  return {
    address,
    holdResponses: (on) => (hold = on),
    breakConnections: () => {
      hold = false;
      for (const s of sockets.splice(0)) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets.splice(0)) s.destroy();
        server.close(() => resolve());
      }),
  };
}
