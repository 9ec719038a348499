import { assert, unreachable } from "../base/assert.js";
import type { Clock } from "../base/clock.js";
import type { Logger } from "../base/logger.js";
import { silentLogger } from "../base/logger.js";
import type { Prng } from "../base/prng.js";
import type { RaftConfigInput } from "../core/config.js";
import { RaftCore, type RaftStatus } from "../core/raft.js";
import type { DurableLogStore, Ready, ReplicaId, Rpc, SoftState } from "../core/types.js";
import type { AsyncSyncLogStore, ProposalOutcome, ReadOutcome, SnapshotPolicy, StateMachine, Transport } from "./contracts.js";

/** Observers for metrics; every hook is optional and must not throw. */
export interface ReplicaHooks {
  onSoftState?(state: SoftState, previous: SoftState): void;
  onFsync?(durationMs: number, entries: number): void;
  onRefusedRpc?(rpc: Rpc, detail: string): void;
}

export interface ReplicaOptions {
  readonly config: RaftConfigInput;
  readonly clock: Clock;
  readonly transport: Transport;
  /** With `syncAsync`, the fsync of each Ready runs off the event loop (see handleReady). */
  readonly logStore: DurableLogStore & AsyncSyncLogStore;
  readonly stateMachine: StateMachine;
  readonly prng: Prng;
  readonly logger?: Logger;
  /** Wall-clock length of one core tick. */
  readonly tickMs: number;
  readonly snapshots: SnapshotPolicy;
  /** Inbound RPCs held between loop turns; more are dropped (Raft tolerates loss). */
  readonly inboxRpcsMax?: number;
  readonly hooks?: ReplicaHooks;
  /**
   * Client calls held while a Ready waits for its fsync (the core takes no input then); more
   * are refused with backpressure. Default 65 536.
   */
  readonly deferredCallsMax?: number;
  /**
   * A follower's Ready with at most this many entries is fsynced on the event loop instead of
   * the thread pool (default 8; 0: never). Its ack waits for the fsync either way, and nothing
   * else it could do meanwhile is urgent, so at low load the thread-pool round trip was pure
   * latency on the commit path: 1-in-flight p50 0.70–0.91 ms → 0.66 ms (bench/README.md). A
   * leader always syncs off the loop: its appends must leave for the followers first.
   */
  readonly inlineSyncEntriesMax?: number;
  /**
   * A leader keeps taking proposals and follower acks while its own fsync runs: new entries go
   * to the followers at once, and entries the followers' acks commit are answered without
   * waiting for the leader's disk (RaftCore.drain), which masks a slow leader fsync. Default
   * false: on this project's 2-vCPU test box, where all three replicas share the CPUs and one
   * disk, the smaller batches it sends cost more CPU than the overlap saves (open loop at
   * 20 000/s, p99 43–49 ms against 34–36 ms; no change at 1 or 1024 in flight; bench/README.md).
   * The simulator runs four seeds in five with it on.
   */
  readonly pipeline?: boolean;
}

interface PendingProposal {
  readonly term: number;
  readonly resolve: (o: ProposalOutcome) => void;
}

interface PendingRead {
  index: number;
  readonly resolve: (o: ReadOutcome) => void;
}

/** Ready batches carried out per loop turn before yielding to I/O (bounded work per turn). */
const readiesPerTurnMax = 64;

/** A client call that arrived while a Ready was waiting for its fsync; replayed into the core after. */
type DeferredCall =
  | { readonly kind: "propose"; readonly data: Uint8Array; readonly resolve: (o: ProposalOutcome) => void }
  | { readonly kind: "read"; readonly resolve: (o: ReadOutcome) => void }
  | { readonly kind: "transfer"; readonly to: ReplicaId }
  | { readonly kind: "peer_down"; readonly peer: ReplicaId };

/**
 * The driver of one replica (DESIGN.md §4): one loop that drains inbound RPCs into the core,
 * takes a Ready, sends what may go now, writes and fsyncs once, sends the acks, applies, and
 * advances. Client calls enter the core directly and are answered when their entry is applied
 * (proposals) or when the applied index reaches the read index (reads).
 */
