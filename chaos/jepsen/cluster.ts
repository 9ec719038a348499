/**
 * The real-process cluster of the chaos harness (issue 5, items 1 and 2). Faults are
 * real: SIGKILL/SIGSTOP/SIGCONT by PID, nftables rules inside the replicas' namespaces, a clock
 * skew file each replica polls, and a flipped byte in a stopped replica's CommitLog.
 *
 * How the runner (`dledger chaos`) uses it:
 *
 *   // 1. Outer process: choose the mode. In netns mode the whole run happens inside the
 *   //    coordinator's namespace ("c" on the test network), so re-execute there and return.
 *   const mode = chooseClusterMode(flags.noNetns ? "process" : "auto");   // {mode, reason}
 *   if (mode.mode === "netns" && flags.insideNetns === undefined) {
 *     process.exitCode = await runInsideChaosNetwork({ replicas: 3, argv: process.argv.slice(2), print });
 *     return; // the inner run printed everything; the network is destroyed, also on crash/signal
 *   }
 *   // 2. Inner process (argv + `--inside-netns <runId>`), or process-only mode:
 *   const cluster = await createChaosCluster({ replicas: 3, dir, mode: mode.mode,
 *                                              insideNetns: flags.insideNetns, print });
 *   try {
 *     await cluster.start();                 // rejects ReplicaStartError if no leader in time
 *     const nemesis = createNemesis({ cluster, recorder, seed, families, ... });  // nemesis.ts
 *     ... workloads against cluster.nodes[i].clientAddress, nemesis.run(signal) ...
 *   } finally {
 *     await cluster.stop();                  // never throws, idempotent
 *   }
 *
 * The runner must accept `--inside-netns <runId>` (insideNetnsFlag) and pass it to
 * createChaosCluster; runInsideChaosNetwork appends it to argv.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync, fstatSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { nodeConfigDefaults } from "../../broker/node_config.js";
import { clockSkewFileEnv } from "../../broker/server/wall_clock.js";
import { replicaNodeArgs } from "../../broker/server/cluster_runner.js";
import type { ChaosCluster, ChaosNode, ClusterCapabilities, Corruption, NodeId, ReplicaExit } from "./contracts.js";
import { corruptCommittedEntry, repairCorruption } from "./corruption.js";
import { probeNetem, probeNetns, TestNetwork } from "./netns.js";
import { AgentProbe, DirectProbe, type ReplicaProbe } from "./replica_probe.js";
import { freePort } from "../../raft/transport/ports.js";

/** The flag the inner process of a netns run receives: `--inside-netns <runId>`. */
export const insideNetnsFlag = "--inside-netns";
/** The coordinator's host on the test network (the runner and its clients live there). */
export const coordinatorHost = "c";

