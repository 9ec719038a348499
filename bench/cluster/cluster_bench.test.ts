import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../../broker/server/test_build.js";
import { runClusterBench } from "./cluster_bench.js";
import { splitWorkers } from "./load_loops.js";

beforeAll(() => ensureBuilt(), 120_000);

describe("splitWorkers", () => {
  it.each([
    [1, 32, [1]],
    [16, 32, [16]],
    [64, 32, [32, 32]],
    [100, 32, [25, 25, 25, 25]],
    [5, 2, [2, 2, 1]],
  ])("%i in flight with batches ≤ %i → %j", (c, b, want) => {
    expect(splitWorkers(c, b)).toEqual(want);
    expect(splitWorkers(c, b).reduce((a, x) => a + x, 0)).toBe(c);
  });
});

describe("dledger bench cluster (smoke)", () => {
  it("runs a closed level and an open level against its own group, writes the report, ends with the summary line", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dledger-bench-cluster-smoke-"));
    const out = path.join(dir, "report.json");
    const lines: string[] = [];
    try {
      process.env["DLEDGER_BENCH_QUIET_WAIT_S"] = "0";
      await runClusterBench({ clients: 4, entryBytes: 256, duration: 1, warmup: 0.3, sweep: [4], halfPeak: true, reps: 1, batch: 4, channels: 1, callTimeoutMs: 5000, keepDir: false, out }, (l) => lines.push(l));
      expect(lines[lines.length - 1]).toMatch(/^cluster: \d+ appends\/s, p50 \d+(\.\d+)? ms, p99 \d+(\.\d+)? ms at \d+(\.\d+)? in flight$/);
      const report = JSON.parse(fs.readFileSync(out, "utf8")) as Record<string, unknown> & { summary: { appendsPerSec: number }; reps: { levels: { latencyMs: { count: number } }[]; halfPeak: unknown }[] };
      expect(report["kind"]).toBe("bench-cluster");
      expect(typeof report["commit"]).toBe("string");
      expect(report["machine"]).toMatchObject({ cores: expect.any(Number), node: process.version });
      expect(report["background"]).toMatchObject({ busyPct: expect.any(Number) });
      expect(report.reps[0]?.levels[0]?.latencyMs.count).toBeGreaterThan(0);
      expect(report.reps[0]?.halfPeak).not.toBeNull();
    } finally {
      delete process.env["DLEDGER_BENCH_QUIET_WAIT_S"];
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
