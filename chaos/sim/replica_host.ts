import { assert, unreachable } from "../../raft/base/assert.js";
import type { Logger } from "../../raft/base/logger.js";
import type { Prng } from "../../raft/base/prng.js";
import type { RaftConfigInput } from "../../raft/core/config.js";
import { MemoryLogStore } from "../../raft/core/memory_log_store.js";
import { RaftCore } from "../../raft/core/raft.js";
import type { DurableLogStore, Entry, ReadState, Ready, Rpc } from "../../raft/core/types.js";
import { silentLogger } from "../../raft/base/logger.js";
import { DiskSim, openCommitLog, SimCrashError } from "../../storage/index.js";
import { entryDataHash } from "../checkers/chain.js";
import type { RaftChecker } from "../checkers/raft_checker.js";
import type { ReadChecker } from "../checkers/read_checker.js";
import { ViolationKind, type ViolationLog } from "../checkers/violation.js";
import { KvStateMachine, putKey, putOpId } from "./kv.js";
import { formatReady, formatRpc, formatTime } from "./trace.js";

/**
 * One simulated replica: a RaftCore over the real CommitLog on a DiskSim (or, with store
 * "memory", over a MemoryLogStore), the KV state machine, and the driver
 * loop of DESIGN.md §4 — step inbound RPCs, take one Ready, write it, "fsync" (an event some
 * simulated time later), then send the acks, apply, and advance. While the fsync is in flight or
 * the replica is paused, RPCs, ticks and client requests wait in its inbox, as they would in a
 * real process whose event loop is busy.
 */

/** What a host needs from the simulator around it. */
export interface HostEnv {
  readonly nowUs: number;
  readonly checker: RaftChecker;
  readonly reads: ReadChecker;
  readonly violations: ViolationLog;
  /** Trace lines in replay mode, null in batch mode. */
  readonly trace: string[] | null;
  send(rpc: Rpc): void;
  /** Schedules this host's fsync completion. */
  scheduleSync(host: ReplicaHost): void;
  onProposeRefused(leaderHint: string | null): void;
  onAck(op: ProposedOp, index: number, host: ReplicaHost): void;
  /** The host's first Ready as leader of a new term (fault injection aims at this moment). */
  onBecameLeader(host: ReplicaHost): void;
}

export interface ProposedOp {
  readonly opId: number;
  readonly key: number;
  readonly data: Uint8Array;
  readonly proposedUs: number;
}

type InboxItem =
  | { readonly kind: "rpc"; readonly rpc: Rpc }
  | { readonly kind: "tick" }
  | { readonly kind: "unreachable"; readonly peer: string }
  | { readonly kind: "propose"; readonly op: ProposedOp }
  | { readonly kind: "read"; readonly readId: number; readonly key: number }
  | { readonly kind: "transfer"; readonly to: string };

const tickItem: InboxItem = { kind: "tick" };

interface WaitingRead {
  readonly readId: number;
  readonly key: number;
  readonly readIndex: number;
}

/**
 * Which log store a simulated replica runs on. "commitlog": the production CommitLog (storage/)
 * on a DiskSim, so crashes exercise real recovery, torn tails included. "memory": the core's
 * MemoryLogStore, cheaper, with the same durability semantics but no on-disk format.
 */
export type SimStore = "commitlog" | "memory";

export interface HostOptions {
  readonly id: string;
  readonly store: SimStore;
  readonly index: number;
  readonly members: readonly string[];
  readonly core: Omit<RaftConfigInput, "id" | "members">;
  readonly prng: Prng;
  readonly snapshotEvery: number;
  readonly snapshotPadBytes: number;
  readonly compactLagMax: number;
  /** Leaders pipeline while their fsync runs (SimParams.pipeline). */
  readonly pipeline: boolean;
  readonly checkInvariants: boolean;
  readonly logger: Logger;
}

