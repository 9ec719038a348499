/**
 * The workloads against a real three-process group on 127.0.0.1, without a nemesis: every history
 * must parse and be decided valid by its checker. The processes run the compiled CLI
 * (dist/broker/cli/main.js); each is stopped by PID in afterAll, also when a test fails.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { LedgerClient } from "../../broker/client/ledger_client.js";
import { spawnReplica, stopChildren, type ClusterMember } from "../../broker/server/cluster_runner.js";
import { freePort, waitFor } from "../../broker/server/test_helpers.js";
import { ensureBuilt, repoRoot } from "../../broker/server/test_build.js";
import { checkHistory } from "../checkers/check_run.js";
import { parseHistory } from "../checkers/history.js";
import { Prng } from "../../raft/base/prng.js";
import type { ChaosNode, Workload } from "./contracts.js";
import { JsonlHistoryRecorder } from "./recorder.js";
import { appendBody, appendCompletion, entryPayload } from "./workload_append.js";
import { workloadEntry } from "./workload_registry.js";
import { kvRegisterClientAvailable } from "./workload_register_kv.js";

const procs: ChildProcess[] = [];
let dir = "";
let nodes: ChaosNode[] = [];

beforeAll(async () => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), "dledger-workloads-"));
  const ids = ["n1", "n2", "n3"];
  const peers: Record<string, string> = {};
  const clients: Record<string, string> = {};
  for (const id of ids) {
    peers[id] = `127.0.0.1:${await freePort()}`;
    clients[id] = `127.0.0.1:${await freePort()}`;
  }
  const members: ClusterMember[] = [];
  for (const id of ids) {
    const metrics = `127.0.0.1:${await freePort()}`;
    const m: ClusterMember = { id, client: clients[id] as string, peer: peers[id] as string, metrics, configPath: join(dir, `${id}.yaml`), logPath: join(dir, `${id}.log`) };
    writeFileSync(m.configPath, stringify({ group: "g1", id, dataDir: join(dir, id), listen: { peer: m.peer, client: m.client, metrics }, peers, clients }));
    members.push(m);
    procs.push(spawnReplica(m, join(repoRoot, "dist/broker/cli/main.js")));
    nodes.push({ id, clientAddress: m.client, peerAddress: m.peer, metricsAddress: metrics, dataDir: join(dir, id), logPath: m.logPath });
  }
  const client = new LedgerClient({ endpoints: Object.values(clients), attemptTimeoutMs: 500 });
  try {
    await waitFor("a leader", async () => (await client.findLeader()) !== null, 20_000);
  } finally {
    client.close();
  }
}, 120_000);

afterAll(async () => {
  await stopChildren(procs, 3000);
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
  nodes = [];
});

/** Runs `workload` for `ms` and returns the recorded history text. */
let seed = 7;
async function record(workload: Workload, ms: number, name: string): Promise<string> {
  const path = join(dir, `${name}.jsonl`);
  const recorder = JsonlHistoryRecorder.open(path);
  const abort = new AbortController();
  const prng = new Prng(seed++);
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    await workload.run({ nodes, recorder, random: () => prng.float(), signal: abort.signal, requestTimeoutMs: 2000 });
  } finally {
    clearTimeout(timer);
    recorder.close();
  }
  return readFileSync(path, "utf8");
}

describe("append workload on a real group", () => {
  it("records a history the append checker decides valid, with reads that saw the appends", async () => {
    const entry = workloadEntry("append");
    const text = await record(entry.create(), 3000, "append");
    const h = parseHistory(text);
    const appends = h.operations.filter((o) => o.f === "append");
    const reads = h.operations.filter((o) => o.f === "read" && o.outcome === "ok");
    expect(appends.filter((o) => o.outcome === "ok").length).toBeGreaterThan(20);
    expect(reads.length).toBeGreaterThanOrEqual(1);
    const last = reads.at(-1)?.resultValue as { index: number; value: number }[];
    expect(last.length).toBeGreaterThanOrEqual(appends.filter((o) => o.outcome === "ok").length);
    const outcome = checkHistory(h, { mode: entry.checkMode, init: null, timeLimitMs: 60_000, nowMs: () => performance.now() });
    expect(outcome.summary).toMatch(/^valid/);
    expect(outcome.exitCode).toBe(0);
  }, 60_000);

  it("the checker catches a history whose final read lost an acknowledged append", async () => {
    const text = await record(workloadEntry("append").create(), 1500, "append-tampered");
    const lines = text.trim().split("\n");
    // Drop one acknowledged entry from the final read: the checker must call it lost.
    const lastRead = lines.map((l, i) => [JSON.parse(l), i] as const).filter(([e]) => e.f === "read" && e.type === "ok").at(-1);
    expect(lastRead).toBeDefined();
    const [event, at] = lastRead as readonly [{ value: unknown[] }, number];
    event.value.splice(Math.floor(event.value.length / 2), 1);
    lines[at] = JSON.stringify(event);
    const outcome = checkHistory(parseHistory(lines.join("\n")), { mode: "append", init: null, timeLimitMs: 60_000, nowMs: () => performance.now() });
    expect(outcome.exitCode).toBe(1);
    expect(outcome.details.join("\n")).toMatch(/lost/);
  }, 60_000);
});

describe("register workload on a real group", () => {
  it.skipIf(!kvRegisterClientAvailable)("records a history that is linearizable (cas-register)", async () => {
    const entry = workloadEntry("register");
    const h = parseHistory(await record(entry.create(), 3000, "register"));
    const ok = h.operations.filter((o) => o.outcome === "ok");
    expect(ok.filter((o) => o.f === "read").length).toBeGreaterThan(10);
    expect(ok.filter((o) => o.f === "write").length).toBeGreaterThan(5);
    expect(h.operations.some((o) => o.f === "cas" && o.outcome === "ok")).toBe(true);
    const outcome = checkHistory(h, { mode: entry.checkMode, init: null, timeLimitMs: 60_000, nowMs: () => performance.now() });
    expect(outcome.summary).toMatch(/^linearizable/);
  }, 60_000);
});

describe("append workload pieces", () => {
  it("encodes payloads and reads them back; foreign bodies become unexpected strings", () => {
    const e = { index: 3, term: 1, noop: false, clientId: "c", sequence: 1, duplicateOf: 0 };
    expect(entryPayload("0000abcd", { ...e, body: appendBody("0000abcd", 42) })).toBe(42);
    expect(entryPayload("0000abcd", { ...e, body: appendBody("ffff0000", 42) })).toBeNull();
    expect(entryPayload("0000abcd", { ...e, body: new TextEncoder().encode("hello") })).toBe("foreign:hello");
    expect(entryPayload("0000abcd", { ...e, noop: true, body: new Uint8Array() })).toBeNull();
    expect(entryPayload("0000abcd", { ...e, duplicateOf: 2, body: appendBody("0000abcd", 42) })).toBeNull();
  });

  it("maps a single attempt's outcome onto Jepsen's types", () => {
    const base = { code: 9, reason: "not_leader", message: "ask n2", sequence: 1, attempts: 1 };
    expect(appendCompletion({ ok: true, index: 5, term: 2, duplicate: false, sequence: 1, attempts: 1 })).toEqual({ type: "ok", index: 5 });
    expect(appendCompletion({ ok: false, outcome: "failed", ...base }).type).toBe("fail");
    expect(appendCompletion({ ok: false, outcome: "unknown", ...base }).type).toBe("info");
  });
});
