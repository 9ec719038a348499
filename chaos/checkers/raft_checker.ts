import { assert } from "../../raft/base/assert.js";
import type { Entry, LogStore } from "../../raft/core/types.js";
import { IndexedU32, chainNext, chainOfEmptyPrefix, entryDataHash, entryTypeCode } from "./chain.js";
import { ViolationKind, type ViolationLog } from "./violation.js";

/**
 * Incremental Raft invariant checks (Raft paper §5.2–§5.4, Figure 3). The driver feeds it what it
 * observes — durable log writes, commit indexes, applied entries, roles, acknowledgements — and
 * it records violations in a ViolationLog. Every method costs O(entries it is told about), so the
 * simulator can call it after every step.
 *
 * The log-matching check keeps, per replica, a chained hash per index (chain.ts), and one map
 * (index, term) → chain shared by all replicas: if two replicas ever hold the same (index, term)
 * with a different prefix, the second write disagrees with the map. Commit knowledge is kept as
 * one canonical committed chain; a replica's commit index m must agree with it at m.
 */

/** Terms above this would collide in the (index, term) key; no simulated run gets near it. */
const termMax = 2 ** 21;

interface ReplicaView {
  readonly chain: IndexedU32;
  readonly term: IndexedU32;
  /** Highest index whose chain is known but whose entry may be compacted: the snapshot point. */
  base: number;
  last: number;
  /** Highest commit index written to this replica's hard state (this incarnation or durable). */
  commit: number;
  /** Last applied index the driver's state machine reached. */
  smApplied: number;
  /** Last commit/applied read from the core's status() in this incarnation. */
  statusCommit: number;
  statusApplied: number;
  leaderTermChecked: number;
}

interface Acked {
  readonly term: number;
  readonly dataHash: number;
  readonly label: string;
}

export class RaftChecker {
  private readonly views = new Map<string, ReplicaView>();
  private readonly leaders = new Map<number, string>();
  private readonly global = new Map<number, number>();
  private readonly canon = new IndexedU32();
  private canonLen = 0;
  /** term → highest index a replica in that term knew to be committed. */
  private readonly committedByTerm = new Map<number, number>();
  private readonly appliedTerm = new IndexedU32();
  private readonly appliedHash = new IndexedU32();
  private appliedLen = 0;
  private readonly acked = new Map<number, Acked>();

  constructor(
    members: readonly string[],
    private readonly log: ViolationLog,
  ) {
    for (const m of members) this.views.set(m, freshView());
  }

  /** Highest index known committed anywhere. */
  get committedIndex(): number {
    return this.canonLen;
  }

  /** Number of distinct terms that had a leader. */
  get leaderTerms(): number {
    return this.leaders.size;
  }

  /** Election safety: at most one leader per term over the whole run (Raft §5.2). */
  observeRole(replica: string, term: number, role: string): void {
    if (role !== "leader") return;
    const previous = this.leaders.get(term);
    if (previous === undefined) this.leaders.set(term, replica);
    else if (previous !== replica) {
      this.log.report(ViolationKind.electionSafety, replica, `${replica} and ${previous} both leader in term ${term}`);
    }
  }

  /**
   * A pre-vote request binds nothing (Raft thesis §9.6): the receiver's term and vote must be the
   * same after stepping it as before. (The sender may change term: a pre-vote it wins starts the
   * real election.) The driver reads both around step().
   */
  onPreVoteRequestStepped(
    replica: string,
    before: { readonly term: number; readonly votedFor: string | null },
    after: { readonly term: number; readonly votedFor: string | null },
  ): void {
    if (before.term !== after.term || before.votedFor !== after.votedFor) {
      this.log.report(
        ViolationKind.preVoteRule,
        replica,
        `a pre-vote request changed (term, vote) from (${before.term}, ${before.votedFor ?? "-"}) to (${after.term}, ${after.votedFor ?? "-"})`,
      );
    }
  }

