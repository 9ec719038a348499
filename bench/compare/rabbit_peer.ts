import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import * as os from "node:os";
import { basename, dirname, join } from "node:path";
import type { ChannelModel, ConfirmChannel } from "amqplib";
import { sleep } from "../common/latency.js";
import { freePort, GroupError, onPath } from "../common/local_group.js";
import type { PeerSystem } from "./peer_loop.js";

/**
 * RabbitMQ 3.10 as a peer: a fresh 3-node cluster on 127.0.0.1 (private epmd, private Erlang
 * cookie, data in a temp dir), one durable quorum queue (Ra: a Raft log that fdatasyncs before it
 * confirms), publishes with publisher confirms over 8 amqplib connections to the node hosting the
 * queue's leader. The method is ../shared/anchors/rabbit-cluster.sh + bench-rabbit.mjs, redone here
 * so the repo stands alone. Forming the cluster takes ~30 s on a 2-vCPU box.
 */

const NODES = 3;
const CONNECTIONS = 8;
const QUEUE = "dledger-bench";
/** Start to first publish; formation takes ~30 s here, more on a loaded box. */
const START_TIMEOUT_MS = 120_000;
/** One rabbitmqctl run (an Erlang VM boot plus the command). */
const CTL_TIMEOUT_MS = 30_000;
/** No confirm after this: the op fails instead of hanging the closed loop. */
const CONFIRM_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 15_000;

/** `rabbitN@localhost`, N from 1. */
const nodeName = (i: number): string => `rabbit${i + 1}@localhost`;

/**
 * The real `rabbitmq-server` start script (its directory also holds `rabbitmqctl`), or null.
 * Debian's /usr/sbin/rabbitmq-server is a wrapper that re-runs the script as user rabbitmq with
 * the system's data dir; the scripts it wraps live beside the wrapper in /usr/lib/rabbitmq/bin.
 */
export function rabbitmqServerBin(): string | null {
  const candidates: string[] = [];
  const found = onPath("rabbitmq-server");
  if (found !== null) candidates.push(found);
  candidates.push("/usr/lib/rabbitmq/bin/rabbitmq-server");
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    const real = realpathSync(c);
    // The wrapper resolves to .../rabbitmq-script-wrapper; the real script sits next to it.
    const script = basename(real) === "rabbitmq-server" ? real : join(dirname(real), "rabbitmq-server");
    if (existsSync(script) && basename(realpathSync(script)) === "rabbitmq-server" && existsSync(join(dirname(script), "rabbitmqctl"))) return script;
  }
  return null;
}

/* --- Processes, by PID, through /proc ------------------------------------------------------ */

/** A process as /proc/<pid>/stat shows it; `start` (clock ticks after boot) tells a reused PID apart. */
export interface ProcEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly start: string;
  readonly state: string;
  readonly comm: string;
}

function readStat(pid: number): ProcEntry | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null;
  }
  // comm is in parentheses and may hold spaces; the fields after the last ')' are plain.
  const close = s.lastIndexOf(")");
  const f = s.slice(close + 2).split(" ");
  return { pid, ppid: Number(f[1]), start: f[19] ?? "", state: f[0] ?? "", comm: s.slice(s.indexOf("(") + 1, close) };
}

/** Whether this very process (same PID and start time) still runs; a zombie does not. */
export function stillRunning(p: ProcEntry): boolean {
  const now = readStat(p.pid);
  return now !== null && now.start === p.start && now.state !== "Z" && now.state !== "X";
}

