import { describe, expect, it } from "vitest";
import { type AppendCheckResult, checkAppends } from "./append_checker.js";
import { parseHistory } from "./history.js";

const lines = (...events: object[]): string => events.map((e) => JSON.stringify(e)).join("\n");
const inv = (process: number, value: string): object => ({ process, type: "invoke", f: "append", value });
const ok = (process: number, index: number): object => ({ process, type: "ok", f: "append", index });
const done = (process: number, type: "info" | "fail"): object => ({ process, type, f: "append" });
const read = (process: number, log: unknown[]): object[] => [
  { process, type: "invoke", f: "read" },
  { process, type: "ok", f: "read", value: log },
];

const check = (...events: object[]): AppendCheckResult => checkAppends(parseHistory(lines(...events)));
const kinds = (r: AppendCheckResult): string[] => r.anomalies.map((a) => a.kind);

/** a, b acknowledged at 1, 2; c indeterminate; d failed; then a final read. */
const base = [inv(0, "a"), ok(0, 1), inv(1, "b"), inv(2, "c"), ok(1, 2), done(2, "info"), inv(3, "d"), done(3, "fail")];

describe("checkAppends", () => {
  it("passes a log with every acknowledged append at its index; an info append may be present", () => {
    const with_c = check(...base, ...read(9, ["a", "b", "c"]));
    expect(with_c.verdict).toBe("valid");
    expect(check(...base, ...read(9, ["a", "b"])).verdict).toBe("valid");
    expect(with_c.stats).toEqual({ appends: 4, ok: 2, info: 1, fail: 1, reads: 1, lastReadEntries: 3, unverified: 0 });
  });
  it("accepts {index, value} pairs with gaps (no-ops hold the other indexes)", () => {
    const r = check(inv(0, "a"), ok(0, 3), inv(0, "b"), ok(0, 7), ...read(9, [{ index: 3, value: "a" }, { index: 7, value: "b" }]));
    expect(r.verdict).toBe("valid");
  });

  it("duplicate append: a payload present twice", () => {
    const r = check(...base, ...read(9, ["a", "b", "a"]));
    expect(r.verdict).toBe("invalid");
    expect(kinds(r)).toEqual(["duplicated"]);
    expect(r.anomalies[0]?.detail).toMatch(/holds "a" at indexes 1 and 3/);
  });
  it("lost: an acknowledged append missing from a later read", () => {
    const r = check(...base, ...read(9, ["a"]));
    expect(kinds(r)).toEqual(["lost"]);
    expect(r.anomalies[0]?.payload).toBe("b");
  });
  it("does not call an append lost when it was acknowledged after the read began", () => {
    const r = check(inv(0, "a"), { process: 9, type: "invoke", f: "read" }, ok(0, 1), { process: 9, type: "ok", f: "read", value: [] });
    expect(r.verdict).toBe("valid");
    expect(r.stats.unverified).toBe(1);
  });
  it("unexpected: a failed append, or a payload never appended", () => {
    expect(kinds(check(...base, ...read(9, ["a", "b", "d"])))).toEqual(["unexpected"]);
    expect(kinds(check(...base, ...read(9, ["a", "b", "zz"])))).toEqual(["unexpected"]);
  });
  it("misplaced: an acknowledged payload at another index", () => {
    expect(kinds(check(...base, ...read(9, ["b", "a"])))).toEqual(["misplaced", "misplaced"]);
  });
  it("divergent: two reads disagree on an index", () => {
    const r = check(...base, ...read(8, ["a", "b", "c"]), ...read(9, [{ index: 1, value: "a" }, { index: 2, value: "b" }, { index: 3, value: "x" }]));
    expect(kinds(r)).toEqual(["unexpected", "divergent"]);
  });
  it("index conflict: two appends acknowledged at one index", () => {
    expect(kinds(check(inv(0, "a"), ok(0, 1), inv(1, "b"), ok(1, 1), ...read(9, ["a"])))).toContain("index_conflict");
  });
  it("reordered: a later append got a lower index", () => {
    const r = check(inv(0, "a"), ok(0, 2), inv(1, "b"), ok(1, 1), ...read(9, [{ index: 1, value: "b" }, { index: 2, value: "a" }]));
    expect(kinds(r)).toEqual(["reordered"]);
    expect(r.anomalies[0]?.detail).toMatch(/completed before append "b" was invoked/);
  });
  it("concurrent appends may take either order", () => {
    const r = check(inv(0, "a"), inv(1, "b"), ok(0, 2), ok(1, 1), ...read(9, ["b", "a"]));
    expect(r.verdict).toBe("valid");
  });
  it("without an ok read the verdict is unknown, never valid", () => {
    const r = check(inv(0, "a"), ok(0, 1), { process: 9, type: "invoke", f: "read" }, { process: 9, type: "info", f: "read" });
    expect(r.verdict).toBe("unknown");
    expect(r.unknownReason).toMatch(/no ok read/);
  });

  const bad: [string, object[], RegExp][] = [
    ["another f", [{ process: 0, type: "invoke", f: "write", value: 1 }], /^line 1: the append workload has only/],
    ["a repeated payload", [inv(0, "a"), ok(0, 1), inv(0, "a")], /^line 3: payload "a" was already appended on line 1/],
    ["an ok append without index", [inv(0, "a"), { process: 0, type: "ok", f: "append" }], /^line 2: an ok append must carry the "index"/],
    ["a read that is not an array", read(0, "ab" as unknown as unknown[]), /^line 2: an ok read's value must be an array/],
    ["mixed read entries", read(0, [{ index: 1, value: "a" }, "b"]), /^line 2: read entry 1 must be/],
    ["decreasing read indexes", read(0, [{ index: 2, value: "a" }, { index: 1, value: "b" }]), /^line 2: read entry 1 has index 1 after index 2/],
  ];
  for (const [name, events, message] of bad) {
    it(`rejects ${name}`, () => {
      expect(() => check(...events)).toThrow(message);
    });
  }
});