  /** Entries the replica's store now holds (a store append: a suffix from entries[0] is replaced). */
  onLogWrite(replica: string, entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    const v = this.view(replica);
    if (first.index > v.last + 1 || first.index <= v.base) {
      this.log.report(
        ViolationKind.logMatching,
        replica,
        `append at ${first.index} outside (${v.base}, ${v.last + 1}]: the log would have a hole`,
      );
      return;
    }
    let previous = v.chain.get(first.index - 1);
    let index = first.index;
    for (const e of entries) {
      if (e.index !== index) {
        this.log.report(ViolationKind.logMatching, replica, `append batch not contiguous: ${e.index} where ${index} expected`);
        return;
      }
      previous = this.chainEntry(replica, v, e, previous);
      if (previous === 0) return;
      index++;
    }
    const newLast = index - 1;
    if (newLast < v.last) {
      v.chain.clear(newLast + 1, v.last + 1);
      v.term.clear(newLast + 1, v.last + 1);
    }
    v.last = newLast;
    if (first.index <= v.commit) this.checkCommittedPrefix(replica, v, "append over committed entries");
  }

  /** The replica's store was replaced by a snapshot at (index, term) received from a leader. */
  onSnapshotInstall(replica: string, index: number, term: number): void {
    const v = this.view(replica);
    const chain = this.chainAt(index, term);
    if (chain === 0) {
      this.log.report(ViolationKind.logMatching, replica, `snapshot at (${index}, ${term}) matches no entry ever written`);
      return;
    }
    if (index < v.commit) {
      this.log.report(ViolationKind.stateMachineSafety, replica, `snapshot install at ${index} drops committed entries up to ${v.commit}`);
    }
    v.chain.clear(v.base, v.last + 1);
    v.term.clear(v.base, v.last + 1);
    v.base = index;
    v.last = index;
    v.chain.set(index, chain);
    v.term.set(index, term);
    this.checkCommittedPrefix(replica, v, "installed snapshot");
  }

  /** The replica compacted its own log up to `compactTo` after a local snapshot. */
  onCompact(replica: string, compactTo: number): void {
    const v = this.view(replica);
    if (compactTo > v.base) v.base = Math.min(compactTo, v.last);
  }

  /**
   * The replica's commit index is `commit`, in `term` while in `role`, and its log holds what was
   * written so far (call it after writing a Ready's entries: a follower may commit entries that
   * arrived in the same batch). Extends the canonical committed log and checks the replica
   * agrees with it; a leader's own commit advance must land on an entry of its term.
   */
  onCommit(replica: string, commit: number, term: number, role: string): void {
    const v = this.view(replica);
    if (commit < v.commit) {
      this.log.report(ViolationKind.commitRegression, replica, `commit went from ${v.commit} to ${commit}`);
      return;
    }
    if (commit > v.last) {
      this.log.report(ViolationKind.stateMachineSafety, replica, `commit ${commit} beyond lastIndex ${v.last}`);
      return;
    }
    if (commit === v.commit) return;
    if (role === "leader" && v.term.get(commit) !== term) {
      this.log.report(
        ViolationKind.commitRule,
        replica,
        `leader of term ${term} advanced commit ${v.commit} -> ${commit} onto an entry of term ${v.term.get(commit)}`,
      );
    }
    v.commit = commit;
    const known = this.committedByTerm.get(term) ?? 0;
    if (commit > known) this.committedByTerm.set(term, commit);
    this.checkCommittedPrefix(replica, v, "commit");
    for (let i = this.canonLen + 1; i <= commit; i++) this.canon.set(i, v.chain.get(i));
    if (commit > this.canonLen) this.canonLen = commit;
  }

  /**
   * Leader completeness (Raft §5.4): called when a replica acts as leader of `term` with its log
   * written. Its log must hold every entry some replica knew committed in a term below `term`.
   */
  onLeader(replica: string, term: number): void {
    const v = this.view(replica);
    if (v.leaderTermChecked === term) return;
    v.leaderTermChecked = term;
    let committed = 0;
    for (const [t, index] of this.committedByTerm) if (t < term && index > committed) committed = index;
    if (committed === 0) return;
    if (v.last < committed) {
      this.log.report(
        ViolationKind.leaderCompleteness,
        replica,
        `leader of term ${term} has lastIndex ${v.last} but ${committed} was committed before its term`,
      );
      return;
    }
    if (!this.agreesWithCanon(v, committed)) {
      this.log.report(
        ViolationKind.leaderCompleteness,
        replica,
        `leader of term ${term} holds a log that differs from the committed log at or below ${committed}`,
      );
    }
  }

