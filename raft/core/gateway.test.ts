/**
 * Malformed and foreign RPCs: each is refused with a returned error, and the core's state is
 * exactly what it was before (checked through status() and the next Ready).
 */
import { describe, expect, it } from "vitest";
import { Prng } from "../base/prng.js";
import { ConfigError, validateConfig } from "./config.js";
import { MemoryLogStore } from "./memory_log_store.js";
import { RaftCore } from "./raft.js";
import { TestCluster } from "./test_cluster.js";
import type { Rpc } from "./types.js";

const e = (index: number, term: number) => ({ index, term, type: "normal" as const, data: new Uint8Array([1]) });
const base = { term: 2, from: "n2", to: "n1" };

const malformed: { name: string; rpc: unknown; detail: RegExp }[] = [
  { name: "term is a string", rpc: { ...base, type: "heartbeat", term: "2", commit: 0, readSeq: 0 }, detail: /term must be/ },
  { name: "term is negative", rpc: { ...base, type: "heartbeat", term: -1, commit: 0, readSeq: 0 }, detail: /term must be/ },
  { name: "term is fractional", rpc: { ...base, type: "heartbeat", term: 1.5, commit: 0, readSeq: 0 }, detail: /term must be/ },
  { name: "term beyond 2^53", rpc: { ...base, type: "heartbeat", term: 2 ** 60, commit: 0, readSeq: 0 }, detail: /term must be/ },
  { name: "unknown type", rpc: { ...base, type: "install_everything" }, detail: /unknown rpc type/ },
  { name: "addressed to someone else", rpc: { ...base, to: "n3", type: "heartbeat", commit: 0, readSeq: 0 }, detail: /to must be this replica/ },
  { name: "from itself", rpc: { ...base, from: "n1", type: "heartbeat", commit: 0, readSeq: 0 }, detail: /from must be another/ },
  { name: "entries do not chain", rpc: { ...base, type: "append_request", prevIndex: 0, prevTerm: 0, commit: 0, entries: [e(1, 1), e(3, 1)] }, detail: /does not chain/ },
  { name: "entry terms decrease", rpc: { ...base, type: "append_request", prevIndex: 0, prevTerm: 0, commit: 0, entries: [e(1, 2), e(2, 1)] }, detail: /below the previous/ },
  { name: "entry term above the rpc's", rpc: { ...base, type: "append_request", prevIndex: 0, prevTerm: 0, commit: 0, entries: [e(1, 3)] }, detail: /above the request's term/ },
  { name: "entry below prevTerm", rpc: { ...base, type: "append_request", prevIndex: 1, prevTerm: 2, commit: 0, entries: [e(2, 1)] }, detail: /below the previous/ },
  { name: "prevIndex 0 with a term", rpc: { ...base, type: "append_request", prevIndex: 0, prevTerm: 1, commit: 0, entries: [] }, detail: /prevIndex 0 must have prevTerm 0/ },
  { name: "entry data not bytes", rpc: { ...base, type: "append_request", prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ index: 1, term: 1, type: "normal", data: "x" }] }, detail: /Uint8Array/ },
  { name: "entries not an array", rpc: { ...base, type: "append_request", prevIndex: 0, prevTerm: 0, commit: 0, entries: {} }, detail: /must be an array/ },
  { name: "vote lastTerm above term", rpc: { ...base, type: "vote_request", preVote: false, transfer: false, lastIndex: 5, lastTerm: 3 }, detail: /lastTerm 3 above/ },
  { name: "snapshot without members", rpc: { ...base, type: "snapshot_chunk", meta: { index: 5, term: 1, members: [] }, position: 0, data: new Uint8Array(), done: true }, detail: /members/ },
  { name: "response index not a count", rpc: { ...base, type: "append_response", success: true, index: -3, hintIndex: 0, hintTerm: 0 }, detail: /counts/ },
];

