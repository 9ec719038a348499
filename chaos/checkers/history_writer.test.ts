import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseHistory } from "./history.js";
import { encodeEvent } from "./history_writer.js";

describe("encodeEvent", () => {
  it("writes what parseHistory reads back, field for field", () => {
    const scalar = fc.oneof(fc.constant(null), fc.string(), fc.integer(), fc.boolean());
    fc.assert(
      fc.property(
        fc.record({
          f: fc.constantFrom("read", "write", "cas", "get", "put", "append" as const),
          key: fc.option(fc.oneof(fc.string(), fc.integer()), { nil: undefined }),
          value: fc.option(scalar, { nil: undefined }),
          result: scalar,
          index: fc.option(fc.nat(), { nil: undefined }),
          error: fc.option(fc.string(), { nil: undefined }),
          t0: fc.nat(),
        }),
        (x) => {
          const isRead = x.f === "read" || x.f === "get";
          const ok = isRead ? x.result : x.value;
          const text = [
            encodeEvent({ process: 7, type: "invoke", f: x.f, ...(x.key === undefined ? {} : { key: x.key }), ...(x.value === undefined ? {} : { value: x.value }), timeNs: x.t0 }),
            encodeEvent({ process: "nemesis", type: "info", f: "start", value: "kill", timeNs: x.t0 + 1 }),
            encodeEvent({ process: 7, type: "ok", f: x.f, ...(ok === undefined ? {} : { value: ok }), ...(x.index === undefined ? {} : { index: x.index }), ...(x.error === undefined ? {} : { error: x.error }), timeNs: x.t0 + 2 }),
          ].join("\n");
          const h = parseHistory(text);
          const op = h.operations[0];
          expect(op?.f).toBe(x.f);
          expect(op?.key).toBe(x.key ?? null);
          expect(op?.invokeValue).toBe(x.value);
          if (isRead) expect(op?.resultValue).toBe(x.result);
          expect(op?.index).toBe(x.index ?? null);
          expect(op?.error).toBe(x.error);
          expect([op?.invokeTimeNs, op?.completeTimeNs]).toEqual([x.t0, x.t0 + 2]);
          expect(h.nemesis[0]?.value).toBe("kill");
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });
});