  /**
   * The replica's state machine applied `entry`. Returns true when no replica had applied this
   * index before (the driver then feeds it to the read checker as the canonical write).
   */
  onApply(replica: string, entry: Entry): boolean {
    const v = this.view(replica);
    if (entry.index !== v.smApplied + 1) {
      this.log.report(ViolationKind.appliedRegression, replica, `applied ${entry.index} right after ${v.smApplied}`);
    }
    v.smApplied = entry.index;
    const dataHash = entryDataHash(entry);
    const acked = this.acked.get(entry.index);
    if (acked !== undefined && (acked.term !== entry.term || acked.dataHash !== dataHash)) {
      this.log.report(
        ViolationKind.ackLost,
        replica,
        `acknowledged ${acked.label} at (${entry.index}, ${acked.term}) but applied term ${entry.term} there`,
      );
    }
    if (entry.index <= this.appliedLen) {
      const term = this.appliedTerm.get(entry.index);
      if (term !== 0 && (term !== entry.term || this.appliedHash.get(entry.index) !== dataHash)) {
        this.log.report(
          ViolationKind.stateMachineSafety,
          replica,
          `applied (${entry.index}, ${entry.term}) where another replica applied (${entry.index}, ${term}) or other data`,
        );
      }
      if (term !== 0) return false;
    }
    this.appliedTerm.set(entry.index, entry.term);
    this.appliedHash.set(entry.index, dataHash);
    if (entry.index > this.appliedLen) this.appliedLen = entry.index;
    return true;
  }

  /** The replica's state machine was replaced by a snapshot at `index` (installed from a leader). */
  onStateMachineRestore(replica: string, index: number): void {
    const v = this.view(replica);
    if (index < v.smApplied) {
      this.log.report(ViolationKind.appliedRegression, replica, `state machine restored to ${index} below applied ${v.smApplied}`);
    }
    v.smApplied = index;
  }

  /** A client was told its operation `label` committed at (index, term). */
  onAck(index: number, term: number, dataHash: number, label: string): void {
    assert(index > 0, `ack at index ${index}`);
    const appliedTerm = this.appliedTerm.get(index);
    if (appliedTerm !== term || this.appliedHash.get(index) !== dataHash) {
      this.log.report(ViolationKind.ackLost, null, `acknowledged ${label} at (${index}, ${term}), which nobody applied`);
    }
    this.acked.set(index, { term, dataHash, label });
  }

  /** Monotonic commit and applied indexes within one incarnation, read from the core's status(). */
  observeStatus(replica: string, commit: number, applied: number): void {
    const v = this.view(replica);
    if (commit < v.statusCommit) {
      this.log.report(ViolationKind.commitRegression, replica, `commit went from ${v.statusCommit} to ${commit}`);
    }
    if (applied < v.statusApplied) {
      this.log.report(ViolationKind.appliedRegression, replica, `applied went from ${v.statusApplied} to ${applied}`);
    }
    if (applied > commit) {
      this.log.report(ViolationKind.appliedRegression, replica, `applied ${applied} above commit ${commit}`);
    }
    v.statusCommit = commit;
    v.statusApplied = applied;
  }

  /**
   * A replica restarted on `store` after a crash (its unsynced writes are gone). Rebuilds the
   * replica's view from what is durable and checks the new core's commit is not below the durable
   * hard-state commit. `restoredApplied` is where the fresh state machine starts (snapshot index).
   */
  onRestart(replica: string, store: LogStore, status: { readonly commit: number; readonly applied: number }, restoredApplied: number): void {
    const v = this.view(replica);
    this.rebuildView(replica, v, store);
    const hs = store.initialState().hardState;
    v.commit = 0;
    if (hs.commit > v.last) {
      this.log.report(ViolationKind.stateMachineSafety, replica, `durable commit ${hs.commit} beyond durable lastIndex ${v.last}`);
    } else {
      v.commit = hs.commit;
      this.checkCommittedPrefix(replica, v, "durable log after restart");
    }
    if (status.commit < hs.commit) {
      this.log.report(ViolationKind.commitRegression, replica, `restarted with commit ${status.commit} below durable commit ${hs.commit}`);
    }
    v.statusCommit = status.commit;
    v.statusApplied = status.applied;
    v.smApplied = restoredApplied;
    v.leaderTermChecked = 0;
  }

