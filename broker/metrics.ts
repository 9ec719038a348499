import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { SoftState } from "../raft/core/types.js";
import type { ReplicaHooks } from "../raft/replica/replica.js";

/** Role as a number for the `dledger_role` gauge. */
const roleCode = { follower: 0, pre_candidate: 1, candidate: 2, leader: 3 } as const;

/** What the metrics read from a replica on each scrape. */
export interface MetricsSource {
  status(): {
    readonly term: number;
    readonly role: keyof typeof roleCode;
    readonly commit: number;
    readonly applied: number;
    readonly lastIndex: number;
    readonly matches: Readonly<Record<string, number>>;
  };
}

/**
 * Prometheus metrics of one replica (prom-client). Gauges are read from the replica when scraped;
 * counters and histograms are fed by the driver's hooks. One Registry per replica, so several
 * replicas in one process (tests) do not collide.
 */
export class ReplicaMetrics {
  readonly registry = new Registry();
  readonly hooks: ReplicaHooks;
  private readonly elections: Counter;
  private readonly leaderChanges: Counter;
  private readonly fsyncSeconds: Histogram;
  private readonly appendSeconds: Histogram;
  private readonly refusedRpcs: Counter<"type">;

  /**
   * `processMetrics`: also export prom-client's Node.js process metrics (event-loop lag, GC
   * pauses, heap, CPU) — for the one replica a `dledger start` process runs; off where several
   * replicas share a process (tests), since those figures are per process.
   */
  constructor(source: MetricsSource, labels: { readonly group: string; readonly replica: string }, options: { readonly processMetrics?: boolean } = {}) {
    this.registry.setDefaultLabels(labels);
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 5 });
    const r = [this.registry];
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: r, collect() { this.set(read()); } });
    gauge("dledger_role", "0 follower, 1 pre-candidate, 2 candidate, 3 leader", () => roleCode[source.status().role]);
    gauge("dledger_term", "current Raft term", () => source.status().term);
    gauge("dledger_commit_index", "highest index known committed", () => source.status().commit);
    gauge("dledger_applied_index", "highest index applied to the state machine", () => source.status().applied);
    gauge("dledger_last_index", "last index in the local log", () => source.status().lastIndex);
    // The lag gauge is registered after the match gauge, so refreshing both when the match
    // gauge is collected fills both before either is serialized.
    const lag = new Gauge({ name: "dledger_peer_lag_entries", help: "leader only: entries each follower is behind", labelNames: ["peer"], registers: [] });
    new Gauge({
      name: "dledger_peer_match_index",
      help: "leader only: each follower's match index",
      labelNames: ["peer"],
      registers: r,
      collect() {
        const s = source.status();
        this.reset();
        lag.reset();
        for (const [peer, m] of Object.entries(s.matches)) {
          this.set({ peer }, m);
          lag.set({ peer }, s.lastIndex - m);
        }
      },
    });
    this.registry.registerMetric(lag);
    this.elections = new Counter({ name: "dledger_elections_total", help: "elections this replica started (became candidate)", registers: r });
    this.leaderChanges = new Counter({ name: "dledger_leader_changes_total", help: "times the known leader changed", registers: r });
    this.refusedRpcs = new Counter({ name: "dledger_rpcs_refused_total", help: "inbound RPCs refused as malformed or foreign", labelNames: ["type"], registers: r });
    const buckets = [0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5];
    this.fsyncSeconds = new Histogram({ name: "dledger_fsync_seconds", help: "write + fsync of one Ready batch", buckets, registers: r });
    this.appendSeconds = new Histogram({ name: "dledger_append_seconds", help: "client append: propose to applied", buckets, registers: r });
    this.hooks = {
      onSoftState: (s, prev) => this.softState(s, prev),
      onFsync: (ms) => this.fsyncSeconds.observe(ms / 1000),
      onRefusedRpc: (rpc) => this.refusedRpcs.inc({ type: String(rpc.type) }),
    };
  }

  /** Records one client append's latency (propose to applied), in milliseconds. */
  observeAppend(ms: number): void {
    this.appendSeconds.observe(ms / 1000);
  }

  /** The text exposition format for a /metrics response. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  private softState(s: SoftState, prev: SoftState): void {
    if (s.role === "candidate" && prev.role !== "candidate") this.elections.inc();
    if (s.leader !== null && s.leader !== prev.leader) this.leaderChanges.inc();
  }
}
