/**
 * Scripted Raft scenarios. Each one is a story a reader can follow, citing the paper
 * ("In Search of an Understandable Consensus Algorithm", extended version) or Ongaro's thesis.
 */
import { describe, expect, it } from "vitest";
import { TestCluster } from "./test_cluster.js";
import type { AppendRequest, Entry, Rpc } from "./types.js";

const enc = (s: string) => new TextEncoder().encode(s);

describe("election (Raft §5.2)", () => {
  it("elects one leader, which commits a no-op of its term everywhere", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    expect(c.leader()).toBe("n1");
    c.spreadCommit();
    for (const id of c.ids) {
      expect(c.core(id).softState()).toMatchObject({ leader: "n1", term: 1 });
      expect(c.applied.get(id)?.map((e) => `${e.index}:${e.term}:${e.type}`)).toEqual(["1:1:noop"]);
    }
  });

  it("replicates proposals to every replica in order", () => {
    const c = new TestCluster(5);
    c.elect("n2");
    for (const t of ["a", "b", "c"]) expect(c.propose("n2", t).ok).toBe(true);
    c.spreadCommit();
    for (const id of c.ids) expect(c.appliedTexts(id)).toEqual(["a", "b", "c"]);
  });

  it("a single-replica group elects itself and commits alone", () => {
    const c = new TestCluster(1);
    c.elect("n1");
    c.propose("n1", "x");
    expect(c.appliedTexts("n1")).toEqual(["x"]);
  });

  it("followers refuse proposals and name the leader", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    expect(c.core("n2").propose(enc("x"))).toEqual({ ok: false, reason: "not_leader", leaderHint: "n1" });
  });
});

describe("a lagging replica must not win an election (Raft §5.4.1)", () => {
  it("n3 misses committed entries, then cannot become leader; n1 or n2 does", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.isolate("n3");
    c.propose("n1", "committed-without-n3");
    expect(c.appliedTexts("n1")).toEqual(["committed-without-n3"]);
    // The leader dies and n3 comes back. Even a forced election (TimeoutNow skips pre-vote and
    // leader stickiness) cannot win: n3's log ends at (1, 1), n2's at (2, 1), so n2 refuses.
    c.crash("n1");
    c.heal();
    expect(c.forceElection("n3")).toBe(false);
    expect(c.core("n2").status().votedFor).toBeNull();
    // Nor can its later pre-votes (n2 now has no leader, so only the log check stands in the way).
    c.tick("n3", 40);
    expect(c.core("n3").softState().role).not.toBe("leader");
    c.elect("n2");
    expect(c.appliedTexts("n2")).toEqual(["committed-without-n3"]);
    c.tickAll(3);
    expect(c.appliedTexts("n3")).toEqual(["committed-without-n3"]);
  });
});

describe("pre-vote: a partitioned replica rejoins without disrupting the leader (thesis §9.6)", () => {
  it("n3 times out many times while cut off, yet its term stays put, and so does the leader's", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.isolate("n3");
    c.tick("n3", 100);
    // Pre-votes fail without a quorum, and a failed pre-vote never raises the term.
    expect(c.core("n3").softState().term).toBe(1);
    c.heal();
    c.tickAll(5);
    expect(c.leader()).toBe("n1");
    expect(c.core("n1").softState().term).toBe(1);
    c.propose("n1", "after-heal");
    c.spreadCommit();
    expect(c.appliedTexts("n3")).toEqual(["after-heal"]);
  });

  it("a pre-vote request changes neither the receiver's term nor its vote", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.crash("n1");
    // n2 no longer hears from a leader once its election timeout passes.
    for (let i = 0; i < 20; i++) c.core("n2").tick();
    const before = c.core("n2").status();
    const result = c.core("n2").step({ type: "vote_request", term: 5, from: "n3", to: "n2", preVote: true, transfer: false, lastIndex: 1, lastTerm: 1 });
    expect(result.ok).toBe(true);
    const after = c.core("n2").status();
    expect(after.term).toBe(before.term);
    expect(after.votedFor).toBe(before.votedFor);
  });

  it("followers ignore vote requests while they hear from a live leader (stickiness)", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    const r = c.inject({ type: "vote_request", term: 9, from: "n3", to: "n2", preVote: false, transfer: false, lastIndex: 50, lastTerm: 8 });
    expect(r.ok).toBe(true);
    expect(c.core("n2").softState()).toMatchObject({ term: 1, leader: "n1" });
  });
});