/** The processes `roots` and all their descendants, found through the parent links in /proc. */
export function processTree(roots: readonly number[]): ProcEntry[] {
  const children = new Map<number, number[]>();
  const all = new Map<number, ProcEntry>();
  const pids = readdirSync("/proc").filter((n) => /^\d+$/.test(n)).slice(0, 200_000);
  for (const n of pids) {
    const e = readStat(Number(n));
    if (e === null) continue;
    all.set(e.pid, e);
    children.set(e.ppid, [...(children.get(e.ppid) ?? []), e.pid]);
  }
  const out: ProcEntry[] = [];
  const seen = new Set<number>();
  const queue = roots.filter((p) => all.has(p));
  // Bounded: each PID is visited once and there are at most as many as /proc listed.
  while (queue.length > 0 && out.length < all.size) {
    const pid = queue.shift() as number;
    if (seen.has(pid)) continue;
    seen.add(pid);
    out.push(all.get(pid) as ProcEntry);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

function signal(ps: readonly ProcEntry[], sig: NodeJS.Signals): void {
  for (const p of ps) {
    if (!stillRunning(p)) continue;
    try {
      process.kill(p.pid, sig);
    } catch {
      // Gone in between.
    }
  }
}

async function waitGone(ps: readonly ProcEntry[], timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (!ps.some(stillRunning)) return true;
    await sleep(50);
  }
  return !ps.some(stillRunning);
}

/**
 * SIGTERM `roots` (each tidies its own children), wait up to `graceMs`, then SIGKILL whatever is
 * left of their trees. Trees are read before signalling: once a parent dies its children are
 * reparented and the link to them is lost.
 */
async function terminate(roots: readonly number[], graceMs: number): Promise<void> {
  const tree = processTree(roots);
  signal(tree.filter((p) => roots.includes(p.pid)), "SIGTERM");
  if (await waitGone(tree, graceMs)) return;
  // Children forked during shutdown are not in the first snapshot: read the trees again.
  const rest = [...tree, ...processTree(tree.filter(stillRunning).map((p) => p.pid))];
  signal(rest, "SIGKILL");
  await waitGone(rest, 5000);
}

/* --- The cluster -------------------------------------------------------------------------- */

interface Ports {
  readonly epmd: number;
  readonly amqp: readonly number[];
  readonly dist: readonly number[];
  /** One port per node for rabbitmqctl's own Erlang node (min = max: ctl runs one at a time per node). */
  readonly ctl: readonly number[];
}

class Cluster {
  readonly home: string;
  readonly ctlBin: string;
  epmd: ChildProcess | null = null;
  readonly launchers: ChildProcess[] = [];
  /** rabbitmqctl runs in flight, so a failed start can stop them too. */
  readonly ctls = new Set<ChildProcess>();
  beams: number[] = [];

  constructor(
    readonly bin: string,
    readonly dir: string,
    readonly ports: Ports,
  ) {
    this.home = join(dir, "home");
    this.ctlBin = join(dirname(bin), "rabbitmqctl");
  }

  /**
   * An explicit environment: nothing RABBITMQ_* or ERL_* leaks in from the caller, and the
   * system's rabbitmq-env.conf and advanced.config are replaced by private files.
   */
  env(i: number): NodeJS.ProcessEnv {
    const d = this.dir;
    const loopbackDist = "-kernel inet_dist_use_interface {127,0,0,1}";
    return {
      PATH: process.env["PATH"] ?? "/usr/bin:/bin",
      HOME: this.home,
      LANG: "C.UTF-8",
      LC_ALL: "C.UTF-8",
      ERL_EPMD_PORT: String(this.ports.epmd),
      ERL_EPMD_ADDRESS: "127.0.0.1",
      RABBITMQ_CONF_ENV_FILE: join(d, "rabbitmq-env.conf"),
      RABBITMQ_NODENAME: nodeName(i),
      RABBITMQ_DIST_PORT: String(this.ports.dist[i]),
      RABBITMQ_MNESIA_BASE: join(d, `mnesia${i + 1}`),
      RABBITMQ_LOG_BASE: this.logDir(i),
      RABBITMQ_PID_FILE: this.pidFile(i),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(d, "enabled_plugins"),
      RABBITMQ_CONFIG_FILE: join(d, `rabbit${i + 1}.conf`),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(d, "advanced.config"),
      // Unquoted on purpose: the start script word-splits it (and has globbing off).
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: loopbackDist,
      RABBITMQ_CTL_ERL_ARGS: loopbackDist,
      RABBITMQ_CTL_DIST_PORT_MIN: String(this.ports.ctl[i]),
      RABBITMQ_CTL_DIST_PORT_MAX: String(this.ports.ctl[i]),
    };
  }

  logDir(i: number): string {
    return join(this.dir, `log${i + 1}`);
  }

  pidFile(i: number): string {
    return join(this.dir, `rabbit${i + 1}.pid`);
  }

  stdoutFile(i: number): string {
    return join(this.dir, `rabbit${i + 1}.stdout`);
  }

  /** The last lines of node i's log (or of its start script's output when there is no log yet). */
  logTail(i: number, lines = 20): string {
    const files = [join(this.logDir(i), `${nodeName(i)}.log`), this.stdoutFile(i)];
    const text = files.map((f) => (existsSync(f) ? readFileSync(f, "utf8").trim() : "")).filter((t) => t !== "").join("\n");
    const tail = text.split("\n").slice(-lines).join("\n");
    return tail === "" ? "(empty log)" : tail;
  }

  /** Every process started here that is still running (roots only; their children via processTree). */
  roots(): number[] {
    const started = [this.epmd, ...this.launchers, ...this.ctls].map((c) => c?.pid).filter((p): p is number => p !== undefined);
    return [...started, ...this.beams];
  }
}

/** `n` distinct free loopback ports, each from freePort() (the OS's ephemeral range). */
async function distinctPorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  for (let tries = 0; ports.size < n && tries < n * 20; tries++) ports.add(await freePort());
  if (ports.size < n) throw new GroupError(`rabbitmq: could not pick ${n} distinct free ports`);
  return [...ports];
}

