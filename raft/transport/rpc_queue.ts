import { assert } from "../base/assert.js";
import type { Rpc } from "../core/types.js";

/**
 * A per-peer outbound queue of RPCs waiting to be framed, bounded by count and by encoded bytes.
 * When full it drops the oldest RPCs: Raft tolerates loss, and the newest RPCs carry the newest
 * term, commit index and log position, so they are the ones worth keeping.
 */
export class RpcQueue {
  private rpcs: Rpc[] = [];
  private sizes: number[] = [];
  private head = 0;
  private bytes = 0;

  constructor(
    readonly rpcsMax: number,
    readonly bytesMax: number,
  ) {
    assert(Number.isSafeInteger(rpcsMax) && rpcsMax > 0, `rpcsMax must be a positive integer, got ${rpcsMax}`);
    assert(Number.isSafeInteger(bytesMax) && bytesMax > 0, `bytesMax must be a positive integer, got ${bytesMax}`);
  }

  get length(): number {
    return this.rpcs.length - this.head;
  }

  get queuedBytes(): number {
    return this.bytes;
  }

  /** Appends `rpc` of `size` encoded bytes (≤ bytesMax); returns how many old RPCs it dropped. */
  push(rpc: Rpc, size: number): number {
    assert(size > 0 && size <= this.bytesMax, `rpc of ${size} bytes cannot fit a queue of ${this.bytesMax} bytes`);
    let dropped = 0;
    while (this.length > 0 && (this.length + 1 > this.rpcsMax || this.bytes + size > this.bytesMax)) {
      this.bytes -= this.sizes[this.head] as number;
      this.head++;
      dropped++;
    }
    this.rpcs.push(rpc);
    this.sizes.push(size);
    this.bytes += size;
    this.compact();
    assert(this.length <= this.rpcsMax, "rpc queue over its count bound");
    assert(this.bytes <= this.bytesMax, "rpc queue over its byte bound");
    return dropped;
  }

  /**
   * Removes and returns the oldest RPCs whose sizes sum to at most `bytesMax` (always at least
   * one RPC when the queue is not empty: the caller has made sure a single RPC fits a frame).
   */
  take(bytesMax: number): Rpc[] {
    const out: Rpc[] = [];
    let total = 0;
    while (this.length > 0) {
      const size = this.sizes[this.head] as number;
      if (out.length > 0 && total + size > bytesMax) break;
      out.push(this.rpcs[this.head] as Rpc);
      total += size;
      this.bytes -= size;
      this.head++;
    }
    this.compact();
    return out;
  }

  /** Drops everything; returns how many RPCs were dropped. */
  clear(): number {
    const dropped = this.length;
    this.rpcs = [];
    this.sizes = [];
    this.head = 0;
    this.bytes = 0;
    return dropped;
  }

  /** Reclaims the consumed prefix once it is both large and most of the array. */
  private compact(): void {
    if (this.head === this.rpcs.length) {
      this.rpcs.length = 0;
      this.sizes.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.rpcs.length) {
      this.rpcs = this.rpcs.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }
}
