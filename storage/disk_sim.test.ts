import { describe, expect, it } from "vitest";
import { Prng } from "../raft/base/prng.js";
import { DiskSim, SimCrashError } from "./disk_sim.js";

const bytes = (...v: number[]): Uint8Array => new Uint8Array(v);

describe("DiskSim", () => {
  it("keeps synced data and drops unsynced data on crash", () => {
    const disk = new DiskSim();
    disk.mkdirs("/a");
    disk.syncDir("/");
    const f = disk.open("/a/f", { create: true });
    disk.syncDir("/a");
    f.write(bytes(1, 2, 3), 0);
    f.sync();
    f.write(bytes(4, 5), 3);
    expect(f.read(0, 10)).toEqual(bytes(1, 2, 3, 4, 5));
    disk.crash();
    expect(disk.open("/a/f", { create: false }).read(0, 10)).toEqual(bytes(1, 2, 3));
  });

  it("loses directory entries that were not synced, and removals too", () => {
    const disk = new DiskSim();
    disk.mkdirs("/a");
    disk.syncDir("/");
    const f = disk.open("/a/f", { create: true });
    f.write(bytes(1), 0);
    f.sync();
    disk.crash();
    expect(disk.exists("/a/f")).toBe(false);
    disk.open("/a/g", { create: true }).sync();
    disk.syncDir("/a");
    disk.remove("/a/g");
    disk.crash();
    expect(disk.exists("/a/g")).toBe(true);
    disk.rename("/a/g", "/a/h");
    disk.syncDir("/a");
    disk.crash();
    expect(disk.list("/a")).toEqual(["h"]);
  });

  it("tears the last unsynced write deterministically per seed", () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      const disk = new DiskSim();
      const f = disk.open("/f", { create: true });
      disk.syncDir("/");
      f.write(new Uint8Array(600).fill(1), 0);
      f.sync();
      f.write(new Uint8Array(1500).fill(2), 600);
      disk.crash(new Prng(seed));
      const after = disk.open("/f", { create: false }).read(0, 5000);
      expect(after.subarray(0, 600)).toEqual(new Uint8Array(600).fill(1));
      for (const b of after.subarray(600)) expect(b === 0 || b === 2).toBe(true);
      outcomes.add(`${after.byteLength}`);
      const again = new DiskSim();
      const g = again.open("/f", { create: true });
      again.syncDir("/");
      g.write(new Uint8Array(600).fill(1), 0);
      g.sync();
      g.write(new Uint8Array(1500).fill(2), 600);
      again.crash(new Prng(seed));
      expect(again.open("/f", { create: false }).read(0, 5000)).toEqual(after);
    }
    expect(outcomes.size).toBeGreaterThan(5);
  });

  it("crashes at an armed operation without performing it", () => {
    const disk = new DiskSim();
    const f = disk.open("/f", { create: true });
    disk.crashAtOp(disk.operations + 1);
    f.write(bytes(1), 0);
    expect(() => f.sync()).toThrow(SimCrashError);
  });

  it("flips bits only within its fault budget", () => {
    const disk = new DiskSim({ bitFlipsMax: 2 });
    const f = disk.open("/f", { create: true });
    disk.syncDir("/");
    f.write(new Uint8Array(100), 0);
    f.sync();
    const prng = new Prng(7);
    expect(disk.flipRandomBit(prng)).not.toBeNull();
    expect(disk.flipRandomBit(prng)).not.toBeNull();
    expect(disk.flipRandomBit(prng)).toBeNull();
    expect(f.read(0, 100).some((b) => b !== 0)).toBe(true);
  });

  it("fails an armed fsync", () => {
    const disk = new DiskSim();
    const f = disk.open("/f", { create: true });
    disk.failNextSync();
    expect(() => f.sync()).toThrow(/fsync failed/);
    f.sync();
  });
});