async function pickPorts(): Promise<Ports> {
  const p = await distinctPorts(1 + 3 * NODES);
  const take = (k: number): number[] => p.slice(1 + k * NODES, 1 + (k + 1) * NODES);
  return { epmd: p[0] as number, amqp: take(0), dist: take(1), ctl: take(2) };
}

function writeFiles(c: Cluster): void {
  mkdirSync(c.home, { recursive: true });
  const cookie = join(c.home, ".erlang.cookie");
  writeFileSync(cookie, `DLEDGERBENCH${Math.random().toString(36).slice(2).toUpperCase()}`);
  // Erlang refuses a cookie file that others can read.
  chmodSync(cookie, 0o400);
  writeFileSync(join(c.dir, "enabled_plugins"), "[].\n");
  writeFileSync(join(c.dir, "advanced.config"), "[].\n");
  writeFileSync(join(c.dir, "rabbitmq-env.conf"), "# private: keeps /etc/rabbitmq/rabbitmq-env.conf out\n");
  for (let i = 0; i < NODES; i++) {
    mkdirSync(c.logDir(i), { recursive: true });
    writeFileSync(join(c.dir, `rabbit${i + 1}.conf`), `listeners.tcp.default = 127.0.0.1:${c.ports.amqp[i]}\nloopback_users = none\n`);
  }
}

function spawnLogged(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string, logFile: string): ChildProcess {
  const fd = openSync(logFile, "a");
  try {
    const child = spawn(cmd, args, { env, cwd, stdio: ["ignore", fd, fd] });
    child.on("error", () => {});
    return child;
  } finally {
    closeSync(fd);
  }
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect(port, "127.0.0.1");
    const finish = (ok: boolean): void => {
      s.destroy();
      done(ok);
    };
    s.once("connect", () => finish(true));
    s.once("error", () => finish(false));
    s.setTimeout(1000, () => finish(false));
  });
}

/** A private epmd on 127.0.0.1 (without it every Erlang VM here would start a shared `epmd -daemon`). */
async function startEpmd(c: Cluster): Promise<void> {
  const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin", ERL_EPMD_ADDRESS: "127.0.0.1" };
  c.epmd = spawnLogged("epmd", ["-port", String(c.ports.epmd)], env, c.dir, join(c.dir, "epmd.log"));
  for (let n = 0; n < 100; n++) {
    if (await portAccepts(c.ports.epmd)) return;
    if (c.epmd.exitCode !== null) break;
    await sleep(50);
  }
  throw new GroupError(`rabbitmq: epmd on 127.0.0.1:${c.ports.epmd} did not start: ${readFileSync(join(c.dir, "epmd.log"), "utf8").slice(-500)}`);
}

interface CtlResult {
  readonly code: number | null;
  readonly out: string;
}

/** One rabbitmqctl run against node i, killed (with its children) after `timeoutMs`. */
function ctl(c: Cluster, i: number, args: readonly string[], timeoutMs = CTL_TIMEOUT_MS): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = spawn(c.ctlBin, ["-n", nodeName(i), ...args], { env: c.env(i), cwd: c.dir, stdio: ["ignore", "pipe", "pipe"] });
    c.ctls.add(child);
    let out = "";
    const keep = (b: Buffer): void => {
      if (out.length < 64_000) out += b.toString();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const timer = setTimeout(() => {
      if (child.pid !== undefined) void terminate([child.pid], 0);
      out += `\n(rabbitmqctl killed after ${timeoutMs} ms)`;
    }, timeoutMs);
    const done = (code: number | null): void => {
      clearTimeout(timer);
      c.ctls.delete(child);
      resolve({ code, out: out.trim() });
    };
    child.once("error", (e) => {
      out += String(e);
      done(null);
    });
    child.once("close", (code) => done(code));
  });
}

