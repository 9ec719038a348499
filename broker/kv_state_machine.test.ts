/** The KV map inside the ledger's state machine: commands, dedup, bounds, snapshots, bad bytes. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Entry } from "../raft/core/types.js";
import { decodeKvApplyResult, decodeKvCommand, encodeKvApplyResult, encodeKvCommand, KvOutcome, type KvApplyResult, type KvCommand } from "./kv_entry.js";
import { decodeClientEntry, encodeClientEntry, EntryFormatError } from "./ledger_entry.js";
import { LedgerStateMachine } from "./ledger_state_machine.js";
import { decodeLedgerSnapshot, isBinaryLedgerSnapshot } from "./ledger_snapshot.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b == null ? null : new TextDecoder().decode(b));

/** Applies entries one index at a time, as a replica would, and decodes the KV results. */
class Log {
  readonly sm: LedgerStateMachine;
  readonly entries: Entry[] = [];
  constructor(sm = new LedgerStateMachine()) {
    this.sm = sm;
  }
  raw(data: Uint8Array, term = 1): Uint8Array {
    const e: Entry = { index: this.entries.length + 1, term, type: "normal", data };
    this.entries.push(e);
    return this.sm.apply(e);
  }
  kv(c: KvCommand, term = 1): KvApplyResult {
    return decodeKvApplyResult(this.raw(encodeKvCommand(c), term));
  }
}

const put = (key: string, value: string, clientId = "", sequence = 0): KvCommand => ({ kind: "put", clientId, sequence, key, value: bytes(value) });
const cas = (key: string, expected: string | null, value: string, clientId = "", sequence = 0): KvCommand => ({
  kind: "cas",
  clientId,
  sequence,
  key,
  expected: expected === null ? null : bytes(expected),
  value: bytes(value),
});

describe("KV command codec", () => {
  it("round-trips puts and cas commands, expect-absent included", () => {
    const arb = fc.record({
      cas: fc.boolean(),
      id: fc.string({ maxLength: 16 }),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      key: fc.string({ minLength: 1, maxLength: 60 }),
      expected: fc.option(fc.uint8Array({ maxLength: 40 })),
      value: fc.uint8Array({ maxLength: 40 }),
    });
    fc.assert(
      fc.property(arb, (a) => {
        const identity = { clientId: a.id, sequence: a.id === "" ? 0 : a.seq };
        const c: KvCommand = a.cas ? { kind: "cas", ...identity, key: a.key, expected: a.expected, value: a.value } : { kind: "put", ...identity, key: a.key, value: a.value };
        const d = decodeKvCommand(encodeKvCommand(c));
        expect({ ...d, value: [...d.value], ...(d.kind === "cas" ? { expected: d.expected === null ? null : [...d.expected] } : {}) }).toEqual({
          ...c,
          value: [...c.value],
          ...(c.kind === "cas" ? { expected: c.expected === null ? null : [...c.expected] } : {}),
        });
      }),
    );
  });

  it("is byte-for-byte the documented layout", () => {
    const b = encodeKvCommand({ kind: "cas", clientId: "c", sequence: 2, key: "k", expected: bytes("a"), value: bytes("b") });
    // version 2 | id len 1 | "c" | sequence 2 | kind cas | key len 1 | "k" | flags 0 | expected len 1 | "a" | "b"
    expect([...b]).toEqual([2, 1, 0x63, 0, 0, 0, 0, 0, 0, 0, 2, 2, 0, 1, 0x6b, 0, 0, 0, 0, 1, 0x61, 0x62]);
    // Ledger.Get decodes the same bytes as a client entry whose body is the command.
    const asEntry = decodeClientEntry(b);
    expect(asEntry).toMatchObject({ clientId: "c", sequence: 2 });
    expect([...asEntry.body]).toEqual([...b.subarray(11)]);
  });

  it("refuses empty and oversized keys, and malformed bytes, naming what is wrong", () => {
    expect(() => encodeKvCommand(put("", "v"))).toThrow(/key must not be empty/);
    expect(() => encodeKvCommand(put("k".repeat(257), "v"))).toThrow(/key of 257 bytes exceeds 256/);
    expect(encodeKvCommand(put("é".repeat(128), "v")).byteLength).toBeGreaterThan(256);
    expect(() => encodeKvCommand(put("é".repeat(129), "v"))).toThrow(/key of 258 bytes/);
    const good = encodeKvCommand(cas("k", "a", "b"));
    const bad: [string, Uint8Array, RegExp][] = [
      ["a client entry", encodeClientEntry({ clientId: "", sequence: 0, body: bytes("x") }), /not a KV command/],
      ["no command", good.subarray(0, 10), /shorter than its 3-byte header/],
      ["a key running past the end", good.subarray(0, 13), /runs past the end/],
      ["an unknown kind", Uint8Array.from([...good.subarray(0, 10), 9, 0, 1, 0x6b]), /kind 9/],
      ["cas without flags", Uint8Array.from([...good.subarray(0, 10), 2, 0, 1, 0x6b]), /shorter than its flags/],
      ["unknown cas flags", Uint8Array.from([...good.subarray(0, 14), 4, 0, 0, 0, 0]), /flags 4/],
      ["absent with an expected value", Uint8Array.from([...good.subarray(0, 14), 1, 0, 0, 0, 1, 0x61]), /expects absent but carries 1/],
      ["an expected value past the end", Uint8Array.from([...good.subarray(0, 14), 0, 0, 0, 0, 9, 0x61]), /9 bytes runs past the end/],
      ["a key that is not UTF-8", Uint8Array.from([...good.subarray(0, 10), 1, 0, 1, 0xff]), /not valid UTF-8/],
    ];
    for (const [what, b, message] of bad) expect(() => decodeKvCommand(b), what).toThrow(message);
  });

  it("round-trips apply results, with and without a current value", () => {
    const results: KvApplyResult[] = [
      { kind: "done", outcome: KvOutcome.written, index: 7, term: 2, current: null },
      { kind: "done", outcome: KvOutcome.casMismatch, index: 8, term: 2, current: bytes("now") },
      { kind: "done", outcome: KvOutcome.casMismatch, index: 8, term: 2, current: new Uint8Array(0) },
      { kind: "duplicate", outcome: KvOutcome.full, index: 3, term: 1, current: null },
      { kind: "expired", index: 9, term: 3 },
      { kind: "malformed", index: 10, term: 3 },
      { kind: "identityClash", index: 11, term: 3 },
    ];
    for (const r of results) expect(decodeKvApplyResult(encodeKvApplyResult(r))).toEqual(r);
    expect(() => decodeKvApplyResult(new Uint8Array(5))).toThrow(EntryFormatError);
  });
});