/** A replica would not start: it exited (code, log tail) or its client port did not answer in time. */
export class ReplicaStartError extends Error {
  override readonly name = "ReplicaStartError";
  constructor(
    message: string,
    readonly exit: ReplicaExit | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The cluster cannot be built as asked (netns requested but unavailable, bad options). */
export class ClusterSetupError extends Error {
  override readonly name = "ClusterSetupError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A fault this cluster cannot inject here (process-only mode, no netem); the message says why. */
export class FaultUnavailableError extends Error {
  override readonly name = "FaultUnavailableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export const chaosClusterDefaults = {
  /** Bound on a replica's client port answering after a (re)start. */
  startTimeoutMs: 15_000,
  /** Bound on a leader appearing after start(). */
  leaderWaitMs: 20_000,
  /** Bound on a SIGKILLed process being reaped. */
  killWaitMs: 5_000,
  /** Bound on one OS command (ip, nft, tc). */
  commandTimeoutMs: 10_000,
  /** Bound on a replica reporting a new clock skew in its log. */
  clockApplyWaitMs: 3_000,
  /** Lines of a replica's log quoted in errors. */
  logTailLines: 20,
} as const;

/** Ports inside each replica's own namespace (every namespace has its own port space). */
const netnsPorts = { client: 7001, peer: 7101, metrics: 7201 } as const;

export type ClusterModeRequest = "auto" | "netns" | "process";

export interface ClusterModeChoice {
  readonly mode: "netns" | "process";
  /** Why network faults are unavailable (process mode), quoting probeNetns; null in netns mode. */
  readonly reason: string | null;
}

/**
 * Decides the mode once, at the edge: "auto" takes netns when probeNetns() passes (root, ip/nft/tc,
 * a namespace can be created) and says why not otherwise; "netns" throws ClusterSetupError with
 * the probe's reason when it fails; "process" never touches the network.
 */
export function chooseClusterMode(requested: ClusterModeRequest): ClusterModeChoice {
  if (requested === "process") return { mode: "process", reason: "process-only mode requested" };
  const probe = probeNetns();
  if (probe.ok) return { mode: "netns", reason: null };
  if (requested === "netns") throw new ClusterSetupError(`network namespaces unavailable: ${probe.reason}`);
  return { mode: "process", reason: probe.reason };
}

export interface ChaosClusterOptions {
  /** Replicas, named n1..nN: 1, 3 or 5 (node_config.ts). */
  readonly replicas: number;
  /** The run's data root: configs, data dirs, logs, clock files. Created if absent. */
  readonly dir: string;
  /** Default "auto" (see chooseClusterMode). */
  readonly mode?: ClusterModeRequest;
  /** The run id of a network an outer process created (runInsideChaosNetwork): attach to it. */
  readonly insideNetns?: string;
  /** The compiled CLI to run replicas with; default dist/broker/cli/main.js. */
  readonly mainJs?: string;
  /** Raft settings; node_config.ts defaults when absent. */
  readonly raft?: Partial<{ tickMs: number; electionTicks: number; heartbeatTicks: number; leaderLostSpreadTicks: number }>;
  readonly startTimeoutMs?: number;
  readonly leaderWaitMs?: number;
  readonly commandTimeoutMs?: number;
  /** Lines for the operator (mode, pids, cleanup problems). */
  readonly print?: (line: string) => void;
}

const here = dirname(fileURLToPath(import.meta.url));

/** A compiled file beside this module, or under dist/ when this module runs from sources (vitest). */
function compiled(fromHere: string, fromRoot: string): string {
  const beside = resolve(here, fromHere);
  return existsSync(beside) ? beside : resolve(here, "../..", "dist", fromRoot);
}

export const defaultMainJs = (): string => compiled("../../broker/cli/main.js", "broker/cli/main.js");
const probeAgentJs = (): string => compiled("probe_agent.js", "chaos/jepsen/probe_agent.js");

/* --- Cleanup on process exit and signals -------------------------------------------------- */

/** Synchronous last-resort cleanups of live clusters and networks (exit handlers cannot await). */
const liveCleanups = new Set<() => void>();
let handlersInstalled = false;

function runLiveCleanups(): void {
  for (const c of [...liveCleanups]) {
    try {
      c();
    } catch {
      // Best effort at exit: the process is going away; nothing else can be done here.
    }
  }
  liveCleanups.clear();
}

/**
 * On exit, kill every replica and tear down every network this process still holds. On
 * SIGINT/SIGTERM, when ours is the only listener, do the same and exit as Node's default would;
 * when the runner (or runInsideChaosNetwork) listens too, it decides, and stops gracefully.
 */
function installProcessHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", runLiveCleanups);
  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    const onSignal = (): void => {
      if (process.listenerCount(signal) > 1) return;
      runLiveCleanups();
      process.exit(code);
    };
    process.on(signal, onSignal);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/* --- Outer process of a netns run ----------------------------------------------------------- */

export interface ChaosNetworkRunOptions {
  readonly replicas: number;
  /** The inner command's arguments after the script, e.g. ["chaos", "--workload", "register"]. */
  readonly argv: readonly string[];
  /** The script the inner process runs; default process.argv[1] (the CLI that is running). */
  readonly mainJs?: string;
  readonly print: (line: string) => void;
  readonly runId?: string;
  /** After a signal is forwarded, how long the inner process may take before it is SIGKILLed. */
  readonly graceMs?: number;
  readonly commandTimeoutMs?: number;
}

/**
 * The outer half of a netns run: builds a TestNetwork of n1..nN plus the coordinator "c", runs
 * `node <mainJs> <argv> --inside-netns <runId>` inside c's namespace with inherited stdio,
 * forwards SIGINT/SIGTERM to it, and destroys the network when it exits, crashes, or has to be
 * killed. Resolves with the inner exit code (128 + signal number when it was killed by one).
 */
export async function runInsideChaosNetwork(opts: ChaosNetworkRunOptions): Promise<number> {
  if (opts.argv.includes(insideNetnsFlag)) throw new ClusterSetupError(`argv already holds ${insideNetnsFlag}: the inner process must not nest another network`);
  const mainJs = opts.mainJs ?? process.argv[1];
  if (mainJs === undefined) throw new ClusterSetupError("no script to re-execute (process.argv[1] is empty)");
  const net = TestNetwork.create({ hostCount: opts.replicas, extraHosts: [coordinatorHost], commandTimeoutMs: opts.commandTimeoutMs ?? chaosClusterDefaults.commandTimeoutMs, ...(opts.runId === undefined ? {} : { runId: opts.runId }) });
  const destroy = (): void => {
    try {
      net.destroy();
    } catch (e) {
      opts.print(`chaos: network ${net.runId} teardown: ${(e as Error).message}`);
    }
  };
  liveCleanups.add(destroy);
  installProcessHandlers();
  const graceMs = opts.graceMs ?? 30_000;
  let killTimer: NodeJS.Timeout | null = null;
  const handlers: [NodeJS.Signals, () => void][] = [];
  try {
    opts.print(`chaos: network ${net.runId}: replicas ${net.hosts.filter((h) => h !== coordinatorHost).map((h) => `${h}=${net.address(h)}`).join(" ")}, coordinator ${net.address(coordinatorHost)}`);
    const child = net.spawn(coordinatorHost, [process.execPath, mainJs, ...opts.argv, insideNetnsFlag, net.runId], { stdio: "inherit" });
    const exited = new Promise<number>((done) => {
      child.once("exit", (code, signal) => done(code ?? 128 + signalNumber(signal)));
      child.once("error", (e) => {
        opts.print(`chaos: cannot start the inner run: ${e.message}`);
        done(1);
      });
    });
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      const h = (): void => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        killTimer ??= setTimeout(() => {
          opts.print(`chaos: the inner run did not stop within ${graceMs} ms of ${signal}; killing it`);
          child.kill("SIGKILL");
        }, graceMs);
      };
      handlers.push([signal, h]);
      process.on(signal, h);
    }
    return await exited;
  } finally {
    if (killTimer !== null) clearTimeout(killTimer);
    for (const [signal, h] of handlers) process.off(signal, h);
    liveCleanups.delete(destroy);
    destroy();
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15, SIGABRT: 6 };
  return signal === null ? 0 : (numbers[signal] ?? 0);
}

/* --- The cluster ------------------------------------------------------------------------------ */

interface ReplicaSlot {
  readonly node: ChaosNode;
  readonly configPath: string;
  readonly clockPath: string;
  child: ChildProcess | null;
  paused: boolean;
  /** Set while we kill it or while restart() watches it: its exit is not "unexpected". */
  expectExit: boolean;
}


/** The last `lines` lines of a log file (reads at most its last 64 KiB). */
export function logTail(path: string, lines: number = chaosClusterDefaults.logTailLines): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return "(no log)";
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 65_536);
    const buf = Buffer.alloc(length);
    readSync(fd, buf, 0, length, size - length);
    return buf.toString("utf8").split("\n").filter((l) => l.length > 0).slice(-lines).join("\n");
  } finally {
    closeSync(fd);
  }
}

