/**
 * A minimal Protocol Buffers (proto3) wire codec, driven by a field table per message.
 *
 * Why not @grpc/proto-loader or generated code: the client API has a dozen small messages made of
 * uint64, bool, string, bytes and nested messages. A table-driven codec of ~200 lines speaks the
 * real protobuf wire format (so `broker/api/ledger.proto` is the true contract: grpcurl or a
 * client generated in any language interoperates), adds no dependency, and is the single gateway
 * where untrusted client bytes become typed values (STYLE.md rule 5).
 *
 * Supported: varint fields (uint64 limited to 2^53 - 1, bool, enum-as-uint32), length-delimited
 * fields (string, bytes, message), `repeated` for each (packed varints are accepted on decode).
 * Unknown fields of any wire type are skipped, as proto3 requires. Defaults are not written.
 */

export const FieldKind = { uint64: "uint64", bool: "bool", string: "string", bytes: "bytes", message: "message" } as const;
export type FieldKind = (typeof FieldKind)[keyof typeof FieldKind];

export interface FieldSpec {
  readonly no: number;
  readonly name: string;
  readonly kind: FieldKind;
  readonly repeated?: boolean;
  /** For kind "message": the nested message's schema. */
  readonly schema?: MessageSchema;
}

export interface MessageSchema {
  readonly name: string;
  readonly fields: readonly FieldSpec[];
}

/** Bytes that are not a valid encoding of the expected message. */
export class ProtoDecodeError extends Error {
  override readonly name = "ProtoDecodeError";
}

/** Nesting deeper than this is refused: our messages nest at most two levels. */
const depthMax = 8;
const decoder = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

type Plain = Record<string, unknown>;

/* --- Encoding ---------------------------------------------------------------------------------- */

/*
 * Two passes, as protoc's generated code does: the first computes every nested message's size
 * (in pre-order, into `sizes`), the second writes into one buffer of exactly the total size. No
 * buffer grows or is copied, which matters on the append path (node --cpu-prof, bench/README.md).
 */

class Writer {
  readonly buf: Uint8Array;
  length = 0;
  /** Next entry of the sizes computed by the first pass. */
  sizeAt = 0;

  constructor(
    size: number,
    readonly sizes: readonly number[],
  ) {
    this.buf = new Uint8Array(size);
  }

  varint(value: number): void {
    let v = value;
    // Division instead of bit shifts: JS bit operators truncate to 32 bits.
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.length++] = v;
  }

  bytes(b: Uint8Array): void {
    this.varint(b.byteLength);
    this.buf.set(b, this.length);
    this.length += b.byteLength;
  }

  string(text: string, bytes: number): void {
    this.varint(bytes);
    const { written } = encoder.encodeInto(text, this.buf.subarray(this.length, this.length + bytes));
    if (written !== bytes) throw new Error(`string encoded to ${written} bytes, sized ${bytes}`);
    this.length += bytes;
  }
}

function varintBytes(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint ${value} is not a non-negative safe integer`);
  let n = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) n++;
  return n;
}

/** UTF-8 length of a string, as TextEncoder encodes it (lone surrogates become U+FFFD). */
function utf8Bytes(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Encodes `value` (an object with the schema's field names) into protobuf bytes. */
export function encodeMessage(schema: MessageSchema, value: Plain): Uint8Array {
  const sizes: number[] = [];
  const size = sizeMessage(schema, value, sizes);
  const w = new Writer(size, sizes);
  writeMessage(w, schema, value);
  if (w.length !== size) throw new Error(`${schema.name}: wrote ${w.length} bytes, sized ${size}`);
  return w.buf;
}

function present(f: FieldSpec, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (f.repeated === true) return true;
  switch (f.kind) {
    case "uint64":
      return v !== 0;
    case "bool":
      return v !== false;
    case "string":
      return v !== "";
    case "bytes":
      return (v as Uint8Array).byteLength > 0;
    case "message":
      return true;
  }
}

function sizeMessage(schema: MessageSchema, value: Plain, sizes: number[]): number {
  let total = 0;
  for (const f of schema.fields) {
    const v = value[f.name];
    if (!present(f, v)) continue;
    if (f.repeated === true) for (const item of v as readonly unknown[]) total += sizeField(f, item, sizes);
    else total += sizeField(f, v, sizes);
  }
  return total;
}

function sizeField(f: FieldSpec, v: unknown, sizes: number[]): number {
  const tag = varintBytes(f.no * 8);
  switch (f.kind) {
    case "uint64":
      return tag + varintBytes(v as number);
    case "bool":
      return tag + 1;
    case "string": {
      const n = utf8Bytes(v as string);
      sizes.push(n);
      return tag + varintBytes(n) + n;
    }
    case "bytes": {
      const n = (v as Uint8Array).byteLength;
      return tag + varintBytes(n) + n;
    }
    case "message": {
      const at = sizes.length;
      sizes.push(0);
      const n = sizeMessage(schemaOf(f), v as Plain, sizes);
      sizes[at] = n;
      return tag + varintBytes(n) + n;
    }
  }
}

function writeMessage(w: Writer, schema: MessageSchema, value: Plain): void {
  for (const f of schema.fields) {
    const v = value[f.name];
    if (!present(f, v)) continue;
    if (f.repeated === true) for (const item of v as readonly unknown[]) writeField(w, f, item);
    else writeField(w, f, v);
  }
}

function writeField(w: Writer, f: FieldSpec, v: unknown): void {
  switch (f.kind) {
    case "uint64":
      w.varint(f.no * 8);
      w.varint(v as number);
      return;
    case "bool":
      w.varint(f.no * 8);
      w.varint(v === true ? 1 : 0);
      return;
    case "string":
      w.varint(f.no * 8 + 2);
      w.string(v as string, w.sizes[w.sizeAt++] as number);
      return;
    case "bytes":
      w.varint(f.no * 8 + 2);
      w.bytes(v as Uint8Array);
      return;
    case "message":
      w.varint(f.no * 8 + 2);
      w.varint(w.sizes[w.sizeAt++] as number);
      writeMessage(w, schemaOf(f), v as Plain);
      return;
  }
}

function schemaOf(f: FieldSpec): MessageSchema {
  if (f.schema === undefined) throw new Error(`field ${f.name} of kind message has no schema`);
  return f.schema;
}

/* --- Decoding ---------------------------------------------------------------------------------- */

class Reader {
  position = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly what: string,
    /** bytes fields are views into `buf` instead of copies (decodeMessage's aliasBytes). */
    readonly aliasBytes = false,
  ) {}

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.position >= this.buf.byteLength) throw new ProtoDecodeError(`${this.what}: truncated varint`);
      const b = this.buf[this.position++] as number;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(value)) throw new ProtoDecodeError(`${this.what}: varint exceeds 2^53 - 1`);
        return value;
      }
      scale *= 0x80;
    }
    throw new ProtoDecodeError(`${this.what}: varint longer than 10 bytes`);
  }

  slice(): Uint8Array {
    const n = this.varint();
    if (n > this.buf.byteLength - this.position) throw new ProtoDecodeError(`${this.what}: length ${n} runs past the end`);
    const out = this.buf.subarray(this.position, this.position + n);
    this.position += n;
    return out;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.slice();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new ProtoDecodeError(`${this.what}: unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number): void {
    if (n > this.buf.byteLength - this.position) throw new ProtoDecodeError(`${this.what}: truncated fixed field`);
    this.position += n;
  }
}

