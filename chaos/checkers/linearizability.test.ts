import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { bruteForceLinearizable, bruteForceOpsMax } from "./brute_force.js";
import { HistoryError, parseHistory } from "./history.js";
import { type CheckOptions, type CheckResult, checkLinearizable } from "./linearizability.js";
import type { ModelName, Scalar } from "./models.js";

const lines = (...events: object[]): string => events.map((e) => JSON.stringify(e)).join("\n");
const inv = (process: number, f: string, value?: unknown, key?: unknown): object => ({ process, type: "invoke", f, value, key });
const ok = (process: number, f: string, value?: unknown, key?: unknown): object => ({ process, type: "ok", f, value, key });
const info = (process: number, f: string): object => ({ process, type: "info", f });
const fail = (process: number, f: string): object => ({ process, type: "fail", f });

function check(text: string, model: ModelName = "cas-register", init: Scalar = null, extra: Partial<CheckOptions> = {}): CheckResult {
  return checkLinearizable(parseHistory(text), { model, init, timeLimitMs: Number.POSITIVE_INFINITY, nowMs: () => 0, ...extra });
}

describe("WGL linearizability: small cases", () => {
  const cases: [string, ModelName, string, string][] = [
    ["empty history", "register", "", "linearizable"],
    ["read of the initial value", "register", lines(inv(0, "read"), ok(0, "read", null)), "linearizable"],
    ["read of a value never written", "register", lines(inv(0, "read"), ok(0, "read", 3)), "not-linearizable"],
    ["read concurrent with a write may see it", "register", lines(inv(0, "write", 1), inv(1, "read"), ok(1, "read", 1), ok(0, "write", 1)), "linearizable"],
    ["read concurrent with a write may miss it", "register", lines(inv(0, "write", 1), inv(1, "read"), ok(1, "read", null), ok(0, "write", 1)), "linearizable"],
    [
      "a failed write did not happen",
      "register",
      lines(inv(0, "write", 1), fail(0, "write"), inv(1, "read"), ok(1, "read", 1)),
      "not-linearizable",
    ],
    ["an info write may take effect later", "register", lines(inv(0, "write", 1), info(0, "write"), inv(1, "read"), ok(1, "read", 1)), "linearizable"],
    [
      "an info write may never take effect",
      "register",
      lines(inv(0, "write", 1), info(0, "write"), inv(1, "read"), ok(1, "read", null)),
      "linearizable",
    ],
    [
      "an info write cannot take effect before its invoke",
      "register",
      lines(inv(1, "read"), ok(1, "read", 1), inv(0, "write", 1), info(0, "write")),
      "not-linearizable",
    ],
    ["an invoke that never completed is info", "register", lines(inv(0, "write", 1), inv(1, "read"), ok(1, "read", 1)), "linearizable"],
    ["cas from the held value", "cas-register", lines(inv(0, "write", 1), ok(0, "write", 1), inv(0, "cas", [1, 2]), ok(0, "cas"), inv(0, "read"), ok(0, "read", 2)), "linearizable"],
    ["cas from another value", "cas-register", lines(inv(0, "cas", [1, 2]), ok(0, "cas")), "not-linearizable"],
    ["keys are independent", "kv", lines(inv(0, "put", "x", "a"), ok(0, "put", "x", "a"), inv(0, "get", null, "b"), ok(0, "get", null, "b")), "linearizable"],
    ["key 1 is not key \"1\"", "kv", lines(inv(0, "put", "x", 1), ok(0, "put", "x", 1), inv(0, "get", null, "1"), ok(0, "get", "x", "1")), "not-linearizable"],
    [
      "appends concatenate in linearization order",
      "kv",
      lines(inv(0, "append", "a", "k"), inv(1, "append", "b", "k"), ok(1, "append"), ok(0, "append"), inv(2, "get", null, "k"), ok(2, "get", "ba", "k")),
      "linearizable",
    ],
    [
      "a get cannot see appends out of real-time order",
      "kv",
      lines(inv(0, "append", "a", "k"), ok(0, "append"), inv(1, "append", "b", "k"), ok(1, "append"), inv(2, "get", null, "k"), ok(2, "get", "ba", "k")),
      "not-linearizable",
    ],
  ];
  for (const [name, model, text, verdict] of cases) {
    it(`${name}: ${verdict}`, () => {
      expect(check(text, model).verdict).toBe(verdict);
    });
  }

  it("starts every key at --init", () => {
    const text = lines(inv(0, "append", "b", "k"), ok(0, "append"), inv(0, "get", null, "k"), ok(0, "get", "ab", "k"));
    expect(check(text, "kv", "a").verdict).toBe("linearizable");
    expect(check(text, "kv", null).verdict).toBe("not-linearizable");
  });

  it("rejects operations the model does not have, naming the line", () => {
    expect(() => check(lines(inv(0, "cas", [1, 2])), "register")).toThrow(/^line 1: model register has no "cas"/);
    expect(() => check(lines(inv(0, "cas", 5)), "cas-register")).toThrow(HistoryError);
    expect(() => check(lines(inv(0, "write", { a: 1 })), "register")).toThrow(/^line 1: the value written must be a string/);
    expect(() => check(lines(inv(0, "append", 5, "k")), "kv")).toThrow(/append needs a string/);
  });
});