/** True when this process's network namespace is the named one (same nsfs inode). */
function insideNamespace(ns: string): boolean {
  try {
    return statSync("/proc/self/ns/net").ino === statSync(`/run/netns/${ns}`).ino;
  } catch {
    return false;
  }
}

/**
 * Builds the cluster (configs and, in netns mode, the network); start() launches the replicas.
 * Throws ClusterSetupError for bad options or when netns was requested but is unavailable.
 */
export async function createChaosCluster(opts: ChaosClusterOptions): Promise<ChaosCluster> {
  if (![1, 3, 5].includes(opts.replicas)) throw new ClusterSetupError(`replicas (${opts.replicas}) must be 1, 3 or 5`);
  const requested = opts.insideNetns !== undefined ? "netns" : (opts.mode ?? "auto");
  const choice = chooseClusterMode(requested);
  const commandTimeoutMs = opts.commandTimeoutMs ?? chaosClusterDefaults.commandTimeoutMs;
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true });
  let network: TestNetwork | null = null;
  if (choice.mode === "netns") {
    network = opts.insideNetns !== undefined ? TestNetwork.attach(opts.insideNetns, commandTimeoutMs) : TestNetwork.create({ hostCount: opts.replicas, extraHosts: [coordinatorHost], commandTimeoutMs });
  }
  try {
    const ids = Array.from({ length: opts.replicas }, (_, i) => `n${i + 1}`);
    if (network !== null && ids.some((id) => !network.hosts.includes(id))) throw new ClusterSetupError(`network ${network.runId} has hosts ${network.hosts.join(", ")}; the cluster needs ${ids.join(", ")}`);
    const addresses = new Map<string, { client: string; peer: string; metrics: string }>();
    for (const id of ids) {
      if (network !== null) {
        const ip = network.address(id);
        addresses.set(id, { client: `${ip}:${netnsPorts.client}`, peer: `${ip}:${netnsPorts.peer}`, metrics: `${ip}:${netnsPorts.metrics}` });
      } else {
        addresses.set(id, { client: `127.0.0.1:${await freePort()}`, peer: `127.0.0.1:${await freePort()}`, metrics: `127.0.0.1:${await freePort()}` });
      }
    }
    const raft = { ...nodeConfigDefaults.raft, ...(opts.raft ?? {}) };
    const peers = Object.fromEntries(ids.map((id) => [id, addresses.get(id)?.peer as string]));
    const clients = Object.fromEntries(ids.map((id) => [id, addresses.get(id)?.client as string]));
    const slots = ids.map((id): ReplicaSlot => {
      const a = addresses.get(id) as { client: string; peer: string; metrics: string };
      const node: ChaosNode = Object.freeze({ id, clientAddress: a.client, peerAddress: a.peer, metricsAddress: a.metrics, dataDir: join(dir, id), logPath: join(dir, `${id}.log`) });
      const configPath = join(dir, `${id}.yaml`);
      const config = { group: "chaos", id, dataDir: node.dataDir, listen: { peer: a.peer, client: a.client, metrics: a.metrics }, peers, clients, raft };
      writeFileSync(configPath, stringify(config));
      return { node, configPath, clockPath: join(dir, `${id}.clock.json`), child: null, paused: false, expectExit: false };
    });
    const capabilities = capabilitiesFor(choice, network, commandTimeoutMs);
    return new RealChaosCluster(dir, slots, capabilities, network, opts);
  } catch (e) {
    try {
      network?.destroy();
    } catch {
      // The setup error is the one to report.
    }
    throw e;
  }
}

