import { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { registerSimCommand } from "./command.js";

/** Runs `dledger sim ...args` in process and returns what it printed, line by line. */
async function runCli(args: readonly string[]): Promise<{ readonly lines: string[]; readonly exitCode: number }> {
  const lines: string[] = [];
  const spy = vi.spyOn(console, "log").mockImplementation((...parts: unknown[]) => {
    lines.push(parts.map(String).join(" "));
  });
  const program = new Command("dledger").exitOverride();
  registerSimCommand(program, { bench: program.command("bench") });
  process.exitCode = 0;
  try {
    await program.parseAsync(["node", "dledger", "sim", ...args]);
  } finally {
    spy.mockRestore();
  }
  const exitCode = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { lines, exitCode };
}

afterEach(() => {
  process.exitCode = 0;
});

const summaryPattern = /^sim: (\d+) seeds, (\d+) violations, (\d+) liveness failures, [\d.]+ simulated s in [\d.]+ wall s$/;

describe("dledger sim", () => {
  it("ends a batch with the summary line and exits 0 when every seed passes", async () => {
    const { lines, exitCode } = await runCli(["--seeds", "3", "--first", "500"]);
    expect(lines.at(-1)).toMatch(summaryPattern);
    expect(summaryPattern.exec(lines.at(-1) ?? "")?.slice(1, 4)).toEqual(["3", "0", "0"]);
    expect(exitCode).toBe(0);
  });
  it("prints a JSON report before the summary line with --json", async () => {
    const { lines } = await runCli(["--seeds", "2", "--replicas", "5", "--json"]);
    const report = JSON.parse(lines.at(-2) ?? "{}") as { seeds?: number; replicas?: number; failures?: unknown[] };
    expect(report.seeds).toBe(2);
    expect(report.replicas).toBe(5);
    expect(report.failures).toEqual([]);
    expect(lines.at(-1)).toMatch(summaryPattern);
  });
  it("replays one seed with its trace on request", async () => {
    const { lines } = await runCli(["--seed", "9", "--trace", "--trace-lines", "50"]);
    expect(lines.some((l) => l.includes("<- "))).toBe(true);
    expect(lines.at(-1)).toMatch(/^sim: 1 seeds, 0 violations, 0 liveness failures/);
  });
  it("rejects a group size other than 3 or 5", async () => {
    await expect(runCli(["--replicas", "4"])).rejects.toThrow(/3 or 5/);
  });
});
