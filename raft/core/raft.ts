import { assert, unreachable } from "../base/assert.js";
import { concatBytes } from "../base/bytes.js";
import type { Logger } from "../base/logger.js";
import { silentLogger } from "../base/logger.js";
import type { Prng } from "../base/prng.js";
import { validateConfig, type RaftConfig, type RaftConfigInput } from "./config.js";
import { RaftLog } from "./log.js";
import { Leader, readRequestsMax, type LeaderHost } from "./replication.js";
import { VoteOutcome, tallyVotes } from "./quorum.js";
import {
  EntryType,
  Role,
  type AppendRequest,
  type Entry,
  type HardState,
  type Heartbeat,
  type LogStore,
  type ProposeResult,
  type ReadState,
  type Ready,
  type ReplicaId,
  type RequestResult,
  type Rpc,
  type SnapshotChunk,
  type SoftState,
  type StepResult,
  type VoteRequest,
  type VoteResponse,
} from "./types.js";
import { rpcShapeError } from "./validate.js";

export { validateConfig } from "./config.js";
export type { RaftConfig, RaftConfigInput } from "./config.js";

export interface RaftCoreOptions {
  readonly config: RaftConfigInput;
  readonly logStore: LogStore;
  readonly prng: Prng;
  readonly logger?: Logger;
}

export interface RaftStatus {
  readonly id: ReplicaId;
  readonly term: number;
  readonly role: Role;
  readonly leader: ReplicaId | null;
  readonly votedFor: ReplicaId | null;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** Leader only: each follower's match index. */
  readonly matches: Readonly<Record<ReplicaId, number>>;
}

interface ReadyInProgress {
  readonly lastEntryIndex: number;
  readonly snapshotInstalled: boolean;
  /** Last committed entry handed out (by the Ready, then by `drain`), applied at advance(). */
  appliedTo: number;
}

interface SnapshotInbox {
  readonly meta: SnapshotChunk["meta"];
  readonly parts: Uint8Array[];
  received: number;
}

const emptyBytes = new Uint8Array(0);

/** (Pre-)campaigns after a leader-lost report that use the short timeout (3 rounds of pre-vote + vote). */
const quickElectionsMax = 6;

/**
 * The Raft consensus core: a deterministic state machine (etcd-raft's RawNode shape). Inputs are
 * `tick`, `step`, `propose`, `readIndex`, `transferLeadership` and `reportUnreachable`; the
 * output is `ready()`, closed by `advance()`. It performs no I/O, reads no clock and draws every
 * random choice from the injected Prng, so a seed replays a run exactly.
 *
 * Safety rules (DESIGN.md §2), each marked where it is enforced:
 *   [pre-vote]      a pre-vote changes neither term nor vote, on either side;
 *   [stickiness]    vote requests are ignored while a live leader is known;
 *   [check-quorum]  a leader that has not heard from a quorum for an election timeout steps down;
 *   [noop]          a new leader appends a no-op entry;
 *   [current-term]  commit by counting only entries of the current term (in Leader.maybeCommit);
 *   [stale-term]    RPCs with a lower term are rejected;
 *   [higher-term]   any higher term turns the replica into a follower;
 *   [durable-vote]  vote grants and append acks leave only after the fsync (messagesAfterSync).
 */
export class RaftCore {
  readonly config: RaftConfig;
  readonly id: ReplicaId;
  private readonly log: RaftLog;
  private readonly store: LogStore;
  private readonly prng: Prng;
  private readonly logger: Logger;
  private readonly peers: readonly ReplicaId[];
  private term = 0;
  private votedFor: ReplicaId | null = null;
  private role: Role = Role.follower;
  private leaderId: ReplicaId | null = null;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /**
   * Elections left that use the short leader-lost timeout: set when the leader's connection
   * closed, so that a split vote between its followers (they hear of the loss together) is
   * retried within a few spread intervals instead of a whole election timeout.
   */
  private quickElections = 0;
  private readonly votes = new Map<ReplicaId, boolean>();
  private leader: Leader | null = null;
  private snapshotInbox: SnapshotInbox | null = null;
  private msgs: Rpc[] = [];
  private msgsAfterSync: Rpc[] = [];
  private readStates: ReadState[] = [];
  private prevHardState: HardState;
  private prevSoftState: SoftState;
  private inProgress: ReadyInProgress | null = null;
  private readonly leaderHost: LeaderHost;