/**
 * Decodes protobuf bytes into an object with every schema field present (proto3 defaults for
 * absent ones). Throws ProtoDecodeError on malformed input; never returns partial data.
 * bytes fields are copies, unless `aliasBytes`: then they are views into `bytes`, for callers
 * that copy them anyway and never write to `bytes` (the ledger service copies an append's body
 * into its entry; a copy here was a second 1 KiB ArrayBuffer per append to allocate and sweep).
 */
export function decodeMessage<T>(schema: MessageSchema, bytes: Uint8Array, options: { readonly aliasBytes?: boolean } = {}): T {
  return readMessage(new Reader(bytes, schema.name, options.aliasBytes === true), schema, 0) as T;
}

function defaults(schema: MessageSchema): Plain {
  const out: Plain = {};
  for (const f of schema.fields) {
    if (f.repeated === true) out[f.name] = [];
    else if (f.kind === "uint64") out[f.name] = 0;
    else if (f.kind === "bool") out[f.name] = false;
    else if (f.kind === "string") out[f.name] = "";
    else if (f.kind === "bytes") out[f.name] = new Uint8Array(0);
    else out[f.name] = null;
  }
  return out;
}

/** Field lookup tables, built once per schema. */
const fieldsByNo = new WeakMap<MessageSchema, Map<number, FieldSpec>>();

function readMessage(r: Reader, schema: MessageSchema, depth: number): Plain {
  if (depth > depthMax) throw new ProtoDecodeError(`${schema.name}: nested deeper than ${depthMax}`);
  const out = defaults(schema);
  let byNo = fieldsByNo.get(schema);
  if (byNo === undefined) {
    byNo = new Map(schema.fields.map((f) => [f.no, f]));
    fieldsByNo.set(schema, byNo);
  }
  while (r.position < r.buf.byteLength) {
    const key = r.varint();
    const no = Math.floor(key / 8);
    const wireType = key % 8;
    if (no === 0) throw new ProtoDecodeError(`${schema.name}: field number 0`);
    const f = byNo.get(no);
    if (f === undefined) {
      r.skip(wireType);
      continue;
    }
    readField(r, f, wireType, out, depth);
  }
  return out;
}

function readField(r: Reader, f: FieldSpec, wireType: number, out: Plain, depth: number): void {
  const push = (v: unknown): void => {
    if (f.repeated === true) (out[f.name] as unknown[]).push(v);
    else out[f.name] = v;
  };
  const varintKind = f.kind === "uint64" || f.kind === "bool";
  if (varintKind && wireType === 2 && f.repeated === true) {
    // Packed repeated varints (the proto3 default for repeated scalars).
    const inner = new Reader(r.slice(), r.what);
    while (inner.position < inner.buf.byteLength) push(scalar(f, inner.varint()));
    return;
  }
  const expected = varintKind ? 0 : 2;
  if (wireType !== expected) throw new ProtoDecodeError(`${r.what}: field ${f.name} has wire type ${wireType}, expected ${expected}`);
  if (varintKind) return push(scalar(f, r.varint()));
  const bytes = r.slice();
  if (f.kind === "bytes") return push(r.aliasBytes ? bytes : bytes.slice());
  if (f.kind === "string") {
    try {
      return push(decoder.decode(bytes));
    } catch (err) {
      throw new ProtoDecodeError(`${r.what}: field ${f.name} is not valid UTF-8`, { cause: err });
    }
  }
  const nested = schemaOf(f);
  push(readMessage(new Reader(bytes, nested.name, r.aliasBytes), nested, depth + 1));
}

function scalar(f: FieldSpec, v: number): unknown {
  return f.kind === "bool" ? v !== 0 : v;
}
