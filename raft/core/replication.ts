import { assert } from "../base/assert.js";
import type { RaftConfig } from "./config.js";
import type { RaftLog } from "./log.js";
import { Progress, ProgressState } from "./progress.js";
import { quorumIndex, quorumSize } from "./quorum.js";
import type { AppendResponse, LogStore, ReadState, ReplicaId, Rpc, Snapshot, SnapshotResponse } from "./types.js";

/** Pending ReadIndex rounds a leader may hold (STYLE.md rule 13: bound every queue). */
export const readRequestsMax = 65_536;

/** What the leader-side machinery needs from the core it serves. */
export interface LeaderHost {
  readonly config: RaftConfig;
  readonly log: RaftLog;
  readonly store: LogStore;
  term(): number;
  send(rpc: Rpc): void;
}

interface PendingRead {
  readonly ctx: number;
  readonly index: number;
  readonly seq: number;
}

/**
 * The leader's replication state for one term: per-follower progress, the in-flight windows,
 * deferred sends (appends are generated when the Ready is built, so proposals that arrive in one
 * turn leave as one batch), ReadIndex rounds, and the uncommitted-bytes budget. It lives exactly
 * as long as one leadership; a new Leader is built on every election win.
 */
export class Leader {
  readonly progress = new Map<ReplicaId, Progress>();
  /** Highest index durable on the leader itself: its own vote in the commit quorum. */
  selfMatch: number;
  leadTransferee: ReplicaId | null = null;
  /** Followers to send appends to when the Ready is built; the value says "even if empty". */
  private readonly needsAppend = new Map<ReplicaId, boolean>();
  private heartbeatPending = false;
  /** The commit index moved since the followers last heard it: tell them at the next tick. */
  private commitUpdateDue = false;
  private readSeq = 0;
  private readonly reads: PendingRead[] = [];
  /** ReadIndex requests waiting for the first commit of this term (thesis §6.4 step 1). */
  private readonly readsBeforeCommit: number[] = [];
  /** Proposed-but-uncommitted entries as (index, bytes), in index order, and their sum. */
  private readonly uncommitted: { index: number; bytes: number }[] = [];
  private uncommittedHead = 0;
  uncommittedBytes = 0;

  constructor(
    private readonly host: LeaderHost,
    readonly peers: readonly ReplicaId[],
    selfMatch: number,
  ) {
    const next = host.log.lastIndex() + 1;
    for (const p of peers) {
      const pr = new Progress(next, host.config.inflightRpcsMax, host.config.inflightBytesMax);
      // Fresh leaders assume followers are alive so the first check-quorum round is fair.
      pr.recentActive = true;
      this.progress.set(p, pr);
    }
    this.selfMatch = selfMatch;
  }

  /* --- Proposals and commit ------------------------------------------------------------- */

  recordProposal(index: number, bytes: number): void {
    this.uncommitted.push({ index, bytes });
    this.uncommittedBytes += bytes;
    this.markAllForAppend(false);
  }

  /** Raft §5.3/§5.4.2: advance commit to the quorum index if that entry is from this term. */
  maybeCommit(): boolean {
    const matches = [this.selfMatch];
    for (const pr of this.progress.values()) matches.push(pr.match);
    const index = quorumIndex(matches);
    const log = this.host.log;
    if (index <= log.committed) return false;
    if (log.term(index) !== this.host.term()) return false;
    log.commitTo(index);
    this.releaseUncommitted(index);
    // Followers learn the new commit index from the next append, which under load leaves within
    // the same turn, or at the next tick (tickCommitUpdate): not from an append of its own.
    this.commitUpdateDue = true;
    return true;
  }

  /**
   * Once per tick: a follower that has not been sent the current commit index gets an empty
   * append carrying it. Lazy on purpose. An eager update (etcd-raft's bcastAppend after every
   * commit) doubles the RPCs per append when appends arrive one at a time: every follower takes
   * a second frame and answers a second ack, for nothing the client waits on, since only the
   * leader answers appends and serves reads. hashicorp/raft (CommitTimeout, 50 ms) and DLedger
   * (a commit push when nothing was pushed for a while) are lazy too. Followers then apply at most
   * one tick later, which only delays a follower's Get of the newest entries.
   */
  tickCommitUpdate(): void {
    if (!this.commitUpdateDue) return;
    this.commitUpdateDue = false;
    const committed = this.host.log.committed;
    for (const [peer, pr] of this.progress) if (pr.commitSent < committed) this.markForAppend(peer, true);
  }

