import type { Prng } from "../../raft/base/prng.js";
import type { NetParams } from "./sim_params.js";

/**
 * The simulated network between n replicas: a matrix of directed links that can be cut (a cut
 * a→b drops a's RPCs to b but not b's to a: an asymmetric partition), plus per-RPC delay, loss,
 * duplication and reordering drawn from the network's own PRNG stream.
 */
export class Network {
  private readonly cut: Uint8Array;

  constructor(
    readonly replicas: number,
    public params: NetParams,
    private readonly prng: Prng,
  ) {
    this.cut = new Uint8Array(replicas * replicas);
  }

  isCut(from: number, to: number): boolean {
    return this.cut[from * this.replicas + to] === 1;
  }

  /** Cuts from→to; returns true if the link was up. */
  cutLink(from: number, to: number): boolean {
    const i = from * this.replicas + to;
    if (this.cut[i] === 1 || from === to) return false;
    this.cut[i] = 1;
    return true;
  }

  healAll(): void {
    this.cut.fill(0);
  }

  get cutLinks(): number {
    let n = 0;
    for (const c of this.cut) n += c;
    return n;
  }

  /**
   * The delivery delays for one RPC: [] when it is lost, one delay normally, two when the
   * network duplicates it. Delays are µs; reordering comes from jitter and rare long delays.
   */
  deliveryDelays(out: number[]): void {
    out.length = 0;
    const p = this.params;
    if (p.lossP > 0 && this.prng.chance(p.lossP)) return;
    out.push(this.oneDelay());
    if (p.dupP > 0 && this.prng.chance(p.dupP)) out.push(this.oneDelay());
  }

  private oneDelay(): number {
    const p = this.params;
    let d = p.baseDelayUs;
    if (p.jitterUs > 0) d += this.prng.int(0, p.jitterUs);
    if (p.longDelayP > 0 && this.prng.chance(p.longDelayP)) d += this.prng.int(0, p.longDelayUs);
    return d;
  }
}
