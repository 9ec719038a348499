import type { Json } from "../checkers/history.js";

/**
 * The seams of the real-process chaos harness (issue 5). Each part is built against these types:
 *
 *   cluster.ts   ChaosCluster: N `dledger start` processes, each in its own network namespace
 *                (TestNetwork, netns.ts), or on 127.0.0.1 in process-only mode; the OS-level
 *                faults (signals, nftables, clock, file corruption) live here.
 *   nemesis.ts   the fault catalogue and a seeded scheduler that starts and stops faults through
 *                the cluster, and records each one into the history.
 *   workload_*.ts  client processes issuing operations and recording them (Jepsen's outcomes).
 *   runner.ts    wires the three, runs the checkers, prints the summary, writes the report.
 *   report.ts    the self-contained HTML report (SVG charts) and the text summary.
 *
 * Everything here is a type: no behaviour, so the parts can be written and tested apart.
 */

/** "n1".."nN". */
export type NodeId = string;

export interface ChaosNode {
  readonly id: NodeId;
  /** host:port the workload's clients dial (reachable from the runner's network namespace). */
  readonly clientAddress: string;
  readonly peerAddress: string;
  readonly metricsAddress: string;
  readonly dataDir: string;
  /** The replica's stdout/stderr (pino lines), appended across restarts. */
  readonly logPath: string;
}

/**
 * What kinds of fault this cluster can inject here. In process-only mode (no root, no netns, or
 * `--no-netns`) network faults are absent and `limitations` says why, in words for the summary.
 */
export interface ClusterCapabilities {
  readonly mode: "netns" | "process";
  readonly partitions: boolean;
  /** Random packet loss (tc netem, or an nftables random-drop rule when the kernel lacks netem). */
  readonly loss: boolean;
  /** Added latency (tc netem only). */
  readonly delay: boolean;
  readonly clock: boolean;
  /** One line per missing capability, e.g. "partitions: not root (uid 1000)". */
  readonly limitations: readonly string[];
}

/** A replica that exited when it should be running (or would not start). */
export interface ReplicaExit {
  readonly id: NodeId;
  readonly code: number | null;
  readonly signal: string | null;
  /** The last lines of its log, for the message. */
  readonly logTail: string;
}

export interface ChaosCluster {
  readonly nodes: readonly ChaosNode[];
  readonly capabilities: ClusterCapabilities;
  /** The data root of this run (configs, data dirs, logs). */
  readonly dir: string;

  /** Starts every replica; resolves once a leader is known, rejects (ReplicaStartError) if none in time. */
  start(): Promise<void>;
  /** Stops everything this cluster started, by PID, and tears the network down. Idempotent; never throws. */
  stop(): Promise<void>;

  /** The current leader as the replicas report it (Metadata), or null if none within timeoutMs. */
  leader(timeoutMs: number): Promise<NodeId | null>;
  isRunning(id: NodeId): boolean;
  /** Replicas that exited on their own since the last call (not by kill()). */
  takeUnexpectedExits(): readonly ReplicaExit[];

  /** SIGKILL by PID; resolves once the process is gone. */
  kill(id: NodeId): Promise<void>;
  /**
   * Starts a killed replica again. Resolves when its client port answers; rejects with
   * ReplicaStartError if it exits first (e.g. it refused a corrupted log) or does not answer in time.
   */
  restart(id: NodeId): Promise<void>;
  pause(id: NodeId): Promise<void>;
  resume(id: NodeId): Promise<void>;

  /** Each inner list can talk only among itself (nodes in no list are unaffected). Replaces any earlier partition. */
  partition(groups: readonly (readonly NodeId[])[]): Promise<void>;
  /** Packets from `from` are dropped at `to`. */
  partitionOneWay(from: NodeId, to: NodeId): Promise<void>;
  /** A grudge per node: node -> the nodes it drops packets from. Used for bridge and ring topologies. */
  partitionGrudge(grudge: ReadonlyMap<NodeId, readonly NodeId[]>): Promise<void>;
  /** Removes every partition rule. */
  heal(): Promise<void>;
  /** Loss (percent) and optional delay between replicas; null clears. */
  setLinkFaults(faults: { readonly lossPct: number; readonly delayMs?: number } | null): Promise<void>;

  /** Skews a replica's clock: an offset and a rate (1 = real time). null restores it. */
  setClockSkew(id: NodeId, skew: { readonly offsetMs: number; readonly rate: number } | null): Promise<void>;

  /**
   * Flips one byte in a committed entry's body in the data directory of a stopped replica.
   * `knownCommit`: an index the replica reported as committed before it was stopped (its state
   * file's commit index is persisted lazily, so it may be lower). Returns what it did, so
   * `repair` can undo it exactly.
   */
  corrupt(id: NodeId, choose: (n: number) => number, knownCommit?: number): Promise<Corruption>;
  /** The commit index `id` reports (Metadata), or null if it does not answer in time. */
  commitIndex(id: NodeId, timeoutMs: number): Promise<number | null>;
  /** Restores the byte `corrupt` flipped (an operator restoring the file from a backup). */
  repair(corruption: Corruption): Promise<void>;
}

export interface Corruption {
  readonly id: NodeId;
  readonly file: string;
  readonly offset: number;
  readonly original: number;
  readonly flipped: number;
  /** The log index of the entry whose body now fails its CRC. */
  readonly entryIndex: number;
}

