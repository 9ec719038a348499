import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { AppendSession } from "../../broker/client/append_session.js";
import { LedgerClient } from "../../broker/client/ledger_client.js";
import { errorKeys, ledgerService, type AppendRequest, type AppendResponse, type AppendStreamResponse } from "../../broker/api/ledger_messages.js";

/**
 * How the generator's appends travel: "session" pipelines them on long-lived AppendSession
 * streams (the default: what LedgerClient does); "calls" is the older way, one AppendStream call
 * per batch and a unary Append for a single entry. A grpc-js call costs ~1 ms of CPU on this box
 * (../shared/anchors/REPORT.md), a message on an open stream a fraction of that.
 */
export type AppendRpc = "session" | "calls";

/** Validates the --append-rpc flag. */
export function appendRpcOption(v: string): AppendRpc {
  if (v === "session" || v === "calls") return v;
  throw new Error(`--append-rpc (${JSON.stringify(v)}) must be "session" or "calls"`);
}

/**
 * The load generator's connection to one replica: several gRPC channels (separate HTTP/2
 * connections), used round-robin, each with one AppendSession in session mode.
 */
export class LedgerChannels {
  private readonly clients: grpc.Client[];
  private readonly sessions: AppendSession[];
  private next = 0;

  constructor(
    readonly address: string,
    channels: number,
    readonly rpc: AppendRpc = "session",
  ) {
    this.clients = Array.from({ length: Math.max(1, channels) }, () => new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "grpc.enable_retries": 0 }));
    this.sessions = rpc === "session" ? this.clients.map((c) => new AppendSession(c)) : [];
  }

  private pick(): grpc.Client {
    const c = this.clients[this.next++ % this.clients.length] as grpc.Client;
    return c;
  }

  /** Appends `reqs` (≥ 1); resolves with one outcome per request, in order. */
  send(reqs: readonly AppendRequest[], timeoutMs: number): Promise<SendResult> {
    if (this.rpc === "session") return this.session(reqs, timeoutMs);
    return reqs.length === 1 ? this.unary(reqs[0] as AppendRequest, timeoutMs) : this.stream(reqs, timeoutMs);
  }

  private async session(reqs: readonly AppendRequest[], timeoutMs: number): Promise<SendResult> {
    const s = this.sessions[this.next++ % this.sessions.length] as AppendSession;
    const all = await Promise.all(reqs.map((r) => s.append(r, timeoutMs)));
    const responses = all.map((r): AppendResponse | ItemFailure =>
      r.ok ? r.value : { failed: true, code: r.failure.code, reason: r.failure.reason, details: r.failure.details, leaderAddress: r.failure.leaderAddress },
    );
    return { ok: true, responses };
  }

  private unary(req: AppendRequest, timeoutMs: number): Promise<SendResult> {
    const m = ledgerService.Append;
    return new Promise((resolve) => {
      this.pick().makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, value) => {
        if (err !== null || value === undefined) resolve(callFailed(err));
        else resolve({ ok: true, responses: [value] });
      });
    });
  }

  private stream(reqs: readonly AppendRequest[], timeoutMs: number): Promise<SendResult> {
    const m = ledgerService.AppendStream;
    return new Promise((resolve) => {
      const call = this.pick().makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, value?: AppendStreamResponse) => {
        if (err !== null || value === undefined) return resolve(callFailed(err));
        const responses: (AppendResponse | ItemFailure)[] = value.results.map((r) =>
          r.code === 0 && r.response !== null ? r.response : { failed: true, code: r.code, reason: r.reason, details: r.message, leaderAddress: r.leaderAddress === "" ? null : r.leaderAddress },
        );
        resolve({ ok: true, responses });
      });
      for (const r of reqs) call.write(r);
      call.end();
    });
  }

  close(): void {
    for (const s of this.sessions) s.close();
    for (const c of this.clients) c.close();
  }
}

export interface ItemFailure {
  readonly failed: true;
  readonly code: number;
  readonly reason: string;
  readonly details: string;
  readonly leaderAddress: string | null;
}

