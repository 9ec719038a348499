import { describe, expect, it } from "vitest";
import { Prng } from "../base/prng.js";
import { MemoryLogStore } from "../core/memory_log_store.js";
import type { Entry, Rpc, Snapshot } from "../core/types.js";
import type { ProposalOutcome, StateMachine } from "./contracts.js";
import { LocalNetwork, ManualClock } from "./local_network.js";
import { Replica } from "./replica.js";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** Appends each normal entry's text to a list; the result is the list's new length. */
class ListMachine implements StateMachine {
  items: string[] = [];
  apply(entry: Entry): Uint8Array {
    if (entry.type === "normal") this.items.push(dec(entry.data));
    return enc(String(this.items.length));
  }
  snapshot(): Uint8Array {
    return enc(JSON.stringify(this.items));
  }
  restore(snapshot: Snapshot): void {
    this.items = JSON.parse(dec(snapshot.data)) as string[];
  }
}

function group(n = 3, everyEntries = 1000, electionTicks = 10) {
  const clock = new ManualClock();
  const net = new LocalNetwork(clock);
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const prng = new Prng(42);
  const machines = new Map<string, ListMachine>();
  const stores = new Map<string, MemoryLogStore>();
  const replicas = new Map<string, Replica>();
  for (const id of ids) {
    const sm = new ListMachine();
    const store = new MemoryLogStore({ members: ids });
    machines.set(id, sm);
    stores.set(id, store);
    const r = new Replica({
      config: { id, members: ids, electionTicks, heartbeatTicks: 2 },
      clock,
      transport: net.transport(id),
      logStore: store,
      stateMachine: sm,
      prng: prng.fork(),
      tickMs: 10,
      snapshots: { everyEntries, keepEntries: 2 },
    });
    replicas.set(id, r);
  }
  // Real processes start at different moments, so their ticks are not aligned: stagger them.
  ids.forEach((id, i) => clock.setTimer(3 * i, () => replicas.get(id)?.start()));
  const leader = () => [...replicas.values()].find((r) => r.status().role === "leader" && !net_down.has(r.id));
  const net_down = new Set<string>();
  const kill = (id: string) => {
    net_down.add(id);
    net.kill(id);
    replicas.get(id)?.stop();
  };
  const settle = async <T,>(p: Promise<T>, ms = 2000): Promise<T> => {
    let out: T | undefined;
    let done = false;
    void p.then((v) => {
      out = v;
      done = true;
    });
    for (let t = 0; t < ms && !done; t += 5) {
      clock.advance(5);
      await Promise.resolve();
      await Promise.resolve();
    }
    if (!done) throw new Error("promise did not settle in simulated time");
    return out as T;
  };
  return { clock, net, ids, machines, stores, replicas, leader, kill, settle };
}

describe("Replica driver", () => {
  it("elects a leader and answers proposals once they are applied, with the machine's result", async () => {
    const g = group();
    g.clock.advance(500);
    const leader = g.leader();
    expect(leader).toBeDefined();
    const out = (await g.settle(leader!.propose(enc("a")))) as Extract<ProposalOutcome, { ok: true }>;
    expect(out.ok).toBe(true);
    expect(dec(out.result)).toBe("1");
    g.clock.advance(100);
    for (const id of g.ids) expect(g.machines.get(id)?.items).toEqual(["a"]);
  });

  it("batches proposals made together into one fsync on the leader", async () => {
    const g = group();
    g.clock.advance(500);
    const leader = g.leader()!;
    const store = g.stores.get(leader.id)!;
    const before = store.syncCount;
    const all = Promise.all(Array.from({ length: 50 }, (_, i) => leader.propose(enc(`m${i}`))));
    const outs = await g.settle(all);
    expect(outs.every((o) => o.ok)).toBe(true);
    // 50 proposals in one turn: one Ready for the append (plus at most a couple for commit).
    expect(store.syncCount - before).toBeLessThanOrEqual(3);
  });

  it("a follower refuses proposals and names the leader", async () => {
    const g = group();
    g.clock.advance(500);
    const leader = g.leader()!;
    const follower = [...g.replicas.values()].find((r) => r !== leader)!;
    expect(await follower.propose(enc("x"))).toEqual({ ok: false, reason: "not_leader", leaderHint: leader.id });
  });

  it("when the leader's connections close, a new leader is elected before any election timeout", async () => {
    // Election timeout 300 ticks × 10 ms = 3 s at the least; after the kill we watch 1 s of
    // simulated time, so an election in that window can only come from the peer-down report.
    const g = group(3, 1000, 300);
    g.clock.advance(7000);
    const old = g.leader()!;
    await g.settle(old.propose(enc("before")));
    g.kill(old.id);
    let elected: Replica | undefined;
    for (let i = 0; i < 200 && elected === undefined; i++) {
      g.clock.advance(5);
      elected = g.leader();
    }
    expect(elected).toBeDefined();
    const out = await g.settle(elected!.propose(enc("after")));
    expect(out.ok).toBe(true);
    expect(g.machines.get(elected!.id)?.items).toEqual(["before", "after"]);
  });

  it("readBarrier resolves at an index covering every write acknowledged before it", async () => {
    const g = group();
    g.clock.advance(500);
    const leader = g.leader()!;
    const w = (await g.settle(leader.propose(enc("w")))) as Extract<ProposalOutcome, { ok: true }>;
    const r = await g.settle(leader.readBarrier());
    expect(r).toEqual({ ok: true, index: w.index });
  });

  it("a follower that missed compacted entries catches up through a snapshot", async () => {
    const g = group(3, 5);
    g.clock.advance(500);
    const leader = g.leader()!;
    const lagger = [...g.replicas.values()].find((r) => r !== leader)!;
    g.net.kill(lagger.id);
    for (let i = 0; i < 12; i++) await g.settle(leader.propose(enc(`e${i}`)));
    expect(g.stores.get(leader.id)!.firstIndex()).toBeGreaterThan(2);
    g.net.revive(lagger.id);
    g.clock.advance(1000);
    expect(g.stores.get(lagger.id)!.snapshot()).not.toBeNull();
    expect(g.machines.get(lagger.id)?.items).toEqual(g.machines.get(leader.id)?.items);
    expect(g.net.deliveredByType.get("snapshot_chunk")).toBeGreaterThan(0);
  });

  it("counts and logs a malformed RPC and keeps serving", async () => {
    const g = group();
    g.clock.advance(500);
    const leader = g.leader()!;
    const follower = [...g.replicas.values()].find((r) => r !== leader)!;
    const bad = { type: "append_request", term: "x", from: leader.id, to: follower.id } as unknown as Rpc;
    (follower as unknown as { receive(r: readonly Rpc[]): void }).receive([bad]);
    g.clock.advance(20);
    expect(follower.counters.rpcsRefused).toBe(1);
    expect((await g.settle(leader.propose(enc("still-fine")))).ok).toBe(true);
  });
});
