import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { runStorageBench } from "./storage_bench.js";

describe("dledger bench storage (smoke)", () => {
  it("prints both sides, writes a JSON report, and ends with the summary line", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dledger-bench-smoke-"));
    const out = path.join(dir, "report.json");
    const lines: string[] = [];
    try {
      await runStorageBench({ entryBytes: 256, batch: 8, duration: 1, rounds: 1, dir, recoveryBytes: 2 * 1024 * 1024, kill: "inprocess", out }, (l) => lines.push(l));
      expect(lines[lines.length - 1]).toMatch(/^storage: \d+(\.\d+)? MB\/s, floor \d+(\.\d+)? MB\/s, ratio \d+(\.\d+)?$/);
      expect(lines.some((l) => l.startsWith("batch 8   floor"))).toBe(true);
      expect(lines.some((l) => l.startsWith("batch 1   storage"))).toBe(true);
      const report = JSON.parse(fs.readFileSync(out, "utf8")) as { recovery: { killMode: string; entries: number }; batched: { storage: { latencyMs: { count: number } } } };
      expect(report.recovery.killMode).toBe("inprocess");
      expect(report.recovery.entries).toBeGreaterThan(0);
      expect(report.batched.storage.latencyMs.count).toBeGreaterThan(0);
      expect(fs.readdirSync(dir)).toEqual(["report.json"]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
