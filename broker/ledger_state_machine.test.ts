import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Entry } from "../raft/core/types.js";
import { ApplyKind, decodeApplyResult, decodeClientEntry, encodeClientEntry, EntryFormatError } from "./ledger_entry.js";
import { LedgerStateMachine } from "./ledger_state_machine.js";

const body = (s: string) => new TextEncoder().encode(s);

/** Builds log entries one index at a time, like a leader would. */
function logOf(items: readonly ({ noop: true; term: number } | { clientId: string; sequence: number; term: number })[]): Entry[] {
  return items.map((it, i) =>
    "noop" in it
      ? { index: i + 1, term: it.term, type: "noop", data: new Uint8Array(0) }
      : { index: i + 1, term: it.term, type: "normal", data: encodeClientEntry({ clientId: it.clientId, sequence: it.sequence, body: body(`${it.clientId}/${it.sequence}`) }) },
  );
}

const applyAll = (sm: LedgerStateMachine, entries: readonly Entry[]) => entries.map((e) => decodeApplyResult(sm.apply(e)));

describe("client entry codec", () => {
  it("round-trips clientId, sequence and body, including sequences above 2^32", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.uint8Array({ maxLength: 64 }), (id, seq, b) => {
        const d = decodeClientEntry(encodeClientEntry({ clientId: id, sequence: seq, body: b }));
        expect(d.clientId).toBe(id);
        expect(d.sequence).toBe(seq);
        expect([...d.body]).toEqual([...b]);
      }),
    );
  });

  it("refuses identities that break the rules, naming them", () => {
    expect(() => encodeClientEntry({ clientId: "", sequence: 3, body: body("x") })).toThrow(/sequence \(3\) must be 0 without a clientId/);
    expect(() => encodeClientEntry({ clientId: "c", sequence: 0, body: body("x") })).toThrow(/sequence must be > 0/);
    expect(() => encodeClientEntry({ clientId: "x".repeat(65), sequence: 1, body: body("x") })).toThrow(/clientId of 65 bytes exceeds 64/);
    expect(() => decodeClientEntry(new Uint8Array([9, 0, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(EntryFormatError);
    expect(() => decodeClientEntry(new Uint8Array([1, 5, 0]))).toThrow(/shorter/);
  });
});

describe("ledger state machine: deduplication", () => {
  it("applies a retry once and answers it with the original index and term", () => {
    const sm = new LedgerStateMachine();
    const r = applyAll(sm, logOf([{ noop: true, term: 1 }, { clientId: "c1", sequence: 1, term: 1 }, { clientId: "c1", sequence: 2, term: 1 }, { noop: true, term: 2 }, { clientId: "c1", sequence: 1, term: 2 }]));
    expect(r.map((x) => x.kind)).toEqual([ApplyKind.noop, ApplyKind.applied, ApplyKind.applied, ApplyKind.noop, ApplyKind.duplicate]);
    expect(r[4]).toEqual({ kind: ApplyKind.duplicate, index: 2, term: 1 });
    expect(sm.duplicateOf(5)).toBe(2);
    expect(sm.duplicateOf(2)).toBeUndefined();
    expect(sm.lookup("c1", 2)).toEqual({ kind: "duplicate", index: 3, term: 1 });
    expect(sm.lookup("c1", 3)).toEqual({ kind: "new" });
    expect(sm.appliedTerm).toBe(2);
    expect(sm.appliedIndex).toBe(5);
  });

  it("entries without a clientId are never deduplicated", () => {
    const sm = new LedgerStateMachine();
    const e = (index: number): Entry => ({ index, term: 1, type: "normal", data: encodeClientEntry({ clientId: "", sequence: 0, body: body("same") }) });
    expect(applyAll(sm, [e(1), e(2)]).map((x) => x.kind)).toEqual([ApplyKind.applied, ApplyKind.applied]);
    expect(sm.clientCount).toBe(0);
  });

  it("accepts out-of-order sequences inside the window, and calls a retry below the window expired", () => {
    const sm = new LedgerStateMachine({ sequencesPerClientMax: 3 });
    // 5, 3, 4 applied (in that order), then 6 evicts the lowest (3): floor = 3.
    applyAll(sm, logOf([5, 3, 4, 6].map((s) => ({ clientId: "c", sequence: s, term: 1 }))));
    expect(sm.lookup("c", 3)).toEqual({ kind: "expired", floor: 3 });
    expect(sm.lookup("c", 2)).toEqual({ kind: "expired", floor: 3 });
    expect(sm.lookup("c", 4)).toEqual({ kind: "duplicate", index: 3, term: 1 });
    expect(sm.lookup("c", 7)).toEqual({ kind: "new" });
    const r = decodeApplyResult(sm.apply({ index: 5, term: 1, type: "normal", data: encodeClientEntry({ clientId: "c", sequence: 2, body: body("late") }) }));
    expect(r.kind).toBe(ApplyKind.expired);
    expect(sm.duplicateOf(5)).toBe(0);
  });

  it("evicts the least recently applied client beyond clientsMax", () => {
    const sm = new LedgerStateMachine({ clientsMax: 2 });
    applyAll(sm, logOf([{ clientId: "a", sequence: 1, term: 1 }, { clientId: "b", sequence: 1, term: 1 }, { clientId: "a", sequence: 2, term: 1 }, { clientId: "c", sequence: 1, term: 1 }]));
    expect(sm.clientCount).toBe(2);
    expect(sm.lookup("b", 1)).toEqual({ kind: "new" }); // b was least recently applied
    expect(sm.lookup("a", 1).kind).toBe("duplicate");
  });

  it("applies a malformed entry as a deterministic no-op instead of stopping", () => {
    const sm = new LedgerStateMachine();
    const r = decodeApplyResult(sm.apply({ index: 1, term: 1, type: "normal", data: new Uint8Array([7, 7]) }));
    expect(r.kind).toBe(ApplyKind.malformed);
    expect(sm.appliedIndex).toBe(1);
  });
});

describe("ledger state machine: snapshot and restore", () => {
  it("a restored machine answers every lookup and every later apply exactly as the original", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ c: fc.constantFrom("a", "b", "c", "d"), s: fc.integer({ min: 1, max: 12 }), noop: fc.boolean() }), { minLength: 1, maxLength: 60 }),
        fc.integer({ min: 0, max: 59 }),
        (ops, cut) => {
          const entries = logOf(ops.map((o) => (o.noop ? { noop: true as const, term: 1 } : { clientId: o.c, sequence: o.s, term: 1 })));
          const at = Math.min(cut, entries.length);
          const limits = { clientsMax: 3, sequencesPerClientMax: 4, duplicatesMax: 5 };
          const a = new LedgerStateMachine(limits);
          applyAll(a, entries.slice(0, at));
          const b = new LedgerStateMachine(limits);
          b.restore({ meta: { index: at, term: at === 0 ? 0 : 1, members: ["n1"] }, data: a.snapshot() });
          expect(applyAll(b, entries.slice(at))).toEqual(applyAll(a, entries.slice(at)));
          expect(b.snapshot()).toEqual(a.snapshot());
          for (const c of ["a", "b", "c", "d"]) for (let s = 1; s <= 12; s++) expect(b.lookup(c, s)).toEqual(a.lookup(c, s));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("applying without wanting the result (a follower) changes the state exactly as applying with it", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ c: fc.constantFrom("a", "b", ""), s: fc.integer({ min: 1, max: 9 }), noop: fc.boolean() }), { minLength: 1, maxLength: 50 }), (ops) => {
        const entries = logOf(ops.map((o) => (o.noop ? { noop: true as const, term: 1 } : { clientId: o.c, sequence: o.c === "" ? 0 : o.s, term: 1 })));
        const limits = { clientsMax: 2, sequencesPerClientMax: 3, duplicatesMax: 4 };
        const leader = new LedgerStateMachine(limits);
        const follower = new LedgerStateMachine(limits);
        for (const e of entries) {
          expect(leader.apply(e, true).byteLength).toBeGreaterThan(0);
          expect(follower.apply(e, false).byteLength).toBe(0);
        }
        expect(follower.snapshot()).toEqual(leader.snapshot());
      }),
      { numRuns: 200 },
    );
  });

  it("refuses a snapshot whose applied index disagrees with its meta", () => {
    const a = new LedgerStateMachine();
    applyAll(a, logOf([{ noop: true, term: 1 }]));
    expect(() => new LedgerStateMachine().restore({ meta: { index: 2, term: 1, members: ["n1"] }, data: a.snapshot() })).toThrow(/snapshot at 1, meta says 2/);
  });
});
