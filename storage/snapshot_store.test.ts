import * as fs from "node:fs";
import * as path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../raft/base/logger.js";
import { DiskOs } from "./disk_os.js";
import { DiskSim, SimCrashError } from "./disk_sim.js";
import { CorruptionError } from "./errors.js";
import { SnapshotStore } from "./snapshot_store.js";
import { rmTemp, tempDir } from "./test_helpers.js";

const temps: string[] = [];
afterEach(() => {
  for (const d of temps.splice(0)) rmTemp(d);
});
const meta = (index: number) => ({ index, term: 2, members: ["n1", "n2"] });
const data = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);

describe("SnapshotStore", () => {
  it("streams a snapshot in chunks, reads it back in chunks, and keeps the newest N", () => {
    const dir = tempDir("snap");
    temps.push(dir);
    const store = SnapshotStore.open(new DiskOs(), dir, { keep: 2, chunkBytes: 1000, logger: silentLogger });
    for (const i of [10, 20, 30]) {
      const w = store.beginWrite(meta(i));
      for (let c = 0; c < 5; c++) w.write(data(777, i + c));
      expect(w.written).toBe(5 * 777);
      w.finish();
    }
    expect(store.list().map((m) => m.index)).toEqual([20, 30]);
    expect(store.dataLength(meta(30))).toBe(5 * 777);
    expect(store.readChunk(meta(30), 777, 10)).toEqual(data(10, 31));
    const snap = store.load(meta(30));
    expect(snap.meta).toEqual(meta(30));
    expect(snap.data.subarray(777 * 4)).toEqual(data(777, 34));
    store.verify(meta(20));
  });

  it("an aborted or interrupted write leaves nothing visible", () => {
    const disk = new DiskSim();
    disk.mkdirs("/d");
    disk.syncDir("/");
    const store = SnapshotStore.open(disk, "/d", { keep: 2, chunkBytes: 100, logger: silentLogger });
    const w = store.beginWrite(meta(5));
    w.write(data(50, 1));
    w.abort();
    expect(store.list()).toEqual([]);
    disk.crashAtOp(disk.operations + 3);
    expect(() => store.write({ meta: meta(6), data: data(500, 2) })).toThrow(SimCrashError);
    disk.crash();
    const reopened = SnapshotStore.open(disk, "/d", { keep: 2, chunkBytes: 100, logger: silentLogger });
    expect(reopened.list()).toEqual([]);
  });

  it("detects a flipped data byte", () => {
    const dir = tempDir("snap");
    temps.push(dir);
    const store = SnapshotStore.open(new DiskOs(), dir, { keep: 2, chunkBytes: 64, logger: silentLogger });
    store.write({ meta: meta(7), data: data(300, 9) });
    const file = path.join(dir, "snapshots", fs.readdirSync(path.join(dir, "snapshots"))[0] as string);
    const b = fs.readFileSync(file);
    b[100] = (b[100] as number) ^ 4;
    fs.writeFileSync(file, b);
    const fresh = SnapshotStore.open(new DiskOs(), dir, { keep: 2, chunkBytes: 64, logger: silentLogger });
    expect(() => fresh.load(meta(7))).toThrow(CorruptionError);
    expect(() => fresh.verify(meta(7))).toThrow(/data CRC/);
  });
});