describe("malformed RPCs are refused before any state changes", () => {
  for (const c of malformed) {
    it(c.name, () => {
      const store = new MemoryLogStore({ members: ["n1", "n2", "n3"] });
      const core = new RaftCore({ config: { id: "n1", members: ["n1", "n2", "n3"] }, logStore: store, prng: new Prng(1) });
      const before = core.status();
      const result = core.step(c.rpc as Rpc);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.reason).toBe("malformed");
        expect(result.detail).toMatch(c.detail);
      }
      expect(core.status()).toEqual(before);
      expect(core.hasReady()).toBe(false);
      core.checkInvariants();
    });
  }

  it("an RPC from a replica outside the group is refused as unknown_peer", () => {
    const store = new MemoryLogStore({ members: ["n1", "n2", "n3"] });
    const core = new RaftCore({ config: { id: "n1", members: ["n1", "n2", "n3"] }, logStore: store, prng: new Prng(1) });
    const result = core.step({ type: "heartbeat", term: 9, from: "x9", to: "n1", commit: 0, readSeq: 0 });
    expect(result).toMatchObject({ ok: false, reason: "unknown_peer" });
    expect(core.status().term).toBe(0);
  });

  it("a leader refuses an ack for an index beyond its log", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    const before = c.core("n1").status();
    const r = c.core("n1").step({ type: "append_response", term: 1, from: "n2", to: "n1", success: true, index: 99, hintIndex: 0, hintTerm: 0 });
    expect(r).toMatchObject({ ok: false, reason: "malformed" });
    expect(c.core("n1").status()).toEqual(before);
  });

  it("a leader refuses an append from a second leader of its own term", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    const r = c.core("n1").step({ type: "append_request", term: 1, from: "n2", to: "n1", prevIndex: 1, prevTerm: 1, entries: [], commit: 1 });
    expect(r).toMatchObject({ ok: false, reason: "malformed" });
    expect(c.core("n1").softState().role).toBe("leader");
  });

  it("a follower refuses an append that rewrites a committed entry", () => {
    const c = new TestCluster(3);
    c.elect("n1");
    c.propose("n1", "a");
    c.tickAll(2);
    expect(c.core("n2").status().commit).toBe(2);
    const before = c.logOf("n2");
    const r = c.core("n2").step({ type: "append_request", term: 1, from: "n1", to: "n2", prevIndex: 1, prevTerm: 1, entries: [e(2, 1), e(3, 1)].map((x, i) => (i === 0 ? { ...x, data: new Uint8Array([7]) } : x)), commit: 2 });
    // Same index and term as the committed entry: Raft's log matching says it is the same entry,
    // so this is accepted as a duplicate (etcd does the same); a different term is refused.
    expect(r.ok).toBe(true);
    const r2 = c.core("n2").step({ type: "append_request", term: 2, from: "n3", to: "n2", prevIndex: 1, prevTerm: 1, entries: [e(2, 2)], commit: 2 });
    expect(r2.ok).toBe(true); // prevIndex 1 < commit 2: answered with the commit index, nothing written
    expect(c.logOf("n2").slice(0, 2)).toEqual(before.slice(0, 2));
  });
});

describe("config validation names the field, the rule and the value", () => {
  const cases: { name: string; input: Record<string, unknown>; message: RegExp }[] = [
    { name: "heartbeat not below election", input: { heartbeatTicks: 10, electionTicks: 10 }, message: /heartbeatTicks \(10\) must be < electionTicks \(10\)/ },
    { name: "id not a member", input: { id: "n9" }, message: /id \(n9\) must be one of members/ },
    { name: "duplicate members", input: { members: ["n1", "n1"] }, message: /members must be distinct/ },
    { name: "zero inflight", input: { inflightRpcsMax: 0 }, message: /inflightRpcsMax \(0\) must be a positive integer/ },
    { name: "bad id characters", input: { id: "n 1", members: ["n 1"] }, message: /id \("n 1"\) must match/ },
    { name: "preferred leader outside", input: { preferredLeader: "n7" }, message: /preferredLeader \(n7\) must be one of members/ },
    { name: "leader-lost spread beyond the election timeout", input: { electionTicks: 8, heartbeatTicks: 2, leaderLostSpreadTicks: 9 }, message: /leaderLostSpreadTicks \(9\) must be ≤ electionTicks \(8\)/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const input = { id: "n1", members: ["n1", "n2", "n3"], ...c.input };
      expect(() => validateConfig(input as never)).toThrow(ConfigError);
      expect(() => validateConfig(input as never)).toThrow(c.message);
    });
  }

  it("returns a frozen copy and leaves the caller's object alone", () => {
    const members = ["n1", "n2"];
    const input = { id: "n1", members };
    const cfg = validateConfig(input);
    expect(Object.isFrozen(cfg)).toBe(true);
    expect(cfg.members).not.toBe(members);
    expect(input).toEqual({ id: "n1", members: ["n1", "n2"] });
  });
});