function capabilitiesFor(choice: ClusterModeChoice, network: TestNetwork | null, commandTimeoutMs: number): ClusterCapabilities {
  const limitations: string[] = [];
  if (network === null) {
    const why = choice.reason ?? "no network";
    limitations.push(`partitions: unavailable in process-only mode (${why})`, `loss: unavailable in process-only mode (${why})`, `delay: unavailable in process-only mode (${why})`);
    return Object.freeze({ mode: "process", partitions: false, loss: false, delay: false, clock: true, limitations: Object.freeze(limitations) });
  }
  const netem = probeNetem(commandTimeoutMs);
  if (!netem.ok) limitations.push(`delay: ${netem.reason}; loss uses an nftables random-drop rule instead`);
  return Object.freeze({ mode: "netns", partitions: true, loss: true, delay: netem.ok, clock: true, limitations: Object.freeze(limitations) });
}

class RealChaosCluster implements ChaosCluster {
  readonly nodes: readonly ChaosNode[];
  readonly #slots = new Map<NodeId, ReplicaSlot>();
  readonly #unexpected: ReplicaExit[] = [];
  readonly #mainJs: string;
  readonly #startTimeoutMs: number;
  readonly #leaderWaitMs: number;
  readonly #print: (line: string) => void;
  readonly #cleanup = (): void => this.#killAllSync();
  #probe: ReplicaProbe | null = null;
  #stopped = false;

