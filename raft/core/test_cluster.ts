import { assert } from "../base/assert.js";
import { Prng } from "../base/prng.js";
import type { RaftConfigInput } from "./config.js";
import { MemoryLogStore } from "./memory_log_store.js";
import { RaftCore } from "./raft.js";
import type { Entry, ReadState, ReplicaId, Rpc, Snapshot, StepResult } from "./types.js";

/**
 * A synchronous in-memory group for scripted scenario tests (etcd-raft's `network` helper):
 * every replica runs the real core on a MemoryLogStore, Ready batches are carried out at once,
 * and RPCs are delivered in FIFO order unless a link is cut. Not used in production.
 */
export class TestCluster {
  readonly ids: readonly ReplicaId[];
  readonly stores = new Map<ReplicaId, MemoryLogStore>();
  readonly applied = new Map<ReplicaId, Entry[]>();
  readonly readStates = new Map<ReplicaId, ReadState[]>();
  /** Every RPC delivered, as "from->to type term", for scenarios that check the exchange. */
  readonly delivered: string[] = [];
  /** Step results that were refusals, with the RPC. */
  readonly refusals: { rpc: Rpc; result: StepResult }[] = [];
  private readonly cores = new Map<ReplicaId, RaftCore>();
  private readonly down = new Set<ReplicaId>();
  private readonly cut = new Set<string>();
  private readonly queue: Rpc[] = [];
  private readonly prng: Prng;
  /** Optional filter on RPCs in flight: false drops it, an RPC replaces it, true delivers it. */
  filter: ((rpc: Rpc) => boolean | Rpc) | null = null;

  constructor(
    size: number,
    private readonly overrides: Partial<Omit<RaftConfigInput, "id" | "members">> = {},
    seed = 1,
  ) {
    this.ids = Array.from({ length: size }, (_, i) => `n${i + 1}`);
    this.prng = new Prng(seed);
    for (const id of this.ids) {
      this.stores.set(id, new MemoryLogStore({ members: this.ids }));
      this.start(id);
    }
  }

  core(id: ReplicaId): RaftCore {
    const c = this.cores.get(id);
    assert(c !== undefined, `no replica ${id}`);
    return c;
  }

  store(id: ReplicaId): MemoryLogStore {
    const s = this.stores.get(id);
    assert(s !== undefined, `no store ${id}`);
    return s;
  }

  /** Starts (or restarts) `id` on its store, with a fresh state machine. */
  start(id: ReplicaId): void {
    const store = this.store(id);
    this.cores.set(id, new RaftCore({ config: { id, members: this.ids, ...this.overrides }, logStore: store, prng: this.prng.fork() }));
    this.applied.set(id, []);
    this.readStates.set(id, []);
    this.down.delete(id);
  }

  /** Power loss on `id`: unsynced writes are gone and the replica stays down until start(). */
  crash(id: ReplicaId): void {
    this.store(id).crash();
    this.down.add(id);
  }