describe("KV state machine", () => {
  it("put writes; cas succeeds only on a match and otherwise answers the current value", () => {
    const log = new Log();
    expect(log.kv(put("k", "a"))).toEqual({ kind: "done", outcome: KvOutcome.written, index: 1, term: 1, current: null });
    expect(text(log.sm.kv.get("k"))).toBe("a");
    expect(log.kv(cas("k", "a", "b"))).toMatchObject({ kind: "done", outcome: KvOutcome.written, index: 2 });
    const miss = log.kv(cas("k", "a", "c"));
    expect(miss).toMatchObject({ kind: "done", outcome: KvOutcome.casMismatch, index: 3 });
    expect(miss.kind === "done" ? text(miss.current) : "?").toBe("b");
    expect(text(log.sm.kv.get("k"))).toBe("b");
    expect(log.sm.appliedIndex).toBe(3);
  });

  it("cas on an absent key: expect-absent creates it, an expected value mismatches with no current value", () => {
    const log = new Log();
    expect(log.kv(cas("x", "a", "b"))).toEqual({ kind: "done", outcome: KvOutcome.casMismatch, index: 1, term: 1, current: null });
    expect(log.sm.kv.get("x")).toBeUndefined();
    expect(log.kv(cas("x", null, "first"))).toMatchObject({ outcome: KvOutcome.written });
    const again = log.kv(cas("x", null, "second"));
    expect(again).toMatchObject({ outcome: KvOutcome.casMismatch });
    expect(again.kind === "done" ? text(again.current) : "?").toBe("first");
    // An empty value is a present key, not an absent one.
    log.kv(put("e", ""));
    expect(log.kv(cas("e", null, "z"))).toMatchObject({ outcome: KvOutcome.casMismatch });
    expect(log.kv(cas("e", "", "z"))).toMatchObject({ outcome: KvOutcome.written });
  });

  it("a retried put or cas is applied once and answered with the original's index and outcome", () => {
    const log = new Log();
    log.raw(new Uint8Array(0)); // index 1: a malformed entry, applied as a no-op
    expect(log.kv(put("k", "a", "c1", 1))).toMatchObject({ kind: "done", index: 2 });
    expect(log.kv(put("k", "b", "c1", 2))).toMatchObject({ kind: "done", index: 3 });
    // The retry of sequence 1 must not set k back to "a".
    expect(log.kv(put("k", "a", "c1", 1), 2)).toEqual({ kind: "duplicate", outcome: KvOutcome.written, index: 2, term: 1, current: null });
    expect(text(log.sm.kv.get("k"))).toBe("b");
    expect(log.sm.duplicateOf(4)).toBe(2);
    expect(log.kv(cas("k", "zz", "c", "c1", 3))).toMatchObject({ kind: "done", outcome: KvOutcome.casMismatch, index: 5 });
    expect(log.kv(cas("k", "b", "c", "c1", 4))).toMatchObject({ kind: "done", outcome: KvOutcome.written, index: 6 });
    // Retrying the failed cas must not apply it now, though its comparison would hold now.
    log.kv(put("k", "zz", "c2", 1));
    expect(log.kv(cas("k", "zz", "c", "c1", 3))).toEqual({ kind: "duplicate", outcome: KvOutcome.casMismatch, index: 5, term: 1, current: null });
    expect(text(log.sm.kv.get("k"))).toBe("zz");
    expect(log.sm.lookup("c1", 4)).toEqual({ kind: "duplicate", index: 6, term: 1, outcome: KvOutcome.written });
  });

  it("answers a KV command reusing a ledger append's identity as a clash, and an expired sequence as expired", () => {
    const log = new LedgerStateMachine({ sequencesPerClientMax: 2 });
    const l = new Log(log);
    l.raw(encodeClientEntry({ clientId: "c", sequence: 1, body: bytes("append") }));
    expect(l.kv(put("k", "v", "c", 1))).toEqual({ kind: "identityClash", index: 2, term: 1 });
    expect(log.kv.get("k")).toBeUndefined();
    l.kv(put("k", "v", "c", 2));
    l.kv(put("k", "v", "c", 3)); // evicts sequence 1: floor 1
    expect(l.kv(put("k", "old", "c", 1))).toEqual({ kind: "expired", index: 5, term: 1 });
    expect(text(log.kv.get("k"))).toBe("v");
  });

  it("refuses a new key beyond keysMax and a write beyond bytesMax, changing nothing", () => {
    const log = new Log(new LedgerStateMachine({}, { keysMax: 2, bytesMax: 20 }));
    log.kv(put("a", "1"));
    log.kv(put("b", "2"));
    expect(log.kv(put("c", "3"))).toMatchObject({ kind: "done", outcome: KvOutcome.full });
    expect(log.kv(cas("c", null, "3"))).toMatchObject({ kind: "done", outcome: KvOutcome.full });
    expect(log.sm.kv.keyCount).toBe(2);
    expect(log.kv(put("a", "overwrite"))).toMatchObject({ outcome: KvOutcome.written });
    expect(log.sm.kv.byteCount).toBe(1 + 9 + 1 + 1);
    expect(log.kv(put("b", "x".repeat(10)))).toMatchObject({ outcome: KvOutcome.full });
    expect(text(log.sm.kv.get("b"))).toBe("2");
    expect(log.kv(put("b", "x".repeat(9)))).toMatchObject({ outcome: KvOutcome.written });
    expect(log.sm.kv.byteCount).toBe(20);
    expect(log.sm.kv.wouldOverflow("a", 10)).toBe(true);
  });

  it("applies malformed KV bytes as a deterministic no-op: never throws, the map is unchanged", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (tail) => {
        const log = new Log();
        log.kv(put("k", "v"));
        const before = decodeLedgerSnapshot(log.sm.snapshot());
        const data = Uint8Array.from([2, ...tail]);
        let decodable = true;
        try {
          decodeKvCommand(data);
        } catch {
          decodable = false;
        }
        const r = decodeKvApplyResult(log.raw(data));
        expect(log.sm.appliedIndex).toBe(2);
        if (!decodable) {
          expect(r).toEqual({ kind: "malformed", index: 2, term: 1 });
          expect(decodeLedgerSnapshot(log.sm.snapshot())).toEqual({ ...before, appliedIndex: 2 });
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("KV state machine: snapshot and restore", () => {
  const op = fc.record({
    cas: fc.boolean(),
    key: fc.constantFrom("a", "b", "c"),
    expected: fc.option(fc.constantFrom("0", "1", "2")),
    value: fc.constantFrom("0", "1", "2"),
    client: fc.constantFrom("", "p", "q"),
    sequence: fc.integer({ min: 1, max: 6 }),
  });
  const toCommand = (o: { cas: boolean; key: string; expected: string | null; value: string; client: string; sequence: number }): KvCommand => {
    const seq = o.client === "" ? 0 : o.sequence;
    return o.cas ? cas(o.key, o.expected, o.value, o.client, seq) : put(o.key, o.value, o.client, seq);
  };

  it("a restored machine answers every later command exactly as the original, and holds the same map", () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 40 }), (ops, cut) => {
        const commands = ops.map(toCommand);
        const at = Math.min(cut, commands.length);
        const kvLimits = { keysMax: 2, bytesMax: 1000 };
        const a = new Log(new LedgerStateMachine({ sequencesPerClientMax: 3 }, kvLimits));
        for (const c of commands.slice(0, at)) a.kv(c);
        const bsm = new LedgerStateMachine({ sequencesPerClientMax: 3 }, kvLimits);
        bsm.restore({ meta: { index: at, term: at === 0 ? 0 : 1, members: ["n1"] }, data: a.sm.snapshot() });
        const b = new Log(bsm);
        for (let i = 0; i < at; i++) b.entries.push(a.entries[i] as Entry);
        for (const c of commands.slice(at)) expect(b.kv(c)).toEqual(a.kv(c));
        expect(b.sm.snapshot()).toEqual(a.sm.snapshot());
        for (const k of ["a", "b", "c"]) expect(text(b.sm.kv.get(k))).toBe(text(a.sm.kv.get(k)));
      }),
      { numRuns: 200 },
    );
  });

  it("restores a version-1 snapshot (before the KV map) as an empty map with its dedup table", () => {
    const v1 = { v: 1, appliedIndex: 3, appliedTerm: 2, clients: [["c", 0, [[1, 2, 2]]]], duplicates: [[3, 2]] };
    const sm = new LedgerStateMachine();
    sm.restore({ meta: { index: 3, term: 2, members: ["n1"] }, data: bytes(JSON.stringify(v1)) });
    expect(sm.kv.keyCount).toBe(0);
    expect(sm.lookup("c", 1)).toEqual({ kind: "duplicate", index: 2, term: 2 });
    expect(sm.duplicateOf(3)).toBe(2);
    const log = new Log(sm);
    for (let i = 0; i < 3; i++) log.entries.push({ index: i + 1, term: 2, type: "noop", data: new Uint8Array(0) });
    // A KV retry of the ledger append's identity is a clash; a new one writes.
    expect(log.kv(put("k", "v", "c", 1))).toMatchObject({ kind: "identityClash" });
    expect(log.kv(put("k", "v", "c", 2))).toMatchObject({ kind: "done", outcome: KvOutcome.written, index: 5 });
    const round = new LedgerStateMachine();
    round.restore({ meta: { index: 5, term: 1, members: ["n1"] }, data: sm.snapshot() });
    expect(text(round.kv.get("k"))).toBe("v");
    expect(isBinaryLedgerSnapshot(sm.snapshot())).toBe(true);
  });

  it("restores a version-2 (JSON) snapshot, KV map included, and writes it back as version 3", () => {
    const v2 = { v: 2, appliedIndex: 4, appliedTerm: 2, clients: [["c", 1, [[2, 3, 2, KvOutcome.written]]]], duplicates: [], kv: [["k", Buffer.from("v").toString("base64")]] };
    const sm = new LedgerStateMachine();
    sm.restore({ meta: { index: 4, term: 2, members: ["n1"] }, data: bytes(JSON.stringify(v2)) });
    expect(text(sm.kv.get("k"))).toBe("v");
    expect(sm.lookup("c", 2)).toEqual({ kind: "duplicate", index: 3, term: 2, outcome: KvOutcome.written });
    expect(sm.lookup("c", 1)).toEqual({ kind: "expired", floor: 1 });
    const round = new LedgerStateMachine();
    round.restore({ meta: { index: 4, term: 2, members: ["n1"] }, data: sm.snapshot() });
    expect(round.lookup("c", 2)).toEqual(sm.lookup("c", 2));
    expect(text(round.kv.get("k"))).toBe("v");
  });

  it("refuses a snapshot of an unknown version", () => {
    const bad = { v: 9, appliedIndex: 0, appliedTerm: 0, clients: [], duplicates: [] };
    expect(() => new LedgerStateMachine().restore({ meta: { index: 0, term: 0, members: ["n1"] }, data: bytes(JSON.stringify(bad)) })).toThrow(/version 9, expected 1, 2 or 3/);
    const binary = new LedgerStateMachine().snapshot();
    binary[4] = 4;
    expect(() => new LedgerStateMachine().restore({ meta: { index: 0, term: 0, members: ["n1"] }, data: binary })).toThrow(/version 4, expected 1, 2 or 3/);
  });
});