export class Replica {
  readonly id: ReplicaId;
  private readonly core: RaftCore;
  private readonly opts: ReplicaOptions;
  private readonly logger: Logger;
  private readonly inboxMax: number;
  private inbox: Rpc[] = [];
  private pendingTicks = 0;
  private scheduled = false;
  private stopped = false;
  private cancelTick: (() => void) | null = null;
  private readonly stopListeners: (() => void)[] = [];
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly readsByCtx = new Map<number, (o: ReadOutcome) => void>();
  private readonly readsWaitingApply: PendingRead[] = [];
  /** Calls that reached the replica between ready() and advance() (the core refuses input then). */
  private deferred: DeferredCall[] = [];
  private readonly deferredMax: number;
  private readonly inlineSyncEntriesMax: number;
  private readonly pipelineEnabled: boolean;
  /** The Ready whose fsync runs off the event loop, or null. */
  private syncing: Ready | null = null;
  private readCtx = 0;
  private applied: number;
  /** The highest log index covered by a completed fsync (the store's durable end). */
  private durableIndex: number;
  /** Committed entries of the Ready in flight already applied before its fsync completed. */
  private appliedEarly = 0;
  private lastSnapshotIndex: number;
  /** Entries applied after `lastSnapshotIndex` that trigger the next snapshot (see drawSnapshotGap). */
  private snapshotGap: number;
  private readonly snapshotPrng: Prng;
  private softState: SoftState;
  /** Counters for metrics and tests. */
  readonly counters = { rpcsDropped: 0, rpcsRefused: 0, fsyncs: 0, readies: 0, pipelinedDrains: 0 };

  constructor(opts: ReplicaOptions) {
    this.opts = opts;
    this.id = opts.config.id;
    this.logger = (opts.logger ?? silentLogger).child({ replica: this.id });
    this.inboxMax = opts.inboxRpcsMax ?? 65_536;
    this.deferredMax = opts.deferredCallsMax ?? 65_536;
    this.inlineSyncEntriesMax = opts.inlineSyncEntriesMax ?? 8;
    this.pipelineEnabled = opts.pipeline ?? false;
    assert(opts.tickMs > 0, `tickMs must be > 0, got ${opts.tickMs}`);
    assert(opts.snapshots.everyEntries > 0, "snapshots.everyEntries must be > 0");
    const snap = opts.logStore.snapshot();
    if (snap !== null) opts.stateMachine.restore(snap);
    this.applied = snap?.meta.index ?? 0;
    this.lastSnapshotIndex = this.applied;
    this.durableIndex = opts.logStore.lastIndex();
    this.core = new RaftCore({ config: opts.config, logStore: opts.logStore, prng: opts.prng, logger: this.logger });
    this.snapshotPrng = opts.prng.fork();
    this.snapshotGap = this.drawSnapshotGap();
    this.softState = this.core.softState();
    opts.transport.onReceive((rpcs) => this.receive(rpcs));
    opts.transport.onPeerDown((peer) => this.peerDown(peer));
  }

  start(): void {
    assert(this.cancelTick === null && !this.stopped, "replica already started or stopped");
    this.logger.info({ term: this.core.softState().term, lastIndex: this.core.status().lastIndex }, "replica_started");
    this.armTick();
  }

  /** Stops ticking and answers every waiting client with `stopped` (outcome unknown). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.cancelTick?.();
    for (const p of this.proposals.values()) p.resolve({ ok: false, reason: "stopped", leaderHint: null });
    for (const r of this.readsByCtx.values()) r({ ok: false, reason: "stopped", leaderHint: null });
    for (const r of this.readsWaitingApply) r.resolve({ ok: false, reason: "stopped", leaderHint: null });
    for (const d of this.deferred) if (d.kind === "propose" || d.kind === "read") d.resolve({ ok: false, reason: "stopped", leaderHint: null });
    this.deferred = [];
    this.proposals.clear();
    this.readsByCtx.clear();
    this.readsWaitingApply.length = 0;
    this.logger.info({}, "replica_stopped");
    for (const fn of this.stopListeners.splice(0)) fn();
  }

  /**
   * Runs `fn` once when the replica stops (at once if it has stopped), after every waiting
   * client was answered: servers use it to end long-lived client streams promptly.
   */
  onStopped(fn: () => void): void {
    if (this.stopped) fn();
    else this.stopListeners.push(fn);
  }

