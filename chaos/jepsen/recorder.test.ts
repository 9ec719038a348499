import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseHistory } from "../checkers/history.js";
import { measureFailover } from "../checkers/failover.js";
import { JsonlHistoryRecorder } from "./recorder.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempPath(): string {
  const d = mkdtempSync(join(tmpdir(), "dledger-recorder-"));
  dirs.push(d);
  return join(d, "history.jsonl");
}

/** A clock the test moves by hand (ns). */
function manualClock(): { now: bigint; fn: () => bigint } {
  const c = { now: 1_000n, fn: () => c.now };
  return c;
}

describe("JsonlHistoryRecorder", () => {
  it("writes events in call order, and parseHistory reads back the same operations", () => {
    const path = tempPath();
    const clock = manualClock();
    const r = JsonlHistoryRecorder.open(path, { clockNs: clock.fn });
    r.client({ process: 0, type: "invoke", f: "write", key: "k1", value: 3 });
    clock.now += 5n;
    r.client({ process: 1, type: "invoke", f: "cas", key: "k1", value: [3, 4] });
    r.nemesis({ f: "start", value: { fault: "kill", nodes: ["n2"] } });
    clock.now += 10n;
    r.client({ process: 0, type: "ok", f: "write", key: "k1", value: 3 });
    r.client({ process: 1, type: "info", f: "cas", key: "k1", value: [3, 4], error: "timeout" });
    r.client({ process: 2, type: "invoke", f: "read", key: "k1" });
    r.client({ process: 2, type: "ok", f: "read", key: "k1", value: 3 });
    r.nemesis({ f: "stop", value: { fault: "kill", nodes: ["n2"], detail: { restarted: true } } });
    r.close();

    const text = readFileSync(path, "utf8");
    const lines = text.trim().split("\n");
    expect(lines).toHaveLength(8);
    expect(JSON.parse(lines[0] as string)).toEqual({ process: 0, type: "invoke", f: "write", key: "k1", value: 3, time: 0 });
    expect(JSON.parse(lines[2] as string)).toEqual({ process: "nemesis", type: "info", f: "start", value: { fault: "kill", nodes: ["n2"] }, time: 5 });
    const h = parseHistory(text);
    expect(h.operations.map((o) => [o.process, o.f, o.outcome])).toEqual([
      [0, "write", "ok"],
      [1, "cas", "info"],
      [2, "read", "ok"],
    ]);
    const times = h.events.map((e) => e.timeNs ?? -1);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(h.nemesis).toHaveLength(2);
    const failover = measureFailover(h);
    expect(failover.intervals[0]?.fault).toBe("kill");
    expect(failover.intervals[0]?.failoverNs).toBe(10);

    expect(r.counts).toEqual({ invoked: 3, ok: 2, fail: 0, info: 1 });
    expect(r.operations().map((o) => [o.f, o.outcome, o.completeNs - o.invokeNs])).toEqual([
      ["write", "ok", 15],
      ["cas", "info", 10],
      ["read", "ok", 0],
    ]);
    expect(r.faultsStarted()).toBe(1);
    expect(r.currentFault()).toBeNull();
  });

  it("keeps the time monotonic even if the injected clock steps back", () => {
    const path = tempPath();
    const clock = manualClock();
    const r = JsonlHistoryRecorder.open(path, { clockNs: clock.fn });
    clock.now += 100n;
    r.client({ process: 0, type: "invoke", f: "read", key: 1 });
    clock.now -= 50n;
    r.client({ process: 0, type: "ok", f: "read", key: 1, value: null });
    r.close();
    const h = parseHistory(readFileSync(path, "utf8"));
    expect(h.events.map((e) => e.timeNs)).toEqual([100, 100]);
  });

  it("flushes buffered lines before close, and close is idempotent", () => {
    const path = tempPath();
    const r = JsonlHistoryRecorder.open(path, { flushBytesMax: 1 << 20 });
    r.client({ process: 0, type: "invoke", f: "append", value: 1 });
    expect(readFileSync(path, "utf8")).toBe("");
    r.flush();
    expect(readFileSync(path, "utf8").trim().split("\n")).toHaveLength(1);
    r.client({ process: 0, type: "ok", f: "append", value: 1, index: 7 });
    r.close();
    r.close();
    const h = parseHistory(readFileSync(path, "utf8"));
    expect(h.operations[0]?.index).toBe(7);
    expect(() => r.client({ process: 1, type: "invoke", f: "append", value: 2 })).toThrow(/closed/);
  });

  it("down-samples the kept operations evenly once operationsMax is reached, counts stay exact", () => {
    const path = tempPath();
    const r = JsonlHistoryRecorder.open(path, { operationsMax: 10 });
    for (let i = 0; i < 100; i++) {
      r.client({ process: i, type: "invoke", f: "write", key: "k", value: i });
      r.client({ process: i, type: "ok", f: "write", key: "k", value: i });
    }
    r.close();
    expect(r.counts.ok).toBe(100);
    const kept = r.operations();
    expect(kept.length).toBeLessThan(10);
    expect(kept.length).toBeGreaterThanOrEqual(4);
    // Spread over the run, not only its start.
    expect(kept.at(-1)?.process).toBeGreaterThan(80);
    expect(parseHistory(readFileSync(path, "utf8")).operations).toHaveLength(100);
  });

  it("reports the fault in place for the progress line", () => {
    const r = JsonlHistoryRecorder.open(tempPath());
    r.nemesis({ f: "start", value: { fault: "partition-halves", nodes: ["n1"] } });
    r.nemesis({ f: "start", value: { fault: "pause", nodes: ["n3"] } });
    expect(r.currentFault()?.fault).toBe("pause");
    r.nemesis({ f: "stop", value: { fault: "pause", nodes: ["n3"] } });
    expect(r.currentFault()?.fault).toBe("partition-halves");
    r.close();
  });
});
