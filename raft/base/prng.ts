import { assert } from "./assert.js";

/**
 * A seeded pseudo-random generator (sfc32, Chris Doty-Humphrey's small fast counting generator)
 * with splitmix32 seeding. Deterministic across platforms: it uses only 32-bit integer arithmetic.
 * `fork()` derives an independent stream, so one seed can drive a whole simulation while each
 * component draws from its own stream (adding a draw in one place does not shift all others).
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), `prng seed must be a safe integer, got ${seed}`);
    let s = (seed ^ Math.floor(seed / 0x1_0000_0000)) >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** A uniform integer in [lo, hi). Requires lo < hi. */
  int(lo: number, hi: number): number {
    assert(Number.isSafeInteger(lo) && Number.isSafeInteger(hi), `prng.int bounds must be integers`);
    assert(lo < hi, `prng.int needs lo < hi, got [${lo}, ${hi})`);
    return lo + Math.floor(this.float() * (hi - lo));
  }

  /** True with probability `p` (0 ≤ p ≤ 1). */
  chance(p: number): boolean {
    assert(p >= 0 && p <= 1, `probability must be in [0, 1], got ${p}`);
    return this.float() < p;
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, "prng.pick needs a non-empty array");
    return items[this.int(0, items.length)] as T;
  }

  /** A new generator whose stream is independent of this one's future draws. */
  fork(): Prng {
    return new Prng(this.u32() * 0x200000 + (this.u32() >>> 11));
  }
}