/** The fault families of `--nemesis`; "all" mixes every one this cluster can do. */
export const nemesisFamilies = ["kill", "pause", "partition", "netem", "clock", "corrupt"] as const;
export type NemesisFamily = (typeof nemesisFamilies)[number];

/** A note the nemesis writes into the history (process "nemesis"; checkers other than failover ignore it). */
export interface NemesisNote {
  readonly f: "start" | "stop";
  /** e.g. { fault: "isolate-leader", nodes: ["n2"] } */
  readonly value: { readonly fault: string; readonly nodes: readonly NodeId[]; readonly detail?: Json };
  readonly timeNs: number;
}

/** The sink every part writes the history through, in real-time order (one recorder per run). */
export interface HistoryRecorder {
  /** Nanoseconds since the start of the run (monotonic). */
  nowNs(): number;
  client(e: {
    readonly process: number;
    readonly type: "invoke" | "ok" | "fail" | "info";
    readonly f: string;
    readonly key?: string | number;
    readonly value?: Json;
    readonly index?: number;
    readonly error?: Json;
  }): void;
  nemesis(note: Omit<NemesisNote, "timeNs">): void;
}

/** What a workload needs from the run. */
export interface WorkloadContext {
  readonly nodes: readonly ChaosNode[];
  readonly recorder: HistoryRecorder;
  /** Seeded randomness for the workload's choices (keys, values, pacing). */
  readonly random: () => number;
  /** Aborted when the run's time limit is reached: stop issuing, let in-flight ops complete or time out. */
  readonly signal: AbortSignal;
  /** Client request timeout: a request without an answer by then is recorded as `info`. */
  readonly requestTimeoutMs: number;
}

/**
 * A workload: `register` and `append` now, the broker's `queue` later. `run` resolves after the
 * signal aborts and every operation it invoked has a completion in the history.
 */
export interface Workload {
  readonly name: string;
  /** `dledger check --model` mode for its history ("cas-register", "kv", "append", ...). */
  readonly checkMode: string;
  run(ctx: WorkloadContext): Promise<void>;
}

/* --- The end of a run: what the summary and the HTML report are made from ------------------- */

/** One completed client operation, for the charts. */
export interface ReportOperation {
  readonly process: number;
  readonly f: string;
  readonly key?: string | number;
  readonly outcome: "ok" | "fail" | "info";
  readonly invokeNs: number;
  /** The completion's time (for info: when the client gave up). */
  readonly completeNs: number;
}

/** One injected fault, start to stop (stopNs null: still in place when the run ended). */
export interface ReportFault {
  readonly fault: string;
  readonly nodes: readonly NodeId[];
  readonly startNs: number;
  readonly stopNs: number | null;
  /** Time from the fault to the first ok after it (ms), or null if none. */
  readonly failoverMs: number | null;
}

export interface ReportChecker {
  /** e.g. "linearizability (cas-register)", "append", "replica logs". */
  readonly name: string;
  readonly verdict: string;
  /** false for a violation; null for unknown (time limit). */
  readonly ok: boolean | null;
  readonly summary: string;
  /** The failing operation and the states tried, anomalies, ... (preformatted lines). */
  readonly details: readonly string[];
  /** The operation the checker could not accept, for the report to highlight (absent when none). */
  readonly failingOperation?: ReportFailingOperation;
}

/** A checker's failing operation (history.ts Operation, reduced). Values are untrusted text. */
export interface ReportFailingOperation {
  readonly process: number;
  readonly f: string;
  readonly key?: string | number;
  readonly outcome: "ok" | "fail" | "info";
  /** What the invoke carried, and what the completion returned (a read's value). */
  readonly invokeValue?: Json;
  readonly resultValue?: Json;
  /** ns since the start of the run; null when the history had no time. */
  readonly invokeNs: number | null;
  readonly completeNs: number | null;
  /** 1-based lines in the history file (completeLine null: never completed). */
  readonly invokeLine: number;
  readonly completeLine: number | null;
}

export interface FailoverByFault {
  readonly fault: string;
  /** Faults of this kind, and how many had an ok after them. */
  readonly count: number;
  readonly measured: number;
  readonly medianMs: number | null;
  readonly maxMs: number | null;
}

export interface RunReport {
  readonly workload: string;
  readonly nemeses: readonly string[];
  readonly seed: number;
  /** ISO 8601. */
  readonly startedAt: string;
  readonly durationNs: number;
  readonly capabilities: ClusterCapabilities;
  readonly nodes: readonly NodeId[];
  readonly historyPath: string;
  readonly counts: { readonly invoked: number; readonly ok: number; readonly fail: number; readonly info: number };
  readonly operations: readonly ReportOperation[];
  readonly faults: readonly ReportFault[];
  readonly checkers: readonly ReportChecker[];
  readonly failover: {
    readonly measured: number;
    readonly medianMs: number | null;
    readonly maxMs: number | null;
    /** The same per fault kind (e.g. "isolate-leader"), in order of first appearance. */
    readonly byFault: readonly FailoverByFault[];
  };
  /** Problems with the run itself (a replica that would not restart, ...), shown prominently. */
  readonly incidents: readonly string[];
  /** true when every checker passed (ok === true) and there were no incidents that void the run. */
  readonly valid: boolean;
}
