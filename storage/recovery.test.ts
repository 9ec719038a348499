import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DiskOs } from "./disk_os.js";
import { decodeSegmentHeader, encodeSegmentHeader, entryHeaderBytes, crc32, getSlot, viewOf, putU64 } from "./entry_codec.js";
import { CorruptionError } from "./errors.js";
import { scanSegment } from "./scan.js";
import { StateFile } from "./state_file.js";
import { entries, open, rmTemp, tempDir } from "./test_helpers.js";

/** One test per row of storage/RECOVERY.md, on the real file system. */
const disk = new DiskOs();
const opts = { segmentBytes: 4096, tailCacheBytes: 0 };
const temps: string[] = [];
afterEach(() => {
  for (const d of temps.splice(0)) rmTemp(d);
});

interface Built {
  dir: string;
  segs: string[];
  idxs: string[];
  last: number;
}

/** 72 entries of 100 bytes in 9 batches (3 segments), then optionally a batch of 3 × 1000 bytes. */
function build(options: { clean: boolean; big?: boolean; compact?: boolean; preallocateBytes?: number }): Built {
  const dir = tempDir("rec");
  temps.push(dir);
  const log = open(disk, dir, { ...opts, preallocateBytes: options.preallocateBytes ?? 1 << 20 });
  log.setHardState({ term: 1, votedFor: "n1", commit: 0 });
  for (let b = 0; b < 9; b++) {
    log.append(entries(1 + b * 8, 8, 1, 100));
    log.sync();
  }
  if (options.big === true) {
    log.append(entries(73, 3, 2, 1000));
    log.sync();
  }
  if (options.compact === true) {
    log.saveSnapshot({ meta: { index: 30, term: 1, members: ["n1"] }, data: new Uint8Array(10) }, 30);
    log.sync();
  }
  const last = log.lastIndex();
  if (options.clean) log.close();
  return { dir, ...listing(dir), last };
}

function listing(dir: string): { segs: string[]; idxs: string[] } {
  const names = fs.readdirSync(path.join(dir, "log")).sort();
  return { segs: names.filter((n) => n.endsWith(".seg")).map((n) => path.join(dir, "log", n)), idxs: names.filter((n) => n.endsWith(".idx")).map((n) => path.join(dir, "log", n)) };
}

function mutate(file: string, f: (b: Buffer) => Buffer): void {
  fs.writeFileSync(file, f(fs.readFileSync(file)));
}

function flip(file: string, position: number): void {
  mutate(file, (b) => {
    b[position] = (b[position] as number) ^ 0x10;
    return b;
  });
}

function expectStop(dir: string, check: string, fileIncludes = ""): CorruptionError {
  let caught: unknown;
  try {
    open(disk, dir, opts).close();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CorruptionError);
  const e = caught as CorruptionError;
  expect(e.name).toBe("CorruptionError");
  expect(e.check).toBe(check);
  expect(e.file).toContain(fileIncludes);
  expect(e.message).toContain(`@${e.position}`);
  return e;
}

function reopenLast(dir: string): number {
  const log = open(disk, dir, opts);
  const last = log.lastIndex();
  if (last >= log.firstIndex()) log.entries(log.firstIndex(), last + 1, 1 << 30);
  log.close();
  return last;
}

/** Opens, reads everything, and drops the store without a clean close (as a crash would). */
function reopenDirty(dir: string): number {
  const log = open(disk, dir, opts);
  const last = log.lastIndex();
  log.entries(log.firstIndex(), last + 1, 1 << 30);
  return last;
}

/** Where the entries of a segment file end: after it, only preallocated zeros (if any). */
function entriesEnd(seg: string): number {
  const file = disk.open(seg, { create: false });
  const header = decodeSegmentHeader(file.read(0, 64));
  if (typeof header === "string") throw new Error(`bad header in ${seg}`);
  const size = scanSegment(file, header).size;
  file.close();
  return size;
}

/** Offset of the header of entry `index` in the last segment (by walking the entries). */
function entryOffset(seg: string, index: number): number {
  const b = fs.readFileSync(seg);
  let at = 64;
  for (let i = 0; i < 10_000 && at < b.length; i++) {
    const idx = viewOf(b.subarray(at)).getUint32(16, true);
    if (idx === index) return at;
    at += entryHeaderBytes + viewOf(b.subarray(at)).getUint32(8, true);
  }
  throw new Error(`entry ${index} not in ${seg}`);
}

