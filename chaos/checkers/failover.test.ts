import { describe, expect, it } from "vitest";
import { measureFailover, median } from "./failover.js";
import { parseHistory } from "./history.js";

const lines = (...events: object[]): string => events.map((e) => JSON.stringify(e)).join("\n");
const ms = 1_000_000;
const op = (process: number, type: string, timeMs: number): object => ({ process, type, f: "write", value: 1, time: timeMs * ms });
const nem = (type: string, f: string, value: unknown, timeMs: number): object => ({ process: "nemesis", type, f, value, time: timeMs * ms });

describe("measureFailover", () => {
  it("counts only oks of operations invoked after the fault: a late reply from the old leader is not recovery", () => {
    const h = parseHistory(
      lines(
        op(0, "invoke", 0),
        nem("info", "start", "isolate-leader", 10),
        op(0, "ok", 11), // committed before the partition; its reply arrives just after
        op(1, "invoke", 12),
        op(1, "ok", 480), // the first operation invoked after the fault to succeed
        nem("info", "stop", "isolate-leader", 900),
      ),
    );
    const r = measureFailover(h);
    expect(r.intervals.map((iv) => [iv.firstOkLine, iv.failoverNs === null ? null : iv.failoverNs / ms])).toEqual([[5, 470]]);
  });

  it("measures from the fault being in place to the first ok after it", () => {
    const h = parseHistory(
      lines(
        op(0, "invoke", 0),
        op(0, "ok", 5), // before any fault: not counted
        nem("invoke", "start", null, 100),
        op(1, "invoke", 101),
        op(1, "ok", 102), // before the nemesis reported the fault in place: not counted
        nem("info", "start", "isolate-leader", 110),
        op(2, "invoke", 111),
        op(2, "info", 400),
        op(3, "invoke", 400),
        op(3, "ok", 650),
        nem("invoke", "stop", "isolate-leader", 1000),
        nem("info", "stop", "isolate-leader", 1001),
        nem("info", "start", "kill", 2000),
        nem("info", "stop", "kill", 2100),
        op(4, "invoke", 2101),
        op(4, "ok", 2300),
        nem("info", "start-partition", null, 3000),
      ),
    );
    const r = measureFailover(h);
    expect(r.intervals.map((iv) => [iv.fault, iv.startLine, iv.firstOkLine, iv.failoverNs === null ? null : iv.failoverNs / ms, iv.okAfterStop])).toEqual([
      ["isolate-leader", 6, 10, 540, false],
      ["kill", 13, 16, 300, true],
      ["partition", 17, null, null, false],
    ]);
    expect(r.medianNs).toBe(420 * ms);
    expect(r.maxNs).toBe(540 * ms);
    expect(r.unrecovered).toBe(1);
    expect(measureFailover(h, ["kill"]).intervals.map((iv) => iv.fault)).toEqual(["kill"]);
  });

  it("counts intervals without times as untimed, not as zero", () => {
    const h = parseHistory(lines({ process: "nemesis", type: "info", f: "start", value: "pause" }, { process: 0, type: "invoke", f: "read" }, { process: 0, type: "ok", f: "read", value: 1 }));
    const r = measureFailover(h);
    expect(r.untimed).toBe(1);
    expect(r.medianNs).toBeNull();
  });

  it("takes the median of an even count as the mean of the middle two", () => {
    expect(median([1, 2, 3, 10])).toBe(2.5);
    expect(median([4])).toBe(4);
    expect(median([])).toBeNull();
  });
});
