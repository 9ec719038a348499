import { describe, expect, it } from "vitest";
import { formatViolation } from "../checkers/violation.js";
import { regressionSeeds } from "./regression_seeds.js";
import { describeFailure, passed, runBatch, summaryLine } from "./runner.js";
import { runSeed } from "./simulator.js";

describe("simulator determinism", () => {
  it("replays a seed to the identical event trace, with or without trace recording", () => {
    const a = runSeed({ seed: 42, replicas: 3 }).result;
    const b = runSeed({ seed: 42, replicas: 3 }).result;
    const traced = runSeed({ seed: 42, replicas: 3, trace: true });
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.events).toBe(a.events);
    expect(traced.result.traceHash).toBe(a.traceHash);
    expect(traced.trace?.length ?? 0).toBeGreaterThan(100);
  });
  it("different seeds explore different schedules", () => {
    const hashes = new Set<number>();
    for (let seed = 100; seed < 105; seed++) hashes.add(runSeed({ seed, replicas: 3 }).result.traceHash);
    expect(hashes.size).toBe(5);
  });
});

describe("simulator seeds", () => {
  it("a small batch of 3- and 5-replica seeds, on both stores, has no violation or liveness failure", async () => {
    for (const [replicas, count, store] of [
      [3, 20, "commitlog"],
      [5, 10, "commitlog"],
      [3, 10, "memory"],
    ] as const) {
      const seeds = Array.from({ length: count }, (_, i) => 1000 + i);
      const summary = await runBatch({ seeds, replicas, store, workers: 0 });
      expect(summary.failures.map(describeFailure), summaryLine(summary)).toEqual([]);
      expect(summary.simulatedUs).toBeGreaterThanOrEqual(count * 10_000_000);
    }
  });
  it("exercises the faults and the workload it claims to", () => {
    const { result } = runSeed({ seed: 7, replicas: 3 });
    const s = result.stats;
    expect(s.acks).toBeGreaterThan(0);
    expect(s.readsServed).toBeGreaterThan(0);
    expect(s.crashes + s.pauses + s.partitions).toBeGreaterThan(0);
    expect(s.leaderTerms).toBeGreaterThan(0);
  });
});

describe("the real CommitLog under the simulator", () => {
  it("crashes inside group commits leave torn tails that recovery cuts, and nothing is lost", async () => {
    const seeds = Array.from({ length: 40 }, (_, i) => 2000 + i);
    let torn = 0;
    let crashes = 0;
    for (const seed of seeds) {
      const { result } = runSeed({ seed, replicas: 3, store: "commitlog" });
      expect(passed(result), describeFailure(result)).toBe(true);
      torn += result.stats.tornTailsCut;
      crashes += result.stats.crashes;
    }
    expect(crashes).toBeGreaterThan(0);
    expect(torn).toBeGreaterThan(0);
  });
});

describe("regression seeds", () => {
  for (const r of regressionSeeds) {
    it(`seed ${r.seed} with ${r.replicas} replicas: ${r.note}`, () => {
      const { result } = runSeed({ seed: r.seed, replicas: r.replicas, store: r.store ?? "memory" });
      const what = result.violation !== null ? formatViolation(result.violation) : (result.livenessFailure ?? "");
      expect(passed(result), `${what} — ${describeFailure(result)}`).toBe(true);
    });
  }
});