  constructor(
    readonly dir: string,
    slots: readonly ReplicaSlot[],
    readonly capabilities: ClusterCapabilities,
    readonly network: TestNetwork | null,
    opts: ChaosClusterOptions,
  ) {
    for (const s of slots) this.#slots.set(s.node.id, s);
    this.nodes = Object.freeze(slots.map((s) => s.node));
    this.#mainJs = opts.mainJs ?? defaultMainJs();
    this.#startTimeoutMs = opts.startTimeoutMs ?? chaosClusterDefaults.startTimeoutMs;
    this.#leaderWaitMs = opts.leaderWaitMs ?? chaosClusterDefaults.leaderWaitMs;
    this.#print = opts.print ?? (() => {});
    liveCleanups.add(this.#cleanup);
    installProcessHandlers();
  }

  /** Directly, or through an agent in the coordinator's namespace when this process is outside it. */
  #reach(): ReplicaProbe {
    if (this.#probe !== null) return this.#probe;
    const net = this.network;
    if (net === null || insideNamespace(net.namespace(coordinatorHost))) {
      this.#probe = new DirectProbe();
    } else {
      const child = net.spawn(coordinatorHost, [process.execPath, probeAgentJs()], { stdio: ["pipe", "pipe", "inherit"] });
      this.#probe = new AgentProbe(child);
    }
    return this.#probe;
  }

  #slot(id: NodeId): ReplicaSlot {
    const s = this.#slots.get(id);
    if (s === undefined) throw new RangeError(`unknown replica ${JSON.stringify(id)}; replicas are ${[...this.#slots.keys()].join(", ")}`);
    return s;
  }

