/**
 * Table-driven unit tests, one block per safety rule of DESIGN.md §2. Each drives a single core
 * with hand-made RPCs and looks at exactly what it answers and persists.
 */
import { describe, expect, it } from "vitest";
import { Prng } from "../base/prng.js";
import { MemoryLogStore } from "./memory_log_store.js";
import { RaftCore } from "./raft.js";
import type { Entry, Ready, Rpc, VoteResponse } from "./types.js";

const members = ["n1", "n2", "n3"];
const enc = (s: string) => new TextEncoder().encode(s);

/** A follower n1 whose log holds entries of the given terms (index i+1 has terms[i]). */
function follower(opts: { term?: number; votedFor?: string | null; logTerms?: number[] } = {}): { core: RaftCore; store: MemoryLogStore } {
  const store = new MemoryLogStore({ members });
  const entries: Entry[] = (opts.logTerms ?? []).map((t, i) => ({ index: i + 1, term: t, type: "normal", data: new Uint8Array([i]) }));
  if (entries.length > 0) store.append(entries);
  store.setHardState({ term: opts.term ?? 0, votedFor: opts.votedFor ?? null, commit: 0 });
  store.sync();
  const core = new RaftCore({ config: { id: "n1", members }, logStore: store, prng: new Prng(7) });
  return { core, store };
}

function drain(core: RaftCore, store: MemoryLogStore): Ready {
  const rd = core.ready();
  if (rd.entries.length > 0) store.append(rd.entries);
  if (rd.hardState !== null) store.setHardState(rd.hardState);
  store.sync();
  core.advance();
  return rd;
}

const voteReq = (over: Partial<Extract<Rpc, { type: "vote_request" }>>): Rpc => ({
  type: "vote_request",
  term: 2,
  from: "n2",
  to: "n1",
  preVote: false,
  transfer: false,
  lastIndex: 0,
  lastTerm: 0,
  ...over,
});

describe("vote granting (Raft §5.2, §5.4.1)", () => {
  const cases: { name: string; logTerms: number[]; votedFor: string | null; term: number; req: Partial<Extract<Rpc, { type: "vote_request" }>>; granted: boolean }[] = [
    { name: "empty logs, no vote yet", logTerms: [], votedFor: null, term: 1, req: {}, granted: true },
    { name: "candidate's last term higher", logTerms: [1, 1], votedFor: null, term: 1, req: { lastIndex: 1, lastTerm: 2 }, granted: true },
    { name: "same last term, longer log", logTerms: [1, 1], votedFor: null, term: 1, req: { lastIndex: 3, lastTerm: 1 }, granted: true },
    { name: "same last term, same length", logTerms: [1, 1], votedFor: null, term: 1, req: { lastIndex: 2, lastTerm: 1 }, granted: true },
    { name: "same last term, shorter log", logTerms: [1, 1], votedFor: null, term: 1, req: { lastIndex: 1, lastTerm: 1 }, granted: false },
    { name: "lower last term, longer log", logTerms: [1, 2], votedFor: null, term: 2, req: { term: 3, lastIndex: 9, lastTerm: 1 }, granted: false },
    { name: "already voted for another in this term", logTerms: [], votedFor: "n3", term: 2, req: { term: 2 }, granted: false },
    { name: "already voted for the same candidate", logTerms: [], votedFor: "n2", term: 2, req: { term: 2 }, granted: true },
    { name: "voted in an older term", logTerms: [], votedFor: "n3", term: 1, req: { term: 2 }, granted: true },
  ];
  for (const c of cases) {
    it(`${c.granted ? "grants" : "refuses"}: ${c.name}`, () => {
      const { core, store } = follower({ logTerms: c.logTerms, votedFor: c.votedFor, term: c.term });
      expect(core.step(voteReq(c.req)).ok).toBe(true);
      const rd = drain(core, store);
      const answer = rd.messagesAfterSync.find((m) => m.type === "vote_response") as VoteResponse;
      expect(answer.granted).toBe(c.granted);
      if (c.granted) expect(store.initialState().hardState.votedFor).toBe("n2");
    });
  }
});