  /** Proposes `data`; resolves once it is applied here (committed), or definitely failed. */
  propose(data: Uint8Array): Promise<ProposalOutcome> {
    if (this.stopped) return Promise.resolve({ ok: false, reason: "stopped", leaderHint: null });
    if (this.syncing !== null && !this.pipelining()) {
      return new Promise((resolve) => this.defer({ kind: "propose", data, resolve }, () => resolve(this.deferredFull())));
    }
    return new Promise((resolve) => this.proposeNow(data, resolve));
  }

  /** A leader whose Ready waits for its fsync, taking proposals and acks meanwhile (RaftCore.drain). */
  private pipelining(): boolean {
    return this.pipelineEnabled && this.syncing !== null && this.softState.role === "leader";
  }

  private proposeNow(data: Uint8Array, resolve: (o: ProposalOutcome) => void): void {
    const r = this.core.propose(data);
    if (!r.ok) return resolve({ ok: false, reason: r.reason, leaderHint: r.leaderHint });
    this.proposals.set(r.index, { term: r.term, resolve });
    this.schedule();
  }

  /** A linearizable read barrier: resolves when this replica has applied everything committed before the call. */
  readBarrier(): Promise<ReadOutcome> {
    if (this.stopped) return Promise.resolve({ ok: false, reason: "stopped", leaderHint: null });
    if (this.syncing !== null) {
      return new Promise((resolve) => this.defer({ kind: "read", resolve }, () => resolve(this.deferredFull())));
    }
    return new Promise((resolve) => this.readNow(resolve));
  }

  private readNow(resolve: (o: ReadOutcome) => void): void {
    const ctx = ++this.readCtx;
    const r = this.core.readIndex(ctx);
    if (!r.ok) return resolve({ ok: false, reason: r.reason, leaderHint: r.leaderHint });
    this.readsByCtx.set(ctx, resolve);
    this.schedule();
  }

  /**
   * Starts a leadership transfer. While a Ready waits for its fsync the core takes no input, so
   * the answer is decided from the status (the same checks the core makes; nothing changes the
   * role before the deferred call is replayed, first thing after the fsync) and the call follows.
   */
  transferLeadership(to: ReplicaId): ReturnType<RaftCore["transferLeadership"]> {
    if (this.syncing === null) {
      const r = this.core.transferLeadership(to);
      this.schedule();
      return r;
    }
    const s = this.core.status();
    if (s.role !== "leader") return { ok: false, reason: "not_leader", leaderHint: s.leader };
    if (to !== this.id && s.matches[to] === undefined) return { ok: false, reason: "unknown_peer", leaderHint: this.id };
    this.defer({ kind: "transfer", to }, () => this.logger.warn({ to }, "transfer_dropped_deferred_full"));
    return { ok: true };
  }

  private defer(call: DeferredCall, full: () => void): void {
    if (this.deferred.length >= this.deferredMax) return full();
    this.deferred.push(call);
  }

  private deferredFull(): { ok: false; reason: "backpressure"; leaderHint: ReplicaId | null } {
    return { ok: false, reason: "backpressure", leaderHint: this.softState.leader };
  }

  /** Replays the calls that arrived during the last fsync, in arrival order. */
  private replayDeferred(): void {
    const calls = this.deferred;
    this.deferred = [];
    for (const d of calls) {
      switch (d.kind) {
        case "propose":
          this.proposeNow(d.data, d.resolve);
          break;
        case "read":
          this.readNow(d.resolve);
          break;
        case "transfer": {
          const r = this.core.transferLeadership(d.to);
          if (!r.ok) this.logger.warn({ to: d.to, reason: r.reason }, "deferred_transfer_refused");
          break;
        }
        case "peer_down":
          this.core.reportUnreachable(d.peer);
          break;
        default:
          unreachable(d);
      }
    }
  }

  status(): RaftStatus {
    return this.core.status();
  }

  /* --- The loop ---------------------------------------------------------------------------- */

  private armTick(): void {
    this.cancelTick = this.opts.clock.setTimer(this.opts.tickMs, () => {
      if (this.stopped) return;
      this.pendingTicks++;
      this.armTick();
      this.schedule();
    });
  }

