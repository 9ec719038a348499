import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { kvSchemas, type KvCasRequest } from "./kv_messages.js";
import { decodeMessage, encodeMessage, type MessageSchema } from "./proto_wire.js";

const protoText = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "kv.proto"), "utf8");

/** message name → field name (camelCase) → [number, type], parsed from kv.proto. */
function protoMessages(): Map<string, Map<string, [number, string]>> {
  const out = new Map<string, Map<string, [number, string]>>();
  for (const m of protoText.matchAll(/message (\w+) \{([^}]*)\}/g)) {
    const fields = new Map<string, [number, string]>();
    for (const f of (m[2] ?? "").matchAll(/^\s*(\w+) (\w+) = (\d+);/gm)) {
      fields.set((f[2] ?? "").replace(/_(\w)/g, (_, c: string) => c.toUpperCase()), [Number(f[3]), f[1] ?? ""]);
    }
    out.set(m[1] ?? "", fields);
  }
  return out;
}

describe("kv.proto and the codec's field tables agree", () => {
  const proto = protoMessages();
  it("every message of kv.proto has a table, and the reverse", () => {
    expect([...proto.keys()].sort()).toEqual((Object.values(kvSchemas) as MessageSchema[]).map((m) => m.name).sort());
  });
  for (const schema of Object.values(kvSchemas) as MessageSchema[]) {
    it(`${schema.name}: same fields, numbers and kinds`, () => {
      const fields = proto.get(schema.name);
      expect(fields, `message ${schema.name} in kv.proto`).toBeDefined();
      expect(new Map(schema.fields.map((f) => [f.name, [f.no, f.kind]]))).toEqual(fields);
    });
  }
});

describe("kv messages on the wire", () => {
  it("encodes a KvCasRequest byte for byte as protoc would", () => {
    // key "k" | expect_absent true | value [7] | client_id "c" | sequence 1
    const bytes = encodeMessage(kvSchemas.casRequest, { key: "k", expected: new Uint8Array(0), expectAbsent: true, value: new Uint8Array([7]), clientId: "c", sequence: 1 });
    expect([...bytes]).toEqual([0x0a, 0x01, 0x6b, 0x18, 0x01, 0x22, 0x01, 0x07, 0x2a, 0x01, 0x63, 0x30, 0x01]);
  });

  it("round-trips cas requests", () => {
    fc.assert(
      fc.property(
        fc.record({ key: fc.string(), expected: fc.uint8Array(), expectAbsent: fc.boolean(), value: fc.uint8Array(), clientId: fc.string(), sequence: fc.maxSafeNat() }),
        (req: KvCasRequest) => {
          const d = decodeMessage<KvCasRequest>(kvSchemas.casRequest, encodeMessage(kvSchemas.casRequest, req as unknown as Record<string, unknown>));
          expect({ ...d, expected: [...d.expected], value: [...d.value] }).toEqual({ ...req, expected: [...req.expected], value: [...req.value] });
        },
      ),
    );
  });
});
