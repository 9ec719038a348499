import { describe, expect, it } from "vitest";
import { utf8 } from "../../raft/base/bytes.js";
import { MemoryLogStore } from "../../raft/core/memory_log_store.js";
import type { Entry } from "../../raft/core/types.js";
import { entryDataHash } from "./chain.js";
import { RaftChecker } from "./raft_checker.js";
import { ViolationLog, type ViolationKind } from "./violation.js";

const members = ["n1", "n2", "n3"] as const;

function entry(index: number, term: number, data = `e${index}t${term}`): Entry {
  return { index, term, type: "normal", data: utf8(data) };
}

/** Entries [1, terms.length] with the given terms. */
function log(terms: readonly number[]): Entry[] {
  return terms.map((t, i) => entry(i + 1, t));
}

function setup(): { checker: RaftChecker; violations: ViolationLog } {
  const violations = new ViolationLog();
  return { checker: new RaftChecker(members, violations), violations };
}

function kinds(v: ViolationLog): ViolationKind[] {
  return v.violations.map((x) => x.kind);
}

describe("RaftChecker election safety", () => {
  it("passes one leader per term, even re-observed", () => {
    const { checker, violations } = setup();
    checker.observeRole("n1", 1, "leader");
    checker.observeRole("n1", 1, "leader");
    checker.observeRole("n2", 1, "follower");
    checker.observeRole("n2", 2, "leader");
    expect(violations.count).toBe(0);
  });
  it("reports two leaders in one term", () => {
    const { checker, violations } = setup();
    checker.observeRole("n1", 3, "leader");
    checker.observeRole("n2", 3, "leader");
    expect(kinds(violations)).toEqual(["election_safety"]);
  });
});

describe("RaftChecker pre-vote rule", () => {
  it("passes a pre-vote request that changes nothing and reports one that bumps the term", () => {
    const { checker, violations } = setup();
    checker.onPreVoteRequestStepped("n1", { term: 3, votedFor: "n2" }, { term: 3, votedFor: "n2" });
    expect(violations.count).toBe(0);
    checker.onPreVoteRequestStepped("n1", { term: 3, votedFor: "n2" }, { term: 4, votedFor: null });
    expect(kinds(violations)).toEqual(["pre_vote_rule"]);
  });
});

describe("RaftChecker log matching", () => {
  it("passes identical prefixes and a legal divergent uncommitted tail replaced later", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 1, 2]));
    checker.onLogWrite("n2", log([1, 1]));
    checker.onLogWrite("n3", log([1, 1, 3]));
    checker.onLogWrite("n1", [entry(3, 3)]);
    expect(violations.count).toBe(0);
  });
  it("reports the same (index, term) with a different payload", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 1, 2]));
    checker.onLogWrite("n2", [entry(1, 1), entry(2, 1, "other"), entry(3, 2)]);
    expect(kinds(violations)).toEqual(["log_matching"]);
  });
  it("reports the same (index, term) after a different prefix", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 2, 3]));
    checker.onLogWrite("n2", [entry(1, 1), entry(2, 1, "x"), entry(3, 3, "e3t3")]);
    expect(kinds(violations)).toEqual(["log_matching"]);
  });
  it("reports an append that leaves a hole", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1]));
    checker.onLogWrite("n1", [entry(3, 1)]);
    expect(kinds(violations)).toEqual(["log_matching"]);
  });
});

describe("RaftChecker commit, leader completeness and state machine safety", () => {
  it("passes a leader that holds every entry committed before its term", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 1, 1]));
    checker.onLogWrite("n2", log([1, 1, 1]));
    checker.onCommit("n1", 3, 1, "follower");
    checker.onLeader("n2", 2);
    expect(violations.count).toBe(0);
  });
  it("reports a leader missing a committed entry (Raft §5.4: the lagging node that wins)", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 1, 1]));
    checker.onLogWrite("n2", log([1, 1, 1]));
    checker.onCommit("n1", 3, 1, "follower");
    checker.onLogWrite("n3", log([1]));
    checker.onLeader("n3", 2);
    expect(kinds(violations)).toEqual(["leader_completeness"]);
  });
  it("does not require entries committed only in a later term", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 3]));
    checker.onCommit("n1", 2, 3, "follower");
    checker.onLogWrite("n3", log([1]));
    checker.onLeader("n3", 2);
    expect(violations.count).toBe(0);
  });
  it("reports a replica committing a different entry at a committed index", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 1]));
    checker.onCommit("n1", 2, 1, "follower");
    checker.onLogWrite("n2", log([1, 2]));
    checker.onCommit("n2", 2, 2, "follower");
    expect(kinds(violations)).toEqual(["state_machine_safety"]);
  });
  it("passes a leader committing its own term's entry, which commits earlier ones with it", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 1, 2]));
    checker.onCommit("n1", 3, 2, "leader");
    expect(violations.count).toBe(0);
  });
  it("reports a leader committing an earlier term's entry by counting (Raft §5.4.2)", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 1, 2]));
    checker.onCommit("n1", 2, 2, "leader");
    expect(kinds(violations)).toEqual(["commit_rule"]);
  });
  it("reports truncation of committed entries", () => {
    const { checker, violations } = setup();
    checker.onLogWrite("n1", log([1, 1, 1]));
    checker.onCommit("n1", 3, 1, "follower");
    checker.onLogWrite("n1", [entry(2, 2)]);
    expect(kinds(violations)).toEqual(["state_machine_safety"]);
  });
  it("reports two replicas applying different entries at one index", () => {
    const { checker, violations } = setup();
    expect(checker.onApply("n1", entry(1, 1))).toBe(true);
    expect(checker.onApply("n2", entry(1, 1))).toBe(false);
    expect(violations.count).toBe(0);
    checker.onApply("n3", entry(1, 2));
    expect(kinds(violations)).toEqual(["state_machine_safety"]);
  });
  it("reports an applied index that skips or repeats", () => {
    const { checker, violations } = setup();
    checker.onApply("n1", entry(1, 1));
    checker.onApply("n1", entry(3, 1));
    expect(kinds(violations)).toEqual(["applied_regression"]);
  });
});

