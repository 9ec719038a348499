import { assert } from "../../raft/base/assert.js";

/**
 * A binary min-heap of simulator events ordered by (timeUs, seq). `seq` is assigned at push, so
 * events at the same simulated microsecond run in the order they were scheduled: with one seed
 * the order is total and the run is reproducible.
 */
export interface QueuedEvent {
  readonly timeUs: number;
  readonly seq: number;
}

export class EventQueue<E extends QueuedEvent> {
  private readonly heap: E[] = [];
  private nextSeq = 0;
  /** Bound on pending events: a runaway feedback loop fails loudly (STYLE.md rule 13). */
  static readonly eventsMax = 1_000_000;

  get size(): number {
    return this.heap.length;
  }

  /** The next sequence number; the caller builds the event with it and pushes it. */
  seq(): number {
    return this.nextSeq++;
  }

  push(event: E): void {
    assert(this.heap.length < EventQueue.eventsMax, `event queue over ${EventQueue.eventsMax} events`);
    const heap = this.heap;
    let i = heap.length;
    heap.push(event);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as E;
      if (!before(event, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = event;
  }

  /** Removes and returns the earliest event, or undefined when empty. */
  pop(): E | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    const n = heap.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && before(heap[r] as E, heap[l] as E)) c = r;
      const child = heap[c] as E;
      if (!before(child, last)) break;
      heap[i] = child;
      i = c;
    }
    heap[i] = last;
    return top;
  }

  peekTimeUs(): number | undefined {
    return this.heap[0]?.timeUs;
  }
}

function before(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.timeUs < b.timeUs || (a.timeUs === b.timeUs && a.seq < b.seq);
}
