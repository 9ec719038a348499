/** Byte helpers shared by codecs. Pure: no node:buffer, so raft/core may use them. */

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 encode. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** UTF-8 decode; throws TypeError on invalid UTF-8 rather than inventing replacement characters. */
export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Concatenates `parts` into one new array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.byteLength;
  const out = new Uint8Array(total);
  let position = 0;
  for (const p of parts) {
    out.set(p, position);
    position += p.byteLength;
  }
  return out;
}

/** Lower-case hex of `bytes` (for logs and traces). */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/**
 * FNV-1a 32-bit hash, folded with a previous hash. Not a checksum for storage (that is CRC-32 in
 * storage/); it is a cheap fingerprint for the simulator's log-matching checks.
 */
export function fnv1a(bytes: Uint8Array, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < bytes.byteLength; i++) {
    h ^= bytes[i] as number;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * Byte arrays carved from shared ArrayBuffers ("slabs"), for many small arrays that die roughly
 * in the order they were made, such as log entries (the tail cache drops the oldest first). One
 * ArrayBuffer per slab instead of one per array: V8 tracks every ArrayBuffer on its own and
 * sweeps them in each scavenge, which at 3,000 appends/s was 1.5–1.9 ms of a leader's longest
 * scavenge pauses (3–7 ms). A slab stays alive while any array carved from it does, so arrays of
 * `largeMin` bytes or more get a buffer of their own. Contents start as zeros, like
 * `new Uint8Array(n)`.
 */
export class ByteSlab {
  private slab: ArrayBuffer | null = null;
  private used = 0;

  constructor(
    readonly slabBytes = 256 * 1024,
    readonly largeMin = 32 * 1024,
  ) {
    if (!(Number.isSafeInteger(slabBytes) && slabBytes > 0 && largeMin > 0 && largeMin <= slabBytes)) {
      throw new RangeError(`ByteSlab: slabBytes ${slabBytes}, largeMin ${largeMin}`);
    }
  }

  alloc(n: number): Uint8Array {
    if (n >= this.largeMin) return new Uint8Array(n);
    if (this.slab === null || this.used + n > this.slabBytes) {
      this.slab = new ArrayBuffer(this.slabBytes);
      this.used = 0;
    }
    const out = new Uint8Array(this.slab, this.used, n);
    // Every array starts on an 8-byte boundary, so a DataView over it reads aligned.
    this.used += (n + 7) & ~7;
    return out;
  }
}