export class ReplicaHost {
  /** Queued work while busy: bounded; beyond it RPCs are dropped like a full socket buffer. */
  static readonly inboxMax = 20_000;
  /** Ticks coalesce while busy, as Node timers do after a blocked event loop. */
  static readonly inboxTicksMax = 3;
  static readonly readyLoopMax = 10_000;

  readonly id: string;
  readonly index: number;
  store: DurableLogStore;
  private readonly memory: MemoryLogStore | null;
  private readonly disk: DiskSim | null;
  private readonly crashPrng: Prng | null;
  core: RaftCore | null = null;
  kv = new KvStateMachine();
  incarnation = 0;
  paused = false;
  /** Role and term from the latest Ready or status(): for the simulator's fault targeting. */
  lastRole = "follower";
  lastTerm = 0;
  /** The Ready whose fsync is in flight. */
  syncing: Ready | null = null;
  /** Committed entries of the Ready in flight already applied by a pipelined drain. */
  private syncingApplied = 0;
  private syncDone = false;
  private inbox: InboxItem[] = [];
  private inboxTicks = 0;
  private readonly proposals = new Map<number, { readonly op: ProposedOp; readonly term: number }>();
  private readonly readKeys = new Map<number, number>();
  private waitingReads: WaitingRead[] = [];
  private lastSnapshotIndex = 0;
  /** Counters for the run's statistics. */
  snapshotsTaken = 0;
  snapshotsInstalled = 0;
  /** CommitLog reopens whose recovery cut a torn tail (a crash that landed inside a group commit). */
  tornTailsCut = 0;
  private readonly compactPrng: Prng;

  constructor(
    private readonly options: HostOptions,
    private readonly env: HostEnv,
  ) {
    this.id = options.id;
    this.index = options.index;
    this.compactPrng = options.prng.fork();
    if (options.store === "commitlog") {
      this.memory = null;
      this.disk = new DiskSim();
      this.crashPrng = this.compactPrng.fork();
      this.store = this.openLog();
    } else {
      this.memory = new MemoryLogStore({ members: options.members });
      this.disk = null;
      this.crashPrng = null;
      this.store = this.memory;
    }
  }

  /**
   * Opens the CommitLog on this replica's simulated disk, running recovery. Segments and the tail
   * cache are tiny so that a short run rolls segments and serves lagging followers from "disk".
   */
  private openLog(): DurableLogStore {
    assert(this.disk !== null, "openLog without a simulated disk");
    return openCommitLog({
      disk: this.disk,
      dir: `/${this.id}`,
      members: this.options.members,
      segmentBytes: 16 * 1024,
      tailCacheBytes: 32 * 1024,
      logger: silentLogger,
    });
  }

  get alive(): boolean {
    return this.core !== null;
  }

  private get busy(): boolean {
    return this.syncing !== null || this.paused;
  }

  /** Starts (or restarts) the core on the durable store, with a state machine from its snapshot. */
  start(): void {
    assert(this.core === null, `${this.id} started twice`);
    const { id, members, core: config, prng, logger } = this.options;
    if (this.disk !== null && this.incarnation > 0) {
      const log = this.openLog() as ReturnType<typeof openCommitLog>;
      if (log.report.tornTail !== null) this.tornTailsCut++;
      this.store = log;
    }
    this.core = new RaftCore({ config: { ...config, id, members }, logStore: this.store, prng: prng.fork(), logger });
    const snap = this.store.snapshot();
    this.kv = snap === null ? new KvStateMachine() : KvStateMachine.restore(snap.data, snap.meta.index);
    this.lastSnapshotIndex = this.kv.applied;
    if (this.incarnation > 0) this.env.checker.onRestart(id, this.store, this.core.status(), this.kv.applied);
    this.drive();
  }

