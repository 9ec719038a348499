/**
 * fast-check properties against naive references: the commit quorum, the in-flight window,
 * and the log's unstable/stable split.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryLogStore } from "./memory_log_store.js";
import { RaftLog } from "./log.js";
import { Inflights } from "./progress.js";
import { quorumIndex, tallyVotes } from "./quorum.js";
import type { Entry } from "./types.js";

describe("quorumIndex", () => {
  it("is the largest index that a strict majority holds (brute force)", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50), { minLength: 1, maxLength: 7 }), (matches) => {
        let brute = 0;
        for (let candidate = 0; candidate <= 50; candidate++) {
          const holders = matches.filter((m) => m >= candidate).length;
          if (holders * 2 > matches.length) brute = candidate;
        }
        expect(quorumIndex(matches)).toBe(brute);
      }),
    );
  });

  it("tallyVotes decides only when the outcome cannot change", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 7 }), fc.array(fc.boolean(), { maxLength: 7 }), (voters, raw) => {
        const votes = new Map(raw.slice(0, voters).map((g, i) => [`n${i}`, g] as const));
        const granted = [...votes.values()].filter((g) => g).length;
        const outcome = tallyVotes(votes, voters);
        const canStillWin = granted + (voters - votes.size) > voters / 2;
        if (granted > voters / 2) expect(outcome).toBe("won");
        else if (!canStillWin) expect(outcome).toBe("lost");
        else expect(outcome).toBe("pending");
      }),
    );
  });
});

describe("Inflights", () => {
  type Op = { kind: "add"; bytes: number } | { kind: "free"; back: number } | { kind: "reset" };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("add" as const), bytes: fc.nat(100) }),
    fc.record({ kind: fc.constant("free" as const), back: fc.nat(5) }),
    fc.record({ kind: fc.constant("reset" as const) }),
  );

  it("matches a naive list on count, bytes and fullness", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 300 }), fc.array(op, { maxLength: 200 }), (rpcsMax, bytesMax, ops) => {
        const inf = new Inflights(rpcsMax, bytesMax);
        let model: { last: number; bytes: number }[] = [];
        let next = 1;
        for (const o of ops) {
          if (o.kind === "add") {
            const full = model.length >= rpcsMax || model.reduce((s, x) => s + x.bytes, 0) >= bytesMax;
            expect(inf.full()).toBe(full);
            if (full) continue;
            inf.add(next, o.bytes);
            model.push({ last: next, bytes: o.bytes });
            next += 1 + (o.bytes % 3);
          } else if (o.kind === "free") {
            const to = next - 1 - o.back;
            inf.freeTo(to);
            model = model.filter((x) => x.last > to);
          } else {
            inf.reset();
            model = [];
          }
          expect(inf.count()).toBe(model.length);
          expect(inf.bytes).toBe(model.reduce((s, x) => s + x.bytes, 0));
          inf.checkInvariants();
        }
      }),
    );
  });
});

describe("RaftLog unstable/stable split", () => {
  type Op = { kind: "append"; at: number; n: number; term: number } | { kind: "persist" } | { kind: "crash" };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 5, arbitrary: fc.record({ kind: fc.constant("append" as const), at: fc.nat(20), n: fc.integer({ min: 1, max: 4 }), term: fc.integer({ min: 1, max: 3 }) }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("persist" as const)}) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("crash" as const) }) },
  );

  it("reads the same entries as a plain array, and persisting moves exactly the unstable tail", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const store = new MemoryLogStore({ members: ["n1"] });
        let log = new RaftLog(store, 0);
        let model: Entry[] = [];
        let durable: Entry[] = [];
        let termFloor = 1;
        for (const o of ops) {
          if (o.kind === "append") {
            const at = Math.min(o.at, model.length) + 1;
            const term = Math.max(termFloor, o.term, model[at - 2]?.term ?? 1);
            const ents = Array.from({ length: o.n }, (_, i) => ({ index: at + i, term, type: "normal" as const, data: new Uint8Array([at + i]) }));
            log.append(ents);
            model = [...model.slice(0, at - 1), ...ents];
            termFloor = term;
          } else if (o.kind === "persist") {
            const unstable = log.unstableEntries();
            // The unstable tail is exactly the model's suffix that differs from the store.
            if (unstable.length > 0) {
              expect(unstable).toEqual(model.slice((unstable[0] as Entry).index - 1));
              store.append(unstable);
            }
            store.sync();
            log.stableTo(model.length === 0 ? 0 : (model[model.length - 1] as Entry).index, false);
            durable = model.slice();
            expect(log.unstableEntries()).toEqual([]);
          } else {
            store.crash();
            log = new RaftLog(store, 0);
            model = durable.slice();
          }
          expect(log.lastIndex()).toBe(model.length);
          for (let i = 1; i <= model.length; i++) expect(log.term(i)).toBe((model[i - 1] as Entry).term);
          expect(log.slice(1, model.length + 1, Number.MAX_SAFE_INTEGER)).toEqual(model);
          log.checkInvariants();
        }
      }),
    );
  });
});
