import { describe, expect, it } from "vitest";
import { DiskSim } from "./disk_sim.js";
import { StorageConfigError } from "./errors.js";
import { openCommitLog } from "./commit_log.js";
import { validateOptions } from "./config.js";

const base = { disk: new DiskSim(), dir: "/d", members: ["n1", "n2", "n3"] };

describe("CommitLog options", () => {
  it("fills defaults and freezes the config", () => {
    const c = validateOptions(base);
    expect(c.segmentBytes).toBe(64 * 1024 * 1024);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    [{ segmentBytes: 100 }, "segmentBytes (100) must be in [4096, 1073741824]"],
    [{ segmentBytes: 1.5e4 + 0.5 }, "segmentBytes (15000.5) must be an integer"],
    [{ tailCacheBytes: -1 }, "tailCacheBytes (-1) must be in"],
    [{ snapshotsKept: 0 }, "snapshotsKept (0) must be in [1, 1000]"],
    [{ members: [] }, "members ([]) must list 1 to 16 replica ids"],
    [{ members: ["n1", "n1"] }, 'members (["n1","n1"]) must not repeat an id'],
    [{ members: [""] }, 'members ("") ids must be 1 to 64 characters'],
    [{ dir: "" }, 'dir ("") must be a non-empty path'],
  ])("rejects %j", (bad, message) => {
    let caught: unknown;
    try {
      openCommitLog({ ...base, ...bad });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StorageConfigError);
    expect((caught as StorageConfigError).name).toBe("StorageConfigError");
    expect((caught as Error).message).toContain(message);
  });

  it("never mutates the caller's options", () => {
    const members = ["n1"];
    const o = { ...base, members };
    const c = validateOptions(o);
    expect(c.members).not.toBe(members);
  });
});