describe("check-quorum: a leader steps down when it loses its quorum (thesis §6.2)", () => {
  it("an isolated leader becomes a follower within two election timeouts", () => {
    const c = new TestCluster(3, { electionTicks: 10, heartbeatTicks: 2 });
    c.elect("n1");
    c.isolate("n1");
    c.tick("n1", 21);
    expect(c.core("n1").softState().role).toBe("follower");
    // The other two elect a new leader among themselves.
    c.tickAll(50);
    const leader = c.leader();
    expect(leader === "n2" || leader === "n3").toBe(true);
  });
});

describe("leadership transfer (thesis §3.10)", () => {
  it("catches the target up, sends TimeoutNow, and the target wins the next term", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.isolate("n3");
    c.propose("n1", "x");
    c.heal();
    expect(c.core("n1").transferLeadership("n3").ok).toBe(true);
    // Proposals are refused while the transfer is on.
    expect(c.core("n1").propose(enc("y")).ok).toBe(false);
    c.tickAll(3);
    expect(c.leader()).toBe("n3");
    expect(c.core("n3").softState().term).toBe(2);
    expect(c.delivered.some((d) => d.startsWith("n1->n3 timeout_now"))).toBe(true);
    c.propose("n3", "z");
    c.spreadCommit();
    expect(c.appliedTexts("n1")).toEqual(["x", "z"]);
  });

  it("a preferred leader gets leadership back once it is caught up", () => {
    const c = new TestCluster(3, { preferredLeader: "n2" });
    c.elect("n1");
    c.tickAll(25);
    expect(c.leader()).toBe("n2");
  });
});

describe("snapshots (thesis §5)", () => {
  it("a follower whose missing entries were compacted receives the snapshot in chunks", () => {
    const c = new TestCluster(3, { snapshotChunkBytes: 4 });
    c.elect("n1");
    c.isolate("n3");
    for (let i = 0; i < 10; i++) c.propose("n1", `e${i}`);
    const snap = c.snapshotAndCompact("n1", 8, enc("state-of-n1-at-11"));
    expect(c.store("n1").firstIndex()).toBe(9);
    c.heal();
    c.tickAll(6);
    const chunks = c.delivered.filter((d) => d.startsWith("n1->n3 snapshot_chunk")).length;
    expect(chunks).toBe(Math.ceil(snap.data.byteLength / 4));
    expect(c.store("n3").snapshot()?.meta).toEqual(snap.meta);
    expect(new TextDecoder().decode(c.store("n3").snapshot()?.data)).toBe("state-of-n1-at-11");
    c.propose("n1", "after");
    c.spreadCommit();
    expect(c.appliedTexts("n3")).toEqual(["after"]);
    expect(c.core("n3").status().commit).toBe(12);
  });
});

describe("stale terms are rejected (Raft §5.1)", () => {
  it("an append from a deposed leader neither appends nor truncates, and tells it the new term", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.propose("n1", "a");
    expect(c.forceElection("n2")).toBe(true);
    c.propose("n2", "b");
    c.spreadCommit();
    const logBefore = c.logOf("n3");
    const stale: AppendRequest = { type: "append_request", term: 1, from: "n1", to: "n3", prevIndex: 1, prevTerm: 1, entries: [{ index: 2, term: 1, type: "normal", data: enc("zombie") }], commit: 2 };
    c.core("n1").step({ type: "heartbeat", term: 1, from: "n2", to: "n1", commit: 0, readSeq: 0 }); // no-op: n1 already follows n2
    const r = c.inject(stale);
    expect(r.ok).toBe(true);
    expect(c.logOf("n3")).toEqual(logBefore);
    expect(c.appliedTexts("n3")).toEqual(["a", "b"]);
  });
});

