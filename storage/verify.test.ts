import * as fs from "node:fs";
import * as path from "node:path";
import { Command } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { registerStorageCommands } from "./command.js";
import { DiskOs } from "./disk_os.js";
import { decodeSegmentHeader, entryHeaderBytes, segmentHeaderBytes } from "./entry_codec.js";
import { scanSegment } from "./scan.js";
import { entries, open, rmTemp, tempDir } from "./test_helpers.js";
import { verifyDataDir } from "./verify.js";

const disk = new DiskOs();
const temps: string[] = [];
afterEach(() => {
  for (const d of temps.splice(0)) rmTemp(d);
});

/** A cleanly closed log of 4 segments plus a snapshot. */
function build(clean = true): { dir: string; segs: string[]; idxs: string[] } {
  const dir = tempDir("verify");
  temps.push(dir);
  const log = open(disk, dir, { segmentBytes: 4096 });
  for (let b = 0; b < 12; b++) {
    log.append(entries(1 + b * 8, 8, 1 + Math.floor(b / 4), 100));
    log.sync();
  }
  log.saveSnapshot({ meta: { index: 10, term: 1, members: ["n1"] }, data: new Uint8Array(100).fill(3) }, 0);
  log.sync();
  if (clean) log.close();
  const names = fs.readdirSync(path.join(dir, "log")).sort();
  return { dir, segs: names.filter((n) => n.endsWith(".seg")).map((n) => path.join(dir, "log", n)), idxs: names.filter((n) => n.endsWith(".idx")).map((n) => path.join(dir, "log", n)) };
}

/** Where the entries of a segment file end: after it, only preallocated zeros (if any). */
function entriesEnd(seg: string): number {
  const file = disk.open(seg, { create: false });
  const header = decodeSegmentHeader(file.read(0, segmentHeaderBytes));
  if (typeof header === "string") throw new Error(`bad header in ${seg}`);
  const size = scanSegment(file, header).size;
  file.close();
  return size;
}

function flip(file: string, position: number): void {
  const b = fs.readFileSync(file);
  b[position] = (b[position] as number) ^ 0x01;
  fs.writeFileSync(file, b);
}

function only(dir: string): { check: string; file: string } {
  const r = verifyDataDir(disk, dir);
  expect(r.ok).toBe(false);
  const corrupt = r.findings.filter((f) => f.severity === "corrupt");
  expect(corrupt.length).toBeGreaterThanOrEqual(1);
  return { check: corrupt[0]?.check as string, file: corrupt[0]?.file as string };
}

describe("dledger verify", () => {
  it("passes a clean directory, and a crashed one with only a torn tail", () => {
    const b = build();
    const r = verifyDataDir(disk, b.dir);
    expect(r.findings).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.entries).toBe(96);
    const c = build(false);
    const seg = c.segs[c.segs.length - 1] as string;
    const end = entriesEnd(seg);
    expect(fs.statSync(seg).size).toBeGreaterThan(end); // preallocated zeros: not a finding (Z1)
    expect(verifyDataDir(disk, c.dir).findings).toEqual([]);
    const partial = fs.readFileSync(seg).subarray(64, 64 + 60);
    const fd = fs.openSync(seg, "r+");
    fs.writeSync(fd, partial, 0, partial.length, end);
    fs.closeSync(fd);
    const rc = verifyDataDir(disk, c.dir);
    expect(rc.ok).toBe(true);
    expect(rc.findings.map((f) => [f.check, f.position])).toEqual([["torn_tail", end]]);
  });

  it("agrees with open after a crash with preallocated zeros: same last index, and open then cuts them", () => {
    const c = build(false);
    const r = verifyDataDir(disk, c.dir);
    expect(r.ok).toBe(true);
    const log = open(disk, c.dir, { segmentBytes: 4096 });
    expect(log.lastIndex()).toBe(r.lastIndex);
    expect(log.report.tornTail).toBeNull();
    log.close();
    const seg = c.segs[c.segs.length - 1] as string;
    expect(fs.statSync(seg).size).toBe(entriesEnd(seg));
    expect(verifyDataDir(disk, c.dir)).toMatchObject({ ok: true, findings: [], lastIndex: r.lastIndex });
  });

  it("agrees with open: zeros after the entries of a sealed segment are corrupt (I4), and open stops", () => {
    const b = build();
    fs.appendFileSync(b.segs[1] as string, Buffer.alloc(512));
    expect(only(b.dir)).toEqual({ check: "segment_length", file: b.segs[1] });
    expect(() => open(disk, b.dir, { segmentBytes: 4096 })).toThrow(/segment_length/);
    const c = build();
    fs.appendFileSync(c.segs[c.segs.length - 1] as string, Buffer.alloc(512)); // cleanly closed: trusted like a sealed one (R1)
    expect(only(c.dir)).toEqual({ check: "segment_length", file: c.segs[c.segs.length - 1] });
    expect(() => open(disk, c.dir, { segmentBytes: 4096 })).toThrow(/segment_length/);
  });

  it("names a byte flipped in an entry header", () => {
    const b = build();
    flip(b.segs[1] as string, 64 + 20);
    expect(only(b.dir)).toEqual({ check: "entry_header_crc", file: b.segs[1] });
  });

  it("names a byte flipped in an entry body", () => {
    const b = build();
    flip(b.segs[1] as string, 64 + entryHeaderBytes + 7);
    expect(only(b.dir)).toEqual({ check: "entry_body_crc", file: b.segs[1] });
  });

  it("names a truncated middle segment", () => {
    const b = build();
    const seg = b.segs[1] as string;
    fs.truncateSync(seg, fs.statSync(seg).size - 30);
    expect(only(b.dir)).toEqual({ check: "segment_length", file: seg });
  });

  it("names a deleted index file", () => {
    const b = build();
    fs.rmSync(b.idxs[1] as string);
    expect(only(b.dir)).toEqual({ check: "index_missing", file: b.idxs[1] });
  });

  it("names a corrupt snapshot and a corrupt state", () => {
    const b = build();
    const snapDir = path.join(b.dir, "snapshots");
    const snap = path.join(snapDir, fs.readdirSync(snapDir)[0] as string);
    flip(snap, 80);
    expect(only(b.dir)).toEqual({ check: "snapshot", file: snap });
    const c = build();
    flip(path.join(c.dir, "state"), 40);
    flip(path.join(c.dir, "state"), 4096 + 40);
    expect(only(c.dir).check).toBe("state_file");
  });

  it("the CLI exits 0 when clean and 1 when corrupt, printing the finding", async () => {
    const b = build();
    const run = async (): Promise<{ code: number; out: string }> => {
      const program = new Command("dledger").exitOverride();
      registerStorageCommands(program, { bench: new Command("bench") });
      let out = "";
      const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
        out += String(chunk);
        return true;
      });
      process.exitCode = 0;
      try {
        await program.parseAsync(["node", "dledger", "verify", b.dir]);
      } finally {
        spy.mockRestore();
      }
      const code = Number(process.exitCode ?? 0);
      process.exitCode = 0;
      return { code, out };
    };
    expect((await run()).code).toBe(0);
    flip(b.segs[2] as string, 64 + entryHeaderBytes + 1);
    const bad = await run();
    expect(bad.code).toBe(1);
    expect(bad.out).toContain("entry_body_crc");
    expect(bad.out).toContain(path.basename(b.segs[2] as string));
  });
});
