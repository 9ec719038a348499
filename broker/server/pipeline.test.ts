/**
 * `raft.pipeline: true` end to end: three in-process LedgerNodes over real loopback gRPC, each
 * with its own CommitLog on disk. The core and driver rules are tested in raft/replica; this
 * checks the setting reaches the replica and a group running it loses nothing across a leader stop.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerClient } from "../client/ledger_client.js";
import { InProcessGroup, waitFor } from "./test_helpers.js";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

let g: InProcessGroup;

beforeAll(async () => {
  g = await InProcessGroup.start({ prefix: "dledger-pipeline-", entryBytesMax: 64 * 1024, raft: { pipeline: true } });
}, 30_000);

afterAll(async () => {
  await g.stop();
});

describe("a group with leader pipelining", () => {
  it("acknowledges concurrent appends, loses none when the leader stops, and every replica holds the same entries", async () => {
    const client = new LedgerClient({ endpoints: Object.values(g.layout.client), operationTimeoutMs: 15_000 });
    try {
      const acked: { index: number; body: string }[] = [];
      const appendAll = async (tag: string, n: number): Promise<void> => {
        const rs = await Promise.all(Array.from({ length: n }, (_, i) => client.append(text(`${tag}-${i}`))));
        rs.forEach((r, i) => {
          expect(r.ok, JSON.stringify(r)).toBe(true);
          if (r.ok) acked.push({ index: r.index, body: `${tag}-${i}` });
        });
      };
      // 300 at once from one client (32 in flight): this also found a client bug, since fixed
      // (LedgerClient.acquire): retries across the first not_leader answers let newer sequences
      // run more than the server's dedup window ahead of an old one, which then came back expired.
      await appendAll("a", 300);
      const leader = g.leaderNode();
      expect(leader).not.toBeNull();
      // The setting reached the replica: its leader sent or applied while its own fsync ran.
      expect(leader?.replica.counters.pipelinedDrains).toBeGreaterThan(0);
      await leader?.stop();
      g.nodes.delete(leader?.id as string);
      await waitFor("a new leader", () => g.leaderNode() !== null, 15_000);
      await appendAll("b", 200);
      const last = Math.max(...acked.map((a) => a.index));
      for (const n of g.nodes.values()) {
        await waitFor(`${n.id} applies ${last}`, () => n.service.metadata().appliedIndex >= last);
        const endpoint = g.layout.client[n.id] as string;
        for (const a of acked) expect(decode((await client.get(a.index, { endpoint })).body)).toBe(a.body);
      }
    } finally {
      client.close();
    }
  }, 60_000);
});
