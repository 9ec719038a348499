import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
// Types only: erased at build time, so the client library is loaded (by the dynamic import in
// startNatsPeer) only when NATS is benchmarked.
import type { ConnectionOptions, JetStreamClient, JetStreamManager, NatsConnection } from "nats";
import { stopChildren } from "../../broker/server/cluster_runner.js";
import { sleep } from "../common/latency.js";
import { freePort, GroupError } from "../common/local_group.js";
import type { PeerSystem } from "./peer_loop.js";

type Nats = typeof import("nats");

/** The NATS peer, plus the client ports its servers listened on (so a test can check they are closed after stop()). */
export interface NatsPeer extends PeerSystem {
  readonly clientPorts: readonly number[];
}

const STREAM = "BENCH";
const CONNS = 8;
/** Per-call bound of every JetStream request (publish and API). */
const CALL_TIMEOUT_MS = 5000;

/** Settles with `p`, or rejects after `ms`; the timer is cleared so it never holds the process open. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GroupError(`nats: ${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

function natsConf(i: number, dir: string, client: readonly number[], route: readonly number[]): string {
  const routes = route.map((p) => `    nats-route://127.0.0.1:${p}`).join("\n");
  return `server_name: n${i + 1}\nlisten: 127.0.0.1:${client[i]}\njetstream {\n  store_dir: "${join(dir, `n${i + 1}`)}"\n  max_memory_store: 1GB\n  max_file_store: 20GB\n}\ncluster {\n  name: bench\n  listen: 127.0.0.1:${route[i]}\n  routes: [\n${routes}\n  ]\n}\n`;
}

/** Starts the three servers, pushing each child onto `children` as it starts so a failure midway can stop them. */
async function startNats(bin: string, dir: string, children: ChildProcess[]): Promise<number[]> {
  const ports: number[] = [];
  const routes: number[] = [];
  for (let i = 0; i < 3; i++) {
    ports.push(await freePort());
    routes.push(await freePort());
  }
  for (let i = 0; i < 3; i++) {
    mkdirSync(join(dir, `n${i + 1}`), { recursive: true });
    writeFileSync(join(dir, `n${i + 1}.conf`), natsConf(i, dir, ports, routes));
    const fd = openSync(join(dir, `n${i + 1}.log`), "a");
    try {
      const child = spawn(bin, ["-c", join(dir, `n${i + 1}.conf`)], { stdio: ["ignore", fd, fd] });
      // A failed spawn would otherwise be an unhandled 'error' event; connecting then fails and says so.
      child.on("error", () => {});
      children.push(child);
    } finally {
      closeSync(fd);
    }
  }
  return ports;
}

/**
 * Connections for the bench never roam: they reconnect (a bounded number of times) only to the
 * servers given, not to those the cluster gossips, so publishes keep going to the stream leader.
 */
function options(servers: readonly string[]): ConnectionOptions {
  return { servers: [...servers], name: "dledger-bench", timeout: 2000, ignoreClusterUpdates: true, noRandomize: true, maxReconnectAttempts: 10, reconnectTimeWait: 100 };
}

/**
 * Opens a connection and swallows its asynchronous errors: closed() resolves with the cause instead
 * of surfacing it, so a broken connection makes the next publish reject rather than crash the run.
 */
async function open(nats: Nats, servers: readonly string[]): Promise<NatsConnection> {
  const nc = await nats.connect(options(servers));
  nc.closed().then(
    () => {},
    () => {},
  );
  return nc;
}

/** Bounded: drains (lets in-flight replies land), then closes whatever is still open. */
async function shut(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  await within(nc.drain(), 2000, "drain").catch(() => {});
  if (!nc.isClosed()) await within(nc.close(), 1000, "close").catch(() => {});
}

/** The admin connection to any server, retried (100 tries / 20 s) while the servers start listening. */
async function connectAdmin(nats: Nats, urls: readonly string[]): Promise<NatsConnection> {
  const deadline = performance.now() + 20_000;
  let last = "";
  for (let i = 0; i < 100 && performance.now() < deadline; i++) {
    try {
      return await open(nats, urls);
    } catch (err) {
      last = message(err);
      await sleep(100);
    }
  }
  throw new GroupError(`nats: could not connect to ${urls.join(",")}: ${last}`);
}

/**
 * Creates the R3 file stream through the JetStream manager and waits until it has a leader and
 * both replicas are current; returns the leader's server name. JetStream answers "unavailable"
 * while the meta group forms, so every step is retried until `timeoutMs`.
 */
async function createStream(nats: Nats, nc: NatsConnection, timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  let jsm: JetStreamManager | null = null;
  let created = false;
  let last = "";
  // Bounded by the deadline; each pass waits at most three CALL_TIMEOUT_MS requests plus 250 ms.
  while (performance.now() < deadline) {
    try {
      jsm ??= await nc.jetstreamManager({ timeout: CALL_TIMEOUT_MS });
      if (!created) {
        // Idempotent for an identical config, so a retry after a lost reply is harmless.
        await jsm.streams.add({ name: STREAM, subjects: ["bench.>"], storage: nats.StorageType.File, num_replicas: 3, retention: nats.RetentionPolicy.Limits });
        created = true;
      }
      const cl = (await jsm.streams.info(STREAM)).cluster;
      const replicas = cl?.replicas ?? [];
      if (cl?.leader !== undefined && replicas.length === 2 && replicas.every((r) => r.current && r.offline !== true)) return cl.leader;
      last = `cluster ${JSON.stringify(cl ?? null)}`;
    } catch (err) {
      last = message(err);
    }
    await sleep(250);
  }
  throw new GroupError(`nats: stream not ready within ${timeoutMs} ms: ${last}`);
}

/**
 * A 3-node NATS JetStream cluster with an R3 file stream, driven by the official `nats` client;
 * writes are js.publish calls awaited for their PubAck, over 8 connections to the stream leader's
 * server. nats-server 2.9 does not fsync each message (stream stores sync every 2 min): its ack
 * means "in the page cache of a quorum".
 */
export async function startNatsPeer(bin: string, entryBytes: number): Promise<NatsPeer> {
  const nats: Nats = await import("nats");
  const dir = mkdtempSync(join(os.tmpdir(), "dledger-bench-nats-"));
  const conns: NatsConnection[] = [];
  const children: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(conns.map((c) => shut(c)));
    await stopChildren(children, 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports = await startNats(bin, dir, children);
    const url = (port: number): string => `nats://127.0.0.1:${port}`;
    const admin = await connectAdmin(nats, ports.map(url));
    conns.push(admin);
    const leader = await createStream(nats, admin, 40_000);
    const port = ports[Number(leader.replace(/^n/, "")) - 1];
    if (port === undefined) throw new GroupError(`nats: stream leader ${leader} is not one of n1..n3`);
    // The admin connection is no longer needed; close it so it adds nothing to the run.
    await shut(admin);
    const js: JetStreamClient[] = [];
    for (let i = 0; i < CONNS; i++) {
      const nc = await open(nats, [url(port)]);
      conns.push(nc);
      js.push(nc.jetstream({ timeout: CALL_TIMEOUT_MS }));
    }
    const payload = Buffer.alloc(entryBytes, 0x61);
    return {
      name: "nats",
      pids: children.map((c) => c.pid as number),
      clientPorts: ports,
      op: async (w) => {
        // Rejects on a JetStream error reply, a timeout, or a closed connection.
        await (js[w % CONNS] as JetStreamClient).publish(`bench.${w % 64}`, payload, { timeout: CALL_TIMEOUT_MS });
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