  constructor(options: RaftCoreOptions) {
    this.config = validateConfig(options.config);
    this.id = this.config.id;
    this.store = options.logStore;
    this.prng = options.prng;
    this.logger = (options.logger ?? silentLogger).child({ replica: this.id });
    this.peers = this.config.members.filter((m) => m !== this.id);
    const { hardState } = this.store.initialState();
    this.term = hardState.term;
    this.votedFor = hardState.votedFor;
    this.log = new RaftLog(this.store, hardState.commit);
    this.prevHardState = hardState;
    this.prevSoftState = this.softState();
    this.resetElectionTimer();
    this.leaderHost = {
      config: this.config,
      log: this.log,
      store: this.store,
      term: () => this.term,
      send: (rpc) => this.send(rpc),
    };
  }

  /* --- Inputs ----------------------------------------------------------------------------- */

  /** Advances logical time by one tick. */
  tick(): void {
    this.assertNotInReady("tick");
    if (this.role === Role.leader) this.tickLeader();
    else this.tickElection();
  }

  /**
   * Whether `rpc` may be stepped while a Ready is in progress (its fsync running): only an
   * append ack of this term to a leader. Such an ack can move a follower's match and the commit
   * index, and nothing else: no term or role change, no write, no truncation, so the Ready being
   * written stays exactly what the core expects at advance(). Everything else waits for it.
   */
  canStepDuringReady(rpc: Rpc): boolean {
    return this.leader !== null && rpc?.type === "append_response" && rpc.term === this.term && rpc.from !== this.id && this.peers.includes(rpc.from);
  }

  /** Feeds one inbound RPC. Malformed or foreign RPCs are refused before any state changes. */
  step(rpc: Rpc): StepResult {
    if (this.inProgress !== null) assert(this.canStepDuringReady(rpc), `step(${String(rpc?.type)}) between ready() and advance()`);
    if (typeof rpc?.from === "string" && rpc.from !== this.id && !this.peers.includes(rpc.from)) {
      return { ok: false, reason: "unknown_peer", detail: `rpc from ${rpc.from}, not a member of this group` };
    }
    const shapeError = rpcShapeError(rpc, this.id);
    if (shapeError !== null) return this.refuse(rpc, shapeError);
    if (rpc.term > this.term) {
      if (!this.stepHigherTerm(rpc)) return { ok: true };
    } else if (rpc.term < this.term) {
      this.stepLowerTerm(rpc);
      return { ok: true };
    }
    const error = this.dispatch(rpc);
    return error === null ? { ok: true } : this.refuse(rpc, error);
  }

  /**
   * Proposes `data` as a new entry. Only a leader accepts; the entry may still be lost. A leader
   * also accepts while a Ready is in progress: the entry joins the unstable tail, `drain` sends
   * it to the followers at once, and the next Ready writes it.
   */
  propose(data: Uint8Array): ProposeResult {
    if (this.leader === null) this.assertNotInReady("propose");
    const leader = this.leader;
    if (leader === null) return { ok: false, reason: "not_leader", leaderHint: this.leaderId };
    if (leader.leadTransferee !== null) return { ok: false, reason: "transferring", leaderHint: this.id };
    if (data.byteLength > this.config.entryBytesMax) return { ok: false, reason: "too_large", leaderHint: this.id };
    if (leader.uncommittedBytes + data.byteLength > this.config.uncommittedBytesMax) {
      return { ok: false, reason: "backpressure", leaderHint: this.id };
    }
    const index = this.appendEntry(EntryType.normal, data);
    leader.recordProposal(index, data.byteLength);
    return { ok: true, index, term: this.term };
  }

