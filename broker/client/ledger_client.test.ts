/** LedgerClient's honesty when nothing answers: refused connections vs silent servers. */
import { createServer, type Socket } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, InProcessGroup } from "../server/test_helpers.js";
import { LedgerClient } from "./ledger_client.js";

const sockets: Socket[] = [];
const silent = createServer((s) => sockets.push(s)); // accepts TCP, never speaks HTTP/2

afterAll(() => {
  for (const s of sockets) s.destroy();
  silent.close();
});

describe("LedgerClient outcomes", () => {
  it("reports 'failed' when no replica accepts a connection: nothing can have been applied", async () => {
    const client = new LedgerClient({ endpoints: [`127.0.0.1:${await freePort()}`], attemptsMax: 3, attemptTimeoutMs: 500 });
    try {
      const r = await client.append(new Uint8Array([1]));
      expect(r).toMatchObject({ ok: false, outcome: "failed", attempts: 3, sequence: 1 });
    } finally {
      client.close();
    }
  });

  it("reports 'unknown' when an attempt timed out: the request may have reached a leader", async () => {
    const port = await new Promise<number>((r) => silent.listen(0, "127.0.0.1", () => r((silent.address() as { port: number }).port)));
    const client = new LedgerClient({ endpoints: [`127.0.0.1:${port}`], attemptsMax: 2, attemptTimeoutMs: 200 });
    try {
      const r = await client.append(new Uint8Array([1]));
      expect(r).toMatchObject({ ok: false, outcome: "unknown", attempts: 2 });
    } finally {
      client.close();
    }
  });

  it("numbers appends from firstSequence and refuses an empty endpoint list", () => {
    expect(() => new LedgerClient({ endpoints: [] })).toThrow(/at least one replica/);
    const c = new LedgerClient({ endpoints: ["127.0.0.1:1"], clientId: "me", firstSequence: 41 });
    expect(c.clientId).toBe("me");
    c.close();
  });
});

describe("LedgerClient against a real group", () => {
  it("300 appends at once, starting at a follower: every one acknowledged, none expired by the dedup window", async () => {
    // Retries after the first not_leader answers used to let newer sequences run more than the
    // server's dedup window (64) ahead of an old one, which then came back sequence_expired.
    const g = await InProcessGroup.start({ prefix: "dledger-client-window-", entryBytesMax: 64 * 1024 });
    try {
      const follower = [...g.nodes.values()].find((n) => n.service.metadata().role === "follower");
      expect(follower).toBeDefined();
      const endpoints = [g.layout.client[follower?.id as string] as string, ...Object.values(g.layout.client)];
      const client = new LedgerClient({ endpoints: [...new Set(endpoints)], operationTimeoutMs: 15_000 });
      try {
        const rs = await Promise.all(Array.from({ length: 300 }, (_, i) => client.append(new TextEncoder().encode(`w${i}`))));
        expect(rs.filter((r) => !r.ok)).toEqual([]);
        expect(new Set(rs.map((r) => (r.ok ? r.index : 0))).size).toBe(300);
      } finally {
        client.close();
      }
    } finally {
      await g.stop();
    }
  }, 60_000);
});
