/**
 * What a checker reports. Checkers never throw on a violation: they record it, so that the
 * simulator can stop the seed cleanly and print a trace, and the real-process harness can keep
 * collecting evidence. A violation is a finding about the system under test, not a bug in the
 * checker (those are AssertionErrors).
 */

export const ViolationKind = {
  /** Two replicas were leader in the same term (Raft §5.2). */
  electionSafety: "election_safety",
  /** Two logs hold the same (index, term) but differ at or before it (Raft §5.3). */
  logMatching: "log_matching",
  /**
   * A leader moved its commit index onto an entry of an earlier term (Raft §5.4.2: only
   * current-term entries are committed by counting replicas). This is the rule itself, checked
   * directly: its consequence (a committed entry overwritten, Figure 8) needs a rare schedule.
   */
  commitRule: "commit_rule",
  /** Receiving a pre-vote request changed the receiver's term or vote (Raft thesis §9.6). */
  preVoteRule: "pre_vote_rule",
  /** A new leader lacks an entry committed before its term (Raft §5.4). */
  leaderCompleteness: "leader_completeness",
  /** Two replicas applied different entries at one index, or a committed entry changed (Raft §5.4.3). */
  stateMachineSafety: "state_machine_safety",
  /** An operation acknowledged to a client is no longer in the committed log. */
  ackLost: "ack_lost",
  /** A commit index went backwards within an incarnation, or below the durable one after restart. */
  commitRegression: "commit_regression",
  /** An applied index went backwards or skipped an index. */
  appliedRegression: "applied_regression",
  /** A ReadIndex read returned a value a linearizable register could not return. */
  readLinearizability: "read_linearizability",
  /** The core's own assertion or checkInvariants() failed. */
  coreAssertion: "core_assertion",
  /** The simulator's driver observed an impossible store or Ready shape. */
  driverContract: "driver_contract",
} as const;
export type ViolationKind = (typeof ViolationKind)[keyof typeof ViolationKind];

export interface Violation {
  readonly kind: ViolationKind;
  /** The replica the violation was observed on, or null when it is about the group. */
  readonly replica: string | null;
  readonly message: string;
}

/** Collects violations from several checkers in the order they were found. */
export class ViolationLog {
  readonly violations: Violation[] = [];
  /** Upper bound so a badly broken system cannot exhaust memory (STYLE.md rule 13). */
  static readonly violationsMax = 100;

  report(kind: ViolationKind, replica: string | null, message: string): void {
    if (this.violations.length >= ViolationLog.violationsMax) return;
    this.violations.push({ kind, replica, message });
  }

  get count(): number {
    return this.violations.length;
  }
}

/** Formats a violation for one line of output. */
export function formatViolation(v: Violation): string {
  return `${v.kind}${v.replica === null ? "" : ` on ${v.replica}`}: ${v.message}`;
}