  /**
   * Starts a linearizable read (ReadIndex, thesis §6.4). The answer arrives in a later
   * `ready().readStates` with the same `ctx`: serve the read once applied ≥ its index.
   */
  readIndex(ctx: number): RequestResult<"not_leader" | "backpressure"> {
    this.assertNotInReady("readIndex");
    const leader = this.leader;
    if (leader === null) return { ok: false, reason: "not_leader", leaderHint: this.leaderId };
    if (leader.pendingReads() >= readRequestsMax) return { ok: false, reason: "backpressure", leaderHint: this.id };
    leader.readIndex(ctx, this.readStates);
    return { ok: true };
  }

  /** Hands leadership to `to` (thesis §3.10): catch it up, then send TimeoutNow. */
  transferLeadership(to: ReplicaId): RequestResult<"not_leader" | "unknown_peer"> {
    this.assertNotInReady("transferLeadership");
    const leader = this.leader;
    if (leader === null) return { ok: false, reason: "not_leader", leaderHint: this.leaderId };
    if (to === this.id) return { ok: true };
    if (!this.peers.includes(to)) return { ok: false, reason: "unknown_peer", leaderHint: this.id };
    if (leader.leadTransferee === to) return { ok: true };
    this.logger.info({ term: this.term, to }, "leader_transfer_started");
    // The transfer is abandoned if it has not finished within an election timeout.
    this.electionElapsed = 0;
    leader.startTransfer(to);
    return { ok: true };
  }

  /**
   * The driver learned that `peer` cannot be reached (its stream closed). A leader stops
   * pipelining to it. A follower that loses its leader this way starts a pre-vote after a short
   * random delay instead of a full election timeout: safe, because the election still decides.
   */
  reportUnreachable(peer: ReplicaId): void {
    this.assertNotInReady("reportUnreachable");
    if (this.leader !== null) {
      this.leader.reportUnreachable(peer);
      return;
    }
    if (this.role !== Role.follower || peer !== this.leaderId) return;
    this.logger.info({ term: this.term, leader: peer }, "leader_unreachable");
    this.leaderId = null;
    // Every follower of a dead leader hears of it at about the same moment; spreading their
    // first pre-vote over a few ticks keeps them from splitting the vote.
    const delayTicks = this.prng.int(1, Math.max(2, this.config.leaderLostSpreadTicks));
    this.electionElapsed = Math.max(this.electionElapsed, this.randomizedElectionTimeout - delayTicks);
    this.quickElections = quickElectionsMax;
  }

  /* --- Output ----------------------------------------------------------------------------- */

  hasReady(): boolean {
    if (this.inProgress !== null) return false;
    return (
      this.msgs.length > 0 ||
      this.msgsAfterSync.length > 0 ||
      this.readStates.length > 0 ||
      this.log.unstableEntries().length > 0 ||
      this.log.pendingSnapshot() !== null ||
      this.log.hasNextCommitted() ||
      (this.leader?.hasPendingSends() ?? false) ||
      this.hardStateChanged() ||
      this.softStateChanged()
    );
  }

  /** The work for the driver; see the contract on `Ready`. Must be followed by `advance()`. */
  ready(): Ready {
    this.assertNotInReady("ready");
    this.leader?.flush();
    const entries = this.log.unstableEntries().slice();
    const snapshot = this.log.pendingSnapshot();
    const committedEntries = this.log.nextCommitted(this.config.applyBytesMax);
    const hardState = this.hardStateChanged() ? this.hardState() : null;
    const softState = this.softState();
    const rd: Ready = {
      softState,
      hardState,
      snapshot,
      entries,
      committedEntries,
      messages: this.msgs,
      messagesAfterSync: this.msgsAfterSync,
      readStates: this.readStates,
    };
    const lastCommitted = committedEntries[committedEntries.length - 1];
    this.inProgress = {
      lastEntryIndex: entries[entries.length - 1]?.index ?? 0,
      snapshotInstalled: snapshot !== null,
      appliedTo: lastCommitted?.index ?? 0,
    };
    if (hardState !== null) this.prevHardState = hardState;
    this.prevSoftState = softState;
    this.msgs = [];
    this.msgsAfterSync = [];
    this.readStates = [];
    return rd;
  }

