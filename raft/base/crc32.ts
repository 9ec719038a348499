import CRC32 from "crc-32";
import * as zlib from "node:zlib";

/**
 * CRC-32 (IEEE 802.3, the zlib/PNG polynomial), as an unsigned 32-bit integer; `seed` continues a
 * previous CRC. Two implementations of the same function, chosen by size (measured on this host,
 * see bench/README.md): the `crc-32` package is fastest for short inputs such as 44-byte headers
 * (46 ns vs 290 ns: the native call's fixed cost dominates), Node's native `zlib.crc32`
 * (Node ≥ 20.15) for bodies (1 KiB: 292 vs 458 ns; 64 KiB: 10 vs 38 µs). storage/entry_codec.test.ts
 * checks that both agree; without the native one the package does everything.
 */
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
const nativeFromBytes = 512;

export function crc32Package(bytes: Uint8Array, seed = 0): number {
  return CRC32.buf(bytes, seed) >>> 0;
}

function crc32Hybrid(bytes: Uint8Array, seed = 0): number {
  if (bytes.byteLength < nativeFromBytes) return CRC32.buf(bytes, seed) >>> 0;
  return (nativeCrc32 as (data: Uint8Array, value?: number) => number)(bytes, seed);
}

export const crc32: (bytes: Uint8Array, seed?: number) => number = nativeCrc32 !== undefined ? crc32Hybrid : crc32Package;

