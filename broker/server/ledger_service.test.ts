/**
 * LedgerService's rules against a scripted replica (no Raft, no sockets): leader readiness (a),
 * attaching retries to an in-flight proposal (b), and the mapping of every proposal outcome to
 * a typed status with an honest outcome.
 */
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../raft/base/logger.js";
import type { RaftStatus } from "../../raft/core/raft.js";
import type { Entry } from "../../raft/core/types.js";
import type { ProposalOutcome } from "../../raft/replica/contracts.js";
import { encodeClientEntry } from "../ledger_entry.js";
import { LedgerStateMachine } from "../ledger_state_machine.js";
import { wallClock } from "./wall_clock.js";
import { LedgerService } from "./ledger_service.js";

const text = (s: string) => new TextEncoder().encode(s);

function harness(role: RaftStatus["role"] = "leader", term = 2) {
  const sm = new LedgerStateMachine();
  const log: Entry[] = [];
  const proposals: { data: Uint8Array; settle: (o: ProposalOutcome) => void }[] = [];
  let status: RaftStatus = { id: "n1", term, role, leader: role === "leader" ? "n1" : "n2", votedFor: null, commit: 0, applied: 0, firstIndex: 1, lastIndex: 0, matches: {} };
  /** Appends and applies an entry, as a committed Ready would. */
  const commit = (e: Omit<Entry, "index">): Uint8Array => {
    const entry = { ...e, index: log.length + 1 };
    log.push(entry);
    return sm.apply(entry);
  };
  const svc = new LedgerService({
    group: "g1",
    id: "n1",
    members: ["n1", "n2", "n3"],
    clientAddresses: { n1: "127.0.0.1:1", n2: "127.0.0.1:2" },
    replica: {
      status: () => status,
      propose: (data) => new Promise((settle) => proposals.push({ data, settle })),
      readBarrier: () => Promise.resolve({ ok: true, index: log.length }),
      transferLeadership: () => ({ ok: true }),
    },
    stateMachine: sm,
    logStore: { firstIndex: () => 1, entries: (lo, hi) => log.slice(lo - 1, hi - 1) },
    entryBytesMax: 1024,
    clock: wallClock,
    logger: silentLogger,
  });
  return { sm, svc, log, proposals, commit, setStatus: (s: Partial<RaftStatus>) => (status = { ...status, ...s }) };
}