  /**
   * A leader's output while a Ready is in progress (pipelining, DESIGN.md §4): the appends of
   * entries proposed meanwhile (to send now: the followers need not wait for the leader's own
   * fsync) and the committed entries up to `writtenIndex` (the last index already in the log
   * store, durable or not) that no Ready or earlier drain handed out. Committed means durable on
   * a quorum, which may be the two followers without the leader; the bound keeps every applied
   * entry readable from the store. The driver applies them in order after the Ready's own.
   */
  drain(writtenIndex: number): { readonly messages: readonly Rpc[]; readonly committedEntries: readonly Entry[] } {
    const done = this.inProgress;
    assert(done !== null && this.leader !== null, "drain() is for a leader between ready() and advance()");
    this.leader.flush();
    const messages = this.msgs;
    this.msgs = [];
    const lo = Math.max(this.log.applied, done.appliedTo) + 1;
    const hi = Math.min(this.log.committed, writtenIndex);
    const committedEntries = lo > hi ? [] : this.log.committedBetween(lo, hi, this.config.applyBytesMax);
    const last = committedEntries[committedEntries.length - 1];
    if (last !== undefined) done.appliedTo = last.index;
    return { messages, committedEntries };
  }

  /** The driver has carried out the last Ready: its writes are durable, its entries applied. */
  advance(): void {
    const done = this.inProgress;
    assert(done !== null, "advance() without a ready()");
    this.inProgress = null;
    this.log.stableTo(done.lastEntryIndex, done.snapshotInstalled);
    if (done.appliedTo > this.log.applied) this.log.appliedTo(done.appliedTo);
    const leader = this.leader;
    if (leader !== null) {
      // Our own entries count toward the quorum only once they are durable: up to the stable
      // index, not lastIndex(), since entries proposed during the Ready are not written yet.
      leader.selfMatch = this.log.stableLastIndex();
      if (leader.maybeCommit()) leader.progressReads(this.readStates);
    }
  }

  softState(): SoftState {
    return { role: this.role, leader: this.leaderId, term: this.term };
  }

  status(): RaftStatus {
    const matches: Record<ReplicaId, number> = {};
    if (this.leader !== null) for (const [p, pr] of this.leader.progress) matches[p] = pr.match;
    return {
      id: this.id,
      term: this.term,
      role: this.role,
      leader: this.leaderId,
      votedFor: this.votedFor,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      matches,
    };
  }

  /** Throws AssertionError if any internal invariant is broken. The simulator calls it often. */
  checkInvariants(): void {
    this.log.checkInvariants();
    assert(this.log.lastTerm() <= this.term, `last log term ${this.log.lastTerm()} > term ${this.term}`);
    assert(this.term >= this.prevHardState.term || this.inProgress !== null, "term went below the persisted term");
    switch (this.role) {
      case Role.leader:
        assert(this.leaderId === this.id, `leader whose leaderId is ${this.leaderId}`);
        assert(this.votedFor === this.id, `leader that voted for ${this.votedFor}`);
        assert(this.leader !== null, "leader without replication state");
        this.leader.checkInvariants();
        break;
      case Role.candidate:
        assert(this.votedFor === this.id, `candidate that voted for ${this.votedFor}`);
        assert(this.leader === null, "candidate with replication state");
        break;
      case Role.preCandidate:
      case Role.follower:
        assert(this.leader === null, `${this.role} with replication state`);
        break;
    }
  }

