import type * as grpc from "@grpc/grpc-js";
import type { ErrorReason } from "./ledger_messages.js";
import { decodeMessage, encodeMessage, type MessageSchema } from "./proto_wire.js";

/**
 * The messages and the service definition of dledger.v1.Kv (broker/api/kv.proto), as TypeScript
 * types plus the field tables the codec uses. Field numbers must match the .proto;
 * kv_messages.test.ts checks them against the file.
 */

export interface KvPutRequest {
  readonly key: string;
  readonly value: Uint8Array;
  readonly clientId: string;
  readonly sequence: number;
}
export interface KvPutResponse {
  readonly index: number;
  readonly term: number;
  readonly duplicate: boolean;
}
export interface KvCasRequest {
  readonly key: string;
  readonly expected: Uint8Array;
  readonly expectAbsent: boolean;
  readonly value: Uint8Array;
  readonly clientId: string;
  readonly sequence: number;
}
export interface KvCasResponse {
  readonly succeeded: boolean;
  readonly currentValue: Uint8Array;
  readonly currentPresent: boolean;
  readonly index: number;
  readonly term: number;
  readonly duplicate: boolean;
}
export interface KvGetRequest {
  readonly key: string;
}
export interface KvGetResponse {
  readonly present: boolean;
  readonly value: Uint8Array;
  readonly readIndex: number;
}

/** The reasons of dledger.v1.Ledger, plus the KV map's own. */
export type KvErrorReason = ErrorReason | "kv_full";

const u = "uint64" as const;
const s = "string" as const;
const b = "bytes" as const;
const bool = "bool" as const;

export const kvSchemas = {
  putRequest: {
    name: "KvPutRequest",
    fields: [
      { no: 1, name: "key", kind: s },
      { no: 2, name: "value", kind: b },
      { no: 3, name: "clientId", kind: s },
      { no: 4, name: "sequence", kind: u },
    ],
  },
  putResponse: {
    name: "KvPutResponse",
    fields: [
      { no: 1, name: "index", kind: u },
      { no: 2, name: "term", kind: u },
      { no: 3, name: "duplicate", kind: bool },
    ],
  },
  casRequest: {
    name: "KvCasRequest",
    fields: [
      { no: 1, name: "key", kind: s },
      { no: 2, name: "expected", kind: b },
      { no: 3, name: "expectAbsent", kind: bool },
      { no: 4, name: "value", kind: b },
      { no: 5, name: "clientId", kind: s },
      { no: 6, name: "sequence", kind: u },
    ],
  },
  casResponse: {
    name: "KvCasResponse",
    fields: [
      { no: 1, name: "succeeded", kind: bool },
      { no: 2, name: "currentValue", kind: b },
      { no: 3, name: "currentPresent", kind: bool },
      { no: 4, name: "index", kind: u },
      { no: 5, name: "term", kind: u },
      { no: 6, name: "duplicate", kind: bool },
    ],
  },
  getRequest: { name: "KvGetRequest", fields: [{ no: 1, name: "key", kind: s }] },
  getResponse: {
    name: "KvGetResponse",
    fields: [
      { no: 1, name: "present", kind: bool },
      { no: 2, name: "value", kind: b },
      { no: 3, name: "readIndex", kind: u },
    ],
  },
} as const satisfies Record<string, MessageSchema>;

const toBuffer = (v: Uint8Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

function method<Req, Res>(name: string, req: MessageSchema, res: MessageSchema): grpc.MethodDefinition<Req, Res> {
  return {
    path: `/dledger.v1.Kv/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: Req) => toBuffer(encodeMessage(req, v as Record<string, unknown>)),
    requestDeserialize: (bytes: Buffer) => decodeMessage<Req>(req, bytes),
    responseSerialize: (v: Res) => toBuffer(encodeMessage(res, v as Record<string, unknown>)),
    responseDeserialize: (bytes: Buffer) => decodeMessage<Res>(res, bytes),
  };
}

/** The grpc-js service definition of dledger.v1.Kv; used by both the server and the client. */
export const kvService = {
  Put: method<KvPutRequest, KvPutResponse>("Put", kvSchemas.putRequest, kvSchemas.putResponse),
  Cas: method<KvCasRequest, KvCasResponse>("Cas", kvSchemas.casRequest, kvSchemas.casResponse),
  Get: method<KvGetRequest, KvGetResponse>("Get", kvSchemas.getRequest, kvSchemas.getResponse),
} as const;

/** The same service for the server, with requests left as raw bytes (decoded by the handlers). */
export const kvServerService: grpc.ServiceDefinition = Object.fromEntries(
  Object.entries(kvService).map(([name, m]) => [name, { ...m, requestDeserialize: (bytes: Buffer) => bytes }]),
);
