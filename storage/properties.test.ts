import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Prng } from "../raft/base/prng.js";
import type { Entry } from "../raft/core/types.js";
import type { CommitLog } from "./commit_log.js";
import { DiskSim } from "./disk_sim.js";
import { decodeSegmentHeader, segmentHeaderBytes } from "./entry_codec.js";
import { CorruptionError } from "./errors.js";
import { scanSegment } from "./scan.js";
import { entry, open } from "./test_helpers.js";

/**
 * Properties against a naive in-memory reference log (STYLE.md: "fast-check properties against a
 * naive reference"). Everything runs on DiskSim so hundreds of runs take seconds.
 */
const opts = { segmentBytes: 4096, tailCacheBytes: 512 };

type Op =
  | { kind: "append"; count: number; size: number; bump: boolean }
  | { kind: "diverge"; back: number; count: number }
  | { kind: "commit"; back: number }
  | { kind: "compact"; back: number }
  | { kind: "sync" }
  | { kind: "reopen" }
  | { kind: "crash" }
  | { kind: "read"; lo: number; span: number; maxBytes: number };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant("append" as const), count: fc.integer({ min: 1, max: 12 }), size: fc.integer({ min: 0, max: 400 }), bump: fc.boolean() }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant("diverge" as const), back: fc.nat({ max: 20 }), count: fc.integer({ min: 1, max: 5 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("commit" as const), back: fc.nat({ max: 10 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant("compact" as const), back: fc.nat({ max: 30 }) }), weight: 1 },
  { arbitrary: fc.constant({ kind: "sync" as const }), weight: 4 },
  { arbitrary: fc.constant({ kind: "reopen" as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: "crash" as const }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("read" as const), lo: fc.nat(), span: fc.nat({ max: 40 }), maxBytes: fc.nat({ max: 3000 }) }), weight: 3 },
);

interface Ref {
  log: Entry[]; // log[i] has index first + i
  first: number;
  prevTerm: number;
  commit: number;
  term: number;
}

const last = (r: Ref): number => r.first + r.log.length - 1;
const clone = (r: Ref): Ref => ({ ...r, log: [...r.log] });

/** Reference semantics of entries(lo, hi, maxBytes). */
function refEntries(r: Ref, lo: number, hi: number, maxBytes: number): Entry[] {
  const out: Entry[] = [];
  let total = 0;
  for (let i = lo; i < hi; i++) {
    const e = r.log[i - r.first] as Entry;
    if (out.length > 0 && total + e.data.byteLength > maxBytes) break;
    out.push(e);
    total += e.data.byteLength;
  }
  return out;
}

function apply(op: Op, st: { log: CommitLog; disk: DiskSim; ref: Ref; synced: Ref; serial: number }): void {
  const { ref } = st;
  switch (op.kind) {
    case "append": {
      if (op.bump) ref.term++;
      ref.term = Math.max(ref.term, 1);
      const batch = Array.from({ length: op.count }, (_, i) => entry(last(ref) + 1 + i, ref.term, op.size, st.serial++));
      st.log.append(batch);
      ref.log.push(...batch);
      return;
    }
    case "diverge": {
      const after = Math.max(ref.commit, ref.first - 1, last(ref) - op.back);
      ref.term++;
      const batch = Array.from({ length: op.count }, (_, i) => entry(after + 1 + i, ref.term, 10 + i, st.serial++));
      st.log.append(batch);
      ref.log.length = after - ref.first + 1;
      ref.log.push(...batch);
      return;
    }
    case "commit": {
      const c = Math.max(ref.commit, last(ref) - op.back);
      ref.commit = c;
      st.log.setHardState({ term: ref.term, votedFor: null, commit: c });
      return;
    }
    case "compact": {
      const to = Math.min(ref.commit, last(ref) - op.back);
      if (to < ref.first) return;
      const term = (ref.log[to - ref.first] as Entry).term;
      st.log.saveSnapshot({ meta: { index: to, term, members: ["n1"] }, data: new Uint8Array([to & 0xff]) }, to);
      st.log.sync(); // compaction needs the entries below it durable in the reference too
      ref.prevTerm = term;
      ref.log.splice(0, to - ref.first + 1);
      ref.first = to + 1;
      st.synced = clone(ref);
      return;
    }
    case "sync":
      st.log.sync();
      st.synced = clone(ref);
      return;
    case "reopen":
      st.log.close();
      st.synced = clone(ref);
      st.log = open(st.disk, "/d", opts);
      return;
    case "crash":
      st.disk.crash();
      st.ref = clone(st.synced);
      st.log = open(st.disk, "/d", opts);
      return;
    case "read": {
      if (ref.log.length === 0) return;
      const lo = ref.first + (op.lo % ref.log.length);
      const hi = Math.min(last(ref) + 1, lo + op.span);
      expect(st.log.entries(lo, hi, op.maxBytes)).toEqual(refEntries(ref, lo, hi, op.maxBytes));
    }
  }
}

function checkAgainst(log: CommitLog, ref: Ref): void {
  expect(log.firstIndex()).toBe(ref.first);
  expect(log.lastIndex()).toBe(last(ref));
  expect(log.term(ref.first - 1)).toBe(ref.prevTerm);
  for (let i = ref.first; i <= last(ref); i++) expect(log.term(i)).toBe((ref.log[i - ref.first] as Entry).term);
  expect(log.term(last(ref) + 1)).toBeUndefined();
  if (ref.log.length > 0) expect(log.entries(ref.first, last(ref) + 1, 1 << 30)).toEqual(ref.log);
}

