/**
 * dledger.v1.Kv: its rules against a scripted replica (no Raft, no sockets), then over real
 * loopback gRPC against three in-process replicas, each with its own CommitLog in a temp dir.
 * Every wait is bounded.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../raft/base/logger.js";
import type { RaftStatus } from "../../raft/core/raft.js";
import type { Entry } from "../../raft/core/types.js";
import type { ProposalOutcome } from "../../raft/replica/contracts.js";
import { kvService, type KvPutRequest } from "../api/kv_messages.js";
import type { LedgerEntry } from "../api/ledger_messages.js";
import { KvClient, type KvCallOutcome } from "../client/kv_client.js";
import { LedgerClient } from "../client/ledger_client.js";
import { KvCommandKind } from "../kv_entry.js";
import { LedgerStateMachine } from "../ledger_state_machine.js";
import { KvService } from "./kv_service.js";
import { LedgerNode } from "./ledger_node.js";
import { LedgerService } from "./ledger_service.js";
import { configFor, layoutGroup, waitFor, type GroupLayout } from "./test_helpers.js";
import { wallClock } from "./wall_clock.js";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

/* --- Rules against a scripted replica ------------------------------------------------------------ */

function harness(kvLimits = {}) {
  const sm = new LedgerStateMachine({}, kvLimits);
  const log: Entry[] = [];
  const proposals: { data: Uint8Array; settle: (o: ProposalOutcome) => void }[] = [];
  const status: RaftStatus = { id: "n1", term: 2, role: "leader", leader: "n1", votedFor: null, commit: 0, applied: 0, firstIndex: 1, lastIndex: 0, matches: {} };
  const commit = (data: Uint8Array, type: Entry["type"] = "normal"): Uint8Array => {
    const entry: Entry = { index: log.length + 1, term: 2, type, data };
    log.push(entry);
    return sm.apply(entry);
  };
  const replica = {
    status: () => status,
    propose: (data: Uint8Array) => new Promise<ProposalOutcome>((settle) => proposals.push({ data, settle })),
    readBarrier: () => Promise.resolve({ ok: true as const, index: log.length }),
    transferLeadership: () => ({ ok: true as const }),
  };
  const ledger = new LedgerService({
    group: "g1",
    id: "n1",
    members: ["n1", "n2", "n3"],
    clientAddresses: { n1: "127.0.0.1:1" },
    replica,
    stateMachine: sm,
    logStore: { firstIndex: () => 1, entries: (lo, hi) => log.slice(lo - 1, hi - 1) },
    entryBytesMax: 1024,
    clock: wallClock,
    logger: silentLogger,
  });
  const kv = new KvService({ id: "n1", ledger, replica, stateMachine: sm, entryBytesMax: 1024, logger: silentLogger });
  commit(new Uint8Array(0), "noop");
  /** Commits the next proposal as a Ready would, and answers its proposer. */
  const settleNext = (): void => {
    const p = proposals.shift();
    if (p === undefined) throw new Error("no proposal");
    const result = commit(p.data);
    p.settle({ ok: true, index: log.length, term: 2, result });
  };
  return { sm, kv, ledger, proposals, settleNext };
}

const put = (key: string, value: string, clientId = "w", sequence = 1): KvPutRequest => ({ key, value: bytes(value), clientId, sequence });

