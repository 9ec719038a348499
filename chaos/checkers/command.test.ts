import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ExitCode, worstExitCode } from "./check_run.js";
import { registerCheckCommand } from "./command.js";

const dir = mkdtempSync(join(tmpdir(), "dledger-check-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, ...events: object[]): string {
  const path = join(dir, name);
  writeFileSync(path, events.map((e) => JSON.stringify(e)).join("\n") + "\n");
  return path;
}

const good = file("good.jsonl", { process: 0, type: "invoke", f: "write", value: 1 }, { process: 0, type: "ok", f: "write" }, { process: 1, type: "invoke", f: "read" }, { process: 1, type: "ok", f: "read", value: 1 });
const bad = file("bad.jsonl", { process: 0, type: "invoke", f: "write", value: 1 }, { process: 0, type: "ok", f: "write" }, { process: 1, type: "invoke", f: "read" }, { process: 1, type: "ok", f: "read", value: null });
const broken = file("broken.jsonl", { process: 0, type: "ok", f: "read", value: 1 });
const appendLog = file("append.jsonl", { process: 0, type: "invoke", f: "append", value: "a" }, { process: 0, type: "ok", f: "append", index: 1 }, { process: 1, type: "invoke", f: "read" }, { process: 1, type: "ok", f: "read", value: ["a"] });

let out: string[];
let err: string[];
beforeEach(() => {
  out = [];
  err = [];
  vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void out.push(a.join(" ")));
  vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void err.push(a.join(" ")));
  process.exitCode = undefined;
});
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

/** Runs `dledger <args>` in process; returns the exit code. */
async function dledger(...args: string[]): Promise<number> {
  const program = new Command("dledger").exitOverride();
  program.configureOutput({ writeErr: (s) => void err.push(s), writeOut: (s) => void out.push(s) });
  registerCheckCommand(program, { bench: new Command("bench") });
  try {
    await program.parseAsync(["node", "dledger", ...args]);
  } catch (e) {
    return (e as { exitCode: number }).exitCode;
  }
  return Number(process.exitCode ?? 0);
}

describe("dledger check", () => {
  it("prints the verdict last and exits 0 for a linearizable history", async () => {
    expect(await dledger("check", "--model", "register", good)).toBe(0);
    expect(out.at(-1)).toMatch(/^linearizable: 2 operations, 1 keys/);
  });
  it("exits 1 and names the operation for a violation", async () => {
    expect(await dledger("check", "--model", "register", bad)).toBe(1);
    expect(out[0]).toBe("could not linearize line 3 (process 1) read -> null, ok on line 4");
    expect(out.at(-1)).toMatch(/^not-linearizable:/);
  });
  it("exits 3 for a malformed history, naming the line", async () => {
    expect(await dledger("check", "--model", "register", broken)).toBe(3);
    expect(out.at(-1)).toMatch(/^bad-input: line 1: "ok" for process 0 without a pending invoke/);
  });
  it("exits 2 when the time limit is reached", async () => {
    const events: object[] = [];
    for (let p = 0; p < 16; p++) events.push({ process: p, type: "invoke", f: "append", key: "k", value: String.fromCharCode(97 + p) });
    events.push({ process: 99, type: "invoke", f: "get", key: "k" }, { process: 99, type: "ok", f: "get", key: "k", value: "abcdefghijklmnop!" });
    expect(await dledger("check", "--model", "kv", "--time-limit", "0.05", file("slow.jsonl", ...events))).toBe(2);
    expect(out.at(-1)).toMatch(/^unknown: time limit of 0.05 s reached on key "k"/);
  });
  it("prints `<file> <verdict> <ms>` per file and exits with the worst code", async () => {
    expect(await dledger("check", "--model", "register", good, broken, bad)).toBe(1);
    expect(out.map((l) => l.replace(/ \d+$/, " <ms>"))).toEqual([`${good} linearizable <ms>`, `${broken} bad-input <ms>`, `${bad} not-linearizable <ms>`]);
    expect(err.some((l) => l.startsWith(`${bad}: could not linearize`))).toBe(true);
  });
  it("checks the append workload", async () => {
    expect(await dledger("check", "--workload", "append", appendLog)).toBe(0);
    expect(out.at(-1)).toMatch(/^valid: 1 appends/);
    expect(await dledger("check", "--model", "append", appendLog)).toBe(0);
  });
  it("passes --init to every key", async () => {
    const h = file("init.jsonl", { process: 0, type: "invoke", f: "read" }, { process: 0, type: "ok", f: "read", value: 0 });
    expect(await dledger("check", "--model", "register", h)).toBe(1);
    expect(await dledger("check", "--model", "register", "--init", "0", h)).toBe(0);
  });
  const usage: [string, string[]][] = [
    ["no model", ["check", good]],
    ["an unknown model", ["check", "--model", "set", good]],
    ["a bad --init", ["check", "--model", "register", "--init", "{", good]],
    ["a non-scalar --init", ["check", "--model", "register", "--init", "[1]", good]],
    ["a bad --time-limit", ["check", "--model", "register", "--time-limit", "-1", good]],
    ["an unknown option", ["check", "--model", "register", "--bogus", good]],
    ["no file", ["check", "--model", "register"]],
  ];
  for (const [name, args] of usage) {
    it(`exits 3 for ${name}`, async () => {
      expect(await dledger(...args)).toBe(3);
    });
  }
});

describe("worstExitCode", () => {
  it("ranks a violation above bad input above unknown above ok", () => {
    expect(worstExitCode([])).toBe(ExitCode.ok);
    expect(worstExitCode([0, 2, 0])).toBe(2);
    expect(worstExitCode([2, 3])).toBe(3);
    expect(worstExitCode([3, 1, 2])).toBe(1);
  });
});