async function ctlOk(c: Cluster, i: number, args: readonly string[]): Promise<string> {
  const r = await ctl(c, i, args);
  if (r.code !== 0) throw new GroupError(`rabbitmq: rabbitmqctl ${args.join(" ")} on ${nodeName(i)} failed (${String(r.code)}): ${r.out.slice(-600)}\nlog tail of ${nodeName(i)}:\n${c.logTail(i)}`);
  return r.out;
}

/** Waits until node i's rabbit application runs; fails at `deadline` naming the node and its log. */
async function awaitStartup(c: Cluster, i: number, deadline: number): Promise<void> {
  const launcher = c.launchers[i] as ChildProcess;
  let last = "";
  for (let n = 0; n < 500 && performance.now() < deadline; n++) {
    if (launcher.exitCode !== null || launcher.signalCode !== null) {
      throw new GroupError(`rabbitmq: ${nodeName(i)} exited during startup (${String(launcher.exitCode ?? launcher.signalCode)}); log tail:\n${c.logTail(i)}`);
    }
    const left = Math.max(1000, deadline - performance.now());
    // await_startup fails at once while the node is not registered with epmd yet, so retry.
    const r = await ctl(c, i, ["await_startup", "--timeout", String(Math.ceil(Math.min(left, 20_000) / 1000))], Math.min(left, 20_000) + 10_000);
    if (r.code === 0) return;
    last = r.out;
    await sleep(500);
  }
  throw new GroupError(`rabbitmq: ${nodeName(i)} did not start within ${START_TIMEOUT_MS / 1000} s (last rabbitmqctl: ${last.slice(-300)}); log tail:\n${c.logTail(i)}`);
}

/** The beam.smp PID node i wrote to its pid file (checked against /proc). */
function beamPid(c: Cluster, i: number): number {
  const pid = Number(existsSync(c.pidFile(i)) ? readFileSync(c.pidFile(i), "utf8").trim() : NaN);
  const e = Number.isInteger(pid) ? readStat(pid) : null;
  if (e === null || !e.comm.startsWith("beam")) throw new GroupError(`rabbitmq: ${nodeName(i)} pid file ${c.pidFile(i)} does not name a running beam (${String(pid)}); log tail:\n${c.logTail(i)}`);
  return pid;
}

async function startCluster(c: Cluster, deadline: number): Promise<void> {
  writeFiles(c);
  await startEpmd(c);
  for (let i = 0; i < NODES; i++) c.launchers.push(spawnLogged(c.bin, [], c.env(i), c.dir, c.stdoutFile(i)));
  // The nodes boot in parallel (each a separate one-node cluster until it joins node 1).
  const boots = await Promise.allSettled([0, 1, 2].map((i) => awaitStartup(c, i, deadline)));
  const failed = boots.find((b): b is PromiseRejectedResult => b.status === "rejected");
  if (failed !== undefined) throw failed.reason;
  c.beams = [0, 1, 2].map((i) => beamPid(c, i));
  for (let i = 1; i < NODES; i++) {
    await ctlOk(c, i, ["stop_app"]);
    await ctlOk(c, i, ["join_cluster", nodeName(0)]);
    await ctlOk(c, i, ["start_app"]);
  }
  const left = Math.max(5, Math.ceil((deadline - performance.now()) / 1000));
  await ctlOk(c, 0, ["await_online_nodes", String(NODES), "--timeout", String(left)]);
}

/* --- AMQP ---------------------------------------------------------------------------------- */

type Amqp = typeof import("amqplib");