  /* --- Time ------------------------------------------------------------------------------- */

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed < this.randomizedElectionTimeout) return;
    this.electionElapsed = 0;
    this.preCampaign();
  }

  private tickLeader(): void {
    const leader = this.leader;
    assert(leader !== null, "tickLeader without replication state");
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      const preferredReady = this.preferredLeaderReady(leader);
      // [check-quorum] A leader cut off from a quorum must stop acting as one.
      if (!leader.checkQuorumActive()) {
        this.logger.warn({ term: this.term }, "leader_lost_quorum");
        this.becomeFollower(this.term, null);
        return;
      }
      if (leader.leadTransferee !== null) {
        this.logger.info({ term: this.term, to: leader.leadTransferee }, "leader_transfer_aborted");
        leader.leadTransferee = null;
      }
      if (preferredReady !== null) this.transferLeadership(preferredReady);
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      leader.broadcastHeartbeat();
    }
    leader.tickCommitUpdate();
  }

  /** The preferred leader, if leadership should move back to it now (it is live and caught up). */
  private preferredLeaderReady(leader: Leader): ReplicaId | null {
    const preferred = this.config.preferredLeader;
    if (preferred === null || preferred === this.id || leader.leadTransferee !== null) return null;
    if (!leader.committedInTerm() || !leader.isCaughtUp(preferred)) return null;
    return preferred;
  }

  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    const e = this.config.electionTicks;
    this.randomizedElectionTimeout = this.prng.int(e, 2 * e);
    if (this.role === Role.leader || this.leaderId !== null) this.quickElections = 0;
    if (this.quickElections > 0 && (this.role === Role.preCandidate || this.role === Role.candidate)) {
      // After a leader-lost report: this (pre-)campaign gives up and retries after [s, 2s) ticks
      // rather than [e, 2e). Timing never affects safety; the count bounds the extra elections.
      this.quickElections--;
      const s = Math.max(2, this.config.leaderLostSpreadTicks);
      this.randomizedElectionTimeout = Math.min(this.randomizedElectionTimeout, this.prng.int(s, 2 * s));
    }
  }

  /* --- Elections (Raft §5.2, thesis §9.6 pre-vote) ---------------------------------------- */

  /** [pre-vote] Asks whether an election at term+1 could be won, without changing anything. */
  private preCampaign(): void {
    this.role = Role.preCandidate;
    this.leaderId = null;
    this.resetElectionTimer();
    this.votes.clear();
    this.votes.set(this.id, true);
    this.logger.debug({ term: this.term }, "pre_vote_started");
    this.requestVotes(true, false);
    if (tallyVotes(this.votes, this.config.members.length) === VoteOutcome.won) this.campaign(false);
  }

  private campaign(transfer: boolean): void {
    this.term++;
    this.votedFor = this.id;
    this.role = Role.candidate;
    this.leaderId = null;
    this.resetElectionTimer();
    this.votes.clear();
    this.votes.set(this.id, true);
    this.logger.info({ term: this.term, transfer }, "became_candidate");
    this.requestVotes(false, transfer);
    if (tallyVotes(this.votes, this.config.members.length) === VoteOutcome.won) this.becomeLeader();
  }

  private requestVotes(preVote: boolean, transfer: boolean): void {
    const term = preVote ? this.term + 1 : this.term;
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const to of this.peers) {
      this.send({ type: "vote_request", term, from: this.id, to, preVote, transfer, lastIndex, lastTerm });
    }
  }

  private becomeLeader(): void {
    assert(this.role === Role.candidate, `becomeLeader from ${this.role}`);
    this.role = Role.leader;
    this.leaderId = this.id;
    this.resetElectionTimer();
    const stable = this.log.lastIndex() - this.log.unstableEntries().length;
    this.leader = new Leader(this.leaderHost, this.peers, stable);
    this.logger.info({ term: this.term, lastIndex: this.log.lastIndex() }, "became_leader");
    // [noop] Commits the previous terms' entries indirectly (Raft §5.4.2, thesis §6.4).
    this.appendEntry(EntryType.noop, emptyBytes);
    this.leader.markAllForAppend(true);
  }

  /** Steps down (or stays) as follower in `term`. A new term clears the vote. */
  private becomeFollower(term: number, leaderId: ReplicaId | null): void {
    assert(term >= this.term, `becomeFollower to lower term ${term} < ${this.term}`);
    if (term > this.term) {
      this.term = term;
      this.votedFor = null;
    }
    const was = this.role;
    this.role = Role.follower;
    this.leaderId = leaderId;
    this.resetElectionTimer();
    this.votes.clear();
    if (this.leader !== null) {
      this.leader.failReads(this.readStates);
      this.leader = null;
    }
    if (was !== Role.follower) this.logger.info({ term, leader: leaderId, was }, "became_follower");
  }

  private appendEntry(type: EntryType, data: Uint8Array): number {
    const index = this.log.lastIndex() + 1;
    const entry: Entry = { index, term: this.term, type, data };
    this.log.append([entry]);
    return index;
  }

  /* --- Term rules ------------------------------------------------------------------------- */

  /**
   * An RPC with a higher term. Returns false if it is to be ignored entirely.
   * [higher-term] Everything but pre-vote traffic makes us a follower in the new term.
   */
  private stepHigherTerm(rpc: Rpc): boolean {
    if (rpc.type === "vote_request") {
      // [stickiness] While we hear from a live leader, an election elsewhere is a partitioned
      // or slow replica's, and must not disrupt us (thesis §4.2.3). A transfer overrides it.
      const inLease = this.leaderId !== null && this.electionElapsed < this.config.electionTicks;
      if (inLease && !rpc.transfer) {
        this.logger.debug({ term: this.term, from: rpc.from, rpcTerm: rpc.term }, "vote_ignored_in_lease");
        return false;
      }
      // [pre-vote] A pre-vote request carries the term the candidate would use: not ours yet.
      if (rpc.preVote) return true;
    }
    if (rpc.type === "vote_response" && rpc.preVote && rpc.granted) return true;
    const fromLeader = rpc.type === "append_request" || rpc.type === "heartbeat" || rpc.type === "snapshot_chunk";
    this.becomeFollower(rpc.term, fromLeader ? rpc.from : null);
    return true;
  }

  /** [stale-term] An RPC from an older term is rejected; we say our term so its sender catches up. */
  private stepLowerTerm(rpc: Rpc): void {
    if (rpc.type === "append_request" || rpc.type === "heartbeat" || rpc.type === "snapshot_chunk") {
      // A deposed leader learns of the newer term from this answer and steps down.
      this.send({ type: "append_response", term: this.term, from: this.id, to: rpc.from, success: false, index: 0, hintIndex: 0, hintTerm: 0 });
    } else if (rpc.type === "vote_request" && rpc.preVote) {
      this.send({ type: "vote_response", term: this.term, from: this.id, to: rpc.from, preVote: true, granted: false });
    }
  }

  /* --- Dispatch (terms already equal, except pre-vote traffic) ---------------------------- */

  private dispatch(rpc: Rpc): string | null {
    switch (rpc.type) {
      case "vote_request":
        this.handleVoteRequest(rpc);
        return null;
      case "vote_response":
        this.handleVoteResponse(rpc);
        return null;
      case "append_request":
        return this.asFollowerOf(rpc.from, () => this.handleAppendRequest(rpc));
      case "heartbeat":
        return this.asFollowerOf(rpc.from, () => this.handleHeartbeat(rpc));
      case "snapshot_chunk":
        return this.asFollowerOf(rpc.from, () => this.handleSnapshotChunk(rpc));
      case "append_response": {
        if (this.leader === null) return null;
        const error = this.leader.handleAppendResponse(rpc);
        this.leader.progressReads(this.readStates);
        return error;
      }
      case "heartbeat_response":
        if (this.leader === null) return null;
        this.leader.handleHeartbeatResponse(rpc.from, rpc.readSeq);
        this.leader.progressReads(this.readStates);
        return null;
      case "snapshot_response":
        this.leader?.handleSnapshotResponse(rpc);
        return null;
      case "timeout_now":
        if (this.role !== Role.leader) this.campaign(true);
        return null;
      default:
        return unreachable(rpc, "rpc");
    }
  }

  /** Leader traffic in our own term: a candidate yields; a second leader is impossible. */
  private asFollowerOf(from: ReplicaId, handle: () => string | null): string | null {
    if (this.role === Role.leader) return `a second leader (${from}) in term ${this.term}`;
    if (this.role !== Role.follower || this.leaderId !== from) this.becomeFollower(this.term, from);
    this.electionElapsed = 0;
    return handle();
  }

  private handleVoteRequest(m: VoteRequest): void {
    // Raft §5.2: one vote per term; a pre-vote for a future term binds nothing.
    const canVote =
      this.votedFor === m.from ||
      (this.votedFor === null && this.leaderId === null) ||
      (m.preVote && m.term > this.term);
    // Raft §5.4.1: only a candidate whose log is at least as up to date as ours.
    const granted = canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm);
    // A granted pre-vote answers in the candidate's future term; anything else in ours.
    const term = granted && m.preVote ? m.term : this.term;
    this.send({ type: "vote_response", term, from: this.id, to: m.from, preVote: m.preVote, granted });
    if (granted && !m.preVote) {
      this.votedFor = m.from;
      this.electionElapsed = 0;
      this.logger.info({ term: this.term, candidate: m.from }, "vote_granted");
    }
  }

  private handleVoteResponse(m: VoteResponse): void {
    const expecting = (this.role === Role.preCandidate && m.preVote) || (this.role === Role.candidate && !m.preVote);
    if (!expecting) return;
    // A granted pre-vote must be for the term we would campaign in.
    if (m.preVote && m.granted && m.term !== this.term + 1) return;
    this.votes.set(m.from, m.granted);
    const outcome = tallyVotes(this.votes, this.config.members.length);
    if (outcome === VoteOutcome.won) {
      if (this.role === Role.preCandidate) this.campaign(false);
      else this.becomeLeader();
    } else if (outcome === VoteOutcome.lost) {
      this.becomeFollower(this.term, null);
    }
  }

  private handleAppendRequest(m: AppendRequest): string | null {
    const log = this.log;
    if (m.prevIndex < log.committed) {
      // Everything up to our commit index is settled; tell the leader where we stand.
      this.respondAppend(m.from, true, log.committed);
      return null;
    }
    const conflict = this.conflictBelowCommit(m);
    if (conflict !== null) return conflict;
    const lastNew = log.maybeAppend(m.prevIndex, m.prevTerm, m.entries);
    if (lastNew === null) {
      const hint = log.findConflictByTerm(Math.min(m.prevIndex, log.lastIndex()), m.prevTerm);
      this.send({ type: "append_response", term: this.term, from: this.id, to: m.from, success: false, index: m.prevIndex, hintIndex: hint.index, hintTerm: hint.term });
      return null;
    }
    log.commitTo(Math.min(m.commit, lastNew));
    this.respondAppend(m.from, true, lastNew);
    return null;
  }

  /** A leader must never contradict a committed entry; if one does, refuse the RPC whole. */
  private conflictBelowCommit(m: AppendRequest): string | null {
    if (!this.log.matchTerm(m.prevIndex, m.prevTerm)) return null;
    for (const e of m.entries) {
      if (e.index > this.log.committed) break;
      if (!this.log.matchTerm(e.index, e.term)) {
        return `entry ${e.index} (term ${e.term}) contradicts committed entry of term ${String(this.log.term(e.index))}`;
      }
    }
    return null;
  }

  private respondAppend(to: ReplicaId, success: boolean, index: number): void {
    this.send({ type: "append_response", term: this.term, from: this.id, to, success, index, hintIndex: 0, hintTerm: 0 });
  }

  private handleHeartbeat(m: Heartbeat): null {
    // The leader sends min(its commit, our match), which our log holds; clamp all the same.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: "heartbeat_response", term: this.term, from: this.id, to: m.from, readSeq: m.readSeq });
    return null;
  }

  private handleSnapshotChunk(m: SnapshotChunk): string | null {
    if (m.meta.index <= this.log.committed) {
      // We already hold this state; report it so the leader resumes appends.
      this.snapshotInbox = null;
      this.respondAppend(m.from, true, this.log.committed);
      return null;
    }
    const inbox = this.acceptChunk(m);
    if (inbox === null) return null;
    if (!m.done) {
      this.send({ type: "snapshot_response", term: this.term, from: this.id, to: m.from, snapshotIndex: m.meta.index, position: inbox.received, reject: false });
      return null;
    }
    this.snapshotInbox = null;
    const data = inbox.parts.length === 1 ? (inbox.parts[0] as Uint8Array) : concatBytes(inbox.parts);
    if (this.log.matchTerm(m.meta.index, m.meta.term)) {
      // Our log already has the snapshot's last entry, so the prefix matches: just commit it.
      this.log.commitTo(m.meta.index);
    } else {
      this.logger.info({ term: this.term, index: m.meta.index }, "snapshot_installing");
      this.log.restore({ meta: m.meta, data });
    }
    this.respondAppend(m.from, true, this.log.lastIndex());
    return null;
  }

  /** Adds a chunk to the inbox if it is the next one expected; otherwise asks for a resend. */
  private acceptChunk(m: SnapshotChunk): SnapshotInbox | null {
    let inbox = this.snapshotInbox;
    if (m.position === 0) {
      inbox = { meta: m.meta, parts: [], received: 0 };
      this.snapshotInbox = inbox;
    }
    if (inbox === null || inbox.meta.index !== m.meta.index || inbox.meta.term !== m.meta.term || inbox.received !== m.position) {
      const reject = inbox === null || inbox.meta.index !== m.meta.index || inbox.meta.term !== m.meta.term;
      this.send({ type: "snapshot_response", term: this.term, from: this.id, to: m.from, snapshotIndex: m.meta.index, position: reject ? 0 : (inbox as SnapshotInbox).received, reject });
      return null;
    }
    if (inbox.received + m.data.byteLength > this.config.snapshotBytesMax) {
      this.logger.error({ index: m.meta.index, bytesMax: this.config.snapshotBytesMax }, "snapshot_too_large");
      this.snapshotInbox = null;
      return null;
    }
    // Copy: the RPC's bytes may be a view into a transport buffer that gets reused.
    inbox.parts.push(m.data.slice());
    inbox.received += m.data.byteLength;
    return inbox;
  }

  /* --- Plumbing --------------------------------------------------------------------------- */

  /** [durable-vote] Vote answers and append acks vouch for durable state: they wait for the fsync. */
  private send(rpc: Rpc): void {
    if (rpc.type === "vote_response" || rpc.type === "append_response") this.msgsAfterSync.push(rpc);
    else this.msgs.push(rpc);
  }

  private refuse(rpc: Rpc, detail: string): StepResult {
    this.logger.warn({ from: String(rpc?.from), type: String(rpc?.type), detail }, "rpc_refused");
    return { ok: false, reason: "malformed", detail };
  }

  private hardState(): HardState {
    return { term: this.term, votedFor: this.votedFor, commit: this.log.committed };
  }

  /**
   * The hard state is written when term or vote change. The commit index rides along as a
   * hint; rewriting it on every commit would cost an extra write per batch for nothing a
   * restart needs (a restarted replica relearns the commit index from the leader).
   */
  private hardStateChanged(): boolean {
    return this.term !== this.prevHardState.term || this.votedFor !== this.prevHardState.votedFor;
  }

  private softStateChanged(): boolean {
    const s = this.prevSoftState;
    return s.role !== this.role || s.leader !== this.leaderId || s.term !== this.term;
  }

  private assertNotInReady(what: string): void {
    assert(this.inProgress === null, `${what}() between ready() and advance()`);
  }
}

