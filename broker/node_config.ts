import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

/**
 * The configuration of one replica process (`dledger start --config node.yaml`). Validated once,
 * here, at the edge: every error names the field, the rule and the value (STYLE.md rule 8).
 */
export interface NodeConfig {
  /** The replica group's name; peers from another group are refused. */
  readonly group: string;
  readonly id: string;
  readonly dataDir: string;
  readonly listen: {
    /** host:port for peer traffic. */
    readonly peer: string;
    /** host:port for the client API. */
    readonly client: string;
    /** host:port for Prometheus /metrics, or null for none. */
    readonly metrics: string | null;
  };
  /** Every member's peer address, this replica's included. */
  readonly peers: Readonly<Record<string, string>>;
  /**
   * Members' client addresses, for the leader hints this replica gives clients. Optional per
   * member; this replica's own entry is always listen.client.
   */
  readonly clients: Readonly<Record<string, string>>;
  readonly raft: {
    readonly tickMs: number;
    readonly electionTicks: number;
    readonly heartbeatTicks: number;
    readonly leaderLostSpreadTicks: number;
    readonly preferredLeader: string | null;
    /** A leader keeps taking proposals and acks while its own fsync runs (Replica's `pipeline`). */
    readonly pipeline: boolean;
  };
  readonly snapshots: { readonly everyEntries: number; readonly keepEntries: number };
  readonly tls: { readonly ca: string; readonly cert: string; readonly key: string } | null;
}

/**
 * Defaults sized for a LAN or one machine (DESIGN.md §7). A 5 ms tick; a 60-tick (300 ms) base
 * election timeout, randomized to [300, 600) ms, with a heartbeat every 6 ticks (30 ms): a
 * replica must miss ten heartbeats before it suspects the leader, so GC pauses and a busy CPU
 * (a 100 ms timeout caused elections in a 5-minute soak on a loaded 2-core box) do not. Failover
 * after a crash stays fast anyway: when the leader's connections close, followers pre-vote within
 * leaderLostSpreadTicks (10 ticks, 50 ms), not after the election timeout. A partitioned leader,
 * whose connections stay open, is replaced within about one election timeout. Pre-vote and
 * check-quorum keep a slow replica from disrupting the group.
 */
export const nodeConfigDefaults = {
  raft: { tickMs: 5, electionTicks: 60, heartbeatTicks: 6, leaderLostSpreadTicks: 10, preferredLeader: null, pipeline: false },
  snapshots: { everyEntries: 100_000, keepEntries: 10_000 },
} as const;

export class NodeConfigError extends Error {
  override readonly name = "NodeConfigError";
  constructor(
    message: string,
    readonly field: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const idPattern = /^[A-Za-z0-9_.-]{1,64}$/;
const addressPattern = /^[A-Za-z0-9_.-]+:\d{1,5}$/;

/** Reads and validates a YAML config file. */
export function loadNodeConfig(path: string): NodeConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new NodeConfigError(`cannot read config file ${path}: ${(err as Error).message}`, "config", { cause: err });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new NodeConfigError(`config file ${path} is not valid YAML: ${(err as Error).message}`, "config", { cause: err });
  }
  return validateNodeConfig(raw);
}

/** Validates an untrusted object (parsed YAML or assembled flags) into a frozen NodeConfig. */
export function validateNodeConfig(raw: unknown): NodeConfig {
  const r = objectAt(raw, "config");
  const known = ["group", "id", "dataDir", "listen", "peers", "clients", "raft", "snapshots", "tls"];
  rejectUnknown(r, known, "");
  const id = str(r, "id", idPattern);
  const peers = peersAt(r, id);
  const listen = objectAt(r["listen"], "listen");
  rejectUnknown(listen, ["peer", "client", "metrics"], "listen.");
  const raft = raftAt(r, Object.keys(peers));
  const snapshots = snapshotsAt(r);
  const listenClient = str(listen, "client", addressPattern, "listen.");
  const config: NodeConfig = {
    group: str(r, "group", idPattern),
    id,
    dataDir: str(r, "dataDir", /^.+$/),
    listen: {
      peer: str(listen, "peer", addressPattern, "listen."),
      client: listenClient,
      metrics: listen["metrics"] === undefined || listen["metrics"] === null ? null : str(listen, "metrics", addressPattern, "listen."),
    },
    peers,
    clients: { ...clientsAt(r, peers, id, listenClient), [id]: listenClient },
    raft,
    snapshots,
    tls: tlsAt(r),
  };
  if (config.listen.peer !== peers[id]) {
    throw new NodeConfigError(`listen.peer (${config.listen.peer}) must equal peers.${id} (${String(peers[id])})`, "listen.peer");
  }
  return deepFreeze(config);
}

function peersAt(r: Record<string, unknown>, id: string): Record<string, string> {
  const peers = objectAt(r["peers"], "peers");
  const out: Record<string, string> = {};
  for (const [name, addr] of Object.entries(peers)) {
    if (!idPattern.test(name)) throw new NodeConfigError(`peers has an invalid id ${JSON.stringify(name)}: ids must match ${idPattern}`, "peers");
    if (typeof addr !== "string" || !addressPattern.test(addr)) {
      throw new NodeConfigError(`peers.${name} (${JSON.stringify(addr)}) must be host:port`, `peers.${name}`);
    }
    out[name] = addr;
  }
  const n = Object.keys(out).length;
  if (n !== 1 && n !== 3 && n !== 5) throw new NodeConfigError(`peers must list 1, 3 or 5 replicas, got ${n}`, "peers");
  if (!(id in out)) throw new NodeConfigError(`id (${id}) must be one of peers (${Object.keys(out).join(", ")})`, "id");
  if (new Set(Object.values(out)).size !== n) throw new NodeConfigError(`peers must have distinct addresses, got ${JSON.stringify(out)}`, "peers");
  return out;
}