describe("durable vote: grants and acks wait for the fsync", () => {
  it("a vote grant is in messagesAfterSync, with the vote in the same Ready's hard state", () => {
    const { core } = follower();
    core.step(voteReq({}));
    const rd = core.ready();
    expect(rd.messages.filter((m) => m.type === "vote_response")).toEqual([]);
    expect(rd.messagesAfterSync).toMatchObject([{ type: "vote_response", granted: true }]);
    expect(rd.hardState).toEqual({ term: 2, votedFor: "n2", commit: 0 });
  });

  it("an append ack is in messagesAfterSync, with the entries in the same Ready", () => {
    const { core } = follower({ term: 1 });
    const e: Entry = { index: 1, term: 1, type: "normal", data: new Uint8Array([9]) };
    core.step({ type: "append_request", term: 1, from: "n2", to: "n1", prevIndex: 0, prevTerm: 0, entries: [e], commit: 0 });
    const rd = core.ready();
    expect(rd.entries).toEqual([e]);
    expect(rd.messages).toEqual([]);
    expect(rd.messagesAfterSync).toMatchObject([{ type: "append_response", success: true, index: 1 }]);
  });

  it("no call may come between ready() and advance()", () => {
    const { core } = follower();
    core.step(voteReq({}));
    core.ready();
    expect(() => core.tick()).toThrow(/between ready\(\) and advance\(\)/);
    expect(() => core.step(voteReq({ term: 3 }))).toThrow(/between ready\(\) and advance\(\)/);
  });
});

describe("terms (Raft §5.1)", () => {
  it("an append with a stale term is rejected and answered with our term", () => {
    const { core, store } = follower({ term: 5, logTerms: [1, 2] });
    const stale: Rpc = { type: "append_request", term: 4, from: "n2", to: "n1", prevIndex: 1, prevTerm: 1, entries: [{ index: 2, term: 4, type: "normal", data: new Uint8Array() }], commit: 2 };
    expect(core.step(stale).ok).toBe(true);
    const rd = drain(core, store);
    expect(rd.entries).toEqual([]);
    expect(store.term(2)).toBe(2);
    expect(rd.messagesAfterSync).toMatchObject([{ type: "append_response", term: 5, success: false }]);
  });

  it("a higher term in an append makes a candidate a follower of the sender", () => {
    const { core, store } = follower({ term: 1 });
    for (let i = 0; i < 25; i++) core.tick();
    drain(core, store);
    expect(core.softState().role).toBe("pre_candidate");
    core.step({ type: "heartbeat", term: 3, from: "n3", to: "n1", commit: 0, readSeq: 0 });
    expect(core.softState()).toEqual({ role: "follower", leader: "n3", term: 3 });
  });

  it("a pre-candidate does not raise its own term", () => {
    const { core, store } = follower({ term: 4 });
    for (let i = 0; i < 25 && core.softState().role !== "pre_candidate"; i++) core.tick();
    const rd = drain(core, store);
    expect(core.softState()).toMatchObject({ role: "pre_candidate", term: 4 });
    expect(rd.hardState).toBeNull();
    expect(rd.messages).toMatchObject([
      { type: "vote_request", preVote: true, term: 5 },
      { type: "vote_request", preVote: true, term: 5 },
    ]);
  });

  it("a rejected pre-vote at a higher term makes the pre-candidate a follower of that term", () => {
    const { core, store } = follower({ term: 4 });
    for (let i = 0; i < 25; i++) core.tick();
    drain(core, store);
    core.step({ type: "vote_response", term: 7, from: "n2", to: "n1", preVote: true, granted: false });
    expect(core.softState()).toMatchObject({ role: "follower", term: 7 });
  });
});

