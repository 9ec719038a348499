import { assert } from "../base/assert.js";

/** Votes needed out of `voters`: a strict majority. */
export function quorumSize(voters: number): number {
  assert(voters > 0, `quorum of ${voters} voters`);
  return Math.floor(voters / 2) + 1;
}

/**
 * The highest index held by a quorum, given every voter's match index (the leader's own
 * included): sort descending and take the quorum-th value. The caller still checks the term
 * (Raft §5.4.2: only current-term entries are committed by counting).
 */
export function quorumIndex(matches: readonly number[]): number {
  const sorted = matches.slice().sort((a, b) => b - a);
  const index = sorted[quorumSize(matches.length) - 1];
  assert(index !== undefined, "quorumIndex: no matches");
  return index;
}

export const VoteOutcome = { won: "won", lost: "lost", pending: "pending" } as const;
export type VoteOutcome = (typeof VoteOutcome)[keyof typeof VoteOutcome];

/** Tallies `votes` (voter → granted) among `voters` voters. */
export function tallyVotes(votes: ReadonlyMap<string, boolean>, voters: number): VoteOutcome {
  let granted = 0;
  let rejected = 0;
  for (const g of votes.values()) {
    if (g) granted++;
    else rejected++;
  }
  const q = quorumSize(voters);
  if (granted >= q) return VoteOutcome.won;
  if (rejected > voters - q) return VoteOutcome.lost;
  return VoteOutcome.pending;
}