  private releaseUncommitted(committed: number): void {
    while (this.uncommittedHead < this.uncommitted.length) {
      const u = this.uncommitted[this.uncommittedHead] as { index: number; bytes: number };
      if (u.index > committed) break;
      this.uncommittedBytes -= u.bytes;
      this.uncommittedHead++;
    }
    if (this.uncommittedHead > 1024 && this.uncommittedHead * 2 > this.uncommitted.length) {
      this.uncommitted.splice(0, this.uncommittedHead);
      this.uncommittedHead = 0;
    }
  }

  committedInTerm(): boolean {
    return this.host.log.term(this.host.log.committed) === this.host.term();
  }

  /* --- Sending -------------------------------------------------------------------------- */

  markAllForAppend(sendIfEmpty: boolean): void {
    for (const p of this.peers) this.markForAppend(p, sendIfEmpty);
  }

  markForAppend(peer: ReplicaId, sendIfEmpty: boolean): void {
    this.needsAppend.set(peer, sendIfEmpty || (this.needsAppend.get(peer) ?? false));
  }

  hasPendingSends(): boolean {
    return this.needsAppend.size > 0 || this.heartbeatPending;
  }

  /** Called when the Ready is built: turns deferred work into RPCs. */
  flush(): void {
    if (this.heartbeatPending) this.broadcastHeartbeat();
    for (const [peer, sendIfEmpty] of this.needsAppend) this.sendAppends(peer, sendIfEmpty);
    this.needsAppend.clear();
  }

  broadcastHeartbeat(): void {
    this.heartbeatPending = false;
    const term = this.host.term();
    const committed = this.host.log.committed;
    for (const [peer, pr] of this.progress) {
      // Never tell a follower to commit past what it is known to share with us.
      const commit = Math.min(pr.match, committed);
      this.host.send({ type: "heartbeat", term, from: this.host.config.id, to: peer, commit, readSeq: this.readSeq });
      pr.commitSent = Math.max(pr.commitSent, commit);
    }
  }

  /**
   * Sends appends to `peer` while its window allows: one RPC in probe state, a pipeline in
   * replicate state. Falls back to a snapshot when the needed entries were compacted.
   */
  private sendAppends(peer: ReplicaId, sendIfEmpty: boolean): void {
    const pr = this.progress.get(peer);
    assert(pr !== undefined, `sendAppends to unknown peer ${peer}`);
    const { log, config } = this.host;
    for (let sent = 0; sent <= config.inflightRpcsMax; sent++) {
      if (pr.isPaused()) return;
      const prevIndex = pr.next - 1;
      const prevTerm = log.term(prevIndex);
      const last = log.lastIndex();
      const entries = pr.next <= last ? log.slice(pr.next, last + 1, config.appendBytesMax) : [];
      if (prevTerm === undefined || entries === null) return this.startSnapshot(peer, pr);
      if (entries.length === 0 && !sendIfEmpty) return;
      let bytes = 0;
      for (const e of entries) bytes += e.data.byteLength;
      const term = this.host.term();
      this.host.send({ type: "append_request", term, from: config.id, to: peer, prevIndex, prevTerm, entries, commit: log.committed });
      pr.commitSent = Math.max(pr.commitSent, log.committed);
      pr.sentEntries(entries.length > 0 ? prevIndex + entries.length : prevIndex, bytes, entries.length > 0);
      sendIfEmpty = false;
      if (pr.state !== ProgressState.replicate) return;
    }
  }

  private startSnapshot(peer: ReplicaId, pr: Progress): void {
    // A snapshot to a follower that does not answer would be wasted; wait until it does.
    if (!pr.recentActive) return;
    const snap = this.host.store.snapshot();
    assert(snap !== null, `entries for ${peer} at ${pr.next} were compacted but there is no snapshot`);
    pr.becomeSnapshot(snap.meta.index);
    this.sendSnapshotChunk(peer, pr, snap);
  }

