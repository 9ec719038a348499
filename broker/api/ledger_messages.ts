import type * as grpc from "@grpc/grpc-js";
import { decodeMessage, encodeMessage, type MessageSchema } from "./proto_wire.js";

/**
 * The messages and the service definition of dledger.v1.Ledger (broker/api/ledger.proto), as
 * TypeScript types plus the field tables the codec uses. Field numbers must match the .proto;
 * ledger_messages.test.ts checks them against the file.
 */

export interface AppendRequest {
  readonly clientId: string;
  readonly sequence: number;
  readonly body: Uint8Array;
}
export interface AppendResponse {
  readonly index: number;
  readonly term: number;
  readonly duplicate: boolean;
}
export interface AppendResult {
  readonly code: number;
  readonly message: string;
  readonly reason: string;
  readonly outcomeUnknown: boolean;
  readonly response: AppendResponse | null;
  /** For a failure: the leader's id and client address when this replica knows them, else "". */
  readonly leaderId: string;
  readonly leaderAddress: string;
}
export interface AppendStreamResponse {
  readonly results: readonly AppendResult[];
}
export interface TaggedAppend {
  readonly id: number;
  readonly request: AppendRequest;
}
export interface AppendSessionRequest {
  readonly appends: readonly TaggedAppend[];
}
export interface TaggedResult {
  readonly id: number;
  readonly result: AppendResult;
}
export interface AppendSessionResponse {
  readonly results: readonly TaggedResult[];
}
export interface GetRequest {
  readonly index: number;
}
export interface LedgerEntry {
  readonly index: number;
  readonly term: number;
  readonly noop: boolean;
  readonly clientId: string;
  readonly sequence: number;
  readonly body: Uint8Array;
  readonly duplicateOf: number;
}
export interface ReadRequest {
  readonly index: number;
}
export interface ReadResponse {
  readonly readIndex: number;
  readonly entry: LedgerEntry | null;
}
export type MetadataRequest = Record<string, never>;
export interface Member {
  readonly id: string;
  readonly clientAddress: string;
}
export interface MetadataResponse {
  readonly group: string;
  readonly replicaId: string;
  readonly role: string;
  readonly leaderId: string;
  readonly leaderAddress: string;
  readonly term: number;
  readonly members: readonly Member[];
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
}
export interface TransferLeadershipRequest {
  readonly to: string;
}
export interface TransferLeadershipResponse {
  readonly leaderId: string;
  readonly term: number;
}

const u = "uint64" as const;
const s = "string" as const;

export const schemas = (() => {
  const appendRequest: MessageSchema = {
    name: "AppendRequest",
    fields: [
      { no: 1, name: "clientId", kind: s },
      { no: 2, name: "sequence", kind: u },
      { no: 3, name: "body", kind: "bytes" },
    ],
  };
  const appendResponse: MessageSchema = {
    name: "AppendResponse",
    fields: [
      { no: 1, name: "index", kind: u },
      { no: 2, name: "term", kind: u },
      { no: 3, name: "duplicate", kind: "bool" },
    ],
  };
  const appendResult: MessageSchema = {
    name: "AppendResult",
    fields: [
      { no: 1, name: "code", kind: u },
      { no: 2, name: "message", kind: s },
      { no: 3, name: "reason", kind: s },
      { no: 4, name: "outcomeUnknown", kind: "bool" },
      { no: 5, name: "response", kind: "message", schema: appendResponse },
      { no: 6, name: "leaderId", kind: s },
      { no: 7, name: "leaderAddress", kind: s },
    ],
  };
  const taggedAppend: MessageSchema = {
    name: "TaggedAppend",
    fields: [
      { no: 1, name: "id", kind: u },
      { no: 2, name: "request", kind: "message", schema: appendRequest },
    ],
  };
  const taggedResult: MessageSchema = {
    name: "TaggedResult",
    fields: [
      { no: 1, name: "id", kind: u },
      { no: 2, name: "result", kind: "message", schema: appendResult },
    ],
  };
  const entry: MessageSchema = {
    name: "Entry",
    fields: [
      { no: 1, name: "index", kind: u },
      { no: 2, name: "term", kind: u },
      { no: 3, name: "noop", kind: "bool" },
      { no: 4, name: "clientId", kind: s },
      { no: 5, name: "sequence", kind: u },
      { no: 6, name: "body", kind: "bytes" },
      { no: 7, name: "duplicateOf", kind: u },
    ],
  };
  const member: MessageSchema = {
    name: "Member",
    fields: [
      { no: 1, name: "id", kind: s },
      { no: 2, name: "clientAddress", kind: s },
    ],
  };
  return {
    appendRequest,
    appendResponse,
    appendStreamResponse: { name: "AppendStreamResponse", fields: [{ no: 1, name: "results", kind: "message", repeated: true, schema: appendResult }] },
    taggedAppend,
    taggedResult,
    appendSessionRequest: { name: "AppendSessionRequest", fields: [{ no: 1, name: "appends", kind: "message", repeated: true, schema: taggedAppend }] },
    appendSessionResponse: { name: "AppendSessionResponse", fields: [{ no: 1, name: "results", kind: "message", repeated: true, schema: taggedResult }] },
    getRequest: { name: "GetRequest", fields: [{ no: 1, name: "index", kind: u }] },
    entry,
    readRequest: { name: "ReadRequest", fields: [{ no: 1, name: "index", kind: u }] },
    readResponse: {
      name: "ReadResponse",
      fields: [
        { no: 1, name: "readIndex", kind: u },
        { no: 2, name: "entry", kind: "message", schema: entry },
      ],
    },
    metadataRequest: { name: "MetadataRequest", fields: [] },
    metadataResponse: {
      name: "MetadataResponse",
      fields: [
        { no: 1, name: "group", kind: s },
        { no: 2, name: "replicaId", kind: s },
        { no: 3, name: "role", kind: s },
        { no: 4, name: "leaderId", kind: s },
        { no: 5, name: "leaderAddress", kind: s },
        { no: 6, name: "term", kind: u },
        { no: 7, name: "members", kind: "message", repeated: true, schema: member },
        { no: 8, name: "commitIndex", kind: u },
        { no: 9, name: "appliedIndex", kind: u },
        { no: 10, name: "firstIndex", kind: u },
        { no: 11, name: "lastIndex", kind: u },
      ],
    },
    transferRequest: { name: "TransferLeadershipRequest", fields: [{ no: 1, name: "to", kind: s }] },
    transferResponse: {
      name: "TransferLeadershipResponse",
      fields: [
        { no: 1, name: "leaderId", kind: s },
        { no: 2, name: "term", kind: u },
      ],
    },
  } as const satisfies Record<string, MessageSchema>;
})();

const toBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

function method<Req, Res>(name: string, req: MessageSchema, res: MessageSchema, requestStream = false, responseStream = false): grpc.MethodDefinition<Req, Res> {
  return {
    path: `/dledger.v1.Ledger/${name}`,
    requestStream,
    responseStream,
    requestSerialize: (v: Req) => toBuffer(encodeMessage(req, v as Record<string, unknown>)),
    requestDeserialize: (b: Buffer) => decodeMessage<Req>(req, b),
    responseSerialize: (v: Res) => toBuffer(encodeMessage(res, v as Record<string, unknown>)),
    responseDeserialize: (b: Buffer) => decodeMessage<Res>(res, b),
  };
}

/** The grpc-js service definition of dledger.v1.Ledger; used by both the server and the client. */
export const ledgerService = {
  Append: method<AppendRequest, AppendResponse>("Append", schemas.appendRequest, schemas.appendResponse),
  AppendStream: method<AppendRequest, AppendStreamResponse>("AppendStream", schemas.appendRequest, schemas.appendStreamResponse, true),
  AppendSession: method<AppendSessionRequest, AppendSessionResponse>("AppendSession", schemas.appendSessionRequest, schemas.appendSessionResponse, true, true),
  Get: method<GetRequest, LedgerEntry>("Get", schemas.getRequest, schemas.entry),
  Read: method<ReadRequest, ReadResponse>("Read", schemas.readRequest, schemas.readResponse),
  Metadata: method<MetadataRequest, MetadataResponse>("Metadata", schemas.metadataRequest, schemas.metadataResponse),
  TransferLeadership: method<TransferLeadershipRequest, TransferLeadershipResponse>(
    "TransferLeadership",
    schemas.transferRequest,
    schemas.transferResponse,
  ),
} as const;

/**
 * The same service for the server, with requests left as raw bytes: the handlers decode them, so
 * a malformed request is answered INVALID_ARGUMENT (reason "malformed") instead of grpc-js's
 * generic INTERNAL for a throwing deserializer.
 */
export const ledgerServerService: grpc.ServiceDefinition = Object.fromEntries(
  Object.entries(ledgerService).map(([name, m]) => [name, { ...m, requestDeserialize: (b: Buffer) => b }]),
);

/** Trailing-metadata keys of every error (see ledger.proto). */
export const errorKeys = { reason: "dledger-reason", outcome: "dledger-outcome", leader: "leader", leaderAddress: "leader-address" } as const;

export type ErrorReason =
  | "too_large"
  | "bad_request"
  | "not_leader"
  | "sequence_expired"
  | "leader_not_ready"
  | "transferring"
  | "stopped"
  | "outcome_unknown"
  | "leader_changed"
  | "overwritten"
  | "backpressure"
  | "not_committed"
  | "compacted"
  | "malformed";