describe("WGL linearizability: known-bad histories and their linearizable variants", () => {
  // Each pair differs in one event; the bad one is what a broken replica group produces.
  const staleRead = (value: number): string =>
    lines(inv(0, "write", 1), ok(0, "write"), inv(1, "write", 2), ok(1, "write"), inv(2, "read"), ok(2, "read", value));
  const lostWrite = (value: number | null): string =>
    lines(inv(0, "write", 1), ok(0, "write"), inv(1, "read"), ok(1, "read", value), inv(1, "read"), ok(1, "read", value));
  const casTwice = (second: "ok" | "fail"): string =>
    lines(inv(0, "write", 0), ok(0, "write"), inv(1, "cas", [0, 1]), ok(1, "cas"), inv(2, "cas", [0, 1]), { process: 2, type: second, f: "cas" });

  it("stale read: a read after two acknowledged writes returns the older one", () => {
    const bad = check(staleRead(1), "register");
    expect(bad.verdict).toBe("not-linearizable");
    expect(check(staleRead(2), "register").verdict).toBe("linearizable");
  });
  it("lost write: an acknowledged write is not visible to a later read", () => {
    expect(check(lostWrite(null), "register").verdict).toBe("not-linearizable");
    expect(check(lostWrite(1), "register").verdict).toBe("linearizable");
  });
  it("cas that succeeded twice from the same value", () => {
    expect(check(casTwice("ok")).verdict).toBe("not-linearizable");
    expect(check(casTwice("fail")).verdict).toBe("linearizable");
  });

  it("reports the operation that could not be linearized and the states tried", () => {
    const result = check(staleRead(1), "register");
    if (result.verdict !== "not-linearizable") throw new Error("expected a violation");
    expect(result.failure.operation.invokeLine).toBe(5);
    expect(result.failure.operation.f).toBe("read");
    expect(result.failure.operation.resultValue).toBe(1);
    expect(result.failure.statesTried).toEqual([2]);
    expect(result.failure.linearizedBefore).toBe(2);
    expect(result.stats.statesExplored).toBeGreaterThan(0);
  });
});

describe("WGL linearizability: time limit", () => {
  /** 14 concurrent indeterminate appends and a read of a value they cannot make: every order of every subset is a state. */
  function explosive(): string {
    const events: object[] = [];
    for (let p = 0; p < 14; p++) events.push(inv(p, "append", String.fromCharCode(97 + p), "k"));
    for (let p = 0; p < 14; p++) events.push(info(p, "append"));
    // Every append's text is in the value read (so none is pruned as unobserved), yet no order makes it.
    events.push(inv(100, "get", null, "k"), ok(100, "get", "abcdefghijklmn!", "k"));
    return lines(...events);
  }
  it("answers unknown when the injected clock passes the limit, instead of searching on", () => {
    let now = 0;
    const result = check(explosive(), "kv", null, { timeLimitMs: 5, nowMs: () => now++ });
    expect(result.verdict).toBe("unknown");
    if (result.verdict === "unknown") expect(result.reason).toBe("time_limit");
    expect(now).toBeGreaterThan(5); // the clock was read during the search, not only at its start
  });
  it("answers unknown when the memo budget is spent", () => {
    const result = check(explosive(), "kv", null, { memoBytesMax: 1 });
    expect(result.verdict).toBe("unknown");
    if (result.verdict === "unknown") expect(result.reason).toBe("memo_limit");
    expect(result.stats.statesExplored).toBeGreaterThan(1000);
  });
});