  async start(): Promise<void> {
    if (this.#stopped) throw new ClusterSetupError("the cluster is stopped");
    await Promise.all(this.nodes.map((n) => this.restart(n.id)));
    const leader = await this.leader(this.#leaderWaitMs);
    if (leader === null) {
      const tails = this.nodes.map((n) => `--- ${n.id} (${n.logPath})\n${logTail(n.logPath, 5)}`).join("\n");
      throw new ReplicaStartError(`no leader elected within ${this.#leaderWaitMs} ms\n${tails}`, null);
    }
    this.#print(`cluster: ${this.capabilities.mode} mode, leader ${leader}; ${this.nodes.map((n) => `${n.id} pid ${String(this.#slot(n.id).child?.pid)} ${n.clientAddress}`).join(", ")}`);
  }

  #spawn(s: ReplicaSlot): ChildProcess {
    mkdirSync(s.node.dataDir, { recursive: true });
    const fd = openSync(s.node.logPath, "a");
    try {
      // Detached: each replica leads its own process group, so kill() reaches anything it forks,
      // and a terminal's Ctrl-C reaches the runner only (which then stops the replicas itself).
      const options: SpawnOptions = { stdio: ["ignore", fd, fd], detached: true, env: { ...process.env, [clockSkewFileEnv]: s.clockPath } };
      const argv = [process.execPath, ...replicaNodeArgs, this.#mainJs, "start", "--config", s.configPath];
      const [file, ...args] = argv as [string, ...string[]];
      return this.network !== null ? this.network.spawn(s.node.id, argv, options) : spawn(file, args, options);
    } finally {
      closeSync(fd);
    }
  }

  async restart(id: NodeId): Promise<void> {
    const s = this.#slot(id);
    if (this.#stopped) throw new ClusterSetupError("the cluster is stopped");
    if (s.child !== null) throw new ReplicaStartError(`${id} is already running (pid ${String(s.child.pid)})`, null);
    s.expectExit = true;
    s.paused = false;
    const child = this.#spawn(s);
    s.child = child;
    let exit: ReplicaExit | null = null;
    child.once("exit", (code, signal) => {
      if (s.child === child) s.child = null;
      const e: ReplicaExit = { id, code, signal, logTail: logTail(s.node.logPath) };
      if (s.expectExit) exit = e;
      else this.#unexpected.push(e);
    });
    const deadline = performance.now() + this.#startTimeoutMs;
    let why = "";
    // Bounded by the deadline; each round waits at most 1 s for an answer, then 50 ms.
    while (performance.now() < deadline) {
      if (exit !== null) break;
      const r = await this.#reach().metadata(s.node.clientAddress, Math.min(1000, Math.max(1, deadline - performance.now())));
      if (typeof r !== "string") {
        s.expectExit = false;
        return;
      }
      why = r;
      await sleep(50);
    }
    if (exit === null) {
      await this.#killProcess(s);
      const e: ReplicaExit = { id, code: null, signal: null, logTail: logTail(s.node.logPath) };
      throw new ReplicaStartError(`${id} did not answer on ${s.node.clientAddress} within ${this.#startTimeoutMs} ms (last: ${why}); killed it. Log tail:\n${e.logTail}`, e);
    }
    const e = exit as ReplicaExit;
    throw new ReplicaStartError(`${id} exited while starting (code ${String(e.code)}, signal ${String(e.signal)}). Log tail:\n${e.logTail}`, e);
  }

  /** SIGKILL to the process group and the pid; resolves once reaped (bounded). */
  async #killProcess(s: ReplicaSlot): Promise<void> {
    const child = s.child;
    if (child === null || child.pid === undefined) return;
    s.expectExit = true;
    const gone = new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once("exit", () => done());
    });
    signalGroup(child.pid, "SIGKILL");
    const timeout = sleep(chaosClusterDefaults.killWaitMs).then(() => "timeout" as const);
    if ((await Promise.race([gone, timeout])) === "timeout") throw new Error(`${s.node.id} (pid ${child.pid}) still running ${chaosClusterDefaults.killWaitMs} ms after SIGKILL`);
    s.child = null;
    s.paused = false;
  }

  async kill(id: NodeId): Promise<void> {
    const s = this.#slot(id);
    if (s.child === null) throw new Error(`${id} is not running`);
    await this.#killProcess(s);
  }

  async pause(id: NodeId): Promise<void> {
    const s = this.#slot(id);
    if (s.child?.pid === undefined) throw new Error(`${id} is not running`);
    signalGroup(s.child.pid, "SIGSTOP");
    s.paused = true;
  }

  async resume(id: NodeId): Promise<void> {
    const s = this.#slot(id);
    if (s.child?.pid === undefined) throw new Error(`${id} is not running`);
    signalGroup(s.child.pid, "SIGCONT");
    s.paused = false;
  }

