import { loadNodeConfig, NodeConfigError, validateNodeConfig, type NodeConfig } from "../node_config.js";

/**
 * `dledger start` takes either `--config node.yaml` or the same settings as flags. Flags are
 * mapped onto the YAML shape and validated by the same code (node_config.ts), so every error
 * names the field as it appears in YAML and the value given.
 */
export interface StartFlags {
  readonly config?: string;
  readonly group?: string;
  readonly id?: string;
  readonly dataDir?: string;
  readonly listenPeer?: string;
  readonly listenClient?: string;
  readonly listenMetrics?: string;
  /** "n1=host:port,n2=host:port,..." */
  readonly peers?: string;
  /** "n1=host:port,..." client addresses for leader hints */
  readonly clients?: string;
  readonly tickMs?: string;
  readonly electionTicks?: string;
  readonly heartbeatTicks?: string;
  readonly leaderLostSpreadTicks?: string;
  readonly preferredLeader?: string;
  readonly snapshotEveryEntries?: string;
  readonly snapshotKeepEntries?: string;
  readonly tlsCa?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
}

/** Flag name (as typed) → YAML path. */
export const flagPaths = {
  group: ["group"],
  id: ["id"],
  dataDir: ["dataDir"],
  listenPeer: ["listen", "peer"],
  listenClient: ["listen", "client"],
  listenMetrics: ["listen", "metrics"],
  peers: ["peers"],
  clients: ["clients"],
  tickMs: ["raft", "tickMs"],
  electionTicks: ["raft", "electionTicks"],
  heartbeatTicks: ["raft", "heartbeatTicks"],
  leaderLostSpreadTicks: ["raft", "leaderLostSpreadTicks"],
  preferredLeader: ["raft", "preferredLeader"],
  snapshotEveryEntries: ["snapshots", "everyEntries"],
  snapshotKeepEntries: ["snapshots", "keepEntries"],
  tlsCa: ["tls", "ca"],
  tlsCert: ["tls", "cert"],
  tlsKey: ["tls", "key"],
} as const satisfies Record<Exclude<keyof StartFlags, "config">, readonly string[]>;

const mapFlags = new Set(["peers", "clients"]);
const intFlags = new Set(["tickMs", "electionTicks", "heartbeatTicks", "leaderLostSpreadTicks", "snapshotEveryEntries", "snapshotKeepEntries"]);

/** Builds the untrusted YAML-shaped object the flags describe (validation happens after). */
export function flagsToRawConfig(flags: StartFlags): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const [flag, path] of Object.entries(flagPaths) as [keyof typeof flagPaths, readonly string[]][]) {
    const value = flags[flag];
    if (value === undefined) continue;
    let target = raw;
    for (const key of path.slice(0, -1)) target = (target[key] ??= {}) as Record<string, unknown>;
    const leaf = path[path.length - 1] as string;
    if (mapFlags.has(flag)) target[leaf] = parseMap(path.join("."), value);
    else if (intFlags.has(flag) && /^-?\d+$/.test(value)) target[leaf] = Number(value);
    else target[leaf] = value;
  }
  return raw;
}

/** "n1=a:1,n2=b:2" → { n1: "a:1", n2: "b:2" }; a bad pair is a NodeConfigError naming field and value. */
function parseMap(field: string, value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(",").filter((p) => p.trim() !== "")) {
    const at = part.indexOf("=");
    if (at <= 0) throw new NodeConfigError(`${field} (${JSON.stringify(value)}) must be id=host:port pairs separated by commas`, field);
    out[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return out;
}

/** The validated config from `--config` or from flags (not both). Throws NodeConfigError. */
export function resolveStartConfig(flags: StartFlags): NodeConfig {
  const given = Object.keys(flagPaths).filter((f) => flags[f as keyof StartFlags] !== undefined);
  if (flags.config !== undefined) {
    if (given.length > 0) {
      throw new NodeConfigError(`--config (${flags.config}) cannot be combined with setting flags (${given.map(toFlag).join(", ")})`, "config");
    }
    return loadNodeConfig(flags.config);
  }
  return validateNodeConfig(flagsToRawConfig(flags));
}

/** camelCase option name → its --kebab-case flag. */
export function toFlag(name: string): string {
  return `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}
