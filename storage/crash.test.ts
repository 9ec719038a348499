import { describe, expect, it } from "vitest";
import { Prng } from "../raft/base/prng.js";
import type { Entry, HardState } from "../raft/core/types.js";
import type { CommitLog } from "./commit_log.js";
import { DiskSim, SimCrashError } from "./disk_sim.js";
import { entries, open } from "./test_helpers.js";

/**
 * Crash at every disk operation of a small scripted workload (appends, votes, a segment roll, a
 * divergent-suffix truncation, a compaction, a clean close and reopen), then reopen:
 *   - everything acknowledged (sync returned) is there, byte for byte, with its hard state;
 *   - everything else that survived is a prefix of the batch in flight, never something new.
 */
interface Model {
  log: Map<number, Entry>;
  last: number;
  /** An in-flight truncation may already be durable: entries above this may be gone. */
  floor: number;
  hard: HardState;
}

const opts = { segmentBytes: 4096, tailCacheBytes: 1024 };
const snap = { meta: { index: 40, term: 1, members: ["n1", "n2", "n3"] }, data: new Uint8Array(300).fill(7) };

function workload(disk: DiskSim, acked: Model, inFlight: Map<number, Entry>): void {
  let log: CommitLog = open(disk, "/d", opts);
  const step = (f: (l: CommitLog) => { entries?: Entry[]; hard?: HardState; truncateTo?: number }): void => {
    const change = f(log);
    inFlight.clear();
    for (const e of change.entries ?? []) inFlight.set(e.index, e);
    acked.floor = Math.min(acked.last, change.truncateTo ?? acked.last);
    log.sync();
    if (change.truncateTo !== undefined) for (let i = change.truncateTo + 1; i <= acked.last; i++) acked.log.delete(i);
    for (const e of change.entries ?? []) acked.log.set(e.index, e);
    acked.last = log.lastIndex();
    acked.floor = acked.last;
    if (change.hard !== undefined) acked.hard = change.hard;
    inFlight.clear();
  };
  const hs = (term: number, commit: number): HardState => ({ term, votedFor: "n1", commit });
  step((l) => (l.setHardState(hs(1, 0)), { hard: hs(1, 0) }));
  for (let b = 0; b < 6; b++) {
    const batch = entries(1 + b * 8, 8, 1, 90 + b);
    step((l) => (l.append(batch), l.setHardState(hs(1, b * 8)), { entries: batch, hard: hs(1, b * 8) }));
  }
  const divergent = entries(45, 4, 2, 60);
  step((l) => (l.append(divergent), l.setHardState(hs(2, 44)), { entries: divergent, hard: hs(2, 44), truncateTo: 44 }));
  step((l) => (l.saveSnapshot(snap, 30), {}));
  log.close();
  log = open(disk, "/d", opts);
  const more = entries(49, 5, 2, 200);
  step((l) => (l.append(more), { entries: more }));
  log.close();
}

function checkRecovered(disk: DiskSim, acked: Model, inFlight: Map<number, Entry>, where: string): void {
  const log = open(disk, "/d", opts);
  const hard = log.initialState().hardState;
  expect(hard.term, where).toBeGreaterThanOrEqual(acked.hard.term);
  if (hard.term === acked.hard.term) expect(hard.votedFor, where).toBe(acked.hard.votedFor);
  expect(log.lastIndex(), where).toBeGreaterThanOrEqual(acked.floor);
  const got = log.lastIndex() >= log.firstIndex() ? log.entries(log.firstIndex(), log.lastIndex() + 1, 1 << 30) : [];
  for (const e of got) {
    const fromAck = e.index <= acked.last ? acked.log.get(e.index) : undefined;
    const fromFlight = inFlight.get(e.index);
    const expected = fromFlight !== undefined && fromAck !== undefined && fromAck.term !== e.term ? fromFlight : (fromAck ?? fromFlight);
    expect(expected, `${where}: entry ${e.index} was never written`).toBeDefined();
    expect(e.term, where).toBe(expected?.term);
    expect(e.data, where).toEqual(expected?.data);
  }
  // The recovered store must take writes again.
  log.append(entries(log.lastIndex() + 1, 2, Math.max(2, log.term(log.lastIndex()) ?? 1)));
  log.sync();
  log.close();
  open(disk, "/d", opts).close();
}

function runTo(crashAt: number, prng: Prng | undefined): { disk: DiskSim; acked: Model; inFlight: Map<number, Entry>; crashed: boolean } {
  const disk = new DiskSim();
  const acked: Model = { log: new Map(), last: 0, floor: 0, hard: { term: 0, votedFor: null, commit: 0 } };
  const inFlight = new Map<number, Entry>();
  disk.crashAtOp(crashAt);
  let crashed = false;
  try {
    workload(disk, acked, inFlight);
  } catch (err) {
    if (!(err instanceof SimCrashError)) throw err;
    crashed = true;
  }
  disk.crash(prng);
  return { disk, acked, inFlight, crashed };
}

describe("crash at every write boundary (DiskSim)", () => {
  const total = (() => {
    const disk = new DiskSim();
    workload(disk, { log: new Map(), last: 0, floor: 0, hard: { term: 0, votedFor: null, commit: 0 } }, new Map());
    return disk.operations;
  })();

  it("the workload has enough boundaries to be interesting", () => {
    expect(total).toBeGreaterThan(60);
  });

  it("loses nothing acknowledged when unsynced writes are dropped", () => {
    for (let op = 0; op <= total; op++) {
      const r = runTo(op, undefined);
      checkRecovered(r.disk, r.acked, r.inFlight, `crash at op ${op}`);
    }
  });

  it("loses nothing acknowledged when the last writes are torn", () => {
    for (let op = 0; op <= total; op++) {
      for (let seed = 1; seed <= 4; seed++) {
        const r = runTo(op, new Prng(op * 1000 + seed));
        checkRecovered(r.disk, r.acked, r.inFlight, `crash at op ${op}, tear seed ${seed}`);
      }
    }
  });
});
