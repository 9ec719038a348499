import { describe, expect, it } from "vitest";
import { Prng } from "../base/prng.js";
import { MemoryLogStore } from "../core/memory_log_store.js";
import type { Entry, Rpc, Snapshot } from "../core/types.js";
import type { ProposalOutcome, StateMachine } from "./contracts.js";
import type { Clock } from "../base/clock.js";
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

/**
 * A MemoryLogStore whose syncAsync completes later, on a 0 ms timer of the test clock, or when
 * the test releases it (while `held`): the seam the CommitLog's thread-pool fdatasync fills.
 */
class AsyncSyncStore extends MemoryLogStore {
  held = false;
  /** Hold every sync whose batch reaches this index (null: only `held` decides). */
  holdFromIndex: number | null = null;
  private readonly waiting: (() => void)[] = [];
  constructor(
    private readonly clock: Clock,
    members: readonly string[],
  ) {
    super({ members });
  }
  syncAsync(done: (err: unknown) => void): void {
    const finish = (): void => {
      this.sync();
      done(null);
    };
    if (this.held || (this.holdFromIndex !== null && this.lastIndex() >= this.holdFromIndex)) this.waiting.push(finish);
    else this.clock.setTimer(0, finish);
  }
  get pendingSyncs(): number {
    return this.waiting.length;
  }
  release(): void {
    this.held = false;
    for (const f of this.waiting.splice(0)) f();
  }
}

