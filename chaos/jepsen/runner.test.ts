/**
 * The chaos runner end to end. The smoke (issue 5: "a chaos smoke of at most 60 s, register and
 * append with kill and partition") runs the real `dledger chaos` CLI from dist/, which re-executes
 * itself inside a network namespace, and asserts the verdicts are valid and faults were injected.
 * Without netns here it is skipped with the reason, unless CI is set: then it fails.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt, repoRoot } from "../../broker/server/test_build.js";
import { parseHistory } from "../checkers/history.js";
import { createChaosCluster } from "./cluster.js";
import type { RunReport } from "./contracts.js";
import { probeNetns } from "./netns.js";
import { Progress, progressLine } from "./progress.js";
import { type NemesisRunner, RunExit, runChaos } from "./runner.js";

const mainJs = join(repoRoot, "dist/broker/cli/main.js");
const dirs: string[] = [];

beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "dledger-chaos-"));
  dirs.push(d);
  return d;
}

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI with a hard bound; the child is killed (by its PID) if it overruns. */
function cli(args: readonly string[], timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [mainJs, ...args], { timeout: timeoutMs, killSignal: "SIGINT", maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const netns = probeNetns();
const smokeSkip = !netns.ok && process.env["CI"] === undefined;
if (smokeSkip) console.warn(`chaos smoke skipped: network namespaces unavailable here (${netns.ok ? "" : netns.reason}); CI would fail`);

describe("dledger chaos smoke (kill and partition, in network namespaces)", () => {
  it("netns is available when CI is set", () => {
    if (process.env["CI"] !== undefined) expect(netns.ok ? "available" : `unavailable: ${netns.reason}`).toBe("available");
  });

  for (const [workload, seed] of [
    ["register", 2],
    ["append", 3],
  ] as const) {
    it.skipIf(smokeSkip)(`${workload}: valid, with faults injected`, async () => {
      const out = tempDir();
      const r = await cli(["chaos", "--workload", workload, "--nemesis", "kill,partition", "--time-limit", "10", "--seed", String(seed), "--out", out], 90_000);
      expect(r.stdout, r.stderr).toMatch(/verdict\s+VALID/);
      expect(r.code).toBe(0);
      const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as RunReport;
      expect(report.capabilities.mode).toBe("netns");
      expect(report.valid).toBe(true);
      expect(report.checkers.map((c) => c.name)).toEqual(expect.arrayContaining(["replica logs", "liveness after heal", "failover"]));
      for (const c of report.checkers) expect(c.ok, `${c.name}: ${c.summary}`).toBe(true);
      const history = parseHistory(readFileSync(join(out, "history.jsonl"), "utf8"));
      expect(history.nemesis.length).toBeGreaterThan(0);
      expect(report.faults.length).toBeGreaterThan(0);
      expect(report.counts.ok).toBeGreaterThan(100);
      for (const f of ["report.html", "summary.txt", "cluster/n1.log"]) expect(existsSync(join(out, f)), f).toBe(true);
    }, 100_000);
  }
});

describe("dledger chaos refuses what it cannot do, with a clear message and exit 3", () => {
  it("partitions asked for explicitly without network namespaces", async () => {
    const r = await cli(["chaos", "--workload", "append", "--nemesis", "kill,partition", "--no-netns", "--time-limit", "5"], 30_000);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--nemesis partition needs network namespaces/);
  }, 40_000);

  it("bad flags", async () => {
    for (const args of [
      ["--workload", "queue"],
      ["--workload", "append", "--nemesis", "kill,bogus"],
      ["--workload", "append", "--time-limit", "0"],
      ["--workload", "append", "--nodes", "4"],
    ]) {
      const r = await cli(["chaos", ...args, "--no-netns"], 30_000);
      expect(r.code, args.join(" ")).toBe(3);
      expect(r.stderr.length, args.join(" ")).toBeGreaterThan(0);
    }
  }, 60_000);
});

describe("runChaos with a replica that will not restart", () => {
  it("reports an incident naming the replica, exit 3, never valid", async () => {
    const out = tempDir();
    const lines: string[] = [];
    // A nemesis that kills n2 and then makes its data directory unusable (a file in its place),
    // so the restart after the run must fail.
    const createNemesis = (o: { cluster: import("./contracts.js").ChaosCluster; recorder: import("./contracts.js").HistoryRecorder }): NemesisRunner => ({
      async run(signal: AbortSignal) {
        const n2 = o.cluster.nodes.find((n) => n.id === "n2");
        if (n2 === undefined) throw new Error("no n2");
        await o.cluster.kill("n2");
        o.recorder.nemesis({ f: "start", value: { fault: "kill-random", nodes: ["n2"] } });
        renameSync(n2.dataDir, `${n2.dataDir}.moved`);
        writeFileSync(n2.dataDir, "not a directory");
        await new Promise<void>((r) => (signal.aborted ? r() : signal.addEventListener("abort", () => r(), { once: true })));
        o.recorder.nemesis({ f: "stop", value: { fault: "kill-random", nodes: ["n2"] } });
      },
    });
    const result = await runChaos(
      { workload: "append", families: ["kill"], all: false, timeLimitMs: 3000, seed: 1, outDir: out, replicas: 3, modeNote: "test", recoveryMs: 500, recoveryMaxMs: 3000 },
      { createCluster: (o) => createChaosCluster({ ...o, mode: "process" }), createNemesis },
      { print: (l) => lines.push(l), progress: { isTTY: false, write: () => {} } },
    );
    expect(result.exitCode).toBe(RunExit.harness);
    expect(result.report?.valid).toBe(false);
    expect(result.report?.incidents.join("\n")).toMatch(/replica n2 will not restart/);
    expect(result.summary).not.toMatch(/VALID:/);
    expect(lines.join("\n")).toMatch(/incident: replica n2 will not restart/);
  }, 90_000);
});

describe("progress", () => {
  const state = { phase: "faults", elapsedMs: 15_000, limitMs: 60_000, ok: 10, fail: 2, info: 1, faults: 3, fault: "isolate-leader n1" };

  it("formats the bar, the counts and the fault in place", () => {
    const line = progressLine(state, 8);
    expect(line).toBe("faults [##------] 15/60 s  ok 10 fail 2 info 1  faults 3  now: isolate-leader n1");
  });

  it("writes whole lines when stderr is not a terminal, and redraws in place when it is", () => {
    const plain: string[] = [];
    const p = new Progress({ isTTY: false, write: (t) => plain.push(t) }, () => state);
    p.start();
    p.note("chaos: something happened");
    p.stop();
    expect(plain.every((t) => t.endsWith("\n"))).toBe(true);
    expect(plain.some((t) => t.includes("\r"))).toBe(false);
    const tty: string[] = [];
    const q = new Progress({ isTTY: true, columns: 40, write: (t) => tty.push(t) }, () => state);
    q.start();
    q.stop();
    expect(tty[0]?.startsWith("\r\x1b[2K")).toBe(true);
    expect((tty[0] ?? "").length).toBeLessThanOrEqual("\r\x1b[2K".length + 39);
    expect(tty.at(-1)).toBe("\n");
  });
});