describe("KvService rules", () => {
  it("a retry attaches to the write in flight, and once applied is answered from the dedup table", async () => {
    const h = harness();
    const first = h.kv.put(put("k", "v"));
    const retry = h.kv.put(put("k", "v"));
    await Promise.resolve();
    expect(h.proposals).toHaveLength(1);
    h.settleNext();
    expect(await first).toEqual({ ok: true, value: { index: 2, term: 2, duplicate: false } });
    expect(await retry).toEqual(await first);
    expect(await h.kv.put(put("k", "v"))).toEqual({ ok: true, value: { index: 2, term: 2, duplicate: true } });
    expect(h.proposals).toHaveLength(0);
  });

  it("refuses a put beyond the key bound as RESOURCE_EXHAUSTED kv_full before proposing, but answers a retry of an applied one", async () => {
    const h = harness({ keysMax: 1 });
    const a = h.kv.put(put("a", "1"));
    await Promise.resolve();
    h.settleNext();
    expect((await a).ok).toBe(true);
    const b = await h.kv.put(put("b", "2", "w", 2));
    expect(b).toMatchObject({ ok: false, failure: { code: grpc.status.RESOURCE_EXHAUSTED, reason: "kv_full", outcomeUnknown: false } });
    if (!b.ok) expect(b.failure.message).toMatch(/keysMax \(1, holding 1\)/);
    expect(h.proposals).toHaveLength(0);
    expect(await h.kv.put(put("a", "1"))).toMatchObject({ ok: true, value: { duplicate: true } });
    // A cas is decided by the apply (it compares first): full there too, with the same answer.
    const c = h.kv.cas({ key: "c", expected: new Uint8Array(0), expectAbsent: true, value: bytes("3"), clientId: "w", sequence: 3 });
    await Promise.resolve();
    h.settleNext();
    expect(await c).toMatchObject({ ok: false, failure: { code: grpc.status.RESOURCE_EXHAUSTED, reason: "kv_full" } });
  });

  it("a retry of a write still in flight is never answered kv_full: the original may yet apply", async () => {
    const h = harness({ bytesMax: 29 });
    const settled = async (p: Promise<unknown>) => {
      await Promise.resolve();
      h.settleNext();
      expect(await p).toMatchObject({ ok: true });
    };
    await settled(h.kv.put(put("a", "1", "w", 1)));
    await settled(h.kv.put(put("c", "x".repeat(9), "w", 2))); // 12 bytes held
    const filler = h.kv.put(put("b", "y".repeat(9), "w", 3)); // +10 once applied
    const shrink = h.kv.put(put("c", "", "w", 4)); // then -9
    const original = h.kv.put(put("a", "123456789", "w", 5)); // then +8: 21 bytes, fits
    await Promise.resolve();
    expect(h.proposals).toHaveLength(3);
    h.settleNext(); // the filler applies: 22 bytes held, so "a" growing by 8 looks full now
    expect(h.sm.kv.wouldOverflow("a", 9)).toBe(true);
    const retry = h.kv.put(put("a", "123456789", "w", 5));
    h.settleNext();
    h.settleNext();
    for (const p of [filler, shrink, original]) expect(await p).toMatchObject({ ok: true });
    expect(await retry).toEqual(await original);
    expect(h.sm.kv.byteCount).toBe(21);
  });

  it("maps a stopped replica to outcome unknown, and a clash with a ledger append's identity to INVALID_ARGUMENT", async () => {
    const h = harness();
    const p = h.kv.put(put("k", "v", "s", 1));
    await Promise.resolve();
    h.proposals.shift()?.settle({ ok: false, reason: "stopped", leaderHint: null });
    const r = await p;
    expect(r).toMatchObject({ ok: false, failure: { reason: "stopped", outcomeUnknown: true } });
    if (!r.ok) expect(h.kv.toStatus(r.failure).metadata?.get("dledger-outcome")[0]).toBe("unknown");
    const append = h.ledger.append({ clientId: "L", sequence: 1, body: bytes("x") });
    h.settleNext();
    expect((await append).ok).toBe(true);
    const clash = await h.kv.put(put("k", "v", "L", 1));
    expect(clash).toMatchObject({ ok: false, failure: { code: grpc.status.INVALID_ARGUMENT, reason: "bad_request" } });
    if (!clash.ok) expect(clash.failure.message).toMatch(/used by a Ledger append at index 2/);
  });

  it("validates at the gateway, naming the values, and proposes nothing", async () => {
    const h = harness();
    const cases: [Promise<unknown>, string, RegExp][] = [
      [h.kv.put(put("", "v")), "bad_request", /key must not be empty/],
      [h.kv.put(put("k".repeat(257), "v")), "too_large", /key of 257 bytes exceeds 256/],
      [h.kv.put({ key: "k", value: new Uint8Array(1010), clientId: "w", sequence: 1 }), "too_large", /KV command of 1025 bytes \(value 1010\) exceeds entryBytesMax \(1024\)/],
      [h.kv.put(put("k", "v", "", 3)), "bad_request", /sequence \(3\) must be 0 without a client_id/],
      [h.kv.cas({ key: "k", expected: bytes("x"), expectAbsent: true, value: bytes("v"), clientId: "", sequence: 0 }), "bad_request", /expected must be empty with expect_absent/],
      [h.kv.get({ key: "" }), "bad_request", /key must not be empty/],
    ];
    for (const [p, reason, message] of cases) {
      const r = (await p) as { ok: boolean; failure?: { code: number; reason: string; message: string } };
      expect(r.ok).toBe(false);
      expect(r.failure?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.failure?.reason).toBe(reason);
      expect(r.failure?.message).toMatch(message);
    }
    expect(h.proposals).toHaveLength(0);
  });
});