export type SendResult =
  | { readonly ok: true; readonly responses: readonly (AppendResponse | ItemFailure)[] }
  | { readonly ok: false; readonly code: number; readonly reason: string; readonly details: string; readonly leaderAddress: string | null };

function callFailed(err: grpc.ServiceError | null): SendResult {
  const one = (k: string): string | null => {
    const v = err?.metadata?.get(k)[0];
    return typeof v === "string" && v !== "" ? v : null;
  };
  return { ok: false, code: err?.code ?? grpc.status.UNKNOWN, reason: one(errorKeys.reason) ?? "", details: err?.details ?? "no response", leaderAddress: one(errorKeys.leaderAddress) };
}

export function isFailure(r: AppendResponse | ItemFailure): r is ItemFailure {
  return "failed" in r;
}

/**
 * A virtual producer: its own clientId and increasing sequences, so the server's exactly-once
 * table sees ordinary producers. A producer has at most one call outstanding and a batch stays
 * within the server's per-client window of 64 sequences (broker/ledger_state_machine.ts).
 */
export class Producer {
  readonly clientId = randomUUID();
  private sequence = 1;

  constructor(private readonly body: Uint8Array) {}

  requests(n: number): AppendRequest[] {
    const out: AppendRequest[] = new Array<AppendRequest>(n);
    for (let i = 0; i < n; i++) out[i] = { clientId: this.clientId, sequence: this.sequence++, body: this.body };
    return out;
  }
}

/** Largest batch one producer sends in one call (below the server's dedup window of 64). */
export const producerBatchMax = 64;

export function entryBody(bytes: number): Uint8Array {
  const body = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) body[i] = (i * 131 + 7) & 0xff;
  return body;
}

/**
 * Channels to whichever replica leads now. A refusal that names another leader (or a "not
 * leader" inside a stream's results) triggers one rediscovery through Metadata at a time, and
 * later calls go to the new leader. Calls already in flight finish on the old channels.
 */
export class LeaderTarget {
  private ch: LedgerChannels;
  private finding: Promise<void> | null = null;
  private readonly finder: LedgerClient;
  private readonly retired: LedgerChannels[] = [];
  leaderChanges = 0;

  constructor(
    endpoints: readonly string[],
    leaderAddress: string,
    private readonly channels: number,
    private readonly rpc: AppendRpc = "session",
  ) {
    this.ch = new LedgerChannels(leaderAddress, channels, rpc);
    this.finder = new LedgerClient({ endpoints, attemptTimeoutMs: 300 });
  }

  get address(): string {
    return this.ch.address;
  }

  async send(reqs: readonly AppendRequest[], timeoutMs: number): Promise<SendResult> {
    const r = await this.ch.send(reqs, timeoutMs);
    const movedItem = (x: AppendResponse | ItemFailure): x is ItemFailure =>
      isFailure(x) && (x.reason === "not_leader" || x.reason === "stopped" || (x.reason === "" && x.code === grpc.status.UNAVAILABLE));
    const item = r.ok ? r.responses.find(movedItem) : undefined;
    if (item !== undefined) this.rediscover(item.leaderAddress);
    else if (!r.ok && (r.reason !== "" || r.code === grpc.status.UNAVAILABLE)) this.rediscover(r.leaderAddress);
    return r;
  }

  private rediscover(hint: string | null): void {
    if (hint !== null && hint !== this.ch.address) return this.switchTo(hint);
    this.finding ??= this.finder
      .findLeader()
      .then((address) => {
        if (address !== null && address !== this.ch.address) this.switchTo(address);
      })
      .catch(() => {})
      .finally(() => (this.finding = null));
  }

  private switchTo(address: string): void {
    this.retired.push(this.ch);
    this.ch = new LedgerChannels(address, this.channels, this.rpc);
    this.leaderChanges++;
  }

  close(): void {
    this.ch.close();
    for (const c of this.retired) c.close();
    this.finder.close();
  }
}