  isolate(id: ReplicaId): void {
    for (const other of this.ids) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  /** Drops RPCs from `from` to `to` only (an asymmetric partition). */
  cutLink(from: ReplicaId, to: ReplicaId): void {
    this.cut.add(`${from}->${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  tick(id: ReplicaId, times = 1): void {
    for (let i = 0; i < times; i++) {
      if (this.down.has(id)) return;
      this.core(id).tick();
      this.stabilize();
    }
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of this.ids) if (!this.down.has(id)) this.core(id).tick();
      this.stabilize();
    }
  }

  /**
   * Followers learn a new commit index lazily (with the next append, or at the leader's next
   * tick: Leader.tickCommitUpdate); this ticks the current leader once so they apply it now.
   */
  spreadCommit(): void {
    const leader = this.leader();
    assert(leader !== null, "spreadCommit without a leader");
    this.tick(leader);
  }

  /** Ticks `id` alone until it becomes leader (bounded). */
  elect(id: ReplicaId): void {
    const bound = 4 * (this.overrides.electionTicks ?? 10);
    for (let i = 0; i < bound && this.core(id).softState().role !== "leader"; i++) this.tick(id);
    assert(this.core(id).softState().role === "leader", `${id} did not become leader: ${JSON.stringify(this.core(id).status())}`);
  }

  /**
   * Makes `id` campaign now, as a leadership transfer would (etcd's MsgHup with
   * campaignTransfer): it skips pre-vote and stickiness, but still needs an up-to-date log.
   */
  forceElection(id: ReplicaId): boolean {
    const other = this.ids.find((x) => x !== id) as ReplicaId;
    this.inject({ type: "timeout_now", term: this.core(id).softState().term, from: other, to: id });
    return this.core(id).softState().role === "leader";
  }

  propose(id: ReplicaId, text: string): ReturnType<RaftCore["propose"]> {
    const r = this.core(id).propose(new TextEncoder().encode(text));
    this.stabilize();
    return r;
  }

  /** Delivers one RPC directly (as if it arrived now) and returns the core's answer. */
  inject(rpc: Rpc): StepResult {
    const result = this.core(rpc.to).step(rpc);
    this.stabilize();
    return result;
  }

  /** Carries out Ready batches and delivers RPCs until nothing moves (bounded). */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const id of this.ids) {
        if (this.down.has(id)) continue;
        const core = this.core(id);
        while (core.hasReady()) {
          this.carryOut(id, core);
          moved = true;
        }
      }
      const rpc = this.queue.shift();
      if (rpc !== undefined) {
        moved = true;
        this.deliver(rpc);
      }
      if (!moved) return;
    }
    throw new Error(`stabilize did not settle in ${maxRounds} rounds`);
  }

  private deliver(rpc: Rpc): void {
    if (this.down.has(rpc.to) || this.cut.has(`${rpc.from}->${rpc.to}`)) return;
    const verdict = this.filter === null ? true : this.filter(rpc);
    if (verdict === false) return;
    const m = verdict === true ? rpc : verdict;
    this.delivered.push(`${m.from}->${m.to} ${m.type} t${m.term}`);
    const result = this.core(m.to).step(m);
    if (!result.ok) this.refusals.push({ rpc: m, result });
  }

  private carryOut(id: ReplicaId, core: RaftCore): void {
    const rd = core.ready();
    const store = this.store(id);
    for (const m of rd.messages) this.queue.push(m);
    if (rd.snapshot !== null) store.installSnapshot(rd.snapshot);
    if (rd.entries.length > 0) store.append(rd.entries);
    if (rd.hardState !== null) store.setHardState(rd.hardState);
    store.sync();
    for (const m of rd.messagesAfterSync) this.queue.push(m);
    const applied = this.applied.get(id) as Entry[];
    if (rd.snapshot !== null) applied.length = 0;
    for (const e of rd.committedEntries) applied.push(e);
    for (const r of rd.readStates) (this.readStates.get(id) as ReadState[]).push(r);
    core.advance();
  }

  /** Takes a snapshot of `id` at its applied index and compacts its log up to `compactTo`. */
  snapshotAndCompact(id: ReplicaId, compactTo: number, data = new Uint8Array([1, 2, 3])): Snapshot {
    const st = this.core(id).status();
    const term = this.store(id).term(st.applied);
    assert(term !== undefined, `no term at applied ${st.applied}`);
    const snap: Snapshot = { meta: { index: st.applied, term, members: this.ids }, data };
    this.store(id).saveSnapshot(snap, compactTo);
    this.store(id).sync();
    return snap;
  }

  leader(): ReplicaId | null {
    let found: ReplicaId | null = null;
    for (const id of this.ids) {
      if (this.down.has(id) || this.core(id).softState().role !== "leader") continue;
      if (found === null || this.core(id).softState().term > this.core(found).softState().term) found = id;
    }
    return found;
  }

  /** The data of each applied normal entry at `id`, as text. */
  appliedTexts(id: ReplicaId): string[] {
    return (this.applied.get(id) ?? []).filter((e) => e.type === "normal").map((e) => new TextDecoder().decode(e.data));
  }

  /** Entries in `id`'s store, as "index:term". */
  logOf(id: ReplicaId): string[] {
    const s = this.store(id);
    return s.entries(s.firstIndex(), s.lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => `${e.index}:${e.term}`);
  }
}