  /**
   * End-of-run check for one replica's current log: every acknowledged entry at or below its
   * commit index, and not compacted, has the acknowledged term. For the final leader pass
   * `mustHoldAll` so that an acknowledged index beyond its log is reported too.
   */
  finalCheck(replica: string, mustHoldAll: boolean): void {
    const v = this.view(replica);
    for (const [index, acked] of this.acked) {
      if (index > v.last) {
        if (mustHoldAll) this.log.report(ViolationKind.ackLost, replica, `acknowledged ${acked.label} at ${index} beyond lastIndex ${v.last}`);
        continue;
      }
      if (index <= v.base || (!mustHoldAll && index > v.commit)) continue;
      const term = v.term.get(index);
      if (term !== acked.term) {
        this.log.report(ViolationKind.ackLost, replica, `acknowledged ${acked.label} at (${index}, ${acked.term}) but the log has term ${term}`);
      }
    }
  }

  private view(replica: string): ReplicaView {
    const v = this.views.get(replica);
    assert(v !== undefined, `checker: unknown replica ${replica}`);
    return v;
  }

  /** Chains one entry onto `previous`; returns 0 (after reporting) on a log-matching violation. */
  private chainEntry(replica: string, v: ReplicaView, e: Entry, previous: number): number {
    assert(e.term > 0 && e.term < termMax, `checker: entry term ${e.term} out of range`);
    if (previous === 0) {
      this.log.report(ViolationKind.logMatching, replica, `entry ${e.index} follows an unknown prefix`);
      return 0;
    }
    const chain = chainNext(previous, e.term, entryTypeCode(e), entryDataHash(e));
    const key = e.index * termMax + e.term;
    const known = this.global.get(key);
    if (known === undefined) this.global.set(key, chain);
    else if (known !== chain) {
      this.log.report(
        ViolationKind.logMatching,
        replica,
        `(${e.index}, ${e.term}) on ${replica} has a different prefix or payload than on another replica`,
      );
      return 0;
    }
    v.chain.set(e.index, chain);
    v.term.set(e.index, e.term);
    return chain;
  }

  /** The chain value any replica ever had at (index, term), or the committed one, or 0. */
  private chainAt(index: number, term: number): number {
    if (index === 0) return chainOfEmptyPrefix;
    return this.global.get(index * termMax + term) ?? 0;
  }

  /** True if v's log agrees with the canonical committed log through `upTo` (unknown = agree). */
  private agreesWithCanon(v: ReplicaView, upTo: number): boolean {
    let index = upTo;
    if (index < v.base) index = v.base;
    if (index === 0 || index > this.canonLen) return true;
    const mine = v.chain.get(index);
    const canon = this.canon.get(index);
    if (canon === 0 && mine !== 0 && index <= v.commit) this.canon.set(index, mine);
    return mine === 0 || canon === 0 || mine === canon;
  }

  private checkCommittedPrefix(replica: string, v: ReplicaView, what: string): void {
    if (v.last < v.commit) {
      this.log.report(ViolationKind.stateMachineSafety, replica, `${what}: lastIndex ${v.last} below commit ${v.commit}`);
    } else if (!this.agreesWithCanon(v, Math.min(v.commit, this.canonLen))) {
      this.log.report(ViolationKind.stateMachineSafety, replica, `${what}: log differs from the committed log at or below ${v.commit}`);
    }
  }

  private rebuildView(replica: string, v: ReplicaView, store: LogStore): void {
    v.chain.clear(v.base, v.last + 1);
    v.term.clear(v.base, v.last + 1);
    const base = store.firstIndex() - 1;
    const last = store.lastIndex();
    const baseTerm = store.term(base) ?? 0;
    v.base = base;
    v.last = base;
    const baseChain = this.chainAt(base, baseTerm);
    if (baseChain === 0) {
      this.log.report(ViolationKind.logMatching, replica, `durable log starts after (${base}, ${baseTerm}), which no replica wrote`);
      return;
    }
    v.chain.set(base, baseChain);
    v.term.set(base, baseTerm);
    let previous = baseChain;
    for (let lo = base + 1; lo <= last; ) {
      const page = store.entries(lo, last + 1, 1 << 20);
      assert(page.length > 0, "checker: store returned no entries");
      for (const e of page) {
        previous = this.chainEntry(replica, v, e, previous);
        if (previous === 0) return;
        v.last = e.index;
      }
      lo += page.length;
    }
  }
}

function freshView(): ReplicaView {
  const chain = new IndexedU32();
  chain.set(0, chainOfEmptyPrefix);
  return {
    chain,
    term: new IndexedU32(),
    base: 0,
    last: 0,
    commit: 0,
    smApplied: 0,
    statusCommit: 0,
    statusApplied: 0,
    leaderTermChecked: 0,
  };
}