  isRunning(id: NodeId): boolean {
    return this.#slot(id).child !== null;
  }

  /** Whether the replica is stopped by pause() (for reports and the nemesis). */
  isPaused(id: NodeId): boolean {
    return this.#slot(id).paused;
  }

  takeUnexpectedExits(): readonly ReplicaExit[] {
    return this.#unexpected.splice(0, this.#unexpected.length);
  }

  async leader(timeoutMs: number): Promise<NodeId | null> {
    const deadline = performance.now() + timeoutMs;
    // Bounded by the deadline: each round takes at most 500 ms plus a 50 ms pause.
    for (;;) {
      const live = this.nodes.filter((n) => this.#slot(n.id).child !== null && !this.#slot(n.id).paused);
      const budget = Math.min(500, Math.max(1, deadline - performance.now()));
      const answers = await Promise.all(live.map((n) => this.#reach().metadata(n.clientAddress, budget)));
      let best: { id: NodeId; term: number } | null = null;
      for (const a of answers) {
        if (typeof a === "string" || a.role !== "leader" || a.leaderId !== a.replicaId) continue;
        if (best === null || a.term > best.term) best = { id: a.replicaId, term: a.term };
      }
      if (best !== null) return best.id;
      if (performance.now() + 50 >= deadline) return null;
      await sleep(50);
    }
  }

  #net(what: string): TestNetwork {
    if (this.network === null) throw new FaultUnavailableError(`${what}: ${this.capabilities.limitations.join("; ")}`);
    return this.network;
  }

  #checkIds(ids: readonly NodeId[]): void {
    for (const id of ids) this.#slot(id);
  }

  async partition(groups: readonly (readonly NodeId[])[]): Promise<void> {
    groups.forEach((g) => this.#checkIds(g));
    this.#net("partition").partition(groups);
  }

  async partitionOneWay(from: NodeId, to: NodeId): Promise<void> {
    this.#checkIds([from, to]);
    const net = this.#net("partition");
    const grudge = net.grudge();
    grudge.set(to, [...(grudge.get(to) ?? []), from]);
    net.setGrudge(grudge);
  }

  async partitionGrudge(grudge: ReadonlyMap<NodeId, readonly NodeId[]>): Promise<void> {
    for (const [id, peers] of grudge) this.#checkIds([id, ...peers]);
    this.#net("partition").setGrudge(grudge);
  }

  async heal(): Promise<void> {
    this.network?.heal();
  }

  async setLinkFaults(faults: { readonly lossPct: number; readonly delayMs?: number } | null): Promise<void> {
    const net = this.#net("link faults");
    const ids = this.nodes.map((n) => n.id);
    if (faults === null) {
      net.setLoss(0, ids);
      if (this.capabilities.delay) for (const id of ids) net.clearNetem(id);
      return;
    }
    if (!Number.isFinite(faults.lossPct) || faults.lossPct < 0 || faults.lossPct > 100) throw new RangeError(`lossPct (${faults.lossPct}) must be in [0, 100]`);
    if (this.capabilities.delay) {
      for (const id of ids) net.netem(id, { lossPct: faults.lossPct, ...(faults.delayMs === undefined ? {} : { delayMs: faults.delayMs }) });
      return;
    }
    if (faults.delayMs !== undefined && faults.delayMs > 0) throw new FaultUnavailableError(`delay ${faults.delayMs} ms: ${this.capabilities.limitations.join("; ")}`);
    net.setLoss(Math.round(faults.lossPct), ids);
  }

  /**
   * Writes the skew to the replica's clock file (the replica polls it: broker/server/wall_clock.ts)
   * and, when the replica is running and not paused, waits until its log shows it applied.
   */
  async setClockSkew(id: NodeId, skew: { readonly offsetMs: number; readonly rate: number } | null): Promise<void> {
    const s = this.#slot(id);
    const value = skew ?? { offsetMs: 0, rate: 1 };
    if (!Number.isFinite(value.offsetMs) || !(value.rate >= 0.01 && value.rate <= 100)) throw new RangeError(`clock skew ${JSON.stringify(value)}: offsetMs must be finite and rate in [0.01, 100]`);
    const text = JSON.stringify(value);
    const current = existsSync(s.clockPath) ? readFileSync(s.clockPath, "utf8") : JSON.stringify({ offsetMs: 0, rate: 1 });
    if (current === text) return; // Nothing changes, so the replica has nothing to log.
    const logBytes = existsSync(s.node.logPath) ? statSync(s.node.logPath).size : 0;
    const temp = `${s.clockPath}.tmp`;
    writeFileSync(temp, text);
    renameSync(temp, s.clockPath);
    if (s.child === null || s.paused) return;
    const deadline = performance.now() + chaosClusterDefaults.clockApplyWaitMs;
    while (performance.now() < deadline) {
      if (clockApplied(s.node.logPath, logBytes, value)) return;
      await sleep(25);
    }
    throw new Error(`${id} did not apply clock skew ${JSON.stringify(value)} within ${chaosClusterDefaults.clockApplyWaitMs} ms (no clock_skew_applied in ${s.node.logPath})`);
  }

  async commitIndex(id: NodeId, timeoutMs: number): Promise<number | null> {
    const s = this.#slot(id);
    if (s.child === null || s.paused) return null;
    const r = await this.#reach().metadata(s.node.clientAddress, timeoutMs);
    return typeof r === "string" ? null : r.commitIndex;
  }

  async corrupt(id: NodeId, choose: (n: number) => number, knownCommit = 0): Promise<Corruption> {
    const s = this.#slot(id);
    if (s.child !== null) throw new Error(`corrupt ${id}: the replica is running; kill it first`);
    return corruptCommittedEntry(id, s.node.dataDir, choose, knownCommit);
  }

  async repair(corruption: Corruption): Promise<void> {
    const s = this.#slot(corruption.id);
    if (s.child !== null) throw new Error(`repair ${corruption.id}: the replica is running`);
    repairCorruption(corruption);
  }

  /** Synchronous kill of every replica and teardown of an owned network (exit handler, stop()). */
  #killAllSync(): void {
    for (const s of this.#slots.values()) {
      if (s.child?.pid !== undefined) {
        s.expectExit = true;
        signalGroup(s.child.pid, "SIGKILL");
      }
    }
    this.#probe?.close();
    this.#probe = null;
    try {
      this.network?.destroy();
    } catch (e) {
      this.#print(`cluster: network teardown: ${(e as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    liveCleanups.delete(this.#cleanup);
    try {
      await Promise.all(
        [...this.#slots.values()].map(async (s) => {
          try {
            await this.#killProcess(s);
          } catch (e) {
            this.#print(`cluster: stop ${s.node.id}: ${(e as Error).message}`);
          }
        }),
      );
    } finally {
      this.#killAllSync();
    }
  }
}

/** Signals a replica's process group (it leads one: spawned detached), then the pid itself. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
    } catch {
      // ESRCH: already gone (the group or the process); nothing to signal.
    }
  }
}

/** Whether the log, past `fromByte`, holds a clock_skew_applied event with these values. */
function clockApplied(logPath: string, fromByte: number, skew: { offsetMs: number; rate: number }): boolean {
  let text: string;
  try {
    text = readFileSync(logPath).subarray(fromByte).toString("utf8");
  } catch {
    return false;
  }
  for (const line of text.split("\n")) {
    if (!line.includes("clock_skew_applied")) continue;
    try {
      const e = JSON.parse(line) as { offsetMs?: number; rate?: number };
      if (e.offsetMs === skew.offsetMs && e.rate === skew.rate) return true;
    } catch {
      // A line cut by a concurrent write: the next poll sees it whole.
    }
  }
  return false;
}