describe("append conflict handling (Raft §5.3)", () => {
  it("truncates a divergent uncommitted suffix and answers with a term hint when prev mismatches", () => {
    const { core, store } = follower({ term: 3, logTerms: [1, 1, 2, 2] });
    // prev (4, 3) does not match our (4, 2): hint = largest index ≤ 4 with term ≤ 3 = (4, 2).
    core.step({ type: "append_request", term: 3, from: "n2", to: "n1", prevIndex: 4, prevTerm: 3, entries: [], commit: 0 });
    let rd = drain(core, store);
    expect(rd.messagesAfterSync).toMatchObject([{ type: "append_response", success: false, index: 4, hintIndex: 4, hintTerm: 2 }]);
    // The leader's log diverges after index 2: replace 3 and 4.
    const ents: Entry[] = [3, 4].map((i) => ({ index: i, term: 3, type: "normal", data: new Uint8Array() }));
    core.step({ type: "append_request", term: 3, from: "n2", to: "n1", prevIndex: 2, prevTerm: 1, entries: ents, commit: 1 });
    rd = drain(core, store);
    expect(rd.entries).toEqual(ents);
    expect([1, 2, 3, 4].map((i) => store.term(i))).toEqual([1, 1, 3, 3]);
    expect(core.status().commit).toBe(1);
  });

  it("refuses an append that contradicts a committed entry and changes nothing", () => {
    const { core, store } = follower({ term: 2, logTerms: [1, 1] });
    core.step({ type: "heartbeat", term: 2, from: "n2", to: "n1", commit: 2, readSeq: 0 });
    drain(core, store);
    expect(core.status().commit).toBe(2);
    const bad: Rpc = { type: "append_request", term: 2, from: "n2", to: "n1", prevIndex: 0, prevTerm: 0, entries: [{ index: 1, term: 2, type: "normal", data: new Uint8Array() }], commit: 2 };
    // prevIndex 0 < commit 2, so the follower just reports its commit; nothing is overwritten.
    expect(core.step(bad).ok).toBe(true);
    expect(store.term(1)).toBe(1);
  });
});

describe("a leader during its own fsync (pipelining: canStepDuringReady, drain)", () => {
  const ack = (from: string, index: number, term = 1): Rpc => ({ type: "append_response", term, from, to: "n1", success: true, index, hintIndex: 0, hintTerm: 0 });

  /** n1 made leader of term 1 by a forced election, its no-op (index 1) durable and acked by n2. */
  function leader(): { core: RaftCore; store: MemoryLogStore } {
    const { core, store } = follower();
    core.step({ type: "timeout_now", term: 0, from: "n2", to: "n1" });
    drain(core, store);
    core.step({ type: "vote_response", term: 1, from: "n2", to: "n1", preVote: false, granted: true });
    drain(core, store);
    expect(core.softState().role).toBe("leader");
    core.step(ack("n2", 1));
    drain(core, store);
    expect(core.status().commit).toBe(1);
    return { core, store };
  }

  it("takes only append acks of its term from members while a Ready is in progress", () => {
    const { core } = leader();
    core.propose(enc("x"));
    core.ready();
    const cases: [string, Rpc, boolean][] = [
      ["an ack of this term", ack("n2", 2), true],
      ["an ack of a higher term", ack("n2", 2, 2), false],
      ["an ack from a stranger", ack("n9", 2), false],
      ["a heartbeat answer", { type: "heartbeat_response", term: 1, from: "n2", to: "n1", readSeq: 0 } as Rpc, false],
      ["a vote request", voteReq({ term: 2 }), false],
    ];
    for (const [what, rpc, ok] of cases) {
      expect(core.canStepDuringReady(rpc), what).toBe(ok);
      if (!ok) expect(() => core.step(rpc), what).toThrow(/between ready\(\) and advance\(\)/);
    }
    expect(() => core.tick()).toThrow(/between ready\(\) and advance\(\)/);
  });

  it("sends a proposal made during the fsync at once, and never counts it as its own until a Ready wrote it", () => {
    const { core, store } = leader();
    core.propose(enc("x")); // index 2
    const rd = core.ready();
    store.append(rd.entries); // written; its fsync is "running"
    expect(core.propose(enc("y"))).toMatchObject({ ok: true, index: 3 });
    const d = core.drain(store.lastIndex());
    expect(d.messages.some((m) => m.type === "append_request" && m.entries.some((e) => e.index === 3))).toBe(true);
    // n2 makes x and y durable. The leader is durable only to 1 and n3 has said nothing: the
    // second copy of x or y does not exist yet, so the commit index stays at 1.
    core.step(ack("n2", 3));
    expect(core.status().commit).toBe(1);
    store.sync();
    core.advance(); // x (index 2) is now stable; y (index 3) is not written yet
    // Counting y as the leader's own would commit it with n2 alone: it must stay at 2.
    expect(core.status().commit).toBe(2);
    const next = core.ready();
    expect(next.entries.map((e) => e.index)).toEqual([3]);
    expect(next.committedEntries.map((e) => e.index)).toEqual([2]);
  });

  it("hands out committed entries once, bounded by what is written: drain, then the next Ready", () => {
    const { core, store } = leader();
    core.propose(enc("x")); // 2
    const rd = core.ready();
    store.append(rd.entries);
    core.propose(enc("y")); // 3, not written
    core.step(ack("n2", 3));
    core.step(ack("n3", 3));
    expect(core.status().commit).toBe(3); // n2 and n3: a quorum without the leader's disk
    expect(core.drain(store.lastIndex()).committedEntries.map((e) => e.index)).toEqual([2]);
    expect(core.drain(store.lastIndex()).committedEntries).toEqual([]);
    store.sync();
    core.advance();
    const next = core.ready();
    expect(next.entries.map((e) => e.index)).toEqual([3]);
    expect(next.committedEntries.map((e) => e.index)).toEqual([3]);
  });
});