describe("RaftChecker acknowledged writes", () => {
  it("passes an acknowledged entry that stays", () => {
    const { checker, violations } = setup();
    const e = entry(1, 1);
    checker.onLogWrite("n1", [e]);
    checker.onCommit("n1", 1, 1, "follower");
    checker.onApply("n1", e);
    checker.onAck(1, 1, entryDataHash(e), "op 1");
    checker.onApply("n2", e);
    checker.finalCheck("n1", true);
    expect(violations.count).toBe(0);
  });
  it("reports an acknowledged entry replaced by another at its index", () => {
    const { checker, violations } = setup();
    const e = entry(1, 1);
    checker.onApply("n1", e);
    checker.onAck(1, 1, entryDataHash(e), "op 1");
    checker.onApply("n2", entry(1, 2));
    expect(kinds(violations)).toContain("ack_lost");
  });
  it("reports an acknowledged entry missing from the final leader's log", () => {
    const { checker, violations } = setup();
    const e = entry(1, 1);
    checker.onLogWrite("n1", [e]);
    checker.onApply("n1", e);
    checker.onAck(1, 1, entryDataHash(e), "op 1");
    checker.finalCheck("n2", true);
    expect(kinds(violations)).toEqual(["ack_lost"]);
  });
});

describe("RaftChecker commit and applied monotonicity", () => {
  it("passes increasing indexes and reports a commit going backwards", () => {
    const { checker, violations } = setup();
    checker.observeStatus("n1", 1, 0);
    checker.observeStatus("n1", 3, 2);
    expect(violations.count).toBe(0);
    checker.observeStatus("n1", 2, 2);
    expect(kinds(violations)).toEqual(["commit_regression"]);
  });
  it("reports applied going backwards", () => {
    const { checker, violations } = setup();
    checker.observeStatus("n1", 3, 3);
    checker.observeStatus("n1", 3, 1);
    expect(kinds(violations)).toEqual(["applied_regression"]);
  });
  it("allows a restart to reset, but not below the durable commit", () => {
    const { checker, violations } = setup();
    const store = new MemoryLogStore({ members });
    const entries = log([1, 1, 1]);
    store.append(entries);
    store.setHardState({ term: 1, votedFor: "n1", commit: 2 });
    store.sync();
    checker.onLogWrite("n1", entries);
    checker.onCommit("n1", 2, 1, "follower");
    checker.observeStatus("n1", 3, 3);
    store.append([entry(4, 1)]);
    store.crash();
    checker.onRestart("n1", store, { commit: 2, applied: 0 }, 0);
    checker.observeStatus("n1", 2, 1);
    expect(violations.count).toBe(0);
    checker.onRestart("n1", store, { commit: 1, applied: 0 }, 0);
    expect(kinds(violations)).toEqual(["commit_regression"]);
  });
  it("rebuilds a crashed replica's log from the durable store and still checks matching", () => {
    const { checker, violations } = setup();
    const store = new MemoryLogStore({ members });
    store.append(log([1, 1]));
    store.sync();
    checker.onLogWrite("n2", log([1, 1]));
    const forged = [entry(1, 1), entry(2, 1, "forged")];
    const bad = new MemoryLogStore({ members });
    bad.append(forged);
    bad.sync();
    checker.onRestart("n1", store, { commit: 0, applied: 0 }, 0);
    expect(violations.count).toBe(0);
    checker.onRestart("n3", bad, { commit: 0, applied: 0 }, 0);
    expect(kinds(violations)).toEqual(["log_matching"]);
  });
});