  private receive(rpcs: readonly Rpc[]): void {
    if (this.stopped) return;
    for (const rpc of rpcs) {
      if (this.inbox.length >= this.inboxMax) {
        this.counters.rpcsDropped++;
        continue;
      }
      this.inbox.push(rpc);
    }
    this.schedule();
  }

  private peerDown(peer: ReplicaId): void {
    if (this.stopped) return;
    if (this.syncing !== null) return this.defer({ kind: "peer_down", peer }, () => {});
    this.core.reportUnreachable(peer);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    this.opts.clock.setTimer(0, () => this.turn());
  }

  /**
   * One loop turn: inputs into the core, then Ready batches until it is quiet (bounded), or
   * until a Ready waits for its fsync: the fsync's completion finishes it and runs the next turn.
   */
  private turn(): void {
    this.scheduled = false;
    if (this.stopped) return;
    if (this.syncing !== null) return this.pipelineTurn(this.syncing);
    this.replayDeferred();
    const ticks = Math.min(this.pendingTicks, 10);
    this.pendingTicks = 0;
    for (let i = 0; i < ticks; i++) this.core.tick();
    const inbox = this.inbox;
    this.inbox = [];
    for (const rpc of inbox) {
      const r = this.core.step(rpc);
      if (!r.ok) this.refused(rpc, r.detail);
    }
    for (let n = 0; n < readiesPerTurnMax && !this.stopped && this.core.hasReady(); n++) {
      if (!this.handleReady(this.core.ready())) return;
    }
    if (this.core.hasReady() || this.inbox.length > 0) this.schedule();
  }

  /**
   * A leader's turn while its Ready's fsync runs: the acks in the inbox go into the core (other
   * RPCs keep their order for after the fsync), then what the core drains: the appends of entries
   * proposed meanwhile go out, and newly committed entries are applied and answered: committed
   * means durable on a quorum, which the two followers are without the leader's own disk. Every
   * applied entry is already written to the log store (drain's bound), so Get can read it.
   */
  private pipelineTurn(rd: Ready): void {
    if (!this.pipelining()) return; // the fsync's completion runs the next turn
    let kept = 0;
    const inbox = this.inbox;
    for (const rpc of inbox) {
      if (!this.core.canStepDuringReady(rpc)) {
        inbox[kept++] = rpc;
        continue;
      }
      const r = this.core.step(rpc);
      if (!r.ok) this.refused(rpc, r.detail);
    }
    inbox.length = kept;
    const d = this.core.drain(this.opts.logStore.lastIndex());
    if (d.messages.length > 0 || d.committedEntries.length > 0) this.counters.pipelinedDrains++;
    if (d.messages.length > 0) this.opts.transport.send(d.messages);
    if (d.committedEntries.length === 0) return;
    // The Ready's own committed entries come first (all written before its fsync started).
    for (; this.appliedEarly < rd.committedEntries.length; this.appliedEarly++) this.applyEntry(rd.committedEntries[this.appliedEarly] as Ready["committedEntries"][number]);
    for (const e of d.committedEntries) this.applyEntry(e);
    this.releaseReads();
  }

  private refused(rpc: Rpc, detail: string): void {
    this.counters.rpcsRefused++;
    this.logger.warn({ from: rpc.from, type: rpc.type, detail }, "rpc_refused");
    this.opts.hooks?.onRefusedRpc?.(rpc, detail);
  }

