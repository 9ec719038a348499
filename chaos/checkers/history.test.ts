import { describe, expect, it } from "vitest";
import { HistoryError, jsonEqual, parseHistory } from "./history.js";

const lines = (...events: object[]): string => events.map((e) => JSON.stringify(e)).join("\n");

function errorOf(text: string): HistoryError {
  try {
    parseHistory(text);
  } catch (err) {
    expect(err).toBeInstanceOf(HistoryError);
    return err as HistoryError;
  }
  throw new Error("expected a HistoryError");
}

describe("parseHistory", () => {
  it("pairs each invoke with the next completion of its process, in invoke order", () => {
    const h = parseHistory(
      lines(
        { process: 0, type: "invoke", f: "write", value: 1, time: 10 },
        { process: 1, type: "invoke", f: "read", key: "k", extra: "ignored" },
        { process: "nemesis", type: "info", f: "start", value: "partition" },
        { process: 1, type: "ok", f: "read", key: "k", value: null },
        { process: 0, type: "info", f: "write", value: 1, error: "timeout" },
        { process: 2, type: "invoke", f: "cas", value: [1, 2] },
      ) + "\n\n",
    );
    expect(h.events).toHaveLength(6);
    expect(h.nemesis.map((e) => [e.line, e.f, e.value])).toEqual([[3, "start", "partition"]]);
    expect(h.operations.map((o) => [o.id, o.process, o.f, o.outcome, o.invokeLine, o.completeLine])).toEqual([
      [0, 0, "write", "info", 1, 5],
      [1, 1, "read", "ok", 2, 4],
      [2, 2, "cas", "info", 6, null],
    ]);
    expect(h.operations[0]?.invokeTimeNs).toBe(10);
    expect(h.operations[0]?.error).toBe("timeout");
    expect(h.operations[1]?.key).toBe("k");
    expect(h.operations[1]?.resultValue).toBeNull();
  });

  it("keeps the index of an ok append", () => {
    const h = parseHistory(lines({ process: 3, type: "invoke", f: "append", value: "a" }, { process: 3, type: "ok", f: "append", value: "a", index: 7 }));
    expect(h.operations[0]?.index).toBe(7);
  });

  const bad: [string, string, RegExp][] = [
    ["bad JSON", `{"process":0,"type":"invoke","f":"read"}\n{oops`, /^line 2: not valid JSON/],
    ["not an object", `[1,2]`, /^line 1: an event must be a JSON object/],
    ["bad type", lines({ process: 0, type: "done", f: "read" }), /^line 1: "type" must be one of/],
    ["bad f", lines({ process: 0, type: "invoke", f: "delete" }), /^line 1: "f" must be one of/],
    ["negative process", lines({ process: -1, type: "invoke", f: "read" }), /^line 1: "process" must be/],
    ["fractional process", lines({ process: 1.5, type: "invoke", f: "read" }), /^line 1: "process" must be/],
    ["bad time", lines({ process: 0, type: "invoke", f: "read", time: "soon" }), /^line 1: "time" must be/],
    ["bad key", lines({ process: 0, type: "invoke", f: "read", key: [1] }), /^line 1: "key" must be/],
    ["completion without invoke", lines({ process: 0, type: "ok", f: "read", value: 1 }), /^line 1: "ok" for process 0 without a pending invoke/],
    [
      "two invokes in a row",
      lines({ process: 0, type: "invoke", f: "read" }, { process: 0, type: "invoke", f: "read" }),
      /^line 2: process 0 invoked again while its invoke on line 1 is still pending/,
    ],
    [
      "process used after info",
      lines({ process: 4, type: "invoke", f: "write", value: 1 }, { process: 4, type: "info", f: "write" }, { process: 4, type: "invoke", f: "read" }),
      /^line 3: process 4 was retired by the info on line 2/,
    ],
    [
      "completion of another f",
      lines({ process: 0, type: "invoke", f: "write", value: 1 }, { process: 0, type: "ok", f: "read", value: 1 }),
      /^line 2: completion has f "read" but the invoke on line 1 has "write"/,
    ],
    ["ok read without a value", lines({ process: 0, type: "invoke", f: "read" }, { process: 0, type: "ok", f: "read" }), /^line 2: an ok read must carry/],
    [
      "ok write with another value",
      lines({ process: 0, type: "invoke", f: "write", value: 1 }, { process: 0, type: "ok", f: "write", value: 2 }),
      /^line 2: ok write carries value 2 but its invoke on line 1 has 1/,
    ],
    ["bad index", lines({ process: 0, type: "invoke", f: "append", value: "a" }, { process: 0, type: "ok", f: "append", index: -3 }), /^line 2: "index"/],
  ];
  for (const [name, text, message] of bad) {
    it(`rejects ${name}, naming the line`, () => {
      const err = errorOf(text);
      expect(err.message).toMatch(message);
      expect(err.name).toBe("HistoryError");
      expect(err.line).toBe(Number(/^line (\d+)/.exec(err.message)?.[1]));
    });
  }

  it("keeps the JSON parse error as the cause", () => {
    expect(errorOf("{").cause).toBeInstanceOf(SyntaxError);
  });

  it("compares JSON values structurally", () => {
    expect(jsonEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] })).toBe(true);
    expect(jsonEqual({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(true);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual({ a: 1 }, { a: 1, b: 1 })).toBe(false);
    expect(jsonEqual(1, "1")).toBe(false);
    expect(jsonEqual(null, undefined)).toBe(false);
  });
});
