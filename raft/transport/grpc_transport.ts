import * as grpc from "@grpc/grpc-js";
import { assert } from "../base/assert.js";
import { fnv1a, utf8 } from "../base/bytes.js";
import type { Logger } from "../base/logger.js";
import { Prng } from "../base/prng.js";
import type { ReplicaId, Rpc } from "../core/types.js";
import { decodeFrame, encodeFrame, frameOverheadBytes, frameVersion, rpcEncodedBytes, type FrameHeader } from "./codec.js";
import { RpcQueue } from "./rpc_queue.js";
import { validateTransportOptions, type GrpcTransportConfig, type GrpcTransportOptions } from "./transport_config.js";

/**
 * The peer transport over gRPC (DESIGN.md §4): one long-lived bidirectional stream per peer and
 * direction, carrying frames of binary-encoded RPC batches (codec.ts).
 *
 * Topology: every replica dials every peer and writes only to the stream it dialed; it receives
 * on the streams its peers dialed into its server. Two streams per pair instead of one, but each
 * has a single owner: no tie-break when both sides dial at once, no "who reconnects" question
 * after a restart, and a broken direction heals without touching the other. For a 3- or 5-replica
 * group the extra HTTP/2 connection is free.
 *
 * Contract:
 *   - `send(rpcs)` never blocks and never throws for a down peer. RPCs are queued per peer (bounded
 *     by outboundRpcsMax and outboundBytesMax, dropping the oldest) and flushed once per event-loop
 *     turn, so all `send` calls of one turn leave as one frame per peer. Raft tolerates the loss.
 *   - `onReceive(handler)` gets each frame's RPCs, decoded and checked against the stream's
 *     handshake (group, sender, receiver). Malformed frames are dropped, counted and logged; the
 *     stream stays open.
 *   - `onPeerDown(handler)` fires when an established stream to or from a peer closes, once per
 *     outage (it is re-armed when a stream with that peer is established again). The replica
 *     calls core.reportUnreachable with it, so a follower whose leader died pre-votes at once.
 *   - Reconnects use exponential backoff with equal jitter, timed by the injected Clock.
 */

const servicePath = "/dledger.peer.v1.PeerTransport/Stream";
const metadataKeys = { group: "dledger-group", replica: "dledger-replica", target: "dledger-target", version: "dledger-version" } as const;
/** gRPC refuses messages above its limit before we see them; our own check gives the clearer error. */
const grpcMessageSlackBytes = 64 * 1024;
/** Malformed-frame warnings per peer are logged for the first few, then every Nth. */
const warnFirst = 10;
const warnEvery = 1000;

/** Identity serializers: a gRPC message is exactly one frame. */
const toBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const fromBuffer = (bytes: Buffer): Buffer => bytes;

const peerService: grpc.ServiceDefinition = {
  Stream: {
    path: servicePath,
    requestStream: true,
    responseStream: true,
    requestSerialize: toBuffer,
    requestDeserialize: fromBuffer,
    responseSerialize: toBuffer,
    responseDeserialize: fromBuffer,
  },
};

type ClientStream = grpc.ClientDuplexStream<Uint8Array, Buffer>;
type ServerStream = grpc.ServerDuplexStream<Buffer, Uint8Array>;

export const LinkState = { idle: "idle", connecting: "connecting", established: "established", backoff: "backoff", closed: "closed" } as const;
export type LinkState = (typeof LinkState)[keyof typeof LinkState];

/** Counters per peer, for metrics and tests. Monotonic except `queuedRpcs`. */
export interface PeerStats {
  readonly state: LinkState;
  readonly inboundConnected: boolean;
  readonly queuedRpcs: number;
  readonly framesSent: number;
  readonly rpcsSent: number;
  readonly bytesSent: number;
  readonly framesReceived: number;
  readonly rpcsReceived: number;
  /** RPCs dropped because the outbound queue was full. */
  readonly rpcsDroppedQueueFull: number;
  /** RPCs dropped because they alone exceed frameBytesMax. */
  readonly rpcsDroppedTooLarge: number;
  readonly framesMalformed: number;
  /** Dial attempts after the first. */
  readonly reconnects: number;
  readonly peerDownReports: number;
}

