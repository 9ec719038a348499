import { assert } from "../base/assert.js";
import type { Clock } from "../base/clock.js";
import type { Logger } from "../base/logger.js";
import { silentLogger } from "../base/logger.js";
import type { Prng } from "../base/prng.js";
import type { RaftConfigInput } from "../core/config.js";
import { RaftCore, type RaftStatus } from "../core/raft.js";
import type { DurableLogStore, Ready, ReplicaId, Rpc, SoftState } from "../core/types.js";
import type { ProposalOutcome, ReadOutcome, SnapshotPolicy, StateMachine, Transport } from "./contracts.js";

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
  readonly logStore: DurableLogStore;
  readonly stateMachine: StateMachine;
  readonly prng: Prng;
  readonly logger?: Logger;
  /** Wall-clock length of one core tick. */
  readonly tickMs: number;
  readonly snapshots: SnapshotPolicy;
  /** Inbound RPCs held between loop turns; more are dropped (Raft tolerates loss). */
  readonly inboxRpcsMax?: number;
  readonly hooks?: ReplicaHooks;
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
  private readonly proposals = new Map<number, PendingProposal>();
  private readonly readsByCtx = new Map<number, (o: ReadOutcome) => void>();
  private readonly readsWaitingApply: PendingRead[] = [];
  private readCtx = 0;
  private applied: number;
  private lastSnapshotIndex: number;
  private softState: SoftState;
  /** Counters for metrics and tests. */
  readonly counters = { rpcsDropped: 0, rpcsRefused: 0, fsyncs: 0, readies: 0 };

  constructor(opts: ReplicaOptions) {
    this.opts = opts;
    this.id = opts.config.id;
    this.logger = (opts.logger ?? silentLogger).child({ replica: this.id });
    this.inboxMax = opts.inboxRpcsMax ?? 65_536;
    assert(opts.tickMs > 0, `tickMs must be > 0, got ${opts.tickMs}`);
    assert(opts.snapshots.everyEntries > 0, "snapshots.everyEntries must be > 0");
    const snap = opts.logStore.snapshot();
    if (snap !== null) opts.stateMachine.restore(snap);
    this.applied = snap?.meta.index ?? 0;
    this.lastSnapshotIndex = this.applied;
    this.core = new RaftCore({ config: opts.config, logStore: opts.logStore, prng: opts.prng, logger: this.logger });
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
    this.proposals.clear();
    this.readsByCtx.clear();
    this.readsWaitingApply.length = 0;
    this.logger.info({}, "replica_stopped");
  }

  /** Proposes `data`; resolves once it is applied here (committed), or definitely failed. */
  propose(data: Uint8Array): Promise<ProposalOutcome> {
    if (this.stopped) return Promise.resolve({ ok: false, reason: "stopped", leaderHint: null });
    const r = this.core.propose(data);
    if (!r.ok) {
      return Promise.resolve({ ok: false, reason: r.reason, leaderHint: r.leaderHint });
    }
    this.schedule();
    return new Promise((resolve) => this.proposals.set(r.index, { term: r.term, resolve }));
  }

  /** A linearizable read barrier: resolves when this replica has applied everything committed before the call. */
  readBarrier(): Promise<ReadOutcome> {
    if (this.stopped) return Promise.resolve({ ok: false, reason: "stopped", leaderHint: null });
    const ctx = ++this.readCtx;
    const r = this.core.readIndex(ctx);
    if (!r.ok) return Promise.resolve({ ok: false, reason: r.reason, leaderHint: r.leaderHint });
    this.schedule();
    return new Promise((resolve) => this.readsByCtx.set(ctx, resolve));
  }

  transferLeadership(to: ReplicaId): ReturnType<RaftCore["transferLeadership"]> {
    const r = this.core.transferLeadership(to);
    this.schedule();
    return r;
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
    this.core.reportUnreachable(peer);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    this.opts.clock.setTimer(0, () => this.turn());
  }

  /** One loop turn: inputs into the core, then Ready batches until it is quiet (bounded). */
  private turn(): void {
    this.scheduled = false;
    if (this.stopped) return;
    const ticks = Math.min(this.pendingTicks, 10);
    this.pendingTicks = 0;
    for (let i = 0; i < ticks; i++) this.core.tick();
    const inbox = this.inbox;
    this.inbox = [];
    for (const rpc of inbox) {
      const r = this.core.step(rpc);
      if (!r.ok) this.refused(rpc, r.detail);
    }
    for (let n = 0; n < readiesPerTurnMax && this.core.hasReady(); n++) this.handleReady(this.core.ready());
    if (this.core.hasReady() || this.inbox.length > 0) this.schedule();
  }

  private refused(rpc: Rpc, detail: string): void {
    this.counters.rpcsRefused++;
    this.logger.warn({ from: rpc.from, type: rpc.type, detail }, "rpc_refused");
    this.opts.hooks?.onRefusedRpc?.(rpc, detail);
  }

  private handleReady(rd: Ready): void {
    this.counters.readies++;
    this.observeSoftState(rd.softState);
    // The leader's appends leave before its own fsync: replication overlaps the local write.
    if (rd.messages.length > 0) this.opts.transport.send(rd.messages);
    this.persist(rd);
    // Vote grants and acks vouch for what was just made durable.
    if (rd.messagesAfterSync.length > 0) this.opts.transport.send(rd.messagesAfterSync);
    if (rd.snapshot !== null) this.restoreSnapshot(rd);
    for (const e of rd.committedEntries) this.applyEntry(e);
    for (const rs of rd.readStates) this.readState(rs);
    this.core.advance();
    this.releaseReads();
    this.maybeSnapshot();
  }

  private persist(rd: Ready): void {
    const store = this.opts.logStore;
    const wrote = rd.snapshot !== null || rd.entries.length > 0 || rd.hardState !== null;
    if (!wrote) return;
    if (rd.snapshot !== null) store.installSnapshot(rd.snapshot);
    if (rd.entries.length > 0) store.append(rd.entries);
    if (rd.hardState !== null) store.setHardState(rd.hardState);
    const t0 = this.opts.clock.nowMs();
    // A failed fsync throws out of here and stops the process: it is never retried (DESIGN §3).
    store.sync();
    this.counters.fsyncs++;
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
    const result = this.opts.stateMachine.apply(e);
    this.applied = e.index;
    const p = this.proposals.get(e.index);
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

  private maybeSnapshot(): void {
    const policy = this.opts.snapshots;
    if (this.applied - this.lastSnapshotIndex < policy.everyEntries) return;
    const store = this.opts.logStore;
    const term = store.term(this.applied);
    if (term === undefined) return;
    const data = this.opts.stateMachine.snapshot();
    const members = store.initialState().members;
    const compactTo = Math.max(store.firstIndex() - 1, this.applied - policy.keepEntries);
    store.saveSnapshot({ meta: { index: this.applied, term, members }, data }, compactTo);
    store.sync();
    this.lastSnapshotIndex = this.applied;
    this.logger.info({ index: this.applied, term, compactTo, bytes: data.byteLength }, "snapshot_taken");
  }

  private observeSoftState(s: SoftState): void {
    const prev = this.softState;
    if (prev.role === s.role && prev.leader === s.leader && prev.term === s.term) return;
    this.softState = s;
    this.logger.info({ role: s.role, leader: s.leader, term: s.term, was: prev.role }, "role_changed");
    // Outstanding proposals stay pending across a change of leader: they may still commit under
    // the next one, and are settled when their index is applied (same term: ok; else overwritten).
    this.opts.hooks?.onSoftState?.(s, prev);
  }
}
