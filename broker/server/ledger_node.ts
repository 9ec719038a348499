import { readFileSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import * as grpc from "@grpc/grpc-js";
import type { Clock } from "../../raft/base/clock.js";
import type { Logger } from "../../raft/base/logger.js";
import { Prng } from "../../raft/base/prng.js";
import { raftConfigDefaults } from "../../raft/core/config.js";
import type { ReplicaId, Rpc } from "../../raft/core/types.js";
import type { Transport } from "../../raft/replica/contracts.js";
import { Replica } from "../../raft/replica/replica.js";
import { GrpcTransport } from "../../raft/transport/index.js";
import { DiskOs, openCommitLog, type CommitLog } from "../../storage/index.js";
import { LedgerStateMachine } from "../ledger_state_machine.js";
import { ReplicaMetrics } from "../metrics.js";
import type { NodeConfig } from "../node_config.js";
import { addKvService, KvService } from "./kv_service.js";
import { addLedgerService } from "./ledger_grpc.js";
import { LedgerService } from "./ledger_service.js";
import { wallClock } from "./wall_clock.js";

export interface LedgerNodeOptions {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Seeds the Raft core's election jitter; pass a random value in production. */
  readonly prngSeed: number;
  /** Largest encoded entry; the Raft core's default (4 MiB) when absent. */
  readonly entryBytesMax?: number;
  /** Export the process's Node.js metrics (event-loop lag, GC, heap) too: one replica per process only. */
  readonly processMetrics?: boolean;
}

/** How long a graceful stop lets in-flight client calls finish before cancelling them. */
const shutdownGraceMs = 2000;

/**
 * One replica process's parts, composed (DESIGN.md §1: broker composes everything): the
 * CommitLog on the OS disk, the gRPC peer transport, the Replica driving the Raft core with the
 * ledger state machine, the client gRPC server, and the /metrics HTTP endpoint.
 */
export class LedgerNode {
  readonly id: ReplicaId;
  clientPort = 0;
  peerPort = 0;
  metricsPort = 0;
  private stopping: Promise<void> | null = null;

  private constructor(
    private readonly config: NodeConfig,
    private readonly log: Logger,
    private readonly commitLog: CommitLog,
    private readonly transport: GrpcTransport | null,
    readonly replica: Replica,
    readonly service: LedgerService,
    private readonly clientServer: grpc.Server,
    private readonly metricsServer: HttpServer | null,
    readonly metrics: ReplicaMetrics,
  ) {
    this.id = config.id;
  }

  /** Opens the log (running recovery), binds every listener and starts the replica. */
  static async start(opts: LedgerNodeOptions): Promise<LedgerNode> {
    const { config } = opts;
    const clock = opts.clock ?? wallClock;
    // Components bind their own `replica` field; the node's own events get it here.
    const groupLog = opts.logger.child({ group: config.group });
    const log = groupLog.child({ replica: config.id });
    const members = Object.keys(config.peers);
    const entryBytesMax = opts.entryBytesMax ?? raftConfigDefaults.entryBytesMax;
    const commitLog = openCommitLog({ disk: new DiskOs(), dir: config.dataDir, members, logger: log });
    log.info({ dataDir: config.dataDir, report: commitLog.report }, "commit_log_opened");
    const stateMachine = new LedgerStateMachine();
    let replica: Replica | null = null;
    const status = () => {
      if (replica === null) throw new Error("metrics scraped before the replica exists");
      return replica.status();
    };
    const metrics = new ReplicaMetrics({ status }, { group: config.group, replica: config.id }, { processMetrics: opts.processMetrics === true });
    const transport = members.length > 1 ? createTransport(config, groupLog, clock) : null;
    replica = new Replica({
      config: {
        id: config.id,
        members,
        electionTicks: config.raft.electionTicks,
        heartbeatTicks: config.raft.heartbeatTicks,
        leaderLostSpreadTicks: config.raft.leaderLostSpreadTicks,
        preferredLeader: config.raft.preferredLeader,
        entryBytesMax,
      },
      clock,
      transport: transport === null ? soloTransport : adaptTransport(transport),
      logStore: commitLog,
      stateMachine,
      prng: new Prng(opts.prngSeed),
      logger: groupLog,
      tickMs: config.raft.tickMs,
      snapshots: config.snapshots,
      pipeline: config.raft.pipeline,
      hooks: metrics.hooks,
    });
    const service = new LedgerService({
      group: config.group,
      id: config.id,
      members,
      clientAddresses: config.clients,
      replica,
      stateMachine,
      logStore: commitLog,
      entryBytesMax,
      clock,
      logger: log,
      onAppendApplied: (ms) => metrics.observeAppend(ms),
    });
    // gRPC's own message limit sits above ours, so an oversized entry gets our clearer error.
    const clientServer = new grpc.Server({ "grpc.max_receive_message_length": entryBytesMax + 64 * 1024 });
    addLedgerService(clientServer, service, log);
    // dledger.v1.Kv shares the port, the state machine and the Ledger's errors and ReadIndex path.
    addKvService(clientServer, new KvService({ id: config.id, ledger: service, replica, stateMachine, entryBytesMax, logger: log }), log);
    const metricsServer = config.listen.metrics === null ? null : createMetricsServer(metrics, log);
    const node = new LedgerNode(config, log, commitLog, transport, replica, service, clientServer, metricsServer, metrics);
    await node.listen();
    return node;
  }

  private async listen(): Promise<void> {
    try {
      if (this.transport !== null) {
        await this.transport.start();
        this.peerPort = this.transport.port;
      }
      this.clientPort = await bindGrpc(this.clientServer, this.config.listen.client);
      if (this.metricsServer !== null && this.config.listen.metrics !== null) {
        this.metricsPort = await listenHttp(this.metricsServer, this.config.listen.metrics);
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.replica.start();
    this.log.info({ client: this.config.listen.client, peer: this.config.listen.peer, metrics: this.config.listen.metrics }, "node_started");
  }

  /**
   * Graceful stop: refuse new client calls, stop the replica (waiting clients are answered
   * "stopped", outcome unknown), close the servers and the transport, and close the CommitLog
   * cleanly so the next open skips the crash rescan. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  /**
   * A leader that stops gracefully first hands leadership to its most caught-up follower
   * (TimeoutNow, Raft thesis §3.10), so clients see one quick leader change instead of waiting
   * an election timeout. Bounded by handOffWaitMs; a failure here only costs that election.
   */
  private async handOffLeadership(): Promise<void> {
    const s = this.replica.status();
    if (s.role !== "leader") return;
    const best = Object.entries(s.matches).sort((a, b) => b[1] - a[1])[0];
    if (best === undefined) return;
    const r = this.replica.transferLeadership(best[0]);
    if (!r.ok) return;
    for (let waited = 0; waited < handOffWaitMs && this.replica.status().role === "leader"; waited += 10) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    this.log.info({ to: best[0], handedOff: this.replica.status().role !== "leader" }, "leadership_handed_off");
  }

  private async doStop(): Promise<void> {
    this.log.info({}, "node_stopping");
    const drained = new Promise<void>((resolve) => this.clientServer.tryShutdown(() => resolve()));
    await this.handOffLeadership();
    this.replica.stop();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), shutdownGraceMs)));
    if ((await Promise.race([drained, late])) === "late") this.clientServer.forceShutdown();
    clearTimeout(timer);
    await this.transport?.close();
    if (this.metricsServer !== null) {
      this.metricsServer.closeAllConnections();
      await new Promise<void>((resolve) => this.metricsServer?.close(() => resolve()));
    }
    this.commitLog.close();
    this.log.info({}, "node_stopped");
  }
}

