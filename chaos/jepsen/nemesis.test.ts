import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LedgerClient } from "../../broker/client/ledger_client.js";
import { ensureBuilt } from "../../broker/server/test_build.js";
import type { Json } from "../checkers/history.js";
import { createChaosCluster } from "./cluster.js";
import type { ChaosCluster, HistoryRecorder, NemesisNote } from "./contracts.js";
import { availableKinds, bridgeGrudge, createNemesis, faultKinds, NemesisConfigError, parseNemesisFamilies, planFaults, ringGrudge, type PlannedFault } from "./nemesis.js";
import { probeNetns } from "./netns.js";

const netnsProbe = probeNetns();
if (!netnsProbe.ok && process.env["CI"] !== undefined) throw new Error(`CI needs network namespaces: ${netnsProbe.reason}`);
const netnsSkip = netnsProbe.ok ? "" : ` (skipped: ${netnsProbe.reason})`;

function take(seed: number, n: number, kinds = [...faultKinds]): PlannedFault[] {
  const out: PlannedFault[] = [];
  for (const f of planFaults(seed, kinds)) {
    out.push(f);
    if (out.length === n) break;
  }
  return out;
}

class NotesRecorder implements HistoryRecorder {
  readonly notes: NemesisNote[] = [];
  readonly #t0 = process.hrtime.bigint();
  nowNs(): number {
    return Number(process.hrtime.bigint() - this.#t0);
  }
  client(): void {}
  nemesis(note: Omit<NemesisNote, "timeNs">): void {
    this.notes.push({ ...note, timeNs: this.nowNs() });
  }
}

describe("nemesis plan and catalogue", () => {
  it("plans the same faults for the same seed, and different ones for another", () => {
    expect(take(42, 30)).toEqual(take(42, 30));
    expect(take(42, 30)).not.toEqual(take(43, 30));
    for (const f of take(7, 50)) {
      expect(f.quietMs >= 1000 && f.quietMs < 3000).toBe(true);
      expect(f.faultMs >= 1000 && f.faultMs < 4000).toBe(true);
    }
    expect(new Set(take(1, 200).map((f) => f.kind)).size).toBe(faultKinds.length);
  });

  it("parses --nemesis, rejecting unknown names by name", () => {
    expect(parseNemesisFamilies("all")).toEqual(["kill", "pause", "partition", "netem", "clock", "corrupt"]);
    expect(parseNemesisFamilies("kill, partition")).toEqual(["kill", "partition"]);
    expect(() => parseNemesisFamilies("kill,flood")).toThrow(NemesisConfigError);
    expect(() => parseNemesisFamilies("kill,flood")).toThrow('unknown nemesis "flood"');
    expect(() => parseNemesisFamilies("")).toThrow("--nemesis is empty");
    expect(() => take(1, 1).length + [...planFaults(1, ["kill-random"], { quietMs: [5, 5], faultMs: [1, 2] })].length).toThrow("quietMs [5, 5)");
  });

  it("builds symmetric ring and bridge grudges", () => {
    const ring = ringGrudge(["a", "b", "c", "d", "e"]);
    expect(ring.get("a")).toEqual(["c", "d"]);
    for (const [x, drops] of ring) for (const y of drops) expect(ring.get(y)).toContain(x);
    const bridge = bridgeGrudge(["n2", "n1", "n3"]);
    expect(bridge.get("n2")).toEqual([]);
    expect(bridge.get("n1")).toEqual(["n3"]);
    expect(bridge.get("n3")).toEqual(["n1"]);
  });
});

describe("nemesis on a process-only cluster", () => {
  let cluster: ChaosCluster;
  const dir = mkdtempSync(join(tmpdir(), "dledger-nemesis-"));
  beforeAll(async () => {
    ensureBuilt();
    cluster = await createChaosCluster({ replicas: 3, dir, mode: "process" });
    await cluster.start();
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("skips the families it cannot do, saying why", () => {
    const { kinds, skipped } = availableKinds(cluster, parseNemesisFamilies("all"));
    expect(kinds).toEqual(["kill-random", "kill-leader", "pause-random", "pause-leader", "clock-skew", "corrupt"]);
    expect(skipped.join("\n")).toMatch(/isolate-leader skipped: partitions: unavailable in process-only mode \(process-only mode requested\)/);
    expect(skipped.join("\n")).toMatch(/loss skipped: loss: unavailable/);
  });

  it("runs faults with start/stop notes and heals everything at the end", async () => {
    const recorder = new NotesRecorder();
    const nemesis = createNemesis({ cluster, recorder, seed: 5, families: ["kill", "pause", "clock"], faultsMax: 4, timing: { quietMs: [100, 300], faultMs: [300, 800] } });
    await nemesis.run(new AbortController().signal);
    expect(nemesis.incidents).toEqual([]);
    expect(nemesis.faultsInjected).toBe(4);
    expect(recorder.notes.map((n) => n.f)).toEqual(["start", "stop", "start", "stop", "start", "stop", "start", "stop"]);
    for (const n of recorder.notes) expect(n.value.nodes.length).toBeGreaterThan(0);
    for (const n of cluster.nodes) expect(cluster.isRunning(n.id)).toBe(true);
    expect(await cluster.leader(5000)).not.toBeNull();
    expect(cluster.takeUnexpectedExits()).toEqual([]);
  }, 90_000);

  it("corrupt: the replica refuses the damaged log, is repaired and restarted", async () => {
    const recorder = new NotesRecorder();
    // Committed entries in several writes (sequential appends), so one lies outside the last write.
    const client = new LedgerClient({ endpoints: cluster.nodes.map((n) => n.clientAddress), attemptTimeoutMs: 2000 });
    let last = 0;
    try {
      for (let i = 0; i < 40; i++) {
        const r = await client.append(new TextEncoder().encode(`entry ${i}`));
        expect(r.ok).toBe(true);
        if (r.ok) last = r.index;
      }
    } finally {
      client.close();
    }
    // Let a replica restarted by the previous test catch up (bounded), so every one qualifies.
    for (let t = 0; t < 200; t++) {
      const known = await Promise.all(cluster.nodes.map((n) => cluster.commitIndex(n.id, 500)));
      if (known.every((k) => k !== null && k >= last)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const nemesis = createNemesis({ cluster, recorder, seed: 9, only: "corrupt", faultsMax: 1, timing: { quietMs: [10, 20], faultMs: [100, 200] } });
    await nemesis.run(new AbortController().signal);
    expect(nemesis.incidents).toEqual([]);
    const start = recorder.notes.find((n) => n.f === "start");
    expect(start).toBeDefined();
    // The replica refused to start on the flipped byte (entry_body_crc), then started once repaired.
    expect((start?.value.detail as Record<string, Json>)["refused"]).toBe(true);
    expect(recorder.notes.map((n) => n.f)).toEqual(["start", "stop"]);
    for (const n of cluster.nodes) expect(cluster.isRunning(n.id)).toBe(true);
  }, 90_000);

  it("stops the active fault when the run's signal aborts", async () => {
    const recorder = new NotesRecorder();
    const ac = new AbortController();
    const nemesis = createNemesis({ cluster, recorder, seed: 3, only: "pause-leader", timing: { quietMs: [10, 20], faultMs: [60_000, 60_001] } });
    const run = nemesis.run(ac.signal);
    const deadline = performance.now() + 10_000;
    while (recorder.notes.length === 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    ac.abort();
    await run;
    expect(recorder.notes.map((n) => n.f)).toEqual(["start", "stop"]);
    expect(await cluster.leader(5000)).not.toBeNull();
  }, 30_000);
});

describe(`nemesis on a netns cluster${netnsSkip}`, () => {
  let cluster: ChaosCluster;
  const dir = mkdtempSync(join(tmpdir(), "dledger-nemesis-"));
  beforeAll(async () => {
    if (!netnsProbe.ok) return;
    ensureBuilt();
    cluster = await createChaosCluster({ replicas: 3, dir, mode: "netns" });
    await cluster.start();
  }, 180_000);
  afterAll(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it.skipIf(!netnsProbe.ok)("isolates the leader repeatedly, naming it, and heals", async () => {
    const recorder = new NotesRecorder();
    const nemesis = createNemesis({ cluster, recorder, seed: 11, only: "isolate-leader", faultsMax: 2, timing: { quietMs: [200, 400], faultMs: [800, 1200] } });
    await nemesis.run(new AbortController().signal);
    expect(nemesis.incidents).toEqual([]);
    const starts = recorder.notes.filter((n) => n.f === "start");
    expect(starts).toHaveLength(2);
    for (const s of starts) expect((s.value.detail as Record<string, Json>)["leader"]).toBe(s.value.nodes[0]);
    const net = (cluster as unknown as { network: { ruleset(h: string): string } }).network;
    for (const n of cluster.nodes) expect(net.ruleset(n.id)).not.toContain("drop");
  }, 60_000);
});