  /** Power loss: unsynced writes are gone, the process and everything in memory with it. */
  crash(): void {
    if (this.memory !== null) this.memory.crash();
    else this.powerLoss();
    this.core = null;
    this.syncing = null;
    this.syncingApplied = 0;
    this.syncDone = false;
    this.paused = false;
    this.lastRole = "follower";
    for (const item of this.inbox) if (item.kind === "read") this.env.reads.onReadAbandoned(item.readId);
    this.inbox = [];
    this.inboxTicks = 0;
    this.proposals.clear();
    for (const readId of this.readKeys.keys()) this.env.reads.onReadAbandoned(readId);
    for (const w of this.waitingReads) this.env.reads.onReadAbandoned(w.readId);
    this.readKeys.clear();
    this.waitingReads = [];
    this.incarnation++;
  }

  /**
   * Power loss under the CommitLog. If a group commit is in flight, the crash may land inside it:
   * some of its writes reach the disk unsynced, and the crash then tears or drops them, which is
   * the case recovery's torn-tail rules exist for. The old CommitLog object is abandoned; start()
   * reopens the directory.
   */
  private powerLoss(): void {
    const disk = this.disk;
    const prng = this.crashPrng;
    assert(disk !== null && prng !== null, "powerLoss without a simulated disk");
    if (this.syncing !== null && !this.syncDone && prng.chance(0.5)) {
      disk.crashAtOp(disk.operations + prng.int(0, 6));
      try {
        this.store.sync();
      } catch (err) {
        if (!(err instanceof SimCrashError)) throw err;
      }
    }
    disk.crash(prng);
  }