describe("commit updates reach followers lazily (Leader.tickCommitUpdate)", () => {
  const ack = (from: string, index: number): Rpc => ({ type: "append_response", term: 1, from, to: "n1", success: true, index, hintIndex: 0, hintTerm: 0 });
  const appendsTo = (rd: Ready, to: string) => rd.messages.filter((m) => m.type === "append_request" && m.to === to);

  /** n1 elected leader of term 1 (heartbeats every 5 ticks), its no-op committed and the commit sent to n2 and n3. */
  function elected(config: { inflightRpcsMax?: number } = {}): { core: RaftCore; store: MemoryLogStore } {
    const store = new MemoryLogStore({ members });
    const core = new RaftCore({ config: { id: "n1", members, heartbeatTicks: 5, ...config }, logStore: store, prng: new Prng(7) });
    core.step({ type: "timeout_now", term: 0, from: "n2", to: "n1" });
    drain(core, store);
    core.step({ type: "vote_response", term: 1, from: "n2", to: "n1", preVote: false, granted: true });
    drain(core, store);
    core.step(ack("n2", 1));
    core.step(ack("n3", 1));
    drain(core, store);
    core.tick(); // the no-op's commit update
    drain(core, store);
    return { core, store };
  }

  /** The same with "x" at index 2 durable on n1 and sent to n2 and n3. */
  function leaderWithX(): { core: RaftCore; store: MemoryLogStore } {
    const { core, store } = elected();
    core.propose(enc("x"));
    drain(core, store);
    return { core, store };
  }

  it("a commit sends nothing by itself; the next tick sends one empty append per follower that lacks it", () => {
    const { core, store } = leaderWithX();
    core.step(ack("n2", 2));
    expect(core.status().commit).toBe(2);
    const rd = drain(core, store);
    expect(rd.committedEntries.map((e) => e.index)).toEqual([2]);
    // Eager propagation would send both followers an empty append carrying commit 2 here.
    expect(rd.messages).toEqual([]);
    core.tick();
    const update = drain(core, store);
    for (const to of ["n2", "n3"]) {
      const a = appendsTo(update, to);
      expect(a, to).toHaveLength(1);
      expect(a[0]).toMatchObject({ commit: 2, entries: [] });
    }
    core.tick();
    expect(drain(core, store).messages).toEqual([]);
  });

  it("an ack that commits still sends its follower the entries its full window held back, at once", () => {
    const { core, store } = elected({ inflightRpcsMax: 1 });
    core.propose(enc("x")); // index 2: one append per follower fills its window of 1
    drain(core, store);
    core.propose(enc("y")); // index 3: held back
    expect(appendsTo(drain(core, store), "n2")).toEqual([]);
    core.step(ack("n2", 2)); // commits 2 and frees n2's window
    expect(core.status().commit).toBe(2);
    const rd = drain(core, store);
    expect(appendsTo(rd, "n2").map((m) => m.type === "append_request" && m.entries.map((e) => e.index))).toEqual([[3]]);
  });

  it("no separate update for a follower whose next append already carried the commit", () => {
    const { core, store } = leaderWithX();
    core.step(ack("n2", 2));
    core.propose(enc("y")); // index 3 leaves with commit 2 in the same Ready
    const rd = drain(core, store);
    for (const to of ["n2", "n3"]) expect(appendsTo(rd, to)[0], to).toMatchObject({ commit: 2, entries: [{ index: 3 }] });
    core.tick();
    expect(drain(core, store).messages).toEqual([]);
  });
});
