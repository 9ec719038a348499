/**
 * Just enough protobuf to speak to etcd without its .proto files: length-delimited and varint
 * fields out, a field map in. Untrusted input is bounded by the buffer; a bad wire type throws.
 */
export function varint(n: number | bigint): Buffer {
  const out: number[] = [];
  let v = BigInt(n);
  for (let i = 0; i < 10 && v >= 0x80n; i++) {
    out.push(Number((v & 0x7fn) | 0x80n));
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

export function bytesField(field: number, b: Uint8Array): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(b.byteLength), b]);
}

export type Fields = Map<number, (bigint | Buffer)[]>;

export function decodeFields(buf: Buffer): Fields {
  const out: Fields = new Map();
  let i = 0;
  const readVarint = (): bigint => {
    let r = 0n;
    let shift = 0n;
    for (let n = 0; n < 10; n++) {
      const b = buf[i++];
      if (b === undefined) throw new Error("truncated varint");
      r |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return r;
      shift += 7n;
    }
    throw new Error("varint too long");
  };
  while (i < buf.length) {
    const tag = Number(readVarint());
    const field = tag >>> 3;
    const wire = tag & 7;
    let v: bigint | Buffer;
    if (wire === 0) v = readVarint();
    else if (wire === 2) {
      const len = Number(readVarint());
      v = buf.subarray(i, i + len);
      i += len;
    } else if (wire === 1) {
      v = buf.readBigUInt64LE(i);
      i += 8;
    } else if (wire === 5) {
      v = BigInt(buf.readUInt32LE(i));
      i += 4;
    } else throw new Error(`bad wire type ${wire}`);
    const list = out.get(field) ?? [];
    list.push(v);
    out.set(field, list);
  }
  return out;
}

export function numberAt(f: Fields, field: number): bigint {
  const v = f.get(field)?.[0];
  return typeof v === "bigint" ? v : 0n;
}

export function bytesAt(f: Fields, field: number): Buffer | null {
  const v = f.get(field)?.[0];
  return Buffer.isBuffer(v) ? v : null;
}
