/**
 * Real replica processes: a 3-replica cluster in network namespaces (skipped with the probe's
 * reason when netns is unavailable, failing instead under CI) and one in process-only mode.
 * Every process started here is stopped by PID in afterAll (cluster.stop()), and afterwards no
 * replica process and no namespace of the run may remain.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerClient } from "../../broker/client/ledger_client.js";
import { ensureBuilt } from "../../broker/server/test_build.js";
import type { ChaosCluster, NodeId } from "./contracts.js";
import { createChaosCluster, FaultUnavailableError, ReplicaStartError } from "./cluster.js";
import { listNamespaces, probeNetns, type TestNetwork } from "./netns.js";

const netnsProbe = probeNetns();
if (!netnsProbe.ok && process.env["CI"] !== undefined) throw new Error(`CI needs network namespaces: ${netnsProbe.reason}`);
const netnsSkip = netnsProbe.ok ? "" : ` (skipped: ${netnsProbe.reason})`;

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), "dledger-chaos-"));
  dirs.push(d);
  return d;
};

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Pids of `dledger start` processes whose config lives under `dir`. */
function replicaPids(dir: string): number[] {
  const out = execFileSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return out
    .split("\n")
    .filter((l) => l.includes(" start --config ") && l.includes(dir))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** A leader other than `not`, polling within a bound. */
async function newLeader(cluster: ChaosCluster, not: NodeId, boundMs = 10_000): Promise<NodeId | null> {
  const deadline = performance.now() + boundMs;
  while (performance.now() < deadline) {
    const l = await cluster.leader(1000);
    if (l !== null && l !== not) return l;
  }
  return null;
}

describe(`netns cluster${netnsSkip}`, () => {
  let cluster: ChaosCluster;
  let dir: string;
  let runPrefix: string;

  beforeAll(async () => {
    dir = tempDir();
    cluster = await createChaosCluster({ replicas: 3, dir, mode: "netns" });
    runPrefix = `dlj-${(cluster as unknown as { network: TestNetwork }).network.runId}-`;
    await cluster.start();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 30_000);

  it.skipIf(!netnsProbe.ok)("reports netns capabilities, saying why delay is missing without netem", () => {
    expect(cluster.capabilities.mode).toBe("netns");
    expect(cluster.capabilities.partitions).toBe(true);
    expect(cluster.capabilities.loss).toBe(true);
    if (!cluster.capabilities.delay) expect(cluster.capabilities.limitations.join("\n")).toMatch(/delay: .*netem/);
    expect(cluster.nodes.map((n) => n.clientAddress)).toEqual(cluster.nodes.map((n) => expect.stringMatching(/^10\.77\.\d+\.\d+:7001$/) as unknown as string));
  });

  it.skipIf(!netnsProbe.ok)("kill the leader: a new one is elected, the old one restarts", async () => {
    const old = await cluster.leader(5000);
    expect(old).not.toBeNull();
    await cluster.kill(old as NodeId);
    expect(cluster.isRunning(old as NodeId)).toBe(false);
    expect(await newLeader(cluster, old as NodeId)).not.toBeNull();
    await cluster.restart(old as NodeId);
    expect(cluster.isRunning(old as NodeId)).toBe(true);
    expect(cluster.takeUnexpectedExits()).toEqual([]);
  }, 60_000);

  it.skipIf(!netnsProbe.ok)("pause the leader: the others elect a new one; resume brings it back as a follower", async () => {
    const old = (await cluster.leader(5000)) as NodeId;
    await cluster.pause(old);
    expect(await newLeader(cluster, old)).not.toBeNull();
    await cluster.resume(old);
    const after = await cluster.leader(5000);
    expect(after).not.toBeNull();
    expect(cluster.takeUnexpectedExits()).toEqual([]);
  }, 60_000);

  it.skipIf(!netnsProbe.ok)("isolate the leader: the majority elects a new one, the coordinator still reaches all three", async () => {
    const old = (await cluster.leader(5000)) as NodeId;
    const others = cluster.nodes.map((n) => n.id).filter((id) => id !== old);
    await cluster.partition([[old], others]);
    const next = await newLeader(cluster, old);
    expect(next).not.toBeNull();
    expect(others).toContain(next);
    // leader() only counts replicas that answered: the coordinator reached the isolated one too.
    const net = (cluster as unknown as { network: TestNetwork }).network;
    expect(net.ruleset(old)).toContain("drop");
    for (const n of cluster.nodes) {
      const script = `require("node:net").connect(${n.clientAddress.split(":")[1]}, ${JSON.stringify(n.clientAddress.split(":")[0])}).on("connect", () => process.exit(0)).on("error", () => process.exit(1)); setTimeout(() => process.exit(2), 2000);`;
      expect(() => net.exec("c", [process.execPath, "-e", script])).not.toThrow();
    }
    await cluster.heal();
    expect(net.ruleset(old)).not.toContain("drop");
  }, 60_000);

  it.skipIf(!netnsProbe.ok)("loss installs an nftables random-drop rule between replicas only, and clears", async () => {
    const net = (cluster as unknown as { network: TestNetwork }).network;
    await cluster.setLinkFaults({ lossPct: 30 });
    for (const n of cluster.nodes) expect(net.ruleset(n.id)).toMatch(/numgen random mod 100 < 30 drop/);
    expect(net.ruleset("c")).not.toContain("numgen");
    expect(net.ruleset("n1")).not.toContain(net.address("c"));
    if (!cluster.capabilities.delay) await expect(cluster.setLinkFaults({ lossPct: 0, delayMs: 50 })).rejects.toThrow(FaultUnavailableError);
    await cluster.setLinkFaults(null);
    for (const n of cluster.nodes) expect(net.ruleset(n.id)).not.toContain("numgen");
    expect(await cluster.leader(5000)).not.toBeNull();
  }, 60_000);

  it.skipIf(!netnsProbe.ok)("stop() leaves no replica process and no namespace behind", async () => {
    const pidsBefore = replicaPids(dir);
    expect(pidsBefore.length).toBe(3);
    await cluster.stop();
    await cluster.stop(); // idempotent
    expect(replicaPids(dir)).toEqual([]);
    expect(listNamespaces().filter((n) => n.startsWith(runPrefix))).toEqual([]);
  }, 30_000);
});

describe("process-only cluster", () => {
  let cluster: ChaosCluster;
  let dir: string;
  let client: LedgerClient;

  beforeAll(async () => {
    dir = tempDir();
    cluster = await createChaosCluster({ replicas: 3, dir, mode: "process" });
    await cluster.start();
    client = new LedgerClient({ endpoints: cluster.nodes.map((n) => n.clientAddress), attemptTimeoutMs: 1000 });
  }, 60_000);
  afterAll(async () => {
    client?.close();
    await cluster?.stop();
  }, 30_000);

  it("says why network faults are unavailable, and refuses them with that reason", async () => {
    expect(cluster.capabilities.mode).toBe("process");
    expect(cluster.capabilities.partitions).toBe(false);
    expect(cluster.capabilities.limitations.join("\n")).toMatch(/partitions: unavailable in process-only mode/);
    await expect(cluster.partition([["n1"], ["n2", "n3"]])).rejects.toThrow(/partition: partitions: unavailable/);
    await expect(cluster.setLinkFaults({ lossPct: 10 })).rejects.toThrow(FaultUnavailableError);
  });

  it("clock skew reaches the replica, which stays healthy", async () => {
    await cluster.setClockSkew("n2", { offsetMs: 7000, rate: 2 });
    const log = readFileSync(cluster.nodes[1]?.logPath as string, "utf8");
    const applied = log.split("\n").filter((l) => l.includes("clock_skew_applied")).map((l) => JSON.parse(l) as { offsetMs: number; rate: number; clockMs: number; realMs: number });
    const last = applied.at(-1);
    expect(last).toMatchObject({ offsetMs: 7000, rate: 2 });
    // The reading the process sees is ahead of real time by the offset (and the rate since).
    // (1 ms of slack for floating-point rounding of two readings ~0.1 ms apart.)
    expect((last?.clockMs ?? 0) - (last?.realMs ?? 0)).toBeGreaterThanOrEqual(6999);
    const r = await client.append(new TextEncoder().encode("during skew"));
    expect(r.ok).toBe(true);
    await cluster.setClockSkew("n2", null);
    expect(cluster.takeUnexpectedExits()).toEqual([]);
  }, 30_000);

  it("corrupt: restart refuses with entry_body_crc; repair; restart works", async () => {
    for (let i = 0; i < 20; i++) expect((await client.append(new TextEncoder().encode(`e${i}`))).ok).toBe(true);
    // A term change makes the followers persist their commit index (it is persisted lazily).
    const old = (await cluster.leader(5000)) as NodeId;
    await cluster.kill(old);
    const next = await newLeader(cluster, old);
    expect(next).not.toBeNull();
    for (let i = 0; i < 5; i++) expect((await client.append(new TextEncoder().encode(`f${i}`))).ok).toBe(true);
    await cluster.restart(old);
    const victim = cluster.nodes.map((n) => n.id).find((id) => id !== next && id !== old) as NodeId;
    await cluster.kill(victim);
    await expect(cluster.corrupt(next as NodeId, () => 0)).rejects.toThrow(/running; kill it first/);
    const corruption = await cluster.corrupt(victim, (n) => Math.floor(n / 2));
    expect(corruption.original ^ corruption.flipped).toBe(0xff);
    const refusal = await cluster.restart(victim).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refusal).toBeInstanceOf(ReplicaStartError);
    expect((refusal as ReplicaStartError).message).toMatch(/entry_body_crc/);
    expect((refusal as ReplicaStartError).exit?.code).toBe(1);
    expect(cluster.isRunning(victim)).toBe(false);
    await cluster.repair(corruption);
    await cluster.restart(victim);
    expect(cluster.isRunning(victim)).toBe(true);
    expect(cluster.takeUnexpectedExits()).toEqual([]);
  }, 90_000);

  it("takeUnexpectedExits reports a replica that died on its own", async () => {
    const pids = replicaPids(dir);
    expect(pids.length).toBe(3);
    process.kill(pids[0] as number, "SIGKILL");
    const deadline = performance.now() + 5000;
    let exits: readonly unknown[] = [];
    while (exits.length === 0 && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      exits = cluster.takeUnexpectedExits();
    }
    expect(exits).toHaveLength(1);
    expect(exits[0]).toMatchObject({ signal: "SIGKILL" });
  }, 30_000);

  it("stop() leaves no replica process behind", async () => {
    await cluster.stop();
    expect(replicaPids(dir)).toEqual([]);
  }, 30_000);
});
