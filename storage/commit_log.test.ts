import { afterEach, describe, expect, it } from "vitest";
import * as fs from "node:fs";
import * as path from "node:path";
import { DiskOs } from "./disk_os.js";
import { DiskSim } from "./disk_sim.js";
import type { Disk } from "./disk.js";
import { entries, entry, open, rmTemp, tempDir } from "./test_helpers.js";

const temps: string[] = [];
afterEach(() => {
  for (const d of temps.splice(0)) rmTemp(d);
});

const bindings: { name: string; make: () => { disk: Disk; dir: string } }[] = [
  { name: "DiskSim", make: () => ({ disk: new DiskSim(), dir: "/data" }) },
  {
    name: "DiskOs",
    make: () => {
      const dir = tempDir("cl");
      temps.push(dir);
      return { disk: new DiskOs(), dir };
    },
  },
];

describe.each(bindings)("CommitLog on $name", ({ make }) => {
  it("starts empty with the configured members", () => {
    const { disk, dir } = make();
    const log = open(disk, dir);
    expect(log.firstIndex()).toBe(1);
    expect(log.lastIndex()).toBe(0);
    expect(log.term(0)).toBe(0);
    expect(log.term(1)).toBeUndefined();
    expect(log.initialState()).toEqual({ hardState: { term: 0, votedFor: null, commit: 0 }, members: ["n1", "n2", "n3"] });
    expect(log.snapshot()).toBeNull();
    log.close();
  });

  it("appends, reads back, and survives a clean reopen", () => {
    const { disk, dir } = make();
    const log = open(disk, dir);
    log.append(entries(1, 10, 1));
    log.append(entries(11, 5, 2));
    log.setHardState({ term: 2, votedFor: "n2", commit: 12 });
    log.sync();
    expect(log.entries(3, 6, 1 << 20).map((e) => e.index)).toEqual([3, 4, 5]);
    log.close();
    const again = open(disk, dir);
    expect(again.report.clean).toBe(true);
    expect(again.lastIndex()).toBe(15);
    expect(again.term(10)).toBe(1);
    expect(again.term(11)).toBe(2);
    expect(again.initialState().hardState).toEqual({ term: 2, votedFor: "n2", commit: 12 });
    const got = again.entries(1, 16, 1 << 20);
    expect(got.map((e) => e.index)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(got[4]?.data).toEqual(entry(5, 1).data);
    again.close();
  });

  it("respects maxBytes but returns at least one entry", () => {
    const { disk, dir } = make();
    const log = open(disk, dir, { tailCacheBytes: 0 });
    log.append(entries(1, 10, 1, 100));
    log.sync();
    expect(log.entries(1, 11, 250).length).toBe(2);
    expect(log.entries(1, 11, 10).length).toBe(1);
    expect(log.entries(4, 4, 10).length).toBe(0);
    log.close();
  });

  it("rolls segments and reads across them after reopen", () => {
    const { disk, dir } = make();
    const log = open(disk, dir, { segmentBytes: 4096, tailCacheBytes: 0 });
    for (let i = 0; i < 20; i++) {
      log.append(entries(1 + i * 5, 5, 1 + Math.floor(i / 7), 100));
      log.sync();
    }
    expect(log.entries(1, 101, 1 << 20).length).toBe(100);
    log.close();
    const again = open(disk, dir, { segmentBytes: 4096, tailCacheBytes: 0 });
    expect(again.report.segments).toBeGreaterThan(3);
    expect(again.entries(1, 101, 1 << 20).map((e) => e.term)).toEqual(Array.from({ length: 100 }, (_, i) => 1 + Math.floor(Math.floor(i / 5) / 7)));
    again.close();
  });

  it("truncates a divergent suffix across segments", () => {
    const { disk, dir } = make();
    const log = open(disk, dir, { segmentBytes: 4096 });
    log.append(entries(1, 100, 1, 100));
    log.sync();
    log.append(entries(30, 3, 2, 50));
    log.sync();
    expect(log.lastIndex()).toBe(32);
    expect(log.term(29)).toBe(1);
    expect(log.term(30)).toBe(2);
    log.close();
    const again = open(disk, dir, { segmentBytes: 4096 });
    expect(again.lastIndex()).toBe(32);
    expect(again.entries(28, 33, 1 << 20).map((e) => `${e.index}/${e.term}/${e.data.byteLength}`)).toEqual(["28/1/100", "29/1/100", "30/2/50", "31/2/50", "32/2/50"]);
    again.close();
  });

  it("refuses to truncate below the commit index", () => {
    const { disk, dir } = make();
    const log = open(disk, dir);
    log.append(entries(1, 10, 1));
    log.setHardState({ term: 1, votedFor: null, commit: 8 });
    log.sync();
    expect(() => log.append(entries(5, 1, 2))).toThrow(/committed/);
  });

  it("compacts after a snapshot and keeps the entries above", () => {
    const { disk, dir } = make();
    const log = open(disk, dir, { segmentBytes: 4096 });
    log.append(entries(1, 100, 1, 100));
    log.sync();
    log.saveSnapshot({ meta: { index: 60, term: 1, members: ["n1", "n2", "n3"] }, data: new Uint8Array([1, 2, 3]) }, 50);
    log.sync();
    expect(log.firstIndex()).toBe(51);
    expect(log.term(50)).toBe(1);
    expect(log.term(49)).toBeUndefined();
    expect(log.snapshot()?.meta.index).toBe(60);
    log.close();
    const again = open(disk, dir, { segmentBytes: 4096 });
    expect(again.firstIndex()).toBe(51);
    expect(again.entries(51, 101, 1 << 20).length).toBe(50);
    expect(again.snapshot()?.data).toEqual(new Uint8Array([1, 2, 3]));
    again.close();
  });

  it("installs a snapshot replacing the whole log", () => {
    const { disk, dir } = make();
    const log = open(disk, dir, { segmentBytes: 4096 });
    log.append(entries(1, 40, 1, 100));
    log.sync();
    log.installSnapshot({ meta: { index: 500, term: 7, members: ["n1", "n2", "n4"] }, data: new Uint8Array(5000).fill(9) });
    log.append(entries(501, 3, 7));
    log.setHardState({ term: 7, votedFor: null, commit: 500 });
    log.sync();
    expect(log.firstIndex()).toBe(501);
    expect(log.lastIndex()).toBe(503);
    expect(log.term(500)).toBe(7);
    log.close();
    const again = open(disk, dir, { segmentBytes: 4096 });
    expect(again.firstIndex()).toBe(501);
    expect(again.lastIndex()).toBe(503);
    expect(again.initialState().members).toEqual(["n1", "n2", "n4"]);
    expect(again.snapshot()?.data.byteLength).toBe(5000);
    again.close();
  });
});

describe("CommitLog I/O budget (DiskSim counters)", () => {
  it("does one write and one fsync per batch when term and vote are unchanged", () => {
    const disk = new DiskSim();
    const log = open(disk, "/d", { preallocateBytes: 0 });
    log.setHardState({ term: 1, votedFor: "n1", commit: 0 });
    log.sync();
    const before = { ...disk.stats };
    for (let i = 0; i < 10; i++) {
      log.append(entries(1 + i * 64, 64, 1, 1024));
      log.setHardState({ term: 1, votedFor: "n1", commit: i * 64 });
      log.sync();
    }
    expect(disk.stats.writes - before.writes).toBe(10);
    expect(disk.stats.syncs - before.syncs).toBe(10);
  });

  it("with preallocation: one fsync per batch, and zeros written only when a batch would grow the file", () => {
    const disk = new DiskSim();
    const log = open(disk, "/d", { preallocateBytes: 1024 * 1024 });
    log.setHardState({ term: 1, votedFor: "n1", commit: 0 });
    log.sync();
    const before = { ...disk.stats };
    const batchBytes = 64 * (48 + 1024);
    for (let i = 0; i < 10; i++) {
      log.append(entries(1 + i * 64, 64, 1, 1024));
      log.sync();
    }
    // The first batch grows the file and writes 1 MiB of zeros after itself (in 256 KiB pieces);
    // the next nine land inside them.
    expect(disk.stats.syncs - before.syncs).toBe(10);
    expect(disk.stats.writes - before.writes).toBe(10 + 4);
    expect(disk.stats.writtenBytes - before.writtenBytes).toBe(10 * batchBytes + 1024 * 1024);
  });

  it("a failed fsync is fatal and never retried", () => {
    const disk = new DiskSim();
    const log = open(disk, "/d");
    log.append(entries(1, 3, 1));
    disk.failNextSync();
    expect(() => log.sync()).toThrow(/fsync failed/);
    expect(() => log.sync()).toThrow(/not usable/);
    expect(() => log.entries(1, 2, 100)).toThrow(/not usable/);
  });
});

describe("CommitLog.syncAsync", () => {
  const syncAsync = (log: ReturnType<typeof open>): Promise<unknown> => new Promise((resolve) => log.syncAsync(resolve));

  it("on DiskOs: the fdatasync runs off the event loop; reads work meanwhile, writes are refused, and the batch is durable after", async () => {
    const dir = tempDir("cl-async");
    temps.push(dir);
    const log = open(new DiskOs(), dir, { tailCacheBytes: 0 });
    log.append(entries(1, 3, 1));
    log.setHardState({ term: 1, votedFor: "n1", commit: 0 });
    await syncAsync(log);
    log.append(entries(4, 5, 1));
    let settled: unknown = "pending";
    log.syncAsync((err) => (settled = err));
    // Not settled before the call returns: the flush happens on the thread pool.
    expect(settled).toBe("pending");
    expect(log.entries(1, 9, 1 << 20).map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(() => log.append(entries(9, 1, 1))).toThrow(/syncAsync is in flight/);
    expect(() => log.sync()).toThrow(/syncAsync is in flight/);
    for (let i = 0; i < 500 && settled === "pending"; i++) await new Promise((r) => setTimeout(r, 2));
    expect(settled).toBeNull();
    log.append(entries(9, 1, 1));
    log.sync();
    log.close();
    const again = open(new DiskOs(), dir);
    expect(again.lastIndex()).toBe(9);
    expect(again.initialState().hardState).toMatchObject({ term: 1, votedFor: "n1" });
    again.close();
  });

  it("on DiskOs: close() while a syncAsync is in flight syncs on the spot and still shuts down cleanly", async () => {
    const dir = tempDir("cl-async-close");
    temps.push(dir);
    const log = open(new DiskOs(), dir);
    log.append(entries(1, 4, 1));
    const done = syncAsync(log);
    log.close();
    expect(await done).toBeNull();
    const again = open(new DiskOs(), dir);
    expect(again.report.clean).toBe(true);
    expect(again.lastIndex()).toBe(4);
    again.close();
  });

  it("on a Disk without syncAsync (DiskSim) it syncs in place and calls back before returning", () => {
    const disk = new DiskSim();
    const log = open(disk, "/data");
    log.append(entries(1, 2, 1));
    let settled: unknown = "pending";
    log.syncAsync((err) => (settled = err));
    expect(settled).toBeNull();
    disk.crash();
    const again = open(disk, "/data");
    expect(again.lastIndex()).toBe(2);
    again.close();
  });
});

describe("CommitLog compaction on DiskOs", () => {
  const segFiles = (dir: string): string[] => fs.readdirSync(path.join(dir, "log")).filter((n) => n.endsWith(".seg") || n.endsWith(".idx")).sort();
  /** 100 entries over 5 small segments, then a snapshot at 60 compacting to 50. */
  const compacted = (dir: string) => {
    const log = open(new DiskOs(), dir, { segmentBytes: 4096 });
    for (let i = 0; i < 10; i++) {
      log.append(entries(1 + 10 * i, 10, 1, 100));
      log.sync();
    }
    const before = segFiles(dir);
    expect(before.length).toBeGreaterThan(4);
    log.saveSnapshot({ meta: { index: 60, term: 1, members: ["n1", "n2", "n3"] }, data: new Uint8Array([1]) }, 50);
    log.sync();
    return { log, before };
  };

  it("removes compacted segments on the thread pool: every compacted file is gone soon after, the rest stay", async () => {
    const dir = tempDir("cl-compact-bg");
    temps.push(dir);
    const { log, before } = compacted(dir);
    expect(log.firstIndex()).toBe(51);
    // Segments 1 and 21 end below the first index 51; segment 41 holds it.
    const kept = before.filter((n) => Number(n.slice(0, 20)) >= 41);
    let after = segFiles(dir);
    for (let i = 0; i < 500 && after.length !== kept.length; i++) {
      await new Promise((r) => setTimeout(r, 2));
      after = segFiles(dir);
    }
    expect(after).toEqual(kept);
    expect(log.entries(51, 101, 1 << 20).map((e) => e.index)).toEqual(Array.from({ length: 50 }, (_, i) => 51 + i));
    log.close();
  });

  it("close() right after a compaction finishes the removals on the spot, so a reopen finds no leftover", () => {
    const dir = tempDir("cl-compact-close");
    temps.push(dir);
    const { log, before } = compacted(dir);
    log.close();
    const left = segFiles(dir);
    expect(left.length).toBeLessThan(before.length);
    const again = open(new DiskOs(), dir, { segmentBytes: 4096 });
    expect(again.report.clean).toBe(true);
    expect(again.firstIndex()).toBe(51);
    expect(segFiles(dir)).toEqual(left);
    again.close();
  });
});
