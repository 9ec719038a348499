import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { schemas, type AppendRequest, type MetadataResponse } from "./ledger_messages.js";
import { decodeMessage, encodeMessage, ProtoDecodeError, type MessageSchema } from "./proto_wire.js";

const protoText = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "ledger.proto"), "utf8");

/** message name → field name (camelCase) → [number, type, repeated], parsed from ledger.proto. */
function protoMessages(): Map<string, Map<string, [number, string, boolean]>> {
  const out = new Map<string, Map<string, [number, string, boolean]>>();
  for (const m of protoText.matchAll(/message (\w+) \{([^}]*)\}/g)) {
    const fields = new Map<string, [number, string, boolean]>();
    for (const f of (m[2] ?? "").matchAll(/^\s*(repeated )?(\w+) (\w+) = (\d+);/gm)) {
      const camel = (f[3] ?? "").replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
      fields.set(camel, [Number(f[4]), f[2] ?? "", f[1] !== undefined]);
    }
    out.set(m[1] ?? "", fields);
  }
  return out;
}

const kindOf = (protoType: string): string => (["uint64", "uint32"].includes(protoType) ? "uint64" : ["bool", "string", "bytes"].includes(protoType) ? protoType : "message");

describe("ledger.proto and the codec's field tables agree", () => {
  const proto = protoMessages();
  for (const schema of Object.values(schemas) as MessageSchema[]) {
    it(`${schema.name}: same fields, numbers, kinds and repetition`, () => {
      const fields = proto.get(schema.name);
      expect(fields, `message ${schema.name} in ledger.proto`).toBeDefined();
      const fromSchema = new Map(schema.fields.map((f) => [f.name, [f.no, f.kind, f.repeated === true] as const]));
      expect([...fromSchema.keys()].sort()).toEqual([...(fields?.keys() ?? [])].sort());
      for (const [name, [no, type, repeated]] of fields ?? []) {
        expect(fromSchema.get(name)).toEqual([no, kindOf(type), repeated]);
      }
    });
  }
});