  private sendSnapshotChunk(peer: ReplicaId, pr: Progress, snap: Snapshot): void {
    const position = pr.snapshotPosition;
    const end = Math.min(snap.data.byteLength, position + this.host.config.snapshotChunkBytes);
    this.host.send({
      type: "snapshot_chunk",
      term: this.host.term(),
      from: this.host.config.id,
      to: peer,
      meta: snap.meta,
      position,
      data: snap.data.subarray(position, end),
      done: end === snap.data.byteLength,
    });
  }

  /* --- Responses ------------------------------------------------------------------------ */

  /** Returns an error sentence for an impossible response, else null. */
  handleAppendResponse(m: AppendResponse): string | null {
    const pr = this.progress.get(m.from);
    assert(pr !== undefined, `append_response from unknown peer ${m.from}`);
    const log = this.host.log;
    if (m.success && m.index > log.lastIndex()) {
      return `append_response acknowledges index ${m.index} beyond the leader's last index ${log.lastIndex()}`;
    }
    pr.recentActive = true;
    if (!m.success) {
      const hint = m.hintTerm > 0 ? log.findConflictByTerm(m.hintIndex, m.hintTerm).index : m.hintIndex;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === ProgressState.replicate) pr.becomeProbe();
        this.markForAppend(m.from, false);
      }
      return null;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return null;
    if (pr.state === ProgressState.probe) pr.becomeReplicate();
    else if (pr.state === ProgressState.snapshot && pr.match + 1 >= log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.replicate) pr.inflights.freeTo(m.index);
    this.maybeCommit();
    // The ack may have freed room in its window: what waits goes now. A follower that was paused
    // may also have missed a commit update while it was: tell it now, even with nothing new.
    this.markForAppend(m.from, wasPaused);
    if (this.leadTransferee === m.from && pr.match === log.lastIndex()) this.sendTimeoutNow(m.from);
    return null;
  }

  handleHeartbeatResponse(from: ReplicaId, readSeq: number): void {
    const pr = this.progress.get(from);
    assert(pr !== undefined, `heartbeat_response from unknown peer ${from}`);
    pr.recentActive = true;
    pr.probeSent = false;
    // A full window may hold appends that were lost: the follower answers heartbeats but not
    // them. Free one slot so the next append goes out; if the follower lacks its prevIndex it
    // rejects it and we fall back to probing (etcd-raft does the same).
    if (pr.state === ProgressState.replicate && pr.inflights.full()) pr.inflights.freeFirst();
    if (pr.state === ProgressState.snapshot) {
      const snap = this.host.store.snapshot();
      if (snap !== null && snap.meta.index === pr.pendingSnapshot) this.sendSnapshotChunk(from, pr, snap);
      else pr.becomeProbe();
    } else if (pr.match < this.host.log.lastIndex()) {
      // Send even if nothing new: in replicate state an append may have been lost, and only
      // an append (whose prevIndex the follower lacks) makes it reject so we back off and resend.
      this.markForAppend(from, true);
    }
    if (readSeq > pr.readSeqAcked) pr.readSeqAcked = readSeq;
  }

  handleSnapshotResponse(m: SnapshotResponse): void {
    const pr = this.progress.get(m.from);
    assert(pr !== undefined, `snapshot_response from unknown peer ${m.from}`);
    pr.recentActive = true;
    if (pr.state !== ProgressState.snapshot || m.snapshotIndex !== pr.pendingSnapshot) return;
    const snap = this.host.store.snapshot();
    if (snap === null || snap.meta.index !== pr.pendingSnapshot) {
      // We took a newer snapshot meanwhile; start over with it.
      pr.becomeProbe();
      this.markForAppend(m.from, false);
      return;
    }
    pr.snapshotPosition = m.reject ? 0 : Math.min(m.position, snap.data.byteLength);
    if (m.reject || pr.snapshotPosition < snap.data.byteLength) this.sendSnapshotChunk(m.from, pr, snap);
  }

  reportUnreachable(peer: ReplicaId): void {
    const pr = this.progress.get(peer);
    if (pr === undefined) return;
    if (pr.state !== ProgressState.probe) pr.becomeProbe();
  }

  /** Check-quorum (Raft thesis §6.2): were a quorum of voters heard from this round? */
  checkQuorumActive(): boolean {
    let active = 1;
    for (const pr of this.progress.values()) {
      if (pr.recentActive) active++;
      pr.recentActive = false;
    }
    return active >= quorumSize(this.peers.length + 1);
  }

  /* --- Leadership transfer (thesis §3.10) ------------------------------------------------ */

  startTransfer(to: ReplicaId): void {
    const pr = this.progress.get(to);
    assert(pr !== undefined, `transfer to unknown peer ${to}`);
    this.leadTransferee = to;
    if (pr.match === this.host.log.lastIndex()) this.sendTimeoutNow(to);
    else this.markForAppend(to, false);
  }

  private sendTimeoutNow(to: ReplicaId): void {
    this.host.send({ type: "timeout_now", term: this.host.term(), from: this.host.config.id, to });
  }

  /**
   * True if `peer` was heard from this check-quorum round and holds our whole log: a safe
   * target for a transfer. Call before checkQuorumActive() resets the round.
   */
  isCaughtUp(peer: ReplicaId): boolean {
    const pr = this.progress.get(peer);
    return pr !== undefined && pr.recentActive && pr.match === this.host.log.lastIndex();
  }

  /* --- ReadIndex (thesis §6.4) ------------------------------------------------------------ */

  pendingReads(): number {
    return this.reads.length + this.readsBeforeCommit.length;
  }

  /** Starts a ReadIndex round for `ctx`; results come back through `out`. */
  readIndex(ctx: number, out: ReadState[]): void {
    if (!this.committedInTerm()) {
      this.readsBeforeCommit.push(ctx);
      return;
    }
    const index = this.host.log.committed;
    if (this.peers.length === 0) {
      out.push({ ctx, ok: true, index });
      return;
    }
    this.readSeq++;
    this.reads.push({ ctx, index, seq: this.readSeq });
    this.heartbeatPending = true;
  }

  /** After a commit or a heartbeat ack: start waiting reads, resolve confirmed ones. */
  progressReads(out: ReadState[]): void {
    if (this.readsBeforeCommit.length > 0 && this.committedInTerm()) {
      const waiting = this.readsBeforeCommit.splice(0);
      for (const ctx of waiting) this.readIndex(ctx, out);
    }
    const q = quorumSize(this.peers.length + 1);
    let resolved = 0;
    for (const r of this.reads) {
      let acks = 1;
      for (const pr of this.progress.values()) if (pr.readSeqAcked >= r.seq) acks++;
      if (acks < q) break;
      out.push({ ctx: r.ctx, ok: true, index: r.index });
      resolved++;
    }
    if (resolved > 0) this.reads.splice(0, resolved);
  }

  /** Leadership is over: every waiting read fails. */
  failReads(out: ReadState[]): void {
    for (const ctx of this.readsBeforeCommit) out.push({ ctx, ok: false, reason: "lost_leadership" });
    for (const r of this.reads) out.push({ ctx: r.ctx, ok: false, reason: "lost_leadership" });
    this.readsBeforeCommit.length = 0;
    this.reads.length = 0;
  }

  checkInvariants(): void {
    const last = this.host.log.lastIndex();
    assert(this.selfMatch <= last, `selfMatch ${this.selfMatch} > lastIndex ${last}`);
    for (const pr of this.progress.values()) pr.checkInvariants(last);
    assert(this.uncommittedBytes >= 0, `uncommittedBytes ${this.uncommittedBytes} < 0`);
    assert(this.pendingReads() <= readRequestsMax, `pending reads ${this.pendingReads()} > ${readRequestsMax}`);
    for (let i = 1; i < this.reads.length; i++) {
      assert((this.reads[i] as PendingRead).seq > (this.reads[i - 1] as PendingRead).seq, "reads out of order");
    }
  }
}