function group(n = 3, everyEntries = 1000, electionTicks = 10, asyncSync = false, inlineSyncEntriesMax = 0, pipeline = false) {
  const clock = new ManualClock();
  const net = new LocalNetwork(clock);
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const prng = new Prng(42);
  const machines = new Map<string, ListMachine>();
  const stores = new Map<string, AsyncSyncStore | MemoryLogStore>();
  const replicas = new Map<string, Replica>();
  for (const id of ids) {
    const sm = new ListMachine();
    const store = asyncSync ? new AsyncSyncStore(clock, ids) : new MemoryLogStore({ members: ids });
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
      inlineSyncEntriesMax,
      pipeline,
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

  it("a leader cut off without any connection closing answers its pending proposals when it steps down", async () => {
    const g = group();
    g.clock.advance(500);
    const old = g.leader()!;
    g.net.isolate(old.id);
    let outcome: ProposalOutcome | null = null;
    void old.propose(enc("stranded")).then((o) => (outcome = o));
    // Check-quorum steps the isolated leader down within two election timeouts (10 ticks × 10 ms).
    for (let t = 0; t < 400 && outcome === null; t += 5) {
      g.clock.advance(5);
      await Promise.resolve();
    }
    expect(old.status().role).not.toBe("leader");
    // Not "failed": the entry may still be committed by a later leader, so the outcome is unknown.
    expect(outcome).toMatchObject({ ok: false, reason: "leader_changed" });
    g.net.heal(old.id);
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

  it("snapshots after everyEntries plus a drawn part (≤ half) of applied entries, at different indexes on different replicas", async () => {
    const g = group(3, 20);
    g.clock.advance(500);
    const leader = g.leader()!;
    // 35 entries (and the leader's empty one): one snapshot each, the next is ≥ 20 entries later.
    for (let i = 0; i < 35; i++) await g.settle(leader.propose(enc(`e${i}`)));
    g.clock.advance(200);
    const at = g.ids.map((id) => g.stores.get(id)!.snapshot()?.meta.index ?? -1);
    for (const index of at) {
      expect(index).toBeGreaterThanOrEqual(20);
      expect(index).toBeLessThanOrEqual(30 + 1); // one Ready may apply two entries at once
    }
    // Equal gaps would make every replica stall on its snapshot at the same moment.
    expect(new Set(at).size).toBeGreaterThan(1);
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

  it("with an off-loop fsync, the leader's appends reach the followers before its own fsync completes", async () => {
    const g = group(3, 1000, 10, true);
    g.clock.advance(500);
    const leader = g.leader()!;
    const store = g.stores.get(leader.id) as AsyncSyncStore;
    const followers = g.ids.filter((id) => id !== leader.id);
    const base = store.lastIndex();
    store.held = true;
    let answered = false;
    const x = leader.propose(enc("x"));
    void x.then(() => (answered = true));
    g.clock.advance(50);
    // The leader's fsync is still running, yet both followers already wrote the entry.
    expect(store.pendingSyncs).toBe(1);
    for (const id of followers) expect(g.stores.get(id)!.lastIndex()).toBe(base + 1);
    // Let any answer already given reach the .then above: without pipelining it waits for the fsync.
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(answered).toBe(false);
    // A proposal made meanwhile waits for the fsync (the core takes no input during a Ready).
    const y = leader.propose(enc("y"));
    g.clock.advance(50);
    expect(store.lastIndex()).toBe(base + 1);
    store.release();
    const outs = await g.settle(Promise.all([x, y]));
    expect(outs.map((o) => o.ok && o.index)).toEqual([base + 1, base + 2]);
    g.clock.advance(100);
    for (const id of g.ids) expect(g.machines.get(id)?.items).toEqual(["x", "y"]);
  });

  it("with an off-loop fsync, a follower acknowledges an entry only after its fsync completes", async () => {
    const g = group(3, 1000, 10, true);
    g.clock.advance(500);
    const leader = g.leader()!;
    const [slow, fast] = g.ids.filter((id) => id !== leader.id) as [string, string];
    const slowStore = g.stores.get(slow) as AsyncSyncStore;
    slowStore.held = true;
    const out = (await g.settle(leader.propose(enc("a")))) as Extract<ProposalOutcome, { ok: true }>;
    // Committed with the fast follower; the slow one holds the entry, unsynced and unacknowledged.
    expect(out.ok).toBe(true);
    g.clock.advance(100);
    expect(slowStore.lastIndex()).toBe(out.index);
    expect(slowStore.unsyncedWrites()).toBeGreaterThan(0);
    expect(leader.status().matches[fast]).toBe(out.index);
    expect(leader.status().matches[slow]).toBeLessThan(out.index);
    slowStore.release();
    g.clock.advance(100);
    expect(leader.status().matches[slow]).toBe(out.index);
  });

  it("a follower fsyncs a small Ready on the event loop (no thread-pool round trip) and a large one off it", async () => {
    const g = group(3, 1000, 10, true, 4);
    g.clock.advance(500);
    const leader = g.leader()!;
    const followers = g.ids.filter((id) => id !== leader.id).map((id) => g.stores.get(id) as AsyncSyncStore);
    for (const f of followers) f.held = true;
    const one = leader.propose(enc("a"));
    g.clock.advance(20);
    // Held stores would keep an off-loop fsync pending: the followers synced in place and acked.
    for (const f of followers) {
      expect(f.pendingSyncs).toBe(0);
      expect(f.unsyncedWrites()).toBe(0);
    }
    expect((await g.settle(one)).ok).toBe(true);
    const many = Array.from({ length: 12 }, (_, i) => leader.propose(enc(`b${i}`)));
    g.clock.advance(20);
    expect(followers.some((f) => f.pendingSyncs > 0)).toBe(true);
    for (const f of followers) f.release();
    for (const p of many) expect((await g.settle(p)).ok).toBe(true);
  });

  it("with an off-loop fsync, stop() answers the calls deferred during the leader's fsync", async () => {
    const g = group(3, 1000, 10, true);
    g.clock.advance(500);
    const leader = g.leader()!;
    const store = g.stores.get(leader.id) as AsyncSyncStore;
    store.held = true;
    const first = leader.propose(enc("first"));
    g.clock.advance(5);
    const deferred = [leader.propose(enc("second")), leader.readBarrier()];
    leader.stop();
    expect(await Promise.all([first, ...deferred])).toEqual([
      { ok: false, reason: "stopped", leaderHint: null },
      { ok: false, reason: "stopped", leaderHint: null },
      { ok: false, reason: "stopped", leaderHint: null },
    ]);
    // The fsync completing after the stop touches nothing.
    store.release();
    g.clock.advance(50);
  });

  it("with an off-loop fsync, entries committed earlier are answered without waiting for the next batch's fsync", async () => {
    const g = group(3, 1000, 10, true);
    g.clock.advance(500);
    const leader = g.leader()!;
    const store = g.stores.get(leader.id) as AsyncSyncStore;
    const base = store.lastIndex();
    // b's local fsync is held while the followers write and acknowledge it; c arrives meanwhile.
    store.held = true;
    let bDone = false;
    const b = leader.propose(enc("b"));
    void b.then(() => (bDone = true));
    g.clock.advance(20);
    const c = leader.propose(enc("c"));
    // Hold the next fsync (it carries c, beside the commit of b), and release b's.
    store.holdFromIndex = base + 2;
    store.release();
    g.clock.advance(20);
    await Promise.resolve();
    expect(store.pendingSyncs).toBe(1);
    expect(bDone).toBe(true);
    expect(g.machines.get(leader.id)?.items).toEqual(["b"]);
    store.holdFromIndex = null;
    store.release();
    const outs = await g.settle(Promise.all([b, c]));
    expect(outs.map((o) => o.ok && o.index)).toEqual([base + 1, base + 2]);
  });

  it("a pipelining leader answers an entry both followers made durable while its own fsync is still held", async () => {
    const g = group(3, 1000, 10, true, 0, true);
    g.clock.advance(500);
    const leader = g.leader()!;
    const store = g.stores.get(leader.id) as AsyncSyncStore;
    const base = store.lastIndex();
    store.held = true;
    const x = await g.settle(leader.propose(enc("x")));
    expect(x).toMatchObject({ ok: true, index: base + 1 });
    expect(store.pendingSyncs).toBe(1);
    expect(store.unsyncedWrites()).toBeGreaterThan(0);
    // A proposal made meanwhile reaches the followers at once; the leader writes it only in its
    // next Ready, after the held fsync, and answers it once it is written there.
    let yDone = false;
    const y = leader.propose(enc("y"));
    void y.then(() => (yDone = true));
    for (let i = 0; i < 5; i++) {
      g.clock.advance(10);
      await Promise.resolve();
    }
    expect(store.lastIndex()).toBe(base + 1);
    for (const id of g.ids.filter((i) => i !== leader.id)) expect(g.stores.get(id)!.lastIndex()).toBe(base + 2);
    expect(yDone).toBe(false);
    store.release();
    expect(await g.settle(y)).toMatchObject({ ok: true, index: base + 2 });
    expect(store.lastIndex()).toBe(base + 2);
    g.clock.advance(100);
    for (const id of g.ids) expect(g.machines.get(id)?.items).toEqual(["x", "y"]);
  });

  it("a pipelining leader never counts entries it has not written and synced: with one follower held, they wait for its own fsync", async () => {
    const g = group(3, 1000, 10, true, 0, true);
    g.clock.advance(500);
    const leader = g.leader()!;
    const store = g.stores.get(leader.id) as AsyncSyncStore;
    const [slow, fast] = g.ids.filter((id) => id !== leader.id) as [string, string];
    (g.stores.get(slow) as AsyncSyncStore).held = true;
    const base = store.lastIndex();
    // x's fsync is held; y is proposed meanwhile, sent at once, and acknowledged by the fast follower.
    store.held = true;
    let xDone = false;
    let yDone = false;
    void leader.propose(enc("x")).then(() => (xDone = true));
    g.clock.advance(20);
    void leader.propose(enc("y")).then(() => (yDone = true));
    g.clock.advance(20);
    expect(g.stores.get(fast)!.lastIndex()).toBe(base + 2);
    expect(leader.status().matches[fast]).toBe(base + 2);
    // x's fsync completes; y's (in the next Ready) is held. Only the fast follower holds y
    // durably: one copy of three is no quorum, so y must not commit.
    store.holdFromIndex = base + 2;
    store.held = false;
    store.release();
    for (let i = 0; i < 10; i++) {
      g.clock.advance(10);
      await Promise.resolve();
    }
    expect(xDone).toBe(true);
    expect(leader.status().commit).toBe(base + 1);
    expect(yDone).toBe(false);
    store.holdFromIndex = null;
    store.release();
    for (let i = 0; i < 10 && !yDone; i++) {
      g.clock.advance(10);
      await Promise.resolve();
    }
    expect(yDone).toBe(true);
  });
});