/** How long a stopping leader waits for a follower to take over before stopping anyway. */
const handOffWaitMs = 500;

/** The replica's Transport contract over GrpcTransport, whose receive handler also gets the sender. */
function adaptTransport(t: GrpcTransport): Transport {
  return {
    send: (rpcs: readonly Rpc[]) => t.send(rpcs),
    onReceive: (handler) => t.onReceive((_from, rpcs) => handler(rpcs)),
    onPeerDown: (handler) => t.onPeerDown(handler),
  };
}

/** A one-replica group has no peers: nothing is ever sent or received. */
const soloTransport: Transport = { send() {}, onReceive() {}, onPeerDown() {} };

function createTransport(config: NodeConfig, log: Logger, clock: Clock): GrpcTransport {
  const peers = Object.fromEntries(Object.entries(config.peers).filter(([id]) => id !== config.id));
  const tls = config.tls === null ? undefined : { ca: readFileSync(config.tls.ca), cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) };
  return new GrpcTransport({ groupId: config.group, selfId: config.id, listen: config.listen.peer, peers, logger: log, clock, ...(tls === undefined ? {} : { tls }) });
}

function createMetricsServer(metrics: ReplicaMetrics, log: Logger): HttpServer {
  return createServer((req, res) => {
    if (req.method !== "GET" || req.url?.split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /metrics\n");
      return;
    }
    metrics.text().then(
      (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
      (err: unknown) => {
        log.error({ err: String(err) }, "metrics_scrape_failed");
        res.writeHead(500).end();
      },
    );
  });
}

function bindGrpc(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port)));
  });
}

function listenHttp(server: HttpServer, address: string): Promise<number> {
  const at = address.lastIndexOf(":");
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(address.slice(at + 1)), address.slice(0, at), () => {
      const a = server.address();
      resolve(typeof a === "object" && a !== null ? a.port : 0);
    });
  });
}