describe("protobuf wire codec", () => {
  it("copies bytes fields by default, and with aliasBytes gives views into the input (nested ones too)", () => {
    const req: AppendRequest = { clientId: "c", sequence: 7, body: new Uint8Array([9, 8, 7]) };
    const wire = encodeMessage(schemas.appendRequest, { ...req });
    const copied = decodeMessage<AppendRequest>(schemas.appendRequest, wire);
    const viewed = decodeMessage<AppendRequest>(schemas.appendRequest, wire, { aliasBytes: true });
    expect([...copied.body]).toEqual([9, 8, 7]);
    expect([...viewed.body]).toEqual([9, 8, 7]);
    expect(viewed.body.buffer).toBe(wire.buffer);
    expect(copied.body.buffer).not.toBe(wire.buffer);
    wire[wire.byteLength - 1] = 0;
    expect([...copied.body]).toEqual([9, 8, 7]);
    expect([...viewed.body]).toEqual([9, 8, 0]);
    const session = encodeMessage(schemas.appendSessionRequest, { appends: [{ id: 1, request: { ...req } }] });
    const nested = decodeMessage<{ appends: { request: AppendRequest }[] }>(schemas.appendSessionRequest, session, { aliasBytes: true });
    expect(nested.appends[0]?.request.body.buffer).toBe(session.buffer);
  });

  it("encodes byte for byte as protoc would", () => {
    // AppendRequest{client_id:"c", sequence:300, body:[1,2]}: 0a 01 63 | 10 ac 02 | 1a 02 01 02
    const bytes = encodeMessage(schemas.appendRequest, { clientId: "c", sequence: 300, body: new Uint8Array([1, 2]) });
    expect([...bytes]).toEqual([0x0a, 0x01, 0x63, 0x10, 0xac, 0x02, 0x1a, 0x02, 0x01, 0x02]);
    // Defaults are not written.
    expect(encodeMessage(schemas.appendRequest, { clientId: "", sequence: 0, body: new Uint8Array(0) }).byteLength).toBe(0);
  });

  it("round-trips messages with nesting, repetition and 53-bit integers", () => {
    const member = fc.record({ id: fc.string({ maxLength: 8 }), clientAddress: fc.string({ maxLength: 8 }) });
    fc.assert(
      fc.property(
        fc.record({
          group: fc.string(),
          replicaId: fc.string(),
          role: fc.string(),
          leaderId: fc.string(),
          leaderAddress: fc.string(),
          term: fc.maxSafeNat(),
          members: fc.array(member, { maxLength: 5 }),
          commitIndex: fc.maxSafeNat(),
          appliedIndex: fc.maxSafeNat(),
          firstIndex: fc.maxSafeNat(),
          lastIndex: fc.maxSafeNat(),
        }),
        (m: MetadataResponse) => {
          expect(decodeMessage(schemas.metadataResponse, encodeMessage(schemas.metadataResponse, { ...m }))).toEqual(m);
        },
      ),
    );
  });

  it("sizes strings exactly as TextEncoder writes them (multi-byte, astral, lone surrogates)", () => {
    const utf8 = new TextEncoder();
    const roundTrip = (t: string) => new TextDecoder().decode(utf8.encode(t));
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }), (a, b) => {
        const bytes = encodeMessage(schemas.appendRequest, { clientId: a + b, sequence: 1, body: new Uint8Array([7]) });
        const idBytes = utf8.encode(a + b).byteLength;
        // Tag, length varint, the UTF-8 bytes, then sequence (2 bytes) and body (3 bytes).
        expect(bytes.byteLength).toBe(idBytes === 0 ? 5 : 1 + (idBytes < 128 ? 1 : 2) + idBytes + 5);
        expect(decodeMessage<AppendRequest>(schemas.appendRequest, bytes).clientId).toBe(roundTrip(a + b));
      }),
    );
  });

  it("encodes nested session messages: a tagged append inside a request, byte for byte", () => {
    // AppendSessionRequest{appends:[{id:5, request:{sequence:1, body:[9]}}]}
    //   0a 09 | 08 05 | 12 05 | 10 01 1a 01 09
    const bytes = encodeMessage(schemas.appendSessionRequest, { appends: [{ id: 5, request: { clientId: "", sequence: 1, body: new Uint8Array([9]) } }] });
    expect([...bytes]).toEqual([0x0a, 0x09, 0x08, 0x05, 0x12, 0x05, 0x10, 0x01, 0x1a, 0x01, 0x09]);
  });

  it("skips unknown fields of every wire type", () => {
    // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32, then sequence = 5
    const bytes = new Uint8Array([0x48, 0x01, 0x51, 0, 0, 0, 0, 0, 0, 0, 0, 0x5a, 0x01, 0x00, 0x65, 0, 0, 0, 0, 0x10, 0x05]);
    expect(decodeMessage<AppendRequest>(schemas.appendRequest, bytes).sequence).toBe(5);
  });

  const malformed: [string, number[], RegExp][] = [
    ["a truncated varint", [0x10, 0x80], /truncated varint/],
    ["a length past the end", [0x0a, 0x05, 0x61], /runs past the end/],
    ["a varint above 2^53", [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /exceeds 2\^53/],
    ["a wrong wire type", [0x0d, 0, 0, 0, 0], /field clientId has wire type 5/],
    ["invalid UTF-8", [0x0a, 0x01, 0xff], /not valid UTF-8/],
    ["field number 0", [0x00, 0x01], /field number 0/],
    ["wire type 3 (groups)", [0x4b], /unsupported wire type 3/],
  ];
  for (const [name, bytes, message] of malformed) {
    it(`refuses ${name} with ProtoDecodeError`, () => {
      expect(() => decodeMessage(schemas.appendRequest, new Uint8Array(bytes))).toThrow(ProtoDecodeError);
      expect(() => decodeMessage(schemas.appendRequest, new Uint8Array(bytes))).toThrow(message);
    });
  }

  it("never throws anything but ProtoDecodeError on random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        try {
          decodeMessage(schemas.metadataResponse, b);
        } catch (err) {
          expect(err).toBeInstanceOf(ProtoDecodeError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
