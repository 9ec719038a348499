import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { LedgerClient } from "../client/ledger_client.js";

/**
 * `dledger cluster`: a local group of `dledger start` child processes on 127.0.0.1, one data
 * directory and one YAML config per replica under `dir`. Ports for replica i (1-based):
 * client basePort + i, peer basePort + 100 + i, metrics basePort + 200 + i.
 */
export interface ClusterOptions {
  readonly dir: string;
  readonly nodes: number;
  readonly basePort: number;
  /** Lines for the operator (the CLI passes stdout). */
  readonly print: (line: string) => void;
  /** How long to wait for a leader before reporting that none was elected. */
  readonly leaderWaitMs?: number;
  /** How long a child may take to exit after SIGTERM before it is killed. */
  readonly stopGraceMs?: number;
}

export interface ClusterMember {
  readonly id: string;
  readonly client: string;
  readonly peer: string;
  readonly metrics: string;
  readonly configPath: string;
  readonly logPath: string;
}

/** The CLI entry this module was compiled beside (dist/broker/cli/main.js). */
export const cliMainJs = resolve(dirname(fileURLToPath(import.meta.url)), "../cli/main.js");

/** Writes each replica's YAML config under `dir` and returns the layout. */
export function writeClusterConfigs(dir: string, nodes: number, basePort: number): ClusterMember[] {
  const root = resolve(dir);
  mkdirSync(root, { recursive: true });
  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const at = (offset: number, i: number) => `127.0.0.1:${basePort + offset + i + 1}`;
  const peers = Object.fromEntries(ids.map((id, i) => [id, at(100, i)]));
  const clients = Object.fromEntries(ids.map((id, i) => [id, at(0, i)]));
  return ids.map((id, i) => {
    const m: ClusterMember = { id, client: at(0, i), peer: at(100, i), metrics: at(200, i), configPath: join(root, `${id}.yaml`), logPath: join(root, `${id}.log`) };
    const config = { group: "dledger", id, dataDir: join(root, id), listen: { peer: m.peer, client: m.client, metrics: m.metrics }, peers, clients };
    writeFileSync(m.configPath, stringify(config));
    return m;
  });
}

/**
 * Node flags for a replica process. `--initial-old-space-size` lets V8's old generation grow to
 * 256 MiB before its first full collection, as a server JVM's -Xms would. Without it V8 keeps a
 * replica's ~20 MiB heap tight and ran a mark-compact every 0.5–0.8 s even at 3,000 appends/s:
 * 2–6 ms pauses plus incremental steps of up to 5 ms and concurrent marking on both vCPUs, the
 * main source of the low-load tail (`bench cluster --rate 3000`, 3 pairs: p99 12.3 / 13.8 / 14.6
 * ms without, 4.7 / 4.6 / 4.8 ms with; one mark-compact per replica in 30 s instead of one every 0.5–0.8 s).
 * V8 refuses this flag in NODE_OPTIONS, so it goes on the command line: here for the children
 * of `dledger cluster`, the benchmarks and the chaos harness, and in the `dledger` binary's
 * shebang for `dledger start` run directly.
 */
export const replicaNodeArgs: readonly string[] = ["--initial-old-space-size=256"];

/**
 * Spawns one `dledger start --config` child with its output appended to its log file. `mainJs`
 * is the compiled CLI (tests running from sources pass dist/broker/cli/main.js). `nodeArgs` go
 * to node before the script, after replicaNodeArgs: benchmarks pass `--cpu-prof`, which NODE_OPTIONS does not allow.
 */
export function spawnReplica(m: ClusterMember, mainJs = cliMainJs, nodeArgs: readonly string[] = []): ChildProcess {
  const fd = openSync(m.logPath, "a");
  try {
    return spawn(process.execPath, [...replicaNodeArgs, ...nodeArgs, mainJs, "start", "--config", m.configPath], { stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
}

/** Sends SIGTERM to every live child, then SIGKILL to any still alive after `graceMs`. */
export async function stopChildren(children: readonly ChildProcess[], graceMs: number): Promise<void> {
  const alive = children.filter((c) => c.exitCode === null && c.signalCode === null && c.pid !== undefined);
  await Promise.all(
    alive.map(
      (c) =>
        new Promise<void>((done) => {
          const timer = setTimeout(() => c.kill("SIGKILL"), graceMs);
          c.once("exit", () => {
            clearTimeout(timer);
            done();
          });
          c.kill("SIGTERM");
        }),
    ),
  );
}

/** Runs the group until SIGINT/SIGTERM (or until every child has exited). Resolves with an exit code. */
export async function runCluster(opts: ClusterOptions): Promise<number> {
  const members = writeClusterConfigs(opts.dir, opts.nodes, opts.basePort);
  const children = members.map((m) => spawnReplica(m));
  let stopping = false;
  let exited = 0;
  let allExited: () => void = () => {};
  const allGone = new Promise<void>((r) => (allExited = r));
  members.forEach((m, i) => {
    const c = children[i] as ChildProcess;
    opts.print(`${m.id}: pid ${c.pid ?? "?"}  client ${m.client}  peer ${m.peer}  metrics http://${m.metrics}/metrics  log ${m.logPath}`);
    c.once("exit", (code, signal) => {
      if (!stopping) opts.print(`${m.id} exited (code ${String(code)}, signal ${String(signal)}); see ${m.logPath}`);
      if (++exited === children.length) allExited();
    });
  });
  opts.print(`endpoints: ${members.map((m) => m.client).join(",")}`);
  // Handlers stay installed while stopping: a second signal (a terminal's Ctrl-C reaches the
  // whole process group; a supervisor may repeat SIGTERM) must not kill this process before its
  // children have exited. The grace timer bounds the wait instead.
  let signalled: (why: string) => void = () => {};
  const stop = new Promise<string>((r) => (signalled = r));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) opts.print(`cluster: ${signal} again; still stopping (children are killed after the grace period)`);
    signalled(signal);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  void announceLeader(members, opts);
  const why = await Promise.race([stop, allGone.then(() => "all replicas exited")]);
  stopping = true;
  opts.print(`cluster: stopping (${why})`);
  await stopChildren(children, opts.stopGraceMs ?? 5000);
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  opts.print("cluster: stopped");
  return why === "all replicas exited" ? 1 : 0;
}

async function announceLeader(members: readonly ClusterMember[], opts: ClusterOptions): Promise<void> {
  const client = new LedgerClient({ endpoints: members.map((m) => m.client), attemptTimeoutMs: 500 });
  try {
    const deadline = performance.now() + (opts.leaderWaitMs ?? 20_000);
    while (performance.now() < deadline) {
      const address = await client.findLeader();
      if (address !== null) {
        const md = await client.metadata({ endpoint: address });
        opts.print(`leader: ${md.leaderId} at ${address} (term ${md.term})`);
        opts.print(`cluster: running; try \`dledger append hello\` or \`dledger status\`; Ctrl-C stops all replicas`);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    opts.print(`cluster: no leader elected within ${opts.leaderWaitMs ?? 20_000} ms; see the replicas' logs`);
  } catch (err) {
    opts.print(`cluster: could not query the replicas: ${String(err)}`);
  } finally {
    client.close();
  }
}
