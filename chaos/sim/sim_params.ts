import type { Prng } from "../../raft/base/prng.js";
import type { RaftConfigInput } from "../../raft/core/config.js";

/**
 * Everything a seed varies, drawn once from the seed's parameter stream so that one number
 * reproduces the whole run. Times are simulated microseconds unless a name says otherwise.
 */
export interface SimParams {
  readonly seed: number;
  readonly replicas: number;
  /** Length of the safety phase (faults on). */
  readonly safetyUs: number;
  /** After the liveness phase starts, a fresh proposal must be acknowledged within this bound. */
  readonly livenessBoundUs: number;
  /** Extra time simulated after liveness is shown, so the healed group keeps being checked. */
  readonly tailUs: number;
  /** Per-replica tick interval (10 ms with a small constant drift each). */
  readonly tickUs: readonly number[];
  readonly net: NetParams;
  readonly fsyncUs: number;
  readonly fsyncSlowP: number;
  readonly fsyncSlowUs: number;
  /** Mean time between faults in the safety phase. */
  readonly faultMeanUs: number;
  /**
   * Chance that a replica crashes while a given fsync is in flight (losing that batch), then
   * restarts soon after. Crashes aimed at this window are what break a core that acknowledges
   * votes or appends before they are durable; random crash times rarely hit it.
   */
  readonly crashOnSyncP: number;
  /**
   * Chance that a new leader is crashed or isolated within a few ms of its election, while it
   * is still replicating earlier terms' entries: the schedule of Raft paper Figure 8, which
   * breaks a core that commits earlier-term entries by counting replicas.
   */
  readonly newLeaderFaultP: number;
  /** Mean time between client operations. */
  readonly clientMeanUs: number;
  readonly transferP: number;
  readonly readP: number;
  /** A replica snapshots after this many applied entries. */
  readonly snapshotEvery: number;
  readonly snapshotPadBytes: number;
  /** Largest gap between a snapshot's index and the compaction point below it. */
  readonly compactLagMax: number;
  /**
   * Whether leaders take proposals and acks while their fsync runs (raft/replica's default,
   * RaftCore.drain). Four seeds in five; from the seed itself, so no parameter draw moves.
   */
  readonly pipeline: boolean;
  readonly core: Omit<RaftConfigInput, "id" | "members">;
}

export interface NetParams {
  baseDelayUs: number;
  jitterUs: number;
  lossP: number;
  dupP: number;
  /** Chance that one RPC is held back by up to longDelayUs: deep reordering. */
  longDelayP: number;
  longDelayUs: number;
}

export const tickUsNominal = 10_000;

/** Draws the parameters of a run from `prng` (the seed's parameter stream). */
export function drawSimParams(seed: number, replicas: number, prng: Prng): SimParams {
  // Election timing varies too: short timeouts mean many elections and check-quorum step-downs;
  // heartbeatTicks 1 against electionTicks 20 is the calm end.
  const [electionTicks, heartbeatTicks] = prng.pick([
    [10, 2],
    [10, 2],
    [6, 1],
    [20, 3],
  ] as const);
  const tickUs: number[] = [];
  for (let i = 0; i < replicas; i++) tickUs.push(tickUsNominal + prng.int(-150, 151));
  return {
    seed,
    replicas,
    safetyUs: 10_000_000,
    livenessBoundUs: 5_000_000,
    tailUs: 500_000,
    tickUs,
    net: drawNetParams(prng),
    fsyncUs: prng.int(50, 2_000),
    fsyncSlowP: prng.pick([0, 0.01, 0.05]),
    fsyncSlowUs: prng.int(5_000, 40_000),
    faultMeanUs: prng.pick([30_000, 100_000, 300_000, 800_000]),
    crashOnSyncP: prng.pick([0, 0, 0.003, 0.02]),
    newLeaderFaultP: prng.pick([0, 0, 0.2, 0.5]),
    clientMeanUs: prng.pick([500, 1_500, 4_000, 10_000]),
    transferP: prng.pick([0, 0.005, 0.02]),
    readP: prng.pick([0.1, 0.3]),
    snapshotEvery: prng.pick([10, 40, 150, 1_000]),
    snapshotPadBytes: prng.pick([0, 300, 3_000]),
    compactLagMax: prng.pick([0, 5, 30]),
    pipeline: seed % 5 !== 0,
    core: {
      electionTicks,
      heartbeatTicks,
      preferredLeader: prng.pick([null, null, "n1"]),
      inflightRpcsMax: prng.pick([1, 4, 64]),
      inflightBytesMax: prng.pick([512, 16 * 1024 * 1024]),
      appendBytesMax: prng.pick([32, 64, 1024, 1024 * 1024]),
      snapshotChunkBytes: prng.pick([100, 1024, 1024 * 1024]),
      // The client can propose faster than a small window replicates (2000 ops/s against one
      // 32-byte append in flight); without backpressure the backlog, not a fault, would decide
      // whether a fresh proposal commits within the liveness bound. Payloads are ≤ 69 bytes.
      entryBytesMax: 1024,
      uncommittedBytesMax: prng.pick([1024, 8192]),
    },
  };
}

/** Network behaviour; the fault schedule re-draws it now and then. */
export function drawNetParams(prng: Prng): NetParams {
  return {
    baseDelayUs: prng.int(100, 1_500),
    jitterUs: prng.pick([0, 500, 3_000]),
    lossP: prng.pick([0, 0.01, 0.05, 0.15]),
    dupP: prng.pick([0, 0.01, 0.05]),
    longDelayP: prng.pick([0, 0.01, 0.05]),
    longDelayUs: prng.int(5_000, 100_000),
  };
}
