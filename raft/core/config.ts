import type { ReplicaId } from "./types.js";

/**
 * Core configuration. Time is in ticks; the driver decides how long a tick is (the replica uses
 * a few milliseconds, the simulator 10 simulated ms). Pre-vote and check-quorum are not options:
 * they are always on (DESIGN.md §2).
 */
export interface RaftConfig {
  readonly id: ReplicaId;
  /** Every voter in the group, including `id`. Order does not matter. */
  readonly members: readonly ReplicaId[];
  /** Base election timeout; the randomized timeout is drawn from [electionTicks, 2·electionTicks). */
  readonly electionTicks: number;
  /** Leader heartbeat interval. Must be < electionTicks. */
  readonly heartbeatTicks: number;
  /**
   * After the driver reports the leader unreachable (its connection closed), a follower starts a
   * pre-vote within [1, leaderLostSpreadTicks) ticks instead of waiting out its election timeout.
   * The spread keeps the followers of a dead leader from campaigning at the same moment and
   * splitting the vote; it is separate from electionTicks so that a long election timeout (for
   * stability under GC pauses) does not slow failover after a crash. At most electionTicks;
   * defaults to min(10, electionTicks).
   */
  readonly leaderLostSpreadTicks: number;
  /** In-flight append RPCs per follower in replicate state. */
  readonly inflightRpcsMax: number;
  /** In-flight entry bytes per follower in replicate state. */
  readonly inflightBytesMax: number;
  /** Entry data bytes per append RPC (one larger entry is still sent alone). */
  readonly appendBytesMax: number;
  /** Largest entry data a proposal may carry. */
  readonly entryBytesMax: number;
  /** Bytes the leader may hold proposed but uncommitted before it refuses proposals. */
  readonly uncommittedBytesMax: number;
  /** Committed entry bytes handed out per Ready. */
  readonly applyBytesMax: number;
  /** Snapshot bytes per snapshot_chunk RPC. */
  readonly snapshotChunkBytes: number;
  /** Largest snapshot a follower accepts. */
  readonly snapshotBytesMax: number;
  /** A member the group moves leadership back to once it is caught up, or null. */
  readonly preferredLeader: ReplicaId | null;
}

export type RaftConfigInput = Pick<RaftConfig, "id" | "members"> & Partial<Omit<RaftConfig, "id" | "members">>;

/** Default leaderLostSpreadTicks, capped by the election timeout. */
const leaderLostSpreadTicksDefault = 10;

export const raftConfigDefaults = {
  electionTicks: 10,
  heartbeatTicks: 2,
  inflightRpcsMax: 256,
  inflightBytesMax: 16 * 1024 * 1024,
  appendBytesMax: 1024 * 1024,
  entryBytesMax: 4 * 1024 * 1024,
  uncommittedBytesMax: 64 * 1024 * 1024,
  applyBytesMax: 8 * 1024 * 1024,
  snapshotChunkBytes: 1024 * 1024,
  snapshotBytesMax: 4 * 1024 * 1024 * 1024,
  preferredLeader: null,
} as const;

/** A config value that breaks a rule. The message names the field, the rule and the value. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

const idPattern = /^[A-Za-z0-9_.-]{1,64}$/;

/** Validates `input` once, at the edge, and returns a frozen config (the input is not touched). */
export function validateConfig(input: RaftConfigInput): RaftConfig {
  const electionTicks = input.electionTicks ?? raftConfigDefaults.electionTicks;
  const c: RaftConfig = {
    ...raftConfigDefaults,
    leaderLostSpreadTicks: Math.min(leaderLostSpreadTicksDefault, electionTicks),
    ...input,
    members: Object.freeze([...input.members]),
  };
  checkId("id", c.id);
  if (c.members.length === 0) throw new ConfigError("members must not be empty", "members");
  for (const m of c.members) checkId("members", m);
  if (new Set(c.members).size !== c.members.length) {
    throw new ConfigError(`members must be distinct, got ${JSON.stringify(c.members)}`, "members");
  }
  if (!c.members.includes(c.id)) {
    throw new ConfigError(`id (${c.id}) must be one of members ${JSON.stringify(c.members)}`, "id");
  }
  for (const field of integerFields) checkPositive(field, c[field]);
  if (c.heartbeatTicks >= c.electionTicks) {
    throw new ConfigError(`heartbeatTicks (${c.heartbeatTicks}) must be < electionTicks (${c.electionTicks})`, "heartbeatTicks");
  }
  if (c.leaderLostSpreadTicks > c.electionTicks) {
    throw new ConfigError(
      `leaderLostSpreadTicks (${c.leaderLostSpreadTicks}) must be ≤ electionTicks (${c.electionTicks})`,
      "leaderLostSpreadTicks",
    );
  }
  if (c.entryBytesMax > c.uncommittedBytesMax) {
    throw new ConfigError(
      `entryBytesMax (${c.entryBytesMax}) must be ≤ uncommittedBytesMax (${c.uncommittedBytesMax})`,
      "entryBytesMax",
    );
  }
  if (c.preferredLeader !== null && !c.members.includes(c.preferredLeader)) {
    throw new ConfigError(`preferredLeader (${c.preferredLeader}) must be one of members`, "preferredLeader");
  }
  return Object.freeze(c);
}

const integerFields = [
  "electionTicks",
  "heartbeatTicks",
  "leaderLostSpreadTicks",
  "inflightRpcsMax",
  "inflightBytesMax",
  "appendBytesMax",
  "entryBytesMax",
  "uncommittedBytesMax",
  "applyBytesMax",
  "snapshotChunkBytes",
  "snapshotBytesMax",
] as const;

function checkPositive(field: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(`${field} (${String(value)}) must be a positive integer`, field);
  }
}

function checkId(field: string, value: unknown): void {
  if (typeof value !== "string" || !idPattern.test(value)) {
    throw new ConfigError(`${field} (${JSON.stringify(value)}) must match ${idPattern}`, field);
  }
}