describe("LedgerService rules", () => {
  it("(a) a leader refuses Appends until it has applied an entry of its own term", async () => {
    const h = harness("leader", 2);
    h.commit({ term: 1, type: "noop", data: new Uint8Array(0) });
    const early = await h.svc.append({ clientId: "c", sequence: 1, body: text("x") });
    expect(early).toMatchObject({ ok: false, failure: { code: grpc.status.UNAVAILABLE, reason: "leader_not_ready", outcomeUnknown: false, leaderId: "n1" } });
    h.commit({ term: 2, type: "noop", data: new Uint8Array(0) });
    const p = h.svc.append({ clientId: "c", sequence: 1, body: text("x") });
    expect(h.proposals).toHaveLength(1);
    const proposal = h.proposals[0];
    if (proposal === undefined) throw new Error("no proposal");
    const result = h.commit({ term: 2, type: "normal", data: proposal.data });
    proposal.settle({ ok: true, index: 3, term: 2, result });
    expect(await p).toEqual({ ok: true, value: { index: 3, term: 2, duplicate: false } });
  });

  it("(b) a retry of an in-flight proposal attaches to it; once applied, a retry is answered from the table", async () => {
    const h = harness();
    h.commit({ term: 2, type: "noop", data: new Uint8Array(0) });
    const first = h.svc.append({ clientId: "c", sequence: 7, body: text("x") });
    const retry = h.svc.append({ clientId: "c", sequence: 7, body: text("x") });
    expect(h.proposals).toHaveLength(1);
    const proposal = h.proposals[0];
    if (proposal === undefined) throw new Error("no proposal");
    proposal.settle({ ok: true, index: 2, term: 2, result: h.commit({ term: 2, type: "normal", data: proposal.data }) });
    expect(await first).toEqual(await retry);
    expect(await h.svc.append({ clientId: "c", sequence: 7, body: text("x") })).toEqual({ ok: true, value: { index: 2, term: 2, duplicate: true } });
    expect(h.proposals).toHaveLength(1);
  });

  it("(c) a duplicate that reaches the log answers with the original index, and Get reports it", async () => {
    const h = harness();
    h.commit({ term: 2, type: "noop", data: new Uint8Array(0) });
    h.commit({ term: 2, type: "normal", data: encodeClientEntry({ clientId: "c", sequence: 1, body: text("x") }) });
    // Proposed elsewhere before the original was applied here, e.g. through another path.
    const dup = h.commit({ term: 2, type: "normal", data: encodeClientEntry({ clientId: "c", sequence: 1, body: text("x") }) });
    expect(h.sm.duplicateOf(3)).toBe(2);
    const got = h.svc.get(3);
    expect(got).toMatchObject({ ok: true, value: { index: 3, clientId: "c", sequence: 1, duplicateOf: 2 } });
    expect(dup.byteLength).toBeGreaterThan(0);
  });

  const outcomes: [ProposalOutcome, number, string, boolean][] = [
    [{ ok: false, reason: "not_leader", leaderHint: "n2" }, grpc.status.FAILED_PRECONDITION, "not_leader", false],
    [{ ok: false, reason: "transferring", leaderHint: null }, grpc.status.UNAVAILABLE, "transferring", false],
    [{ ok: false, reason: "backpressure", leaderHint: null }, grpc.status.RESOURCE_EXHAUSTED, "backpressure", false],
    [{ ok: false, reason: "overwritten", leaderHint: "n2" }, grpc.status.ABORTED, "overwritten", false],
    [{ ok: false, reason: "stopped", leaderHint: null }, grpc.status.UNAVAILABLE, "stopped", true],
    [{ ok: false, reason: "unknown", leaderHint: null }, grpc.status.UNAVAILABLE, "outcome_unknown", true],
  ];
  for (const [outcome, code, reason, unknown] of outcomes) {
    it(`maps a proposal that ends "${outcome.ok ? "ok" : outcome.reason}" to ${grpc.status[code]} ${reason} (outcome ${unknown ? "unknown" : "failed"})`, async () => {
      const h = harness();
      h.commit({ term: 2, type: "noop", data: new Uint8Array(0) });
      const p = h.svc.append({ clientId: "c", sequence: 1, body: text("x") });
      h.proposals[0]?.settle(outcome);
      const r = await p;
      expect(r).toMatchObject({ ok: false, failure: { code, reason, outcomeUnknown: unknown } });
      if (!r.ok) {
        const md = h.svc.toStatus(r.failure).metadata;
        expect(md?.get("dledger-outcome")[0]).toBe(unknown ? "unknown" : "failed");
      }
    });
  }

  it("validates at the gateway: identity rules and size, naming the values", async () => {
    const h = harness();
    h.commit({ term: 2, type: "noop", data: new Uint8Array(0) });
    expect(await h.svc.append({ clientId: "", sequence: 4, body: text("x") })).toMatchObject({ ok: false, failure: { reason: "bad_request", message: "sequence (4) must be 0 without a client_id" } });
    expect(await h.svc.append({ clientId: "c", sequence: 1, body: new Uint8Array(1024) })).toMatchObject({
      ok: false,
      failure: { code: grpc.status.INVALID_ARGUMENT, reason: "too_large", message: "entry of 1035 bytes (body 1024) exceeds entryBytesMax (1024)" },
    });
    expect(h.proposals).toHaveLength(0);
  });

  it("a follower's refusal carries the leader's id and client address", async () => {
    const h = harness("follower");
    const r = await h.svc.append({ clientId: "", sequence: 0, body: text("x") });
    if (r.ok) throw new Error("a follower accepted");
    const md = h.svc.toStatus(r.failure).metadata;
    expect(md?.get("leader")[0]).toBe("n2");
    expect(md?.get("leader-address")[0]).toBe("127.0.0.1:2");
  });
});
