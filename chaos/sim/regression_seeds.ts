/**
 * Seeds replayed by every test run (STYLE.md rule 12): each failure the simulator ever found
 * stays here, with a note on what it caught, so a regression cannot slip back in. Three kinds:
 *   - baseline seeds covering both group sizes and the main fault mixes;
 *   - seeds that failed against an earlier core (the bug is named);
 *   - seeds that catch a safety rule removed on purpose (mutation testing: each must fail when
 *     the rule is taken out of raft/core, and pass with it). "first" = the lowest seed from 1
 *     that caught the removal.
 * A change to the simulator's random draws changes every schedule: re-derive the list then.
 */
export interface RegressionSeed {
  readonly seed: number;
  readonly replicas: 3 | 5;
  readonly note: string;
}

export const regressionSeeds: readonly RegressionSeed[] = [
  {
    seed: 1,
    replicas: 3,
    note: "baseline: crashes, pauses and partitions; also the first seed to catch a pre-vote that changes the term, on either side: pre_vote_rule",
  },
  { seed: 3, replicas: 3, note: "baseline: heavy client load" },
  { seed: 1, replicas: 5, note: "baseline: 5-replica group" },
  {
    seed: 2,
    replicas: 3,
    note:
      "core bug: a replica that compacted its log below its snapshot (compactTo < snapshot index) " +
      "restarted with applied = firstIndex - 1 instead of the snapshot index and re-applied entries " +
      "its state machine already held: applied_regression",
  },
  {
    seed: 24,
    replicas: 3,
    note:
      "core bug: a replicate-state window filled by appends that were lost was never freed; heartbeat " +
      "responses marked the peer for append but isPaused() blocked it, so commit stalled: liveness failure",
  },
  { seed: 2, replicas: 3, note: "mutation: commit by counting earlier-term entries (Raft §5.4.2), first: commit_rule" },
  {
    seed: 223,
    replicas: 3,
    note: "mutation: commit by counting earlier-term entries, its Figure 8 consequence: leader_completeness",
  },
  { seed: 1155, replicas: 5, note: "mutation: commit by counting earlier-term entries, Figure 8 in 5 replicas: leader_completeness" },
  { seed: 153, replicas: 3, note: "mutation: vote granted before the vote is durable, first: election_safety" },
  { seed: 1298, replicas: 5, note: "mutation: vote granted before the vote is durable, first in 5 replicas: election_safety" },
  { seed: 4, replicas: 3, note: "mutation: stale-term RPCs processed, first (the core's gateway sees a second leader)" },
  { seed: 4, replicas: 3, note: "mutation: votes granted without the up-to-date check (§5.4.1), first: leader_completeness" },
  { seed: 2, replicas: 5, note: "mutation: votes granted without the up-to-date check, first in 5 replicas: leader_completeness" },
];