describe("CommitLog properties", () => {
  it("random append/diverge/commit/compact/sync/reopen/crash sequences match a reference log", () => {
    fc.assert(
      fc.property(fc.array(arbOp, { minLength: 1, maxLength: 60 }), (ops) => {
        const disk = new DiskSim();
        const ref: Ref = { log: [], first: 1, prevTerm: 0, commit: 0, term: 1 };
        const st = { disk, log: open(disk, "/d", opts), ref, synced: clone(ref), serial: 1 };
        for (const op of ops) {
          apply(op, st);
          // A crash loses commit hints that were never persisted: commit only bounds truncation.
          st.ref.commit = Math.min(st.ref.commit, last(st.ref));
          st.ref.term = Math.max(st.ref.term, st.ref.log[st.ref.log.length - 1]?.term ?? st.ref.prevTerm);
          checkAgainst(st.log, st.ref);
        }
        st.log.close();
        checkAgainst(open(disk, "/d", opts), st.ref);
      }),
      { numRuns: 150 },
    );
  });
});

/** Where the entries of segment file `path` end (the rest, if any, is preallocated zeros). */
function entriesEnd(disk: DiskSim, path: string): number {
  const file = disk.open(path, { create: false });
  const header = decodeSegmentHeader(file.read(0, segmentHeaderBytes));
  if (typeof header === "string") throw new Error(`bad segment header in ${path}: ${header}`);
  const size = scanSegment(file, header).size;
  file.close();
  return size;
}

/** Builds a closed (or crashed) log of 3+ segments on DiskSim and returns what it holds. */
function buildForFaults(clean: boolean): { disk: DiskSim; want: Entry[] } {
  const disk = new DiskSim({ bitFlipsMax: 1 });
  const log = open(disk, "/d", opts);
  const want: Entry[] = [];
  for (let b = 0; b < 10; b++) {
    const batch = Array.from({ length: 6 }, (_, i) => entry(b * 6 + i + 1, 1 + (b >> 2), 120 + b * 7, b * 6 + i));
    log.append(batch);
    log.sync();
    want.push(...batch);
  }
  if (clean) log.close();
  return { disk, want };
}

/** Opens and reads everything: each outcome must be an error or the truth, never wrong data. */
function openAndReadSafely(disk: DiskSim, want: Entry[]): "error" | "intact" | "cut" {
  let log: CommitLog;
  try {
    log = open(disk, "/d", opts);
  } catch (err) {
    expect(err).toBeInstanceOf(CorruptionError);
    return "error";
  }
  const lastIndex = log.lastIndex();
  expect(lastIndex).toBeLessThanOrEqual(want.length);
  try {
    const got = lastIndex >= 1 ? log.entries(1, lastIndex + 1, 1 << 30) : [];
    expect(got).toEqual(want.slice(0, lastIndex));
  } catch (err) {
    if (!(err instanceof CorruptionError)) throw err;
    return "error";
  }
  return lastIndex === want.length ? "intact" : "cut";
}

describe("faults in files are detected or cleanly cut, never silently accepted", () => {
  const files = (disk: DiskSim): string[] => disk.list("/d/log").filter((n) => n.endsWith(".seg") || n.endsWith(".idx")).map((n) => `/d/log/${n}`);

  it("a single bit flip anywhere in a segment or index file", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 2 ** 31 }), (clean, pick, seed) => {
        const { disk, want } = buildForFaults(clean);
        const all = files(disk);
        const target = all[pick % all.length] as string;
        fc.pre(disk.durableSize(target) > 0); // the active index is empty until sealed or closed
        const end = target.endsWith(".seg") ? entriesEnd(disk, target) : Infinity;
        const flipped = disk.flipRandomBit(new Prng(seed), target);
        expect(flipped).not.toBeNull();
        const inZeroTail = flipped !== null && flipped.position >= end;
        const outcome = openAndReadSafely(disk, want);
        // Every byte of data is covered by a CRC or cross-checked against another, so a flip is
        // never invisible; only the last segment of a crashed log may be cut (a torn-looking
        // tail). The zeros written ahead of the entries (preallocation) hold no data: a flip
        // there may leave the log intact, and only a crashed log's last segment has them.
        if (inZeroTail) expect(!clean && target === all[all.length - 1]).toBe(true);
        if (!inZeroTail) expect(outcome).not.toBe("intact");
        if (outcome === "cut") expect(!clean && target === all[all.length - 1]).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("a truncation of a segment file at any length", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.nat(), (clean, pick, cutAt) => {
        const { disk, want } = buildForFaults(clean);
        const segs = files(disk).filter((f) => f.endsWith(".seg"));
        const target = segs[pick % segs.length] as string;
        const file = disk.open(target, { create: false });
        const length = cutAt % file.size();
        const end = entriesEnd(disk, target);
        file.truncate(length);
        file.sync();
        const outcome = openAndReadSafely(disk, want);
        const isLast = target === segs[segs.length - 1];
        if (outcome === "cut") expect(isLast && !clean).toBe(true);
        // Only a crashed log's last segment has preallocated zeros after its entries; cutting
        // some of them loses nothing.
        if (length >= end) expect(isLast && !clean).toBe(true);
        expect(outcome).toBe(length >= end ? "intact" : outcome === "intact" ? "not intact" : outcome);
      }),
      { numRuns: 200 },
    );
  });
});