describe("Figure 8: a leader never commits an earlier term's entry by counting replicas (Raft §5.4.2)", () => {
  it("S1's old-term entry on a majority stays uncommitted, and S5 may then legally overwrite it", () => {
    // One entry per append, so the script controls exactly which entries travel.
    const c = new TestCluster(5, { appendBytesMax: 1 });
    const carriesTerm = (rpc: Rpc, term: number) => rpc.type === "append_request" && rpc.entries.some((e: Entry) => e.term === term);
    // (a) S1 leads term 1 and appends "s1" at index 2; only S2 receives it.
    c.elect("n1");
    for (const id of ["n3", "n4", "n5"]) c.cutLink("n1", id);
    c.propose("n1", "s1");
    expect(c.logOf("n2")).toEqual(["1:1", "2:1"]);
    expect(c.core("n1").status().commit).toBe(1);
    // (b) S1 crashes. S5 wins term 2 with S3's and S4's votes, appends its own entry at index 2,
    // and crashes before sending it anywhere.
    c.crash("n1");
    c.heal();
    c.filter = (rpc) => !(rpc.type === "append_request" && rpc.from === "n5");
    expect(c.forceElection("n5")).toBe(true);
    c.propose("n5", "s5");
    expect(c.logOf("n5")).toEqual(["1:1", "2:2", "3:2"]);
    c.crash("n5");
    // (c) S1 restarts and wins a later term (S2, S3, S4 vote: its log ends at 2:1). It sends its
    // old entry 2 to S3; its own term's no-op reaches S3 alone (a minority): on the way to
    // anyone else the no-op is cut off the append, so S2 acknowledges index 2 only.
    c.start("n1");
    c.filter = (rpc) => {
      const term = c.core("n1").softState().term;
      if (rpc.type !== "append_request" || rpc.to === "n3" || !carriesTerm(rpc, term)) return true;
      return { ...rpc, entries: rpc.entries.filter((e) => e.term < term) };
    };
    // Its first try (term 2) fails: S3 and S4 voted for S5 in term 2. The second wins.
    expect(c.forceElection("n1")).toBe(false);
    expect(c.forceElection("n1")).toBe(true);
    c.tickAll(4);
    const s1Term = c.core("n1").softState().term;
    expect(c.logOf("n3").slice(0, 2)).toEqual(["1:1", "2:1"]);
    // Index 2 is on S1, S2 and S3: a majority. It is still not committed, because its term (1)
    // is not the leader's current term (s1Term).
    expect(s1Term).toBeGreaterThan(2);
    expect(c.core("n1").status().matches).toMatchObject({ n2: 2, n3: 3 });
    expect(c.core("n1").status().commit).toBeLessThan(2);
    for (const id of c.ids) expect(c.appliedTexts(id)).not.toContain("s1");
    // (d) S1 crashes; S5 restarts and is elected (its last term 2 beats their 1), then replaces
    // index 2 everywhere. Had index 2 counted as committed, a committed entry would be lost now.
    c.crash("n1");
    c.start("n5");
    c.filter = null;
    expect(c.forceElection("n5") || c.forceElection("n5")).toBe(true);
    c.tickAll(4);
    for (const id of ["n2", "n3", "n4", "n5"]) {
      expect(c.logOf(id).slice(0, 3)).toEqual(["1:1", "2:2", "3:2"]);
      expect(c.appliedTexts(id)).toEqual(["s5"]);
    }
    expect(c.refusals).toEqual([]);
  });

  it("the old-term entry commits together with the new leader's first current-term entry", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.isolate("n3");
    // n1 appends entry 2 in term 1; it reaches n2 but the ack is lost, so it never commits.
    c.filter = (rpc: Rpc) => !(rpc.type === "append_response" && rpc.from === "n2" && rpc.index === 2);
    c.propose("n1", "old");
    expect(c.core("n1").status().commit).toBe(1);
    // n1 restarts and wins term 2 with n2's vote. Its term-2 no-op is held back: index 2 sits on
    // n1 and n2 (a majority) but must not count as committed.
    c.crash("n1");
    c.start("n1");
    c.filter = (rpc: Rpc) => !(rpc.type === "append_request" && rpc.entries.some((e: Entry) => e.term === 2));
    expect(c.forceElection("n1")).toBe(true);
    c.tickAll(4);
    expect(c.core("n1").status().commit).toBeLessThan(2);
    c.filter = null;
    c.tickAll(4);
    expect(c.core("n1").status().commit).toBe(3);
    expect(c.appliedTexts("n2")).toEqual(["old"]);
  });
});

describe("ReadIndex (thesis §6.4)", () => {
  it("a read is answered only after a quorum confirms leadership, at the commit index of its start", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.propose("n1", "w1");
    const before = c.delivered.length;
    expect(c.core("n1").readIndex(41).ok).toBe(true);
    c.stabilize();
    expect(c.readStates.get("n1")).toEqual([{ ctx: 41, ok: true, index: 2 }]);
    const exchange = c.delivered.slice(before);
    expect(exchange.filter((d) => d.includes("heartbeat t1")).length).toBe(2);
  });

  it("a leader cut off from its quorum never answers; its reads fail when it steps down", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.isolate("n1");
    c.core("n1").readIndex(7);
    c.tick("n1", 5);
    expect(c.readStates.get("n1")).toEqual([]);
    c.tick("n1", 20);
    expect(c.core("n1").softState().role).toBe("follower");
    expect(c.readStates.get("n1")).toEqual([{ ctx: 7, ok: false, reason: "lost_leadership" }]);
  });

  it("a new leader holds reads until its no-op commits, so they see every earlier commit", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.propose("n1", "w1");
    c.filter = (rpc) => !(rpc.type === "append_response" && rpc.to === "n2");
    expect(c.forceElection("n2")).toBe(true);
    expect(c.core("n2").readIndex(3).ok).toBe(true);
    c.tickAll(3);
    expect(c.readStates.get("n2")).toEqual([]);
    c.filter = null;
    c.tickAll(3);
    expect(c.readStates.get("n2")).toEqual([{ ctx: 3, ok: true, index: 3 }]);
  });

  it("followers refuse reads and point at the leader", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    expect(c.core("n3").readIndex(1)).toEqual({ ok: false, reason: "not_leader", leaderHint: "n1" });
  });
});