function clientsAt(r: Record<string, unknown>, peers: Record<string, string>, id: string, listenClient: string): Record<string, string> {
  if (r["clients"] === undefined || r["clients"] === null) return {};
  const clients = objectAt(r["clients"], "clients");
  const out: Record<string, string> = {};
  for (const [name, addr] of Object.entries(clients)) {
    if (!(name in peers)) throw new NodeConfigError(`clients.${name} names no member of peers (${Object.keys(peers).join(", ")})`, `clients.${name}`);
    if (typeof addr !== "string" || !addressPattern.test(addr)) {
      throw new NodeConfigError(`clients.${name} (${JSON.stringify(addr)}) must be host:port`, `clients.${name}`);
    }
    out[name] = addr;
  }
  if (out[id] !== undefined && out[id] !== listenClient) {
    throw new NodeConfigError(`clients.${id} (${out[id]}) must equal listen.client (${listenClient})`, `clients.${id}`);
  }
  return out;
}

function raftAt(r: Record<string, unknown>, members: readonly string[]): NodeConfig["raft"] {
  const d = nodeConfigDefaults.raft;
  const raft = r["raft"] === undefined ? {} : objectAt(r["raft"], "raft");
  rejectUnknown(raft, ["tickMs", "electionTicks", "heartbeatTicks", "leaderLostSpreadTicks", "preferredLeader", "pipeline"], "raft.");
  const tickMs = int(raft, "tickMs", d.tickMs, 1, 1000, "raft.");
  const electionTicks = int(raft, "electionTicks", d.electionTicks, 2, 10_000, "raft.");
  const heartbeatTicks = int(raft, "heartbeatTicks", d.heartbeatTicks, 1, 10_000, "raft.");
  if (heartbeatTicks >= electionTicks) {
    throw new NodeConfigError(`raft.heartbeatTicks (${heartbeatTicks}) must be < raft.electionTicks (${electionTicks})`, "raft.heartbeatTicks");
  }
  const leaderLostSpreadTicks = int(raft, "leaderLostSpreadTicks", Math.min(d.leaderLostSpreadTicks, electionTicks), 1, electionTicks, "raft.");
  const preferred = raft["preferredLeader"] ?? null;
  if (preferred !== null && (typeof preferred !== "string" || !members.includes(preferred))) {
    throw new NodeConfigError(`raft.preferredLeader (${JSON.stringify(preferred)}) must be one of peers`, "raft.preferredLeader");
  }
  const pipeline = raft["pipeline"] ?? d.pipeline;
  if (typeof pipeline !== "boolean") throw new NodeConfigError(`raft.pipeline (${JSON.stringify(pipeline)}) must be true or false`, "raft.pipeline");
  return { tickMs, electionTicks, heartbeatTicks, leaderLostSpreadTicks, preferredLeader: preferred, pipeline };
}

function snapshotsAt(r: Record<string, unknown>): NodeConfig["snapshots"] {
  const d = nodeConfigDefaults.snapshots;
  const s = r["snapshots"] === undefined ? {} : objectAt(r["snapshots"], "snapshots");
  rejectUnknown(s, ["everyEntries", "keepEntries"], "snapshots.");
  return {
    everyEntries: int(s, "everyEntries", d.everyEntries, 1, Number.MAX_SAFE_INTEGER, "snapshots."),
    keepEntries: int(s, "keepEntries", d.keepEntries, 0, Number.MAX_SAFE_INTEGER, "snapshots."),
  };
}

function tlsAt(r: Record<string, unknown>): NodeConfig["tls"] {
  if (r["tls"] === undefined || r["tls"] === null) return null;
  const t = objectAt(r["tls"], "tls");
  rejectUnknown(t, ["ca", "cert", "key"], "tls.");
  return { ca: str(t, "ca", /^.+$/, "tls."), cert: str(t, "cert", /^.+$/, "tls."), key: str(t, "key", /^.+$/, "tls.") };
}

function objectAt(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new NodeConfigError(`${field} must be a mapping, got ${JSON.stringify(v) ?? "nothing"}`, field);
  }
  return v as Record<string, unknown>;
}

function rejectUnknown(o: Record<string, unknown>, known: readonly string[], prefix: string): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) throw new NodeConfigError(`unknown setting ${prefix}${k} (known: ${known.join(", ")})`, `${prefix}${k}`);
  }
}

function str(o: Record<string, unknown>, key: string, pattern: RegExp, prefix = ""): string {
  const v = o[key];
  if (typeof v !== "string" || !pattern.test(v)) {
    throw new NodeConfigError(`${prefix}${key} (${JSON.stringify(v) ?? "missing"}) must be a string matching ${pattern}`, `${prefix}${key}`);
  }
  return v;
}

function int(o: Record<string, unknown>, key: string, fallback: number, min: number, max: number, prefix: string): number {
  const v = o[key] ?? fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new NodeConfigError(`${prefix}${key} (${JSON.stringify(v)}) must be an integer in [${min}, ${max}]`, `${prefix}${key}`);
  }
  return v;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === "object" && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
