import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../../broker/server/test_build.js";
import { runFailoverBench } from "./failover_bench.js";

beforeAll(() => ensureBuilt(), 120_000);

describe("dledger bench failover (smoke)", () => {
  it("kills the leader once, writes the report and ends with the summary line", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dledger-bench-failover-smoke-"));
    const out = path.join(dir, "report.json");
    const lines: string[] = [];
    try {
      process.env["DLEDGER_BENCH_QUIET_WAIT_S"] = "0";
      await runFailoverBench({ kills: 1, writers: 2, entryBytes: 256, attemptTimeoutMs: 100, failoverWaitMs: 10_000, settleMs: 200, keepDir: false, out }, (l) => lines.push(l));
      expect(lines[lines.length - 1]).toMatch(/^failover: median \d+(\.\d+)? ms, max \d+(\.\d+)? ms over 1 kills$/);
      const report = JSON.parse(fs.readFileSync(out, "utf8")) as { kind: string; kills: { killed: string; oldTerm: number }[]; summary: { kills: number } };
      expect(report.kind).toBe("bench-failover");
      expect(report.summary.kills).toBe(1);
      expect(report.kills[0]?.killed).toMatch(/^n[123]$/);
    } finally {
      delete process.env["DLEDGER_BENCH_QUIET_WAIT_S"];
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