/* --- A real group over loopback gRPC ------------------------------------------------------------- */

const entryBytesMax = 64 * 1024;
const snapshots = { everyEntries: 20, keepEntries: 5 };
let root = "";
let layout: GroupLayout;
const nodes = new Map<string, LedgerNode>();
const clients: { close(): void }[] = [];

describe("dledger.v1.Kv on a real 3-replica group", () => {
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "dledger-kv-"));
    layout = await layoutGroup(3);
    for (const id of layout.ids) {
      const config = configFor(layout, id, root, snapshots);
      nodes.set(id, await LedgerNode.start({ config, logger: silentLogger, prngSeed: id.charCodeAt(1), entryBytesMax }));
    }
    await waitFor("a ready leader", () => leaderId() !== null);
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all([...nodes.values()].map((n) => n.stop()));
    rmSync(root, { recursive: true, force: true });
  });

  function leaderId(): string | null {
    for (const n of nodes.values()) if (n.service.acceptsAppends()) return n.id;
    return null;
  }
  function leaderAddress(): string {
    const id = leaderId();
    if (id === null) throw new Error("no leader");
    return layout.client[id] as string;
  }
  function followerAddress(): string {
    const f = [...nodes.values()].find((n) => n.service.metadata().role === "follower");
    if (f === undefined) throw new Error("no follower");
    return layout.client[f.id] as string;
  }
  function kvClient(endpoints: readonly string[], clientId?: string): KvClient {
    const c = new KvClient({ endpoints, ...(clientId === undefined ? {} : { clientId }) });
    clients.push(c);
    return c;
  }
  const okValue = <T>(r: KvCallOutcome<T>): T => {
    if (r.status !== "ok") throw new Error(`expected ok, got ${r.status} ${r.reason}: ${r.message}`);
    return r.value;
  };

  it("a get after an acknowledged put sees it, through a client that starts at a follower", async () => {
    const c = kvClient([followerAddress()]);
    const w = await c.put("greeting", "hello");
    expect(w).toMatchObject({ ok: true, attempts: 2, value: { duplicate: false } });
    if (!w.ok) return;
    const r = await c.get("greeting");
    expect(r.present).toBe(true);
    expect(text(r.value)).toBe("hello");
    expect(r.readIndex).toBeGreaterThanOrEqual(w.value.index);
    const absent = await c.get("never-written");
    expect(absent.present).toBe(false);
    // Overwrite and read again: the read never returns the older value.
    expect((await c.put("greeting", "bye")).ok).toBe(true);
    expect(text((await c.get("greeting")).value)).toBe("bye");
  });

  it("of two clients racing a cas on the same value, exactly one wins and the loser sees the winner's value", async () => {
    const a = kvClient([leaderAddress()], "racer-a");
    const b = kvClient([leaderAddress()], "racer-b");
    for (let round = 0; round < 5; round++) {
      const key = `race-${round}`;
      const [ra, rb] = await Promise.all([a.cas(key, null, "a"), b.cas(key, null, "b")]);
      if (!ra.ok || !rb.ok) throw new Error("a cas failed outright");
      expect([ra.value.succeeded, rb.value.succeeded].filter((s) => s)).toHaveLength(1);
      const [winner, loser] = ra.value.succeeded ? ["a", rb.value] : ["b", ra.value];
      expect(loser.currentPresent).toBe(true);
      expect(text(loser.currentValue)).toBe(winner);
      // Chained: both try to move the winner's value on; again exactly one wins.
      const [ca, cb] = await Promise.all([a.cas(key, winner, "a2"), b.cas(key, winner, "b2")]);
      if (!ca.ok || !cb.ok) throw new Error("a cas failed outright");
      expect([ca.value.succeeded, cb.value.succeeded].filter((s) => s)).toHaveLength(1);
      expect(text((await a.get(key)).value)).toBe(ca.value.succeeded ? "a2" : "b2");
    }
  });

  it("a follower answers Put, Cas and Get with not_leader, outcome failed and the leader's address", async () => {
    const c = kvClient([followerAddress()]);
    const f = followerAddress();
    const answers = [
      await c.putOnce(f, "k", "v", { timeoutMs: 2000 }),
      await c.casOnce(f, "k", null, "v", { timeoutMs: 2000 }),
      await c.getOnce(f, "k", { timeoutMs: 2000 }),
    ];
    for (const r of answers) {
      expect(r).toMatchObject({ status: "failed", code: grpc.status.FAILED_PRECONDITION, reason: "not_leader", leaderId: leaderId(), leaderAddress: leaderAddress() });
    }
  });

  it("a retried single-shot put or cas (same sequence) is applied once and answered with the original", async () => {
    const c = kvClient([leaderAddress()], "retrier");
    const l = leaderAddress();
    const first = okValue(await c.putOnce(l, "dedup", "one", { timeoutMs: 2000, sequence: 1 }));
    okValue(await c.putOnce(l, "dedup", "two", { timeoutMs: 2000, sequence: 2 }));
    expect(okValue(await c.putOnce(l, "dedup", "one", { timeoutMs: 2000, sequence: 1 }))).toEqual({ ...first, duplicate: true });
    expect(text(okValue(await c.getOnce(l, "dedup", { timeoutMs: 2000 })).value)).toBe("two");
    const miss = okValue(await c.casOnce(l, "dedup", "one", "three", { timeoutMs: 2000, sequence: 3 }));
    expect(miss).toMatchObject({ succeeded: false, currentPresent: true, duplicate: false });
    expect(text(miss.currentValue)).toBe("two");
    okValue(await c.putOnce(l, "dedup", "one", { timeoutMs: 2000, sequence: 4 }));
    // The comparison of sequence 3 would hold now; its retry must still answer the original failure.
    expect(okValue(await c.casOnce(l, "dedup", "one", "three", { timeoutMs: 2000, sequence: 3 }))).toMatchObject({ succeeded: false, index: miss.index, duplicate: true });
    expect(text(okValue(await c.getOnce(l, "dedup", { timeoutMs: 2000 })).value)).toBe("one");
  });

  it("refuses an empty key, an oversized key or value, and malformed bytes with INVALID_ARGUMENT, and keeps serving", async () => {
    const c = kvClient([leaderAddress()]);
    const l = leaderAddress();
    const bad = [
      await c.putOnce(l, "", "v", { timeoutMs: 2000 }),
      await c.putOnce(l, "k".repeat(257), "v", { timeoutMs: 2000 }),
      await c.putOnce(l, "k", new Uint8Array(entryBytesMax), { timeoutMs: 2000 }),
      await c.casOnce(l, "k", new Uint8Array(entryBytesMax / 2), new Uint8Array(entryBytesMax / 2), { timeoutMs: 2000 }),
      await c.getOnce(l, "k".repeat(300), { timeoutMs: 2000 }),
    ];
    expect(bad.map((r) => (r.status === "ok" ? "ok" : `${r.status} ${grpc.status[r.code]} ${r.reason}`))).toEqual([
      "failed INVALID_ARGUMENT bad_request",
      "failed INVALID_ARGUMENT too_large",
      "failed INVALID_ARGUMENT too_large",
      "failed INVALID_ARGUMENT too_large",
      "failed INVALID_ARGUMENT too_large",
    ]);
    const raw = new grpc.Client(l, grpc.credentials.createInsecure());
    clients.push(raw);
    const garbage = await new Promise<grpc.ServiceError | null>((resolve) => {
      raw.makeUnaryRequest(kvService.Put.path, (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x0a, 0xff, 0xff]), (err) => resolve(err));
    });
    expect(garbage?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(garbage?.details).toMatch(/malformed KvPutRequest/);
    expect(garbage?.metadata.get("dledger-outcome")[0]).toBe("failed");
    expect(okValue(await c.putOnce(l, "k", "still serving", { timeoutMs: 2000 })).index).toBeGreaterThan(0);
  });

  it("Ledger.Get of a KV command's index answers its identity and command bytes on every replica", async () => {
    const c = kvClient([leaderAddress()], "shown");
    const w = okValue(await c.putOnce(leaderAddress(), "visible", "x", { timeoutMs: 2000, sequence: 7 }));
    const lc = new LedgerClient({ endpoints: [leaderAddress()] });
    clients.push(lc);
    for (const id of layout.ids) {
      await waitFor(`${id} applies ${w.index}`, () => (nodes.get(id)?.service.metadata().appliedIndex ?? 0) >= w.index);
      const e: LedgerEntry = await lc.get(w.index, { endpoint: layout.client[id] as string });
      expect(e).toMatchObject({ index: w.index, noop: false, clientId: "shown", sequence: 7, duplicateOf: 0 });
      expect(e.body[0]).toBe(KvCommandKind.put);
    }
    // The Ledger service itself is unaffected: an append still works next to KV commands.
    expect((await lc.append(bytes("ledger entry"))).ok).toBe(true);
  });

  it("a replica that was down catches up by snapshot and, as leader, serves the map it restored", async () => {
    const lagging = layout.ids.find((id) => id !== leaderId()) as string;
    await nodes.get(lagging)?.stop();
    nodes.delete(lagging);
    const c = kvClient(Object.values(layout.client), "snap");
    for (let i = 0; i < 3 * snapshots.everyEntries; i++) expect((await c.put(`snap-${i % 7}`, `v${i}`)).ok).toBe(true);
    const leader = nodes.get(leaderId() ?? "");
    await waitFor("the leader compacts its log", () => (leader?.service.metadata().firstIndex ?? 0) > 1);
    const config = configFor(layout, lagging, root, snapshots);
    nodes.set(lagging, await LedgerNode.start({ config, logger: silentLogger, prngSeed: 99, entryBytesMax }));
    const target = leader?.service.metadata().commitIndex ?? 0;
    await waitFor(`${lagging} applies ${target}`, () => (nodes.get(lagging)?.service.metadata().appliedIndex ?? 0) >= target);
    const lc = new LedgerClient({ endpoints: Object.values(layout.client) });
    clients.push(lc);
    expect((await lc.transferLeadership(lagging)).leaderId).toBe(lagging);
    await waitFor(`${lagging} ready to lead`, () => leaderId() === lagging);
    const at = layout.client[lagging] as string;
    // Leader-following reads retry while grpc-js's (shared) channel to the restarted replica is
    // still in its reconnect backoff; they go to `at`, the only endpoint given.
    const reader = kvClient([at]);
    for (let k = 0; k < 7; k++) {
      const last = Math.max(...Array.from({ length: 3 * snapshots.everyEntries }, (_, i) => i).filter((i) => i % 7 === k));
      expect(text((await reader.get(`snap-${k}`)).value)).toBe(`v${last}`);
    }
    expect(text((await reader.get("greeting")).value)).toBe("bye");
  }, 30_000);
});
