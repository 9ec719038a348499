import { assert } from "../base/assert.js";
import type { Clock } from "../base/clock.js";
import type { ReplicaId, Rpc } from "../core/types.js";
import type { Transport } from "./contracts.js";

/**
 * A clock whose time moves only when a test says so. Timers fire in (due time, creation) order;
 * a 0 ms timer runs at the current time, after the timers already due.
 */
export class ManualClock implements Clock {
  private now = 0;
  private seq = 0;
  private timers: { due: number; seq: number; fn: () => void; live: boolean }[] = [];

  nowMs(): number {
    return this.now;
  }

  setTimer(delayMs: number, fn: () => void): () => void {
    const t = { due: this.now + delayMs, seq: this.seq++, fn, live: true };
    this.timers.push(t);
    return () => {
      t.live = false;
    };
  }

  /** Moves time forward by `ms`, firing every timer that falls due (bounded). */
  advance(ms: number, firingsMax = 1_000_000): void {
    const end = this.now + ms;
    for (let fired = 0; fired < firingsMax; fired++) {
      this.timers = this.timers.filter((t) => t.live);
      let next: (typeof this.timers)[number] | undefined;
      for (const t of this.timers) if (t.due <= end && (next === undefined || t.due < next.due || (t.due === next.due && t.seq < next.seq))) next = t;
      if (next === undefined) {
        this.now = end;
        return;
      }
      this.now = Math.max(this.now, next.due);
      next.live = false;
      next.fn();
    }
    throw new Error(`ManualClock.advance: more than ${firingsMax} timers fired`);
  }
}

/**
 * An in-process network for driver tests: each replica gets a Transport; delivery happens on a
 * 0 ms timer of the shared clock (so never re-entrantly). Links can be cut and replicas downed.
 */
export class LocalNetwork {
  private readonly handlers = new Map<ReplicaId, (rpcs: readonly Rpc[]) => void>();
  private readonly downHandlers = new Map<ReplicaId, (peer: ReplicaId) => void>();
  private readonly down = new Set<ReplicaId>();
  private readonly isolated = new Set<ReplicaId>();
  /** RPCs delivered, by type, for assertions. */
  readonly deliveredByType = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  transport(id: ReplicaId): Transport {
    return {
      send: (rpcs) => {
        if (this.down.has(id)) return;
        const batch = rpcs.slice();
        this.clock.setTimer(0, () => this.deliver(batch));
      },
      onReceive: (h) => {
        this.handlers.set(id, h);
      },
      onPeerDown: (h) => {
        this.downHandlers.set(id, h);
      },
    };
  }

  /** Takes `id` off the network, telling the others their connection to it closed. */
  kill(id: ReplicaId): void {
    this.down.add(id);
    for (const [other, h] of this.downHandlers) if (other !== id && !this.down.has(other)) h(id);
  }

  revive(id: ReplicaId): void {
    this.down.delete(id);
  }

  /** Drops everything to and from `id` without closing any connection (a silent partition). */
  isolate(id: ReplicaId): void {
    this.isolated.add(id);
  }

  heal(id: ReplicaId): void {
    this.isolated.delete(id);
  }

  private deliver(rpcs: readonly Rpc[]): void {
    for (const rpc of rpcs) {
      if (this.down.has(rpc.to) || this.down.has(rpc.from) || this.isolated.has(rpc.to) || this.isolated.has(rpc.from)) continue;
      const h = this.handlers.get(rpc.to);
      assert(h !== undefined, `no replica ${rpc.to} on the network`);
      this.deliveredByType.set(rpc.type, (this.deliveredByType.get(rpc.type) ?? 0) + 1);
      h([rpc]);
    }
  }
}