describe("crash and restart", () => {
  it("a replica that loses its unsynced tail on a crash catches up again", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    for (let i = 0; i < 5; i++) c.propose("n1", `v${i}`);
    c.crash("n3");
    c.start("n3");
    expect(c.core("n3").status().term).toBe(1);
    c.propose("n1", "after");
    c.tickAll(3);
    expect(c.appliedTexts("n3")).toEqual(["v0", "v1", "v2", "v3", "v4", "after"]);
  });

  // The election timeout is 1000 ticks and the loops below run at most 50: any election inside
  // them can only come from the peer-down report (within leaderLostSpreadTicks, 10).
  const afterLeaderCrash = (report: boolean): string | null => {
    const c = new TestCluster(3, { electionTicks: 1000, heartbeatTicks: 2 });
    c.forceElection("n1");
    c.crash("n1");
    if (report) {
      c.core("n2").reportUnreachable("n1");
      c.core("n3").reportUnreachable("n1");
    }
    for (let ticks = 0; ticks < 50 && c.leader() === null; ticks++) c.tickAll(1);
    return c.leader();
  };

  it("reportUnreachable on the leader's link makes a follower campaign before its election timeout", () => {
    expect(afterLeaderCrash(true)).not.toBeNull();
  });

  it("after the report, a split vote between the two followers is retried within a few spread intervals", () => {
    const c = new TestCluster(3, { electionTicks: 1000, heartbeatTicks: 2 });
    c.forceElection("n1");
    c.crash("n1");
    c.core("n2").reportUnreachable("n1");
    c.core("n3").reportUnreachable("n1");
    // Tick both without delivering anything until both have started a pre-vote: they then grant
    // each other's pre-vote, both campaign in the same term, and each keeps its own vote.
    const preVoting = (id: string) => c.core(id).softState().role !== "follower";
    for (let t = 0; t < 20 && !(preVoting("n2") && preVoting("n3")); t++) {
      if (!preVoting("n2")) c.core("n2").tick();
      if (!preVoting("n3")) c.core("n3").tick();
    }
    c.stabilize();
    expect(c.leader()).toBeNull();
    expect([c.core("n2").softState().role, c.core("n3").softState().role]).toEqual(["candidate", "candidate"]);
    // Well inside one election timeout (1000 ticks): only the quick retry can elect a leader here.
    for (let ticks = 0; ticks < 100 && c.leader() === null; ticks++) c.tickAll(1);
    expect(c.leader()).not.toBeNull();
  });

  it("without the report, followers of a crashed leader wait out their election timeout", () => {
    expect(afterLeaderCrash(false)).toBeNull();
  });
});

describe("bugs found by the simulator (each has a regression seed too)", () => {
  it("sim seed 8: a restart with entries kept below the snapshot does not re-apply them", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    for (let i = 0; i < 6; i++) c.propose("n1", `v${i}`);
    c.tickAll(2);
    // n2 snapshots at its applied index 7 but keeps entries from 4 on for slow followers.
    c.snapshotAndCompact("n2", 3);
    expect(c.store("n2").firstIndex()).toBe(4);
    c.crash("n2");
    c.start("n2");
    // The restarted state machine starts from the snapshot (index 7): nothing ≤ 7 is re-applied.
    c.propose("n1", "after");
    c.tickAll(2);
    expect(c.applied.get("n2")?.map((e) => e.index)).toEqual([8]);
    expect(c.core("n2").status().applied).toBe(8);
  });

  it("sim seed 27: a lost append that fills the in-flight window is recovered via heartbeats", () => {
    const c = new TestCluster(3, { inflightRpcsMax: 1 });
    c.elect("n1");
    c.propose("n1", "a");
    // The next append to n3 is lost; with a window of one, nothing else may be sent to n3.
    let dropped = false;
    c.filter = (rpc) => {
      if (!dropped && rpc.type === "append_request" && rpc.to === "n3" && rpc.entries.length > 0) {
        dropped = true;
        return false;
      }
      return true;
    };
    c.propose("n1", "b");
    expect(dropped).toBe(true);
    c.isolate("n2");
    // Only n3 can complete a quorum now. Heartbeat responses must free the window.
    c.propose("n1", "c");
    c.tickAll(6);
    expect(c.appliedTexts("n3")).toEqual(["a", "b", "c"]);
    expect(c.core("n1").status().commit).toBe(4);
  });
});