describe("recovery decision table", () => {
  it("H0: a fresh directory opens empty", () => {
    const dir = tempDir("rec");
    temps.push(dir);
    const log = open(disk, dir, opts);
    expect(log.report.fresh).toBe(true);
    log.close();
  });

  it("H1: segments without a state file stop open", () => {
    const b = build({ clean: true });
    fs.rmSync(path.join(b.dir, "state"));
    expectStop(b.dir, "state_missing", "state");
  });

  it("H2: one damaged state slot is survived and repaired", () => {
    const b = build({ clean: true });
    flip(path.join(b.dir, "state"), 30);
    expect(reopenLast(b.dir)).toBe(b.last);
    expect(StateFile.open(disk, b.dir)?.mirrored()).toBe(true);
  });

  it("H4: both state slots damaged stop open", () => {
    const b = build({ clean: true });
    flip(path.join(b.dir, "state"), 30);
    flip(path.join(b.dir, "state"), 4096 + 30);
    expectStop(b.dir, "state_file", "state");
  });

  it("F1, F2, F3: temp files and orphan indexes are removed, unknown files ignored", () => {
    const b = build({ clean: true });
    const junk = [path.join(b.dir, "snapshots", "x.snap.tmp"), path.join(b.dir, "log", "00000000000000009999.idx"), path.join(b.dir, "log", "a.tmp")];
    for (const f of junk) fs.writeFileSync(f, "junk");
    fs.writeFileSync(path.join(b.dir, "log", "README"), "hello");
    expect(reopenLast(b.dir)).toBe(b.last);
    for (const f of junk) expect(fs.existsSync(f)).toBe(false);
    expect(fs.existsSync(path.join(b.dir, "log", "README"))).toBe(true);
  });

  it("S1: a damaged segment header stops open", () => {
    const b = build({ clean: true });
    flip(b.segs[1] as string, 10);
    expectStop(b.dir, "segment_header", path.basename(b.segs[1] as string));
  });

  it("G1: segments of an older generation are removed", () => {
    const b = build({ clean: true });
    const old = fs.readFileSync(b.segs[0] as string);
    const log = open(disk, b.dir, opts);
    log.installSnapshot({ meta: { index: 500, term: 3, members: ["n1"] }, data: new Uint8Array(4) });
    log.sync();
    log.close();
    fs.writeFileSync(b.segs[0] as string, old);
    expect(reopenLast(b.dir)).toBe(500);
    expect(fs.existsSync(b.segs[0] as string)).toBe(false);
  });

  it("G2: a segment of a newer generation stops open", () => {
    const b = build({ clean: false });
    const seg = b.segs[b.segs.length - 1] as string;
    mutate(seg, (buf) => {
      const h = decodeSegmentHeader(buf.subarray(0, 64));
      if (typeof h === "string") throw new Error(h);
      Buffer.from(encodeSegmentHeader({ ...h, generation: h.generation + 1 })).copy(buf, 0);
      return buf;
    });
    expectStop(b.dir, "generation");
  });

  it("C1: a compacted segment left behind is removed", () => {
    const b = build({ clean: true });
    const first = fs.readFileSync(b.segs[0] as string);
    const firstIdx = fs.readFileSync(b.idxs[0] as string);
    const log = open(disk, b.dir, opts);
    log.saveSnapshot({ meta: { index: 40, term: 1, members: ["n1"] }, data: new Uint8Array(4) }, 40);
    log.sync();
    log.close();
    expect(fs.existsSync(b.segs[0] as string)).toBe(false);
    fs.writeFileSync(b.segs[0] as string, first);
    fs.writeFileSync(b.idxs[0] as string, firstIdx);
    expect(reopenLast(b.dir)).toBe(b.last);
    expect(fs.existsSync(b.segs[0] as string)).toBe(false);
  });

  it("P1: a missing first segment stops open", () => {
    const b = build({ clean: true });
    fs.rmSync(b.segs[0] as string);
    fs.rmSync(b.idxs[0] as string);
    expectStop(b.dir, "gap");
  });

  it("P2: a missing middle segment stops open", () => {
    const b = build({ clean: true });
    expect(b.segs.length).toBeGreaterThanOrEqual(3);
    fs.rmSync(b.segs[1] as string);
    fs.rmSync(b.idxs[1] as string);
    expectStop(b.dir, "gap");
  });

  it("K1: a segment header that does not chain to the previous segment stops open", () => {
    const b = build({ clean: true });
    mutate(b.segs[1] as string, (buf) => {
      const h = decodeSegmentHeader(buf.subarray(0, 64));
      if (typeof h === "string") throw new Error(h);
      Buffer.from(encodeSegmentHeader({ ...h, prevCrc: (h.prevCrc + 1) >>> 0 })).copy(buf, 0);
      return buf;
    });
    expectStop(b.dir, "chain", path.basename(b.segs[1] as string));
  });

  it("I1: a missing index file of a sealed segment stops open", () => {
    const b = build({ clean: false });
    fs.rmSync(b.idxs[0] as string);
    expectStop(b.dir, "index_missing", path.basename(b.idxs[0] as string));
  });

  it("I2: an index file that is not whole slots stops open", () => {
    const b = build({ clean: true });
    mutate(b.idxs[0] as string, (buf) => buf.subarray(0, buf.length - 3));
    expectStop(b.dir, "index_size");
  });

  it("I3: an index slot that disagrees with its entry stops open", () => {
    const b = build({ clean: true });
    mutate(b.idxs[0] as string, (buf) => {
      buf.writeUInt32LE((buf.readUInt32LE(buf.length - 12) + 1) >>> 0, buf.length - 12);
      return buf;
    });
    expectStop(b.dir, "index_slot");
  });

  it("I4: a truncated middle segment stops open", () => {
    const b = build({ clean: true });
    mutate(b.segs[1] as string, (buf) => buf.subarray(0, buf.length - 10));
    expectStop(b.dir, "segment_length", path.basename(b.segs[1] as string));
  });

  it("T1: an incomplete last entry is cut", () => {
    const b = build({ clean: false, preallocateBytes: 0 });
    const seg = b.segs[b.segs.length - 1] as string;
    fs.appendFileSync(seg, fs.readFileSync(seg).subarray(64, 64 + 30));
    expect(reopenLast(b.dir)).toBe(b.last);
    expect(fs.statSync(seg).size).toBeLessThan(fs.readFileSync(seg).length + 1);
  });

  it("T1: an incomplete last entry followed by preallocated zeros is cut and reported", () => {
    const b = build({ clean: false });
    const seg = b.segs[b.segs.length - 1] as string;
    const end = entriesEnd(seg);
    expect(fs.statSync(seg).size).toBeGreaterThan(end + 100); // the zeros written ahead
    const partial = fs.readFileSync(seg).subarray(64, 64 + 100); // a header and part of a body
    const fd = fs.openSync(seg, "r+");
    fs.writeSync(fd, partial, 0, partial.length, end);
    fs.closeSync(fd);
    const log = open(disk, b.dir, opts);
    expect(log.report.tornTail?.position).toBe(end);
    expect(log.lastIndex()).toBe(b.last);
    log.close();
    expect(fs.statSync(seg).size).toBe(end);
  });

  it("Z1: zeros after the last entry of a crashed log are cut without a torn-tail report; the log takes appends after", () => {
    const b = build({ clean: false });
    const seg = b.segs[b.segs.length - 1] as string;
    const end = entriesEnd(seg);
    expect(fs.statSync(seg).size).toBeGreaterThan(end);
    const log = open(disk, b.dir, opts);
    expect(log.report.tornTail).toBeNull();
    expect(log.lastIndex()).toBe(b.last);
    expect(fs.statSync(seg).size).toBe(end); // cut durably at open
    log.append(entries(b.last + 1, 4, 2, 50));
    log.sync();
    expect(fs.statSync(seg).size).toBe(4096); // preallocated again, up to segmentBytes
    // Crash again (no close) and reopen: the new entries are found, the zeros cut again.
    expect(reopenDirty(b.dir)).toBe(b.last + 4);
    expect(reopenLast(b.dir)).toBe(b.last + 4);
    expect(fs.statSync(seg).size).toBe(entriesEnd(seg)); // clean close trims (R1 needs I4)
  });

  it("Z1, I4: a sealed segment never keeps preallocated zeros, and one extended with zeros stops open", () => {
    const b = build({ clean: true });
    for (const seg of b.segs) expect(fs.statSync(seg).size).toBe(entriesEnd(seg));
    fs.appendFileSync(b.segs[1] as string, Buffer.alloc(600));
    expectStop(b.dir, "segment_length", path.basename(b.segs[1] as string));
  });

  it("T2: a last write with a zeroed sector, or a zero-filled end, is cut (also when preallocated zeros follow it)", () => {
    const b = build({ clean: false, big: true });
    const seg = b.segs[b.segs.length - 1] as string;
    expect(fs.statSync(seg).size).toBeGreaterThan(entriesEnd(seg)); // preallocated zeros follow
    const at = entryOffset(seg, 74);
    const sector = Math.ceil((at + 100) / 512) * 512;
    mutate(seg, (buf) => buf.fill(0, sector, sector + 512));
    expect(reopenDirty(b.dir)).toBe(73);
    fs.appendFileSync(seg, Buffer.alloc(700));
    expect(reopenDirty(b.dir)).toBe(73);
  });

  it("T3: torn-looking damage before a complete later write stops open", () => {
    const b = build({ clean: false, big: true });
    const seg = b.segs[b.segs.length - 1] as string;
    const at = entryOffset(seg, 74);
    const sector = Math.ceil((at + 100) / 512) * 512;
    const log = open(disk, b.dir, opts);
    log.append(entries(76, 2, 2, 50));
    log.sync();
    expect(fs.statSync(seg).size).toBeGreaterThan(entriesEnd(seg)); // preallocated zeros follow
    mutate(seg, (buf) => buf.fill(0, sector, sector + 512));
    const e = expectStop(b.dir, "entry_body_crc");
    expect(e.detail).toContain("not a torn tail");
  });

  it("E1: a flipped header or body byte in an earlier write stops open", () => {
    const b = build({ clean: false });
    const seg = b.segs[b.segs.length - 1] as string;
    const first = entryOffset(seg, Number(viewOf(fs.readFileSync(seg)).getUint32(8, true)));
    flip(seg, first + entryHeaderBytes + 5);
    expectStop(b.dir, "entry_body_crc", path.basename(seg));
    flip(seg, first + entryHeaderBytes + 5);
    flip(seg, first + 20);
    expectStop(b.dir, "entry_header_crc", path.basename(seg));
  });

  it("E2: a valid header with the wrong index stops open", () => {
    const b = build({ clean: false });
    const seg = b.segs[b.segs.length - 1] as string;
    const first = entryOffset(seg, Number(viewOf(fs.readFileSync(seg)).getUint32(8, true)));
    mutate(seg, (buf) => {
      const v = viewOf(buf);
      putU64(v, first + 16, 999);
      v.setUint32(first + 44, crc32(buf.subarray(first, first + 44)), true);
      return buf;
    });
    expectStop(b.dir, "entry_index");
  });

  it("H3: a commit index beyond the recovered log stops open", () => {
    const b = build({ clean: false });
    const sf = StateFile.open(disk, b.dir);
    if (sf === null) throw new Error("no state");
    sf.write({ ...sf.state, hardState: { ...sf.state.hardState, commit: b.last + 5 } });
    sf.close();
    expectStop(b.dir, "commit_beyond_log");
  });

  it("P3: a compacted log without its snapshot stops open", () => {
    const b = build({ clean: true, compact: true });
    fs.rmSync(path.join(b.dir, "snapshots"), { recursive: true });
    expectStop(b.dir, "snapshot");
  });

  it("R1: a clean close is trusted once, then cleared", () => {
    const b = build({ clean: true });
    const log = open(disk, b.dir, opts);
    expect(log.report.clean).toBe(true);
    expect(StateFile.open(disk, b.dir)?.state.clean).toBe(false);
    log.close();
  });

  it("reads verify: a flipped body byte in a sealed segment is caught by entries()", () => {
    const b = build({ clean: true });
    flip(b.segs[0] as string, 64 + entryHeaderBytes + 3);
    const log = open(disk, b.dir, opts);
    expect(() => log.entries(1, 3, 1 << 20)).toThrow(CorruptionError);
    log.close();
  });

  it("slot helpers round-trip", () => {
    const bytes = new Uint8Array(16);
    viewOf(bytes).setUint32(0, 64, true);
    expect(getSlot(viewOf(bytes), 0).offset).toBe(64);
  });
});
