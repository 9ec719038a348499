import { randomInt } from "node:crypto";
import type { Command } from "commander";
import { pino } from "pino";
import type { Logger } from "../../raft/base/logger.js";
import { LedgerClient, LedgerError, type AppendOutcome } from "../client/ledger_client.js";
import { NodeConfigError } from "../node_config.js";
import { runCluster } from "./cluster_runner.js";
import { registerKvCommands } from "./kv_command.js";
import { LedgerNode } from "./ledger_node.js";
import { resolveStartConfig, type StartFlags } from "./start_flags.js";
import { clockSkewFileEnv, SkewableClock, watchClockSkewFile } from "./wall_clock.js";

/** The endpoints `dledger cluster` uses with its default --base-port. */
export const defaultEndpoints = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003";

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const err = (line: string): void => void process.stderr.write(`${line}\n`);

/**
 * CLI registration for the replica process and its operators:
 *   dledger start --config node.yaml | <flags>      run one replica (exit 2 on a bad config)
 *   dledger cluster [--dir] [--nodes] [--base-port] run a local group of child processes
 *   dledger status | append <text> | get <index> | transfer-leader --to <id>   (--endpoints)
 *   dledger kv get <key> | put <key> <value> | cas <key> <expected> <new>       (--endpoints)
 */
export function registerServerCommands(program: Command, groups: { readonly bench: Command }): void {
  void groups;
  registerStart(program);
  program
    .command("cluster")
    .description("start a local replica group on 127.0.0.1 (child processes); Ctrl-C stops it")
    .option("--dir <dir>", "data directory for configs, logs and data", "./data")
    .option("--nodes <n>", "replicas: 3 or 5", "3")
    .option("--base-port <port>", "client ports base+1.., peer base+101.., metrics base+201..", "7000")
    .action(async (o: { dir: string; nodes: string; basePort: string }) => {
      const nodes = Number(o.nodes);
      const basePort = Number(o.basePort);
      if (nodes !== 3 && nodes !== 5 && nodes !== 1) return usage(`--nodes (${o.nodes}) must be 1, 3 or 5`);
      if (!Number.isInteger(basePort) || basePort < 1 || basePort + 200 + nodes > 65535) return usage(`--base-port (${o.basePort}) must leave room for ports up to base+${200 + nodes} ≤ 65535`);
      process.exitCode = await runCluster({ dir: o.dir, nodes, basePort, print: out });
    });
  registerOperatorCommands(program);
  registerKvCommands(program, defaultEndpoints);
}

function usage(message: string): void {
  err(`dledger: ${message}`);
  process.exitCode = 2;
}

function registerStart(program: Command): void {
  program
    .command("start")
    .description("run one replica: --config node.yaml, or the same settings as flags")
    .option("--config <file>", "YAML config (see broker/node_config.ts)")
    .option("--group <name>")
    .option("--id <id>")
    .option("--data-dir <dir>")
    .option("--listen-peer <host:port>")
    .option("--listen-client <host:port>")
    .option("--listen-metrics <host:port>")
    .option("--peers <list>", "n1=host:port,n2=host:port,... (peer addresses, this replica's included)")
    .option("--clients <list>", "n1=host:port,... (client addresses for leader hints)")
    .option("--tick-ms <ms>")
    .option("--election-ticks <n>")
    .option("--heartbeat-ticks <n>")
    .option("--leader-lost-spread-ticks <n>", "after the leader's connection closes, pre-vote within this many ticks")
    .option("--preferred-leader <id>")
    .option("--snapshot-every-entries <n>")
    .option("--snapshot-keep-entries <n>")
    .option("--tls-ca <file>")
    .option("--tls-cert <file>")
    .option("--tls-key <file>")
    .action(async (flags: StartFlags) => {
      let config;
      try {
        config = resolveStartConfig(flags);
      } catch (e) {
        if (!(e instanceof NodeConfigError)) throw e;
        err(`dledger start: invalid config: ${e.message}`);
        process.exitCode = 2;
        return;
      }
      await runNode(config);
    });
}