export interface TransportStats {
  readonly peers: Readonly<Record<ReplicaId, PeerStats>>;
  /** Inbound streams refused at the handshake (foreign group, unknown id, wrong target, version). */
  readonly streamsRejected: number;
  /** RPCs passed to send() for a replica that is not a configured peer. */
  readonly rpcsToUnknownPeer: number;
}

type Counters = { -readonly [K in Exclude<keyof PeerStats, "state" | "inboundConnected" | "queuedRpcs">]: number };

interface Link {
  readonly id: ReplicaId;
  readonly address: string;
  readonly header: FrameHeader;
  readonly overheadBytes: number;
  readonly queue: RpcQueue;
  state: LinkState;
  client: grpc.Client | null;
  call: ClientStream | null;
  attempt: number;
  /** Clock time the outbound stream was established, to tell a stable stream from a flapping one. */
  establishedAtMs: number;
  cancelTimer: (() => void) | null;
  writeBytesPending: number;
  blocked: boolean;
  inbound: ServerStream | null;
  /** True while some stream with the peer has been established since the last down report. */
  up: boolean;
  readonly counters: Counters;
}

export type ReceiveHandler = (from: ReplicaId, rpcs: readonly Rpc[]) => void;
export type PeerDownHandler = (peer: ReplicaId) => void;

export class GrpcTransport {
  readonly config: GrpcTransportConfig;
  private readonly log: Logger;
  private readonly prng: Prng;
  private readonly links = new Map<ReplicaId, Link>();
  private readonly dirty = new Set<Link>();
  private server: grpc.Server | null = null;
  private boundPort = 0;
  private flushScheduled: NodeJS.Immediate | null = null;
  private receiveHandlers: ReceiveHandler[] = [];
  private peerDownHandlers: PeerDownHandler[] = [];
  private streamsRejected = 0;
  private rpcsToUnknownPeer = 0;
  private started = false;
  private closing = false;

  /** Validates `options` (TransportConfigError names a bad field); opens nothing until start(). */
  constructor(options: GrpcTransportOptions) {
    this.config = validateTransportOptions(options);
    // The group id is not bound here: refusal lines carry the peer's `groupId`, and one key must
    // not mean two things in the same line.
    this.log = this.config.logger.child({ component: "transport", replica: this.config.selfId });
    this.prng = this.config.prng ?? new Prng(fnv1a(utf8(`${this.config.groupId}/${this.config.selfId}`)));
    for (const [id, address] of Object.entries(this.config.peers)) {
      const header: FrameHeader = { groupId: this.config.groupId, from: this.config.selfId, to: id };
      this.links.set(id, {
        id,
        address,
        header,
        overheadBytes: frameOverheadBytes(header),
        queue: new RpcQueue(this.config.outboundRpcsMax, this.config.outboundBytesMax),
        state: LinkState.idle,
        client: null,
        call: null,
        attempt: 0,
        establishedAtMs: 0,
        cancelTimer: null,
        writeBytesPending: 0,
        blocked: false,
        inbound: null,
        up: false,
        counters: zeroCounters(),
      });
    }
  }

  /** The port the server listens on (useful with `listen: "127.0.0.1:0"`); 0 before start(). */
  get port(): number {
    return this.boundPort;
  }

  onReceive(handler: ReceiveHandler): void {
    this.receiveHandlers.push(handler);
  }

  onPeerDown(handler: PeerDownHandler): void {
    this.peerDownHandlers.push(handler);
  }

