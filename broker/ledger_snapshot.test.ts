import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KvOutcome } from "./kv_entry.js";
import { decodeLedgerSnapshot, encodeLedgerSnapshot, SnapshotFormatError, type AppliedRecord } from "./ledger_snapshot.js";

const safe = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const record = fc.record({ index: safe, term: safe, outcome: fc.option(fc.constantFrom(KvOutcome.written, KvOutcome.casMismatch, KvOutcome.full), { nil: undefined }) });
const parts = fc.record({
  appliedIndex: safe,
  appliedTerm: safe,
  clients: fc.array(fc.tuple(fc.string({ unit: "grapheme", maxLength: 12 }), safe, fc.array(fc.tuple(safe, record), { maxLength: 6 })), { maxLength: 6 }),
  duplicates: fc.array(fc.tuple(safe, safe), { maxLength: 6 }),
  kv: fc.array(fc.tuple(fc.string({ unit: "grapheme", maxLength: 10 }), fc.uint8Array({ maxLength: 20 })), { maxLength: 6 }),
});

type Parts = typeof parts extends fc.Arbitrary<infer T> ? T : never;
const toMaps = (p: Parts) => ({
  appliedIndex: p.appliedIndex,
  appliedTerm: p.appliedTerm,
  clients: new Map(p.clients.map(([id, floor, seqs]) => [id, { floor, sequences: new Map(seqs.map(([s, r]) => [s, (r.outcome === undefined ? { index: r.index, term: r.term } : r) as AppliedRecord])) }])),
  duplicates: new Map(p.duplicates),
  kv: new Map(p.kv.map(([k, v]) => [k, v])),
});

describe("ledger snapshot, binary version 3", () => {
  it("decodes what it encodes, maps in the same order", () => {
    fc.assert(
      fc.property(parts, (p) => {
        const m = toMaps(p);
        const back = decodeLedgerSnapshot(encodeLedgerSnapshot(m));
        expect(back).toEqual(m);
        expect([...back.clients.keys()]).toEqual([...m.clients.keys()]);
        expect([...back.kv.keys()]).toEqual([...m.kv.keys()]);
      }),
      { numRuns: 300 },
    );
  });

  it("refuses every truncation and trailing bytes with a SnapshotFormatError", () => {
    fc.assert(
      fc.property(parts, (p) => {
        const bytes = encodeLedgerSnapshot(toMaps(p));
        for (let cut = 0; cut < bytes.byteLength; cut++) expect(() => decodeLedgerSnapshot(bytes.subarray(0, cut))).toThrow(SnapshotFormatError);
        expect(() => decodeLedgerSnapshot(Uint8Array.from([...bytes, 0]))).toThrow(/1 trailing bytes/);
      }),
      { numRuns: 60 },
    );
  });

  it("refuses a count that cannot fit before looping over it, and a bad field value", () => {
    const one = encodeLedgerSnapshot(toMaps({ appliedIndex: 1, appliedTerm: 1, clients: [["c", 0, [[1, { index: 1, term: 1, outcome: undefined }]]]], duplicates: [], kv: [] }));
    const huge = Uint8Array.from(one);
    new DataView(huge.buffer).setUint32(21, 0xffffffff, true); // the client count
    expect(() => decodeLedgerSnapshot(huge)).toThrow(/4294967295 clients cannot fit/);
    const negative = Uint8Array.from(one);
    new DataView(negative.buffer).setFloat64(5, -1, true); // the applied index
    expect(() => decodeLedgerSnapshot(negative)).toThrow(/applied index -1 is not a non-negative integer/);
    const outcome = Uint8Array.from(one);
    outcome[outcome.byteLength - 9] = 7; // the record's outcome, before the two empty counts
    expect(() => decodeLedgerSnapshot(outcome)).toThrow(/KV outcome 7/);
  });
});
