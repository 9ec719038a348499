/**
 * The package entry (`import { LedgerClient } from "dledger-ts"`): the clients of the
 * dledger.v1.Ledger API (broker/api/ledger.proto) and of dledger.v1.Kv (broker/api/kv.proto),
 * and the types they speak.
 */
export { LedgerClient, LedgerError, ledgerClientDefaults } from "./client/ledger_client.js";
export type { AppendOutcome, LedgerClientOptions, WriteFailure } from "./client/ledger_client.js";
export { KvClient, KvError, kvClientDefaults } from "./client/kv_client.js";
export type { KvCallOutcome, KvClientOptions, KvWriteOutcome, KvOnceOptions } from "./client/kv_client.js";
export type { KvCasResponse, KvGetResponse, KvPutResponse } from "./api/kv_messages.js";
export type {
  AppendResponse,
  LedgerEntry,
  Member,
  MetadataResponse,
  ReadResponse,
  TransferLeadershipResponse,
} from "./api/ledger_messages.js";
