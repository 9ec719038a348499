/**
 * The package entry (`import { LedgerClient } from "dledger-ts"`): the client of the
 * dledger.v1.Ledger API (broker/api/ledger.proto) and the types it speaks.
 */
export { LedgerClient, LedgerError, ledgerClientDefaults } from "./client/ledger_client.js";
export type { AppendOutcome, LedgerClientOptions } from "./client/ledger_client.js";
export type {
  AppendResponse,
  LedgerEntry,
  Member,
  MetadataResponse,
  ReadResponse,
  TransferLeadershipResponse,
} from "./api/ledger_messages.js";