  /**
   * Carries out one Ready (the order of the contract on `Ready`). Returns false when its fsync
   * runs off the event loop: the Ready then stays open (no input reaches the core) until the
   * fsync completes, while the event loop flushes `messages` to the followers, so the leader's
   * disk write overlaps replication (DESIGN.md §4), and takes new requests, which are deferred
   * and proposed together after it (group commit).
   */
  private handleReady(rd: Ready): boolean {
    this.counters.readies++;
    this.observeSoftState(rd.softState);
    // The leader's appends leave before its own fsync: replication overlaps the local write.
    if (rd.messages.length > 0) this.opts.transport.send(rd.messages);
    const store = this.opts.logStore;
    const inline = this.softState.role !== "leader" && rd.entries.length <= this.inlineSyncEntriesMax;
    if (rd.snapshot === null && rd.entries.length > 0 && store.syncAsync !== undefined && !inline) {
      this.writeBuffered(rd);
      const t0 = this.opts.clock.nowMs();
      this.syncing = rd;
      // A store may finish at once (nothing to flush off-thread): then this turn goes on.
      let returned = false;
      let doneAtOnce = false;
      store.syncAsync((err) => {
        doneAtOnce = !returned;
        this.synced(rd, t0, err, returned);
      });
      returned = true;
      if (!doneAtOnce) {
        this.applyEarly(rd);
        // Acks and proposals that arrived meanwhile go in while the fsync runs.
        if (this.pipelining()) this.schedule();
      }
      return doneAtOnce;
    }
    this.persist(rd);
    this.afterSync(rd);
    return true;
  }

  private synced(rd: Ready, t0: number, err: unknown, continueLoop: boolean): void {
    assert(this.syncing === rd, "fsync completion for a Ready that is not in flight");
    this.syncing = null;
    // A failed fsync is fatal and never retried (DESIGN.md §3): crash, recovery decides.
    if (err !== null) throw err;
    if (this.stopped) return;
    this.counters.fsyncs++;
    this.durableIndex = this.opts.logStore.lastIndex();
    this.opts.hooks?.onFsync?.(this.opts.clock.nowMs() - t0, rd.entries.length);
    this.afterSync(rd);
    if (continueLoop) this.turn();
  }

  /**
   * While this Ready's fsync runs, applies (and answers) its committed entries that an earlier
   * fsync already covers: they wait for nothing this Ready writes. Under load a commit Ready
   * usually also carries the next batch; without this, every answer would wait one extra fsync.
   * Committed entries are never truncated, so those below this Ready's first entry stay as they are.
   */
  private applyEarly(rd: Ready): void {
    const first = rd.entries[0];
    // A pipelining leader applies them all: they are committed (durable on a quorum) and written.
    const bound = this.pipelining() ? Infinity : Math.min(this.durableIndex, first === undefined ? this.durableIndex : first.index - 1);
    let n = 0;
    for (; n < rd.committedEntries.length; n++) {
      const e = rd.committedEntries[n] as Ready["committedEntries"][number];
      if (e.index > bound) break;
      this.applyEntry(e);
    }
    this.appliedEarly = n;
  }

  /** Steps 3–6 of the Ready contract, once its writes are durable. */
  private afterSync(rd: Ready): void {
    // Vote grants and acks vouch for what was just made durable.
    if (rd.messagesAfterSync.length > 0) this.opts.transport.send(rd.messagesAfterSync);
    if (rd.snapshot !== null) this.restoreSnapshot(rd);
    for (let i = this.appliedEarly; i < rd.committedEntries.length; i++) this.applyEntry(rd.committedEntries[i] as Ready["committedEntries"][number]);
    this.appliedEarly = 0;
    for (const rs of rd.readStates) this.readState(rs);
    this.core.advance();
    this.releaseReads();
    this.maybeSnapshot();
  }

  private writeBuffered(rd: Ready): void {
    const store = this.opts.logStore;
    if (rd.snapshot !== null) store.installSnapshot(rd.snapshot);
    if (rd.entries.length > 0) store.append(rd.entries);
    if (rd.hardState !== null) store.setHardState(rd.hardState);
  }

  private persist(rd: Ready): void {
    const store = this.opts.logStore;
    const wrote = rd.snapshot !== null || rd.entries.length > 0 || rd.hardState !== null;
    if (!wrote) return;
    this.writeBuffered(rd);
    const t0 = this.opts.clock.nowMs();
    // A failed fsync throws out of here and stops the process: it is never retried (DESIGN §3).
    store.sync();
    this.counters.fsyncs++;
    this.durableIndex = store.lastIndex();
    this.opts.hooks?.onFsync?.(this.opts.clock.nowMs() - t0, rd.entries.length);
  }