async function runNode(config: ReturnType<typeof resolveStartConfig>): Promise<void> {
  const root = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
  const logger = root as unknown as Logger;
  const fatal = (e: unknown): never => {
    // A bug or a failed fsync: stop at once (DESIGN.md §3). Recovery handles the rest on restart.
    root.fatal({ err: e }, "fatal_error");
    process.exit(1);
  };
  process.on("uncaughtException", fatal);
  process.on("unhandledRejection", fatal);
  let node: LedgerNode;
  try {
    node = await LedgerNode.start({ config, logger, prngSeed: randomInt(2 ** 31), processMetrics: true, ...chaosClock(logger) });
  } catch (e) {
    root.error({ err: e }, "start_failed");
    err(`dledger start: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  }
  const shutdown = (signal: string): void => {
    root.info({ signal }, "shutdown_requested");
    process.once(signal, () => process.exit(1));
    void node.stop().then(
      () => process.exit(0),
      (e: unknown) => {
        root.error({ err: e }, "shutdown_failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}

/**
 * The chaos harness's clock nemesis (chaos/jepsen) sets DLEDGER_CLOCK_SKEW_FILE: the replica then
 * runs on a SkewableClock that follows that file. Without the variable, the plain wall clock.
 */
function chaosClock(logger: Logger): { clock?: SkewableClock } {
  const path = process.env[clockSkewFileEnv];
  if (path === undefined || path === "") return {};
  const clock = new SkewableClock();
  watchClockSkewFile(clock, path, logger);
  return { clock };
}

const endpointsOption = ["--endpoints <list>", "comma-separated client addresses", defaultEndpoints] as const;

function registerOperatorCommands(program: Command): void {
  registerStatus(program);
  registerAppendAndGet(program);
  program
    .command("transfer-leader")
    .description("move leadership to another replica")
    .requiredOption("--to <id>", "the replica id to lead")
    .option(...endpointsOption)
    .action(async (o: { to: string; endpoints: string }) => {
      await withClient(o.endpoints, async (client) => {
        const r = await client.transferLeadership(o.to);
        out(`leader: ${r.leaderId} (term ${r.term})`);
      });
    });
}

function registerStatus(program: Command): void {
  program
    .command("status")
    .description("print every replica's role, term, leader and indexes")
    .option(...endpointsOption)
    .action(async (o: { endpoints: string }) => {
      await withClient(o.endpoints, async (client, endpoints) => {
        out("id    role           term  leader  commit  applied  first  last   address");
        for (const e of endpoints) {
          try {
            const m = await client.metadata({ endpoint: e });
            out([m.replicaId.padEnd(5), m.role.padEnd(14), String(m.term).padEnd(5), (m.leaderId || "-").padEnd(7), String(m.commitIndex).padEnd(7), String(m.appliedIndex).padEnd(8), String(m.firstIndex).padEnd(6), String(m.lastIndex).padEnd(6), e].join(" "));
          } catch (e2) {
            out(`?     unreachable    -     -       -       -        -      -      ${e}  (${e2 instanceof Error ? e2.message : String(e2)})`);
          }
        }
      });
    });
}

function registerAppendAndGet(program: Command): void {
  program
    .command("append")
    .description("append one entry (UTF-8 text) and print its index")
    .argument("<text>")
    .option(...endpointsOption)
    .action(async (text: string, o: { endpoints: string }) => {
      await withClient(o.endpoints, async (client) => {
        const r: AppendOutcome = await client.append(new TextEncoder().encode(text));
        if (r.ok) return out(`appended: index ${r.index}, term ${r.term}${r.duplicate ? " (duplicate of an earlier attempt)" : ""}`);
        err(`append ${r.outcome === "unknown" ? "outcome UNKNOWN (it may have been applied)" : "failed"}: ${r.reason || r.code}: ${r.message}`);
        process.exitCode = 1;
      });
    });
  program
    .command("get")
    .description("print a committed entry")
    .argument("<index>")
    .option(...endpointsOption)
    .action(async (index: string, o: { endpoints: string }) => {
      const i = Number(index);
      if (!Number.isSafeInteger(i) || i < 1) return usage(`index (${index}) must be a positive integer`);
      await withClient(o.endpoints, async (client) => {
        const e = await client.get(i);
        if (e.noop) return out(`index ${e.index}, term ${e.term}: no-op (leader election)`);
        const dup = e.duplicateOf > 0 ? ` (duplicate of index ${e.duplicateOf}: applied as a no-op)` : "";
        out(`index ${e.index}, term ${e.term}, client ${e.clientId || "-"} seq ${e.sequence}${dup}: ${new TextDecoder().decode(e.body)}`);
      });
    });
}

/** Runs `fn` with a client; prints a LedgerError plainly and sets exit code 1. */
async function withClient(endpointsList: string, fn: (c: LedgerClient, endpoints: readonly string[]) => Promise<void>): Promise<void> {
  const endpoints = endpointsList.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (endpoints.length === 0) return usage("--endpoints must name at least one host:port");
  const client = new LedgerClient({ endpoints, attemptTimeoutMs: 1000, operationTimeoutMs: 5000 });
  try {
    await fn(client, endpoints);
  } catch (e) {
    if (!(e instanceof LedgerError)) throw e;
    err(`dledger: ${e.reason || `status ${e.code}`}: ${e.message}${e.leaderId === null ? "" : ` (leader: ${e.leaderId})`}`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}
