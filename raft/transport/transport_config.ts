import type { Clock } from "../base/clock.js";
import type { Logger } from "../base/logger.js";
import type { Prng } from "../base/prng.js";
import type { ReplicaId } from "../core/types.js";

/** PEM material for mutual TLS. Every replica's certificate must be signed by `ca`. */
export interface TransportTls {
  /** The CA that signs every replica's certificate (PEM). */
  readonly ca: string | Uint8Array;
  /** This replica's certificate chain (PEM); see verifyPeerIdentity for the names it must carry. */
  readonly cert: string | Uint8Array;
  /** This replica's private key (PEM). */
  readonly key: string | Uint8Array;
  /**
   * Whether certificates must name replicas (default true): a dialing peer's certificate common
   * name must equal the replica id it claims, and a dialed peer's certificate must carry a
   * subjectAltName DNS entry equal to its replica id (so each replica's certificate has CN=<id>
   * and SAN DNS:<id>). With false, any certificate from `ca` is accepted from any peer and a
   * dialed peer's certificate is checked against the host of its address instead.
   */
  readonly verifyPeerIdentity?: boolean;
}

export interface GrpcTransportOptions {
  readonly groupId: string;
  readonly selfId: ReplicaId;
  /** "host:port" to listen on; port 0 picks a free port (see GrpcTransport.port). */
  readonly listen: string;
  /** Every other replica of the group and the "host:port" it listens on. */
  readonly peers: Readonly<Record<ReplicaId, string>>;
  /** Mutual TLS when set; plaintext otherwise. */
  readonly tls?: TransportTls;
  /** Largest frame sent or accepted, in bytes; larger RPCs are dropped at send. */
  readonly frameBytesMax?: number;
  /** RPCs queued per peer while its stream is down or busy; the oldest are dropped beyond. */
  readonly outboundRpcsMax?: number;
  /** Encoded bytes queued per peer; the oldest RPCs are dropped beyond. */
  readonly outboundBytesMax?: number;
  /** Frame bytes handed to gRPC per peer and not yet written to the socket. */
  readonly writeBytesMax?: number;
  /** First reconnect delay; it doubles per failed attempt up to reconnectMaxMs, with jitter. */
  readonly reconnectBaseMs?: number;
  readonly reconnectMaxMs?: number;
  /** A dial that has not been accepted within this time is abandoned and retried. */
  readonly connectTimeoutMs?: number;
  /** HTTP/2 keepalive ping interval: how a silent dead peer (a partition) is noticed. */
  readonly keepaliveMs?: number;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Draws reconnect jitter. Defaults to a Prng seeded from selfId (distinct per replica). */
  readonly prng?: Prng;
}

export type GrpcTransportConfig = Required<Omit<GrpcTransportOptions, "tls" | "prng">> &
  Pick<GrpcTransportOptions, "tls" | "prng">;

export const grpcTransportDefaults = {
  // An entry may be 4 MiB and an append carries up to 1 MiB more (raft/core/config.ts), so 16 MiB
  // leaves room for one maximal entry plus a full append batch in one frame.
  frameBytesMax: 16 * 1024 * 1024,
  outboundRpcsMax: 8192,
  outboundBytesMax: 64 * 1024 * 1024,
  writeBytesMax: 8 * 1024 * 1024,
  reconnectBaseMs: 20,
  reconnectMaxMs: 1000,
  connectTimeoutMs: 2000,
  keepaliveMs: 2000,
} as const;

/** A transport option that breaks a rule. The message names the field, the rule and the value. */
export class TransportConfigError extends Error {
  override readonly name = "TransportConfigError";
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

const idPattern = /^[A-Za-z0-9_.-]{1,64}$/;
const addressPattern = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$/;
const numericFields = [
  "frameBytesMax",
  "outboundRpcsMax",
  "outboundBytesMax",
  "writeBytesMax",
  "reconnectBaseMs",
  "reconnectMaxMs",
  "connectTimeoutMs",
  "keepaliveMs",
] as const;

/** Validates `options` once and returns a frozen config; the caller's object is not touched. */
export function validateTransportOptions(options: GrpcTransportOptions): GrpcTransportConfig {
  const c: GrpcTransportConfig = { ...grpcTransportDefaults, ...options, peers: Object.freeze({ ...options.peers }) };
  checkId("groupId", c.groupId);
  checkId("selfId", c.selfId);
  checkAddress("listen", c.listen, true);
  const peerIds = Object.keys(c.peers);
  if (peerIds.length === 0) throw new TransportConfigError("peers must name at least one other replica", "peers");
  for (const id of peerIds) {
    checkId("peers", id);
    if (id === c.selfId) throw new TransportConfigError(`peers must not include selfId (${id})`, "peers");
    checkAddress(`peers.${id}`, c.peers[id], false);
  }
  for (const field of numericFields) {
    const value: unknown = c[field];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
      throw new TransportConfigError(`${field} (${String(value)}) must be a positive integer`, field);
    }
  }
  // gRPC itself caps messages at 2^31 - 1 bytes; the codec's length field is a u32.
  if (c.frameBytesMax < 64 * 1024 || c.frameBytesMax > 1024 * 1024 * 1024) {
    throw new TransportConfigError(`frameBytesMax (${c.frameBytesMax}) must be in [65536, 1 GiB]`, "frameBytesMax");
  }
  if (c.outboundBytesMax < c.frameBytesMax) {
    throw new TransportConfigError(
      `outboundBytesMax (${c.outboundBytesMax}) must be ≥ frameBytesMax (${c.frameBytesMax})`,
      "outboundBytesMax",
    );
  }
  if (c.reconnectBaseMs > c.reconnectMaxMs) {
    throw new TransportConfigError(
      `reconnectBaseMs (${c.reconnectBaseMs}) must be ≤ reconnectMaxMs (${c.reconnectMaxMs})`,
      "reconnectBaseMs",
    );
  }
  if (c.tls !== undefined) checkTls(c.tls);
  return Object.freeze(c);
}

function checkId(field: string, value: unknown): void {
  if (typeof value !== "string" || !idPattern.test(value)) {
    throw new TransportConfigError(`${field} (${JSON.stringify(value)}) must match ${idPattern}`, field);
  }
}

function checkAddress(field: string, value: unknown, portZeroAllowed: boolean): void {
  const m = typeof value === "string" ? addressPattern.exec(value) : null;
  const port = m === null ? NaN : Number(m[2]);
  if (m === null || port > 65535 || (port === 0 && !portZeroAllowed)) {
    throw new TransportConfigError(`${field} (${JSON.stringify(value)}) must be "host:port"`, field);
  }
}

function checkTls(tls: TransportTls): void {
  for (const field of ["ca", "cert", "key"] as const) {
    const v: unknown = tls[field];
    const ok = (typeof v === "string" && v.includes("-----BEGIN")) || (v instanceof Uint8Array && v.byteLength > 0);
    if (!ok) throw new TransportConfigError(`tls.${field} must be PEM text or bytes`, `tls.${field}`);
  }
}