  private restoreSnapshot(rd: Ready): void {
    const snap = rd.snapshot;
    assert(snap !== null, "restoreSnapshot without a snapshot");
    this.opts.stateMachine.restore(snap);
    this.applied = snap.meta.index;
    this.lastSnapshotIndex = snap.meta.index;
    this.logger.info({ index: snap.meta.index, term: snap.meta.term }, "snapshot_installed");
    // Proposals at or below the snapshot can no longer be matched to their entries.
    for (const [index, p] of this.proposals) {
      if (index > snap.meta.index) continue;
      p.resolve({ ok: false, reason: "unknown", leaderHint: null });
      this.proposals.delete(index);
    }
  }

  private applyEntry(e: Ready["committedEntries"][number]): void {
    assert(e.index === this.applied + 1, `apply ${e.index} after ${this.applied}`);
    const p = this.proposals.get(e.index);
    const result = this.opts.stateMachine.apply(e, p !== undefined);
    this.applied = e.index;
    if (p === undefined) return;
    this.proposals.delete(e.index);
    if (p.term === e.term) p.resolve({ ok: true, index: e.index, term: e.term, result });
    else p.resolve({ ok: false, reason: "overwritten", leaderHint: this.softState.leader });
  }

  private readState(rs: Ready["readStates"][number]): void {
    const resolve = this.readsByCtx.get(rs.ctx);
    if (resolve === undefined) return;
    this.readsByCtx.delete(rs.ctx);
    if (!rs.ok) resolve({ ok: false, reason: "lost_leadership", leaderHint: this.softState.leader });
    else this.readsWaitingApply.push({ index: rs.index, resolve });
  }

  private releaseReads(): void {
    if (this.readsWaitingApply.length === 0) return;
    let kept = 0;
    for (const r of this.readsWaitingApply) {
      if (r.index <= this.applied) r.resolve({ ok: true, index: r.index });
      else this.readsWaitingApply[kept++] = r;
    }
    this.readsWaitingApply.length = kept;
  }

  /**
   * everyEntries plus a random part of up to half of it. The replicas of a group apply the same
   * entries within milliseconds of each other, and taking a snapshot stalls the event loop (the
   * state machine serializes itself synchronously: 5–10 ms for the ledger's binary dedup table
   * of 2,500 producers, 20–100 ms back when it was JSON, bench/README.md). With equal gaps both
   * followers stalled together, so the leader could not commit for that long; drawn gaps make
   * such overlaps rare, and a follower stalling alone is masked by the other one.
   */
  private drawSnapshotGap(): number {
    const every = this.opts.snapshots.everyEntries;
    return every + this.snapshotPrng.int(0, Math.floor(every / 2) + 1);
  }

  private maybeSnapshot(): void {
    const policy = this.opts.snapshots;
    if (this.applied - this.lastSnapshotIndex < this.snapshotGap) return;
    const store = this.opts.logStore;
    const term = store.term(this.applied);
    if (term === undefined) return;
    const data = this.opts.stateMachine.snapshot();
    const members = store.initialState().members;
    const compactTo = Math.max(store.firstIndex() - 1, this.applied - policy.keepEntries);
    store.saveSnapshot({ meta: { index: this.applied, term, members }, data }, compactTo);
    store.sync();
    this.lastSnapshotIndex = this.applied;
    this.snapshotGap = this.drawSnapshotGap();
    this.logger.info({ index: this.applied, term, compactTo, bytes: data.byteLength }, "snapshot_taken");
  }

  private observeSoftState(s: SoftState): void {
    const prev = this.softState;
    if (prev.role === s.role && prev.leader === s.leader && prev.term === s.term) return;
    this.softState = s;
    this.logger.info({ role: s.role, leader: s.leader, term: s.term, was: prev.role }, "role_changed");
    // A leader that steps down answers its outstanding proposals at once, outcome unknown (they
    // may still commit under the next leader): an isolated leader's clients then look for the new
    // leader after the check-quorum step-down instead of waiting out their own timeouts, and a
    // retry with the same (clientId, sequence) is applied once. As etcd's "leader changed".
    if (prev.role === "leader" && s.role !== "leader") {
      for (const p of this.proposals.values()) p.resolve({ ok: false, reason: "leader_changed", leaderHint: s.leader });
      this.proposals.clear();
    }
    this.opts.hooks?.onSoftState?.(s, prev);
  }
}