  /** Binds the server, then starts dialing every peer. Rejects if the address cannot be bound. */
  async start(): Promise<void> {
    assert(!this.started, "transport started twice");
    this.started = true;
    const server = new grpc.Server(this.serverOptions());
    server.addService(peerService, { Stream: (call: ServerStream) => this.acceptInbound(call) });
    this.server = server;
    this.boundPort = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.config.listen, this.serverCredentials(), (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.log.info({ listen: this.config.listen, port: this.boundPort, tls: this.config.tls !== undefined }, "transport_listening");
    for (const link of this.links.values()) this.dial(link);
  }

  /**
   * Queues `rpcs` for their destinations and schedules one flush for this event-loop turn. Every
   * RPC must be from this replica (a caller bug otherwise). The RPC objects must not be mutated
   * after the call: they are encoded later in the turn.
   */
  send(rpcs: readonly Rpc[]): void {
    if (this.closing) return;
    for (const rpc of rpcs) {
      if (rpc.from !== this.config.selfId) assert(false, `send: rpc from ${rpc.from}, this replica is ${this.config.selfId}`);
      const link = this.links.get(rpc.to);
      if (link === undefined) {
        this.rpcsToUnknownPeer++;
        this.log.warn({ peer: rpc.to, type: rpc.type }, "rpc_to_unknown_peer_dropped");
        continue;
      }
      const size = rpcEncodedBytes(rpc);
      if (link.overheadBytes + size > this.config.frameBytesMax) {
        link.counters.rpcsDroppedTooLarge++;
        this.log.error({ peer: link.id, type: rpc.type, bytes: size, frameBytesMax: this.config.frameBytesMax }, "rpc_too_large_dropped");
        continue;
      }
      link.counters.rpcsDroppedQueueFull += link.queue.push(rpc, size);
      this.dirty.add(link);
    }
    if (this.dirty.size > 0 && this.flushScheduled === null) {
      // setImmediate runs after the I/O callbacks of this loop iteration, so RPCs produced while
      // handling several inbound frames still leave in one frame per peer. It is scheduling, not
      // time: nothing here depends on a clock.
      this.flushScheduled = setImmediate(() => this.flush());
    }
  }

  /** Counters per peer (a fresh snapshot). */
  stats(): TransportStats {
    const peers: Record<ReplicaId, PeerStats> = {};
    for (const link of this.links.values()) {
      peers[link.id] = { ...link.counters, state: link.state, inboundConnected: link.inbound !== null, queuedRpcs: link.queue.length };
    }
    return { peers, streamsRejected: this.streamsRejected, rpcsToUnknownPeer: this.rpcsToUnknownPeer };
  }

  /**
   * Stops dialing, cancels every stream and shuts the server down. Queued RPCs are dropped (Raft
   * tolerates it). Peers see their streams close and report this replica down. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.flushScheduled !== null) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
    this.dirty.clear();
    for (const link of this.links.values()) {
      link.state = LinkState.closed;
      link.cancelTimer?.();
      link.cancelTimer = null;
      link.queue.clear();
      this.dropCall(link);
      link.inbound?.end();
      link.inbound = null;
    }
    this.server?.forceShutdown();
    this.server = null;
    this.log.info({}, "transport_closed");
  }

  /* --- Outbound ------------------------------------------------------------------------------- */

  private dial(link: Link): void {
    if (this.closing) return;
    assert(link.call === null, `dial ${link.id} while a call is open`);
    link.state = LinkState.connecting;
    link.cancelTimer = null;
    // A fresh channel per attempt: our backoff, not grpc-js's channel backoff (1 s initial, 120 s
    // max), decides when to retry, and a dead connection's state is never reused.
    const client = new grpc.Client(link.address, this.channelCredentials(), this.channelOptions(link));
    const metadata = new grpc.Metadata();
    metadata.set(metadataKeys.group, this.config.groupId);
    metadata.set(metadataKeys.replica, this.config.selfId);
    metadata.set(metadataKeys.target, link.id);
    metadata.set(metadataKeys.version, String(frameVersion));
    const call: ClientStream = client.makeBidiStreamRequest(servicePath, toBuffer, fromBuffer, metadata, {});
    link.client = client;
    link.call = call;
    const cancelConnectTimer = this.config.clock.setTimer(this.config.connectTimeoutMs, () => {
      if (link.call === call && link.state === LinkState.connecting) {
        this.log.warn({ peer: link.id, address: link.address, connectTimeoutMs: this.config.connectTimeoutMs }, "peer_connect_timeout");
        call.cancel();
      }
    });
    call.on("metadata", () => {
      cancelConnectTimer();
      if (link.call !== call || this.closing) return;
      this.established(link);
    });
    // The server never sends frames on our outbound stream; reading keeps the stream flowing.
    call.on("data", () => {});
    // A non-OK status is emitted as 'error' and then as 'status'; 'status' does the work.
    call.on("error", () => {});
    call.on("status", (status: grpc.StatusObject) => {
      cancelConnectTimer();
      if (link.call === call) this.outboundClosed(link, status);
    });
    call.on("drain", () => {
      if (link.call !== call) return;
      link.blocked = false;
      this.scheduleFlushOf(link);
    });
  }

  private established(link: Link): void {
    link.state = LinkState.established;
    link.establishedAtMs = this.config.clock.nowMs();
    link.blocked = false;
    link.writeBytesPending = 0;
    this.markUp(link);
    this.log.info({ peer: link.id, address: link.address, direction: "outbound" }, "peer_stream_established");
    this.scheduleFlushOf(link);
  }

  private outboundClosed(link: Link, status: grpc.StatusObject): void {
    const wasEstablished = link.state === LinkState.established;
    this.dropCall(link);
    if (this.closing) return;
    const fields = { peer: link.id, address: link.address, code: grpc.status[status.code], details: status.details };
    if (status.code === grpc.status.PERMISSION_DENIED || status.code === grpc.status.FAILED_PRECONDITION) {
      this.log.warn(fields, "peer_refused_our_stream");
    } else if (wasEstablished) {
      this.log.info(fields, "peer_stream_closed");
    } else {
      this.log.debug(fields, "peer_dial_failed");
    }
    if (wasEstablished) this.markDown(link, "outbound_closed");
    // The backoff restarts only after a stream that stayed up for a while: a peer that accepts
    // and then drops every stream at once is redialed ever more slowly, not in a tight loop.
    if (wasEstablished && this.config.clock.nowMs() - link.establishedAtMs >= this.config.reconnectMaxMs) link.attempt = 0;
    this.scheduleReconnect(link);
  }

  private dropCall(link: Link): void {
    const { call, client } = link;
    link.call = null;
    link.client = null;
    link.blocked = false;
    link.writeBytesPending = 0;
    if (link.state !== LinkState.closed) link.state = LinkState.idle;
    call?.cancel();
    client?.close();
  }

  private scheduleReconnect(link: Link): void {
    assert(link.cancelTimer === null, `reconnect of ${link.id} already scheduled`);
    // Equal jitter: half the exponential delay is fixed, half random, so replicas that lost the
    // same peer do not redial in lockstep, and the delay never collapses to zero.
    const exponent = Math.min(link.attempt, 20);
    const ceilingMs = Math.min(this.config.reconnectMaxMs, this.config.reconnectBaseMs * 2 ** exponent);
    const delayMs = Math.round(ceilingMs / 2 + this.prng.float() * (ceilingMs / 2));
    link.attempt++;
    link.counters.reconnects++;
    link.state = LinkState.backoff;
    link.cancelTimer = this.config.clock.setTimer(delayMs, () => this.dial(link));
  }

  /* --- Flushing ------------------------------------------------------------------------------- */

  private scheduleFlushOf(link: Link): void {
    if (link.queue.length === 0) return;
    this.dirty.add(link);
    if (this.flushScheduled === null && !this.closing) this.flushScheduled = setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = null;
    const links = [...this.dirty];
    this.dirty.clear();
    for (const link of links) this.flushLink(link);
  }

  /**
   * Frames the link's queue while its stream is established and gRPC is keeping up. What is left
   * waits for 'drain' or a write callback; what is queued while down waits for the stream.
   */
  private flushLink(link: Link): void {
    const call = link.call;
    if (call === null || link.state !== LinkState.established) return;
    const frameRpcBytesMax = this.config.frameBytesMax - link.overheadBytes;
    while (link.queue.length > 0 && !link.blocked && link.writeBytesPending < this.config.writeBytesMax) {
      const rpcs = link.queue.take(frameRpcBytesMax);
      const frame = encodeFrame(link.header, rpcs);
      link.writeBytesPending += frame.byteLength;
      link.counters.framesSent++;
      link.counters.rpcsSent += rpcs.length;
      link.counters.bytesSent += frame.byteLength;
      const accepted = call.write(frame, () => {
        if (link.call !== call) return;
        link.writeBytesPending -= frame.byteLength;
        this.scheduleFlushOf(link);
      });
      if (!accepted) link.blocked = true;
    }
  }

  /* --- Inbound -------------------------------------------------------------------------------- */

  /** Checks the handshake of a stream a peer dialed; refuses it with a logged reason, or adopts it. */
  private acceptInbound(call: ServerStream): void {
    const group = firstValue(call.metadata, metadataKeys.group);
    const peer = firstValue(call.metadata, metadataKeys.replica);
    const target = firstValue(call.metadata, metadataKeys.target);
    const version = firstValue(call.metadata, metadataKeys.version);
    const certificateName = this.config.tls === undefined ? undefined : peerCommonName(call);
    const refusal = this.refusalFor(group, peer, target, version, certificateName);
    if (refusal !== null) {
      const fields = { groupId: group, peer, target, version, certificateName, address: call.getPeer(), expectedGroupId: this.config.groupId };
      this.streamsRejected++;
      this.log.warn(fields, refusal.event);
      call.emit("error", { code: refusal.code, details: `${refusal.event}: ${JSON.stringify(fields)}` });
      return;
    }
    this.adoptInbound(this.links.get(peer as string) as Link, call);
  }

  /** Why a dialing peer is refused, or null to accept it. Each reason is its own log event. */
  private refusalFor(
    group: string | null,
    peer: string | null,
    target: string | null,
    version: string | null,
    certificateName: string | undefined,
  ): { readonly event: string; readonly code: grpc.status } | null {
    const denied = grpc.status.PERMISSION_DENIED;
    if (this.closing) return { event: "peer_rejected_closing", code: grpc.status.UNAVAILABLE };
    if (group !== this.config.groupId) return { event: "peer_rejected_foreign_group", code: denied };
    if (peer === null || !this.links.has(peer)) return { event: "peer_rejected_unknown_id", code: denied };
    if (target !== this.config.selfId) return { event: "peer_rejected_wrong_target", code: denied };
    if (version !== String(frameVersion)) return { event: "peer_rejected_version", code: grpc.status.FAILED_PRECONDITION };
    // With mTLS, a certificate from the group's CA proves membership but not which member: unless
    // turned off, its common name must be the replica id the peer claims, so one replica's key
    // cannot impersonate another replica. (dial() makes the same check the other way round.)
    if (this.verifiesPeerIdentity() && certificateName !== peer) {
      return { event: "peer_rejected_certificate_name", code: denied };
    }
    return null;
  }

  private adoptInbound(link: Link, call: ServerStream): void {
    // A peer that redials while we still hold its old stream has restarted or lost that stream;
    // the new one wins. The old one is ended quietly (no down report: the peer is evidently up).
    const previous = link.inbound;
    link.inbound = call;
    previous?.end();
    call.sendMetadata(new grpc.Metadata());
    this.markUp(link);
    this.log.info({ peer: link.id, address: call.getPeer(), direction: "inbound" }, "peer_stream_established");
    call.on("data", (bytes: Buffer) => this.receiveFrame(link, bytes));
    let done = false;
    const closed = (why: string): void => {
      if (done) return;
      done = true;
      if (link.inbound !== call) return;
      link.inbound = null;
      if (this.closing) return;
      this.log.info({ peer: link.id, why }, "peer_inbound_closed");
      this.markDown(link, "inbound_closed");
      call.end();
    };
    call.on("end", () => closed("end"));
    call.on("cancelled", () => closed("cancelled"));
    call.on("error", () => closed("error"));
    call.on("close", () => closed("close"));
  }

  private receiveFrame(link: Link, message: Buffer): void {
    // A plain Uint8Array view (no copy), so decoded entry data are Uint8Arrays, not Buffers: on a
    // Buffer `slice` is a view, on a Uint8Array a copy, and the log must get what the type says.
    const bytes = new Uint8Array(message.buffer, message.byteOffset, message.byteLength);
    const result = decodeFrame(bytes, { frameBytesMax: this.config.frameBytesMax });
    if (!result.ok) {
      this.frameRejected(link, bytes.byteLength, result.error.kind, result.error.message);
      return;
    }
    const frame = result.frame;
    if (frame.groupId !== this.config.groupId || frame.from !== link.id || frame.to !== this.config.selfId) {
      const detail = `frame says ${frame.groupId}/${frame.from}→${frame.to}, stream is ${this.config.groupId}/${link.id}→${this.config.selfId}`;
      this.frameRejected(link, bytes.byteLength, "identity_mismatch", detail);
      return;
    }
    link.counters.framesReceived++;
    link.counters.rpcsReceived += frame.rpcs.length;
    if (frame.rpcs.length === 0) return;
    for (const handler of this.receiveHandlers) handler(link.id, frame.rpcs);
  }

  private frameRejected(link: Link, bytes: number, kind: string, error: string): void {
    const n = ++link.counters.framesMalformed;
    if (n <= warnFirst || n % warnEvery === 0) {
      this.log.warn({ peer: link.id, kind, error, bytes, framesMalformed: n }, "frame_rejected");
    }
  }

  /* --- Liveness ------------------------------------------------------------------------------- */

  private markUp(link: Link): void {
    link.up = true;
  }

  private markDown(link: Link, why: string): void {
    if (!link.up) return;
    link.up = false;
    link.counters.peerDownReports++;
    this.log.info({ peer: link.id, why }, "peer_down");
    for (const handler of this.peerDownHandlers) handler(link.id);
  }

  /* --- gRPC settings -------------------------------------------------------------------------- */

  private serverOptions(): grpc.ServerOptions {
    return {
      "grpc.max_receive_message_length": this.config.frameBytesMax + grpcMessageSlackBytes,
      "grpc.keepalive_time_ms": this.config.keepaliveMs,
      "grpc.keepalive_timeout_ms": this.config.keepaliveMs,
    };
  }

  private verifiesPeerIdentity(): boolean {
    return this.config.tls !== undefined && this.config.tls.verifyPeerIdentity !== false;
  }

  private channelOptions(link: Link): grpc.ChannelOptions {
    // Verifying the dialed peer's certificate against its replica id rather than its address
    // proves we reached that replica, not merely some member of the group.
    const serverName: grpc.ChannelOptions = this.verifiesPeerIdentity() ? { "grpc.ssl_target_name_override": link.id } : {};
    return {
      ...serverName,
      "grpc.use_local_subchannel_pool": 1,
      "grpc.enable_retries": 0,
      "grpc.keepalive_time_ms": this.config.keepaliveMs,
      "grpc.keepalive_timeout_ms": this.config.keepaliveMs,
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.max_send_message_length": this.config.frameBytesMax + grpcMessageSlackBytes,
    };
  }

  private serverCredentials(): grpc.ServerCredentials {
    const tls = this.config.tls;
    if (tls === undefined) return grpc.ServerCredentials.createInsecure();
    // checkClientCertificate = true: a peer must present a certificate signed by our CA (mTLS).
    return grpc.ServerCredentials.createSsl(pem(tls.ca), [{ cert_chain: pem(tls.cert), private_key: pem(tls.key) }], true);
  }

  private channelCredentials(): grpc.ChannelCredentials {
    const tls = this.config.tls;
    if (tls === undefined) return grpc.credentials.createInsecure();
    return grpc.credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
  }
}

function pem(value: string | Uint8Array): Buffer {
  return typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value);
}

/** The common name of the peer's verified client certificate, if any. */
function peerCommonName(call: ServerStream): string | undefined {
  const cn: unknown = call.getAuthContext().sslPeerCertificate?.subject?.CN;
  return typeof cn === "string" ? cn : undefined;
}

function firstValue(metadata: grpc.Metadata, key: string): string | null {
  const v = metadata.get(key)[0];
  return typeof v === "string" ? v : null;
}

function zeroCounters(): Counters {
  return {
    framesSent: 0,
    rpcsSent: 0,
    bytesSent: 0,
    framesReceived: 0,
    rpcsReceived: 0,
    rpcsDroppedQueueFull: 0,
    rpcsDroppedTooLarge: 0,
    framesMalformed: 0,
    reconnects: 0,
    peerDownReports: 0,
  };
}