async function openConnection(amqp: Amqp, port: number): Promise<ChannelModel> {
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${port}`, { noDelay: true, timeout: 10_000 });
  // A broken connection must fail the ops on it, not crash the process with an unhandled 'error'.
  conn.on("error", () => {});
  return conn;
}

/** Declares the quorum queue through node 1, retrying while the new members settle. */
async function declareQueue(amqp: Amqp, port: number, deadline: number): Promise<void> {
  let last = "";
  for (let n = 0; n < 200 && performance.now() < deadline; n++) {
    let conn: ChannelModel | null = null;
    try {
      conn = await openConnection(amqp, port);
      const ch = await conn.createChannel();
      ch.on("error", () => {});
      await ch.assertQueue(QUEUE, { durable: true, arguments: { "x-queue-type": "quorum" } });
      return;
    } catch (err) {
      last = String(err);
      await sleep(500);
    } finally {
      await conn?.close().catch(() => {});
    }
  }
  throw new GroupError(`rabbitmq: could not declare quorum queue ${QUEUE}: ${last}`);
}

/**
 * Index of the node hosting the queue's leader, once the queue has a member on every node
 * (list_queues prints `name<TAB>leader<TAB>[members]`).
 */
async function queueLeader(c: Cluster, deadline: number): Promise<number> {
  let last = "";
  for (let n = 0; n < 200 && performance.now() < deadline; n++) {
    const r = await ctl(c, 0, ["list_queues", "-q", "--no-table-headers", "name", "leader", "members"]);
    last = r.out;
    const [, leader, members] = r.out.split("\n").find((l) => l.split("\t")[0] === QUEUE)?.split("\t") ?? [];
    const i = [0, 1, 2].find((k) => leader === nodeName(k));
    const everyNode = [0, 1, 2].every((k) => (members ?? "").includes(nodeName(k)));
    if (r.code === 0 && i !== undefined && everyNode) return i;
    await sleep(250);
  }
  throw new GroupError(`rabbitmq: no leader with ${NODES} members for ${QUEUE} (last list_queues: ${last.slice(-300)})`);
}

async function confirmChannels(amqp: Amqp, port: number, conns: ChannelModel[]): Promise<ConfirmChannel[]> {
  const chs: ConfirmChannel[] = [];
  for (let k = 0; k < CONNECTIONS; k++) {
    const conn = await openConnection(amqp, port);
    conns.push(conn);
    const ch = await conn.createConfirmChannel();
    ch.on("error", () => {});
    chs.push(ch);
  }
  return chs;
}

/** One persistent publish, settled by its publisher confirm (nack, channel error or timeout rejects). */
function publish(ch: ConfirmChannel, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rabbitmq: no confirm within ${CONFIRM_TIMEOUT_MS} ms`)), CONFIRM_TIMEOUT_MS);
    try {
      ch.sendToQueue(QUEUE, body, { persistent: true }, (err: unknown) => {
        clearTimeout(timer);
        if (err === null || err === undefined) resolve();
        else reject(err instanceof Error ? err : new Error(`rabbitmq: ${String(err)}`));
      });
    } catch (err) {
      // A closed channel throws synchronously.
      clearTimeout(timer);
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}

/* --- The peer ------------------------------------------------------------------------------ */

/** The peer, plus what a test needs to check that stop() left nothing behind. */
export interface RabbitPeer extends PeerSystem {
  /** Every process started for this peer that runs now (launchers, beams, epmd and their children). */
  processes(): ProcEntry[];
  readonly amqpPorts: readonly number[];
  /** Node (0-based) hosting the queue's leader; the connections go there. */
  readonly leader: number;
}

/**
 * A 3-node RabbitMQ cluster with one quorum queue; a write is a persistent `entryBytes` publish
 * awaited for its publisher confirm, which a quorum queue sends once a majority of its members
 * have fsynced the message to their Ra log.
 */
export async function startRabbitPeer(bin: string, entryBytes: number): Promise<RabbitPeer> {
  const amqp: Amqp = await import("amqplib");
  const deadline = performance.now() + START_TIMEOUT_MS;
  const c = new Cluster(bin, mkdtempSync(join(os.tmpdir(), "dledger-bench-rabbit-")), await pickPorts());
  const conns: ChannelModel[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Bounded: a connection to a node that hangs must not hold up the kill.
    await Promise.race([Promise.all(conns.map((k) => k.close().catch(() => {}))), sleep(3000)]);
    const epmd = c.epmd?.pid;
    await terminate(c.roots().filter((p) => p !== epmd), STOP_GRACE_MS);
    // epmd last: the nodes unregister from it on the way down.
    if (epmd !== undefined) await terminate([epmd], 2000);
    rmSync(c.dir, { recursive: true, force: true });
  };
  try {
    await startCluster(c, deadline);
    await declareQueue(amqp, c.ports.amqp[0] as number, deadline);
    const leader = await queueLeader(c, deadline);
    const chs = await confirmChannels(amqp, c.ports.amqp[leader] as number, conns);
    const body = Buffer.alloc(entryBytes, 0x61);
    return {
      name: "rabbitmq",
      pids: [...c.beams],
      op: (w) => publish(chs[w % CONNECTIONS] as ConfirmChannel, body),
      stop,
      processes: () => processTree(c.roots()),
      amqpPorts: [...c.ports.amqp],
      leader,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