describe("WGL linearizability: pruning unobserved indeterminate writes", () => {
  it("keeps the verdict while sparing the search every subset of crashed writes", () => {
    // 20 crashed writes of values nobody reads, then a read of a value one of them did write.
    const events: object[] = [];
    for (let p = 0; p < 20; p++) events.push(inv(p, "write", p));
    for (let p = 0; p < 20; p++) events.push(info(p, "write"));
    events.push(inv(100, "read"), ok(100, "read", 7), inv(100, "read"), ok(100, "read", 99));
    const result = check(lines(...events), "register");
    expect(result.verdict).toBe("not-linearizable");
    expect(result.stats.statesExplored).toBeLessThan(10);
    expect(check(lines(...events.slice(0, -2)), "register").verdict).toBe("linearizable");
  });
});

/** A random small history: actions on up to 3 client threads, with small value domains so both verdicts occur. */
function historyArbitrary(model: ModelName): fc.Arbitrary<string> {
  // kv leans on appends and reads of one key: an indeterminate append seen only inside a longer
  // value is the case that the pruning of unobserved operations must get right.
  const fs = model === "register" ? ["read", "write"] : model === "cas-register" ? ["read", "write", "cas"] : ["get", "get", "put", "append", "append", "cas"];
  const value = model === "kv" ? fc.constantFrom<Scalar>(null, "a", "b", "ab", "ba") : fc.constantFrom<Scalar>(null, 0, 1, 2);
  const action = fc.record({
    thread: fc.integer({ min: 0, max: 2 }),
    f: fc.constantFrom(...fs),
    a: value,
    b: value,
    suffix: fc.constantFrom("a", "b"),
    key: fc.constantFrom(0, 0, 0, 1),
    outcome: fc.constantFrom("ok", "ok", "ok", "info", "fail"),
  });
  return fc.array(action, { maxLength: 2 * (bruteForceOpsMax - 1) }).map((actions) => {
    const events: object[] = [];
    const pending = new Map<number, { process: number; f: string }>();
    const generation = [0, 0, 0];
    let invokes = 0;
    for (const x of actions) {
      const process = x.thread + 3 * (generation[x.thread] as number);
      const open = pending.get(x.thread);
      if (open === undefined) {
        if (invokes === bruteForceOpsMax - 1) continue;
        invokes++;
        const isRead = x.f === "read" || x.f === "get";
        const v = x.f === "cas" ? [x.a, x.b] : x.f === "append" ? x.suffix : isRead ? null : x.b;
        events.push({ process, type: "invoke", f: x.f, key: model === "kv" ? x.key : undefined, value: v });
        pending.set(x.thread, { process, f: x.f });
        continue;
      }
      pending.delete(x.thread);
      const isRead = open.f === "read" || open.f === "get";
      events.push({ process: open.process, type: x.outcome, f: open.f, value: isRead && x.outcome === "ok" ? x.a : undefined });
      if (x.outcome === "info") generation[x.thread] = (generation[x.thread] as number) + 1;
    }
    return lines(...events);
  });
}

describe("WGL agrees with the brute-force definition", () => {
  for (const model of ["register", "cas-register", "kv"] as const) {
    it(`on random small ${model} histories`, () => {
      const seen = { linearizable: 0, notLinearizable: 0 };
      fc.assert(
        fc.property(historyArbitrary(model), (text) => {
          const history = parseHistory(text);
          const expected = bruteForceLinearizable(history, model, null);
          const got = checkLinearizable(history, { model, init: null, timeLimitMs: Number.POSITIVE_INFINITY, nowMs: () => 0 });
          if (expected) seen.linearizable++;
          else seen.notLinearizable++;
          expect(got.verdict).toBe(expected ? "linearizable" : "not-linearizable");
        }),
        { numRuns: model === "kv" ? 1500 : 600, seed: 20240501 },
      );
      // The property is only meaningful if both answers occurred.
      expect(seen.linearizable).toBeGreaterThan(50);
      expect(seen.notLinearizable).toBeGreaterThan(50);
    });
  }
});
