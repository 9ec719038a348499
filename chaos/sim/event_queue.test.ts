import { describe, expect, it } from "vitest";
import { Prng } from "../../raft/base/prng.js";
import { EventQueue } from "./event_queue.js";

interface Ev {
  readonly timeUs: number;
  readonly seq: number;
}

describe("EventQueue", () => {
  it("pops in (time, seq) order, matching a sort", () => {
    const prng = new Prng(7);
    const q = new EventQueue<Ev>();
    const all: Ev[] = [];
    for (let i = 0; i < 2000; i++) {
      const e = { timeUs: prng.int(0, 50), seq: q.seq() };
      all.push(e);
      q.push(e);
      if (prng.chance(0.3)) all.splice(all.indexOf(q.pop() as Ev), 1);
    }
    all.sort((a, b) => a.timeUs - b.timeUs || a.seq - b.seq);
    const popped: Ev[] = [];
    for (let e = q.pop(); e !== undefined; e = q.pop()) popped.push(e);
    expect(popped).toEqual(all);
  });
  it("returns undefined when empty", () => {
    expect(new EventQueue<Ev>().pop()).toBeUndefined();
  });
});