  pause(): void {
    if (this.core !== null) this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.syncing !== null) {
      if (this.syncDone) this.completeSync();
      return;
    }
    this.drainInbox();
    this.drive();
  }

  /** The fsync of the Ready in flight finished: the data is durable even if the process is paused. */
  onSyncDone(): void {
    assert(this.syncing !== null, `${this.id} sync done without a Ready in flight`);
    this.store.sync();
    this.syncDone = true;
    if (!this.paused) this.completeSync();
  }

  deliver(rpc: Rpc): void {
    if (this.core === null) return;
    if (this.pipelining() && this.core.canStepDuringReady(rpc)) {
      this.stepRpc(rpc);
      return this.pipelineDrain();
    }
    if (this.busy) return this.enqueue({ kind: "rpc", rpc });
    this.stepRpc(rpc);
    this.drive();
  }

  tick(): void {
    if (this.core === null) return;
    if (this.busy) {
      if (this.inboxTicks < ReplicaHost.inboxTicksMax) {
        this.inboxTicks++;
        this.enqueue(tickItem);
      }
      return;
    }
    this.tickCore(this.core);
    this.drive();
  }

  reportUnreachable(peer: string): void {
    this.submit({ kind: "unreachable", peer });
  }

  propose(op: ProposedOp): void {
    this.submit({ kind: "propose", op });
  }

  read(readId: number, key: number): void {
    if (this.core === null) return this.env.reads.onReadAbandoned(readId);
    this.submit({ kind: "read", readId, key });
  }

  transfer(to: string): void {
    this.submit({ kind: "transfer", to });
  }

  private submit(item: InboxItem): void {
    if (this.core === null) return;
    if (item.kind === "propose" && this.pipelining()) {
      this.handlePropose(this.core, item.op);
      return this.pipelineDrain();
    }
    if (this.busy) return this.enqueue(item);
    this.handle(item);
    this.drive();
  }

  /**
   * A running leader whose Ready waits for its fsync takes proposals and append acks meanwhile,
   * as raft/replica does (RaftCore.drain): the simulator explores that interleaving too.
   */
  private pipelining(): boolean {
    return this.options.pipeline && this.core !== null && this.syncing !== null && !this.paused && this.core.softState().role === "leader";
  }

  /** Sends what the core drained and applies the newly committed entries already in the store. */
  private pipelineDrain(): void {
    const core = this.core as RaftCore;
    const rd = this.syncing as Ready;
    const written = this.store.lastIndex();
    const d = core.drain(written);
    if (this.env.trace !== null && (d.messages.length > 0 || d.committedEntries.length > 0)) {
      this.traceLine(`drain: ${d.messages.length} msgs, committed ${d.committedEntries[0]?.index ?? "-"}..${d.committedEntries[d.committedEntries.length - 1]?.index ?? "-"}`);
    }
    for (const m of d.messages) this.env.send(m);
    const last = d.committedEntries[d.committedEntries.length - 1];
    if (last === undefined) return;
    // Committed up to `last` and written here (not necessarily synced: the two followers may be
    // the quorum). Not "leader": `last` is bounded by the store, not the core's commit index.
    this.env.checker.onCommit(this.id, last.index, core.softState().term, "pipelined leader");
    for (; this.syncingApplied < rd.committedEntries.length; this.syncingApplied++) {
      if (!this.apply(rd.committedEntries[this.syncingApplied] as Entry)) break;
    }
    for (const e of d.committedEntries) if (!this.apply(e)) break;
  }

  private enqueue(item: InboxItem): void {
    if (this.inbox.length >= ReplicaHost.inboxMax) {
      if (item.kind === "read") this.env.reads.onReadAbandoned(item.readId);
      return;
    }
    this.inbox.push(item);
  }

  private drainInbox(): void {
    const items = this.inbox;
    if (items.length === 0) return;
    this.inbox = [];
    this.inboxTicks = 0;
    for (const item of items) this.handle(item);
  }

  private handle(item: InboxItem): void {
    const core = this.core;
    assert(core !== null, `${this.id} handles ${item.kind} while down`);
    switch (item.kind) {
      case "rpc":
        return this.stepRpc(item.rpc);
      case "tick":
        return this.tickCore(core);
      case "unreachable":
        return this.unreachable(core, item.peer);
      case "propose":
        return this.handlePropose(core, item.op);
      case "read":
        return this.handleRead(core, item.readId, item.key);
      case "transfer":
        core.transferLeadership(item.to);
        return;
      default:
        return unreachable(item, "inbox item");
    }
  }

  /**
   * Ticks, checking the sender side of pre-vote: entering pre-candidate must change neither the
   * term nor the vote (Raft thesis §9.6); only winning it starts a real election.
   */
  private tickCore(core: RaftCore): void {
    const before = core.softState();
    core.tick();
    this.checkPreCampaign(core, before);
  }

  private unreachable(core: RaftCore, peer: string): void {
    const before = core.softState();
    core.reportUnreachable(peer);
    this.checkPreCampaign(core, before);
  }

  private checkPreCampaign(core: RaftCore, before: { readonly role: string; readonly term: number }): void {
    const after = core.softState();
    if (after.role === "pre_candidate" && before.role !== "pre_candidate" && after.term !== before.term) {
      this.env.violations.report(
        ViolationKind.preVoteRule,
        this.id,
        `starting a pre-vote changed the term from ${before.term} to ${after.term}`,
      );
    }
  }

  private stepRpc(rpc: Rpc): void {
    const core = this.core as RaftCore;
    if (this.env.trace !== null) this.traceLine(`<- ${formatRpc(rpc)}`);
    const preVote = rpc.type === "vote_request" && rpc.preVote ? core.status() : null;
    const result = core.step(rpc);
    if (preVote !== null) this.env.checker.onPreVoteRequestStepped(this.id, preVote, core.status());
    if (!result.ok) {
      this.env.violations.report(ViolationKind.driverContract, this.id, `step refused a well-formed ${rpc.type}: ${result.reason} ${result.detail}`);
    }
  }

  private handlePropose(core: RaftCore, op: ProposedOp): void {
    const result = core.propose(op.data);
    if (this.env.trace !== null) this.traceLine(`propose op${op.opId} key${op.key} -> ${JSON.stringify(result)}`);
    if (result.ok) this.proposals.set(result.index, { op, term: result.term });
    else this.env.onProposeRefused(result.leaderHint);
  }

  private handleRead(core: RaftCore, readId: number, key: number): void {
    const result = core.readIndex(readId);
    if (this.env.trace !== null) this.traceLine(`readIndex read${readId} key${key} -> ${JSON.stringify(result)}`);
    if (result.ok) this.readKeys.set(readId, key);
    else {
      this.env.reads.onReadAbandoned(readId);
      this.env.onProposeRefused(result.leaderHint);
    }
  }

  /** Runs Ready turns until the core has nothing to do or a turn waits for its fsync. */
  private drive(): void {
    for (let turn = 0; turn < ReplicaHost.readyLoopMax; turn++) {
      const core = this.core;
      if (core === null || this.busy) return;
      if (!core.hasReady()) return this.afterTurn(core);
      // The commit index as of this Ready: the hard state carries it only lazily (it is a hint),
      // so read it before ready(), while calls into the core are still allowed.
      const status = core.status();
      const rd = core.ready();
      if (this.env.trace !== null) this.traceLine(formatReady(rd));
      this.env.checker.observeRole(this.id, rd.softState.term, rd.softState.role);
      const newLeader = rd.softState.role === "leader" && (this.lastRole !== "leader" || this.lastTerm !== rd.softState.term);
      this.lastRole = rd.softState.role;
      this.lastTerm = rd.softState.term;
      if (newLeader) this.env.onBecameLeader(this);
      for (const m of rd.messages) this.env.send(m);
      if (rd.snapshot !== null || rd.entries.length > 0 || rd.hardState !== null) {
        this.write(rd, status);
        this.syncing = rd;
        this.syncingApplied = 0;
        this.syncDone = false;
        this.env.scheduleSync(this);
        return;
      }
      this.env.checker.onCommit(this.id, status.commit, status.term, status.role);
      this.finish(rd);
      this.drainInbox();
    }
    assert(false, `${this.id}: Ready loop did not settle in ${ReplicaHost.readyLoopMax} turns`);
  }

  private completeSync(): void {
    const rd = this.syncing as Ready;
    this.syncing = null;
    this.syncDone = false;
    this.finish(rd);
    this.drainInbox();
    this.drive();
  }

  /** Step 2 of the Ready contract: snapshot, then entries, then hard state, into the store. */
  private write(rd: Ready, status: { readonly commit: number; readonly term: number; readonly role: string }): void {
    const checker = this.env.checker;
    if (rd.snapshot !== null) {
      this.store.installSnapshot(rd.snapshot);
      checker.onSnapshotInstall(this.id, rd.snapshot.meta.index, rd.snapshot.meta.term);
    }
    if (rd.entries.length > 0) {
      this.store.append(rd.entries);
      checker.onLogWrite(this.id, rd.entries);
    }
    if (rd.hardState !== null) this.store.setHardState(rd.hardState);
    checker.onCommit(this.id, status.commit, status.term, status.role);
    if (rd.softState.role === "leader") checker.onLeader(this.id, rd.softState.term);
  }

  /** Steps 3–6: acks after the fsync, apply, read states, advance; then maybe snapshot. */
  private finish(rd: Ready): void {
    const core = this.core as RaftCore;
    for (const m of rd.messagesAfterSync) this.env.send(m);
    if (rd.snapshot !== null) {
      this.kv = KvStateMachine.restore(rd.snapshot.data, rd.snapshot.meta.index);
      this.lastSnapshotIndex = rd.snapshot.meta.index;
      this.snapshotsInstalled++;
      this.env.checker.onStateMachineRestore(this.id, rd.snapshot.meta.index);
    }
    for (let i = this.syncingApplied; i < rd.committedEntries.length; i++) if (!this.apply(rd.committedEntries[i] as Entry)) break;
    this.syncingApplied = 0;
    for (const rs of rd.readStates) this.onReadState(rs);
    core.advance();
    this.maybeSnapshot();
  }

  private apply(e: Entry): boolean {
    const firstTime = this.env.checker.onApply(this.id, e);
    if (e.index !== this.kv.applied + 1) return false;
    this.kv.apply(e);
    if (firstTime) {
      if (e.type === "normal") this.env.reads.onCanonicalWrite(e.index, putKey(e.data), putOpId(e.data));
      else this.env.reads.onCanonicalIndex(e.index);
    }
    const proposed = this.proposals.get(e.index);
    if (proposed !== undefined) {
      this.proposals.delete(e.index);
      if (proposed.term === e.term && e.type === "normal" && putOpId(e.data) === proposed.op.opId) {
        this.env.checker.onAck(e.index, e.term, entryDataHash(e), `op${proposed.op.opId}`);
        this.env.reads.onWriteAck(proposed.op.key, e.index);
        this.env.onAck(proposed.op, e.index, this);
      }
    }
    if (this.waitingReads.length > 0) this.serveWaitingReads();
    return true;
  }

  private onReadState(rs: ReadState): void {
    const key = this.readKeys.get(rs.ctx);
    if (key === undefined) return;
    this.readKeys.delete(rs.ctx);
    if (!rs.ok) return this.env.reads.onReadAbandoned(rs.ctx);
    if (this.kv.applied >= rs.index) this.serve(rs.ctx, key, rs.index);
    else this.waitingReads.push({ readId: rs.ctx, key, readIndex: rs.index });
  }

  private serveWaitingReads(): void {
    const still: WaitingRead[] = [];
    for (const w of this.waitingReads) {
      if (this.kv.applied >= w.readIndex) this.serve(w.readId, w.key, w.readIndex);
      else still.push(w);
    }
    this.waitingReads = still;
  }

  private serve(readId: number, key: number, readIndex: number): void {
    const value = this.kv.get(key);
    if (this.env.trace !== null) this.traceLine(`serve read${readId} key${key}=${value} applied=${this.kv.applied} readIndex=${readIndex}`);
    this.env.reads.onReadServe(readId, this.id, value, this.kv.applied, readIndex);
  }

  /**
   * Every `snapshotEvery` applied entries, snapshot the state machine and compact the log to a
   * little below the snapshot (keeping a few entries for slightly lagging followers, as DLedger
   * and etcd do), so that followers further behind need a snapshot install.
   */
  private maybeSnapshot(): void {
    const applied = this.kv.applied;
    if (applied - this.lastSnapshotIndex < this.options.snapshotEvery) return;
    const term = this.store.term(applied);
    if (term === undefined) return;
    const data = this.kv.snapshot(this.options.snapshotPadBytes);
    const lag = this.options.compactLagMax === 0 ? 0 : this.compactPrng.int(0, this.options.compactLagMax + 1);
    const compactTo = Math.max(this.store.firstIndex() - 1, applied - lag);
    this.store.saveSnapshot({ meta: { index: applied, term, members: this.options.members }, data }, compactTo);
    this.store.sync();
    this.env.checker.onCompact(this.id, compactTo);
    this.lastSnapshotIndex = applied;
    this.snapshotsTaken++;
    if (this.env.trace !== null) this.traceLine(`snapshot at ${applied}@t${term}, compacted to ${compactTo}`);
  }

  /** After a turn, with no Ready outstanding: the per-step checks. */
  private afterTurn(core: RaftCore): void {
    const s = core.status();
    this.env.checker.observeStatus(this.id, s.commit, s.applied);
    this.env.checker.observeRole(this.id, s.term, s.role);
    this.lastRole = s.role;
    this.lastTerm = s.term;
    if (this.options.checkInvariants) core.checkInvariants();
  }

  traceLine(text: string): void {
    this.env.trace?.push(`${formatTime(this.env.nowUs)} ${this.id} ${text}`);
  }

  /** Role and term for the simulator's own bookkeeping, or null while down or mid-Ready. */
  role(): { readonly role: string; readonly term: number; readonly commit: number } | null {
    if (this.core === null || this.syncing !== null) return null;
    const s = this.core.status();
    return { role: s.role, term: s.term, commit: s.commit };
  }
}
