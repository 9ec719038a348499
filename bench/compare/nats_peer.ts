import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import * as os from "node:os";
import { join } from "node:path";
import { stopChildren } from "../../broker/server/cluster_runner.js";
import { sleep } from "../common/latency.js";
import { freePort, GroupError } from "../common/local_group.js";
import type { PeerSystem } from "./peer_loop.js";

/**
 * A minimal NATS client (the text protocol: CONNECT, SUB, PUB with a reply inbox, MSG), enough
 * for JetStream publish + PubAck and the JetStream API requests. No dependency, bounded buffers.
 */
class NatsConn {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting = new Map<string, (payload: Buffer) => void>();
  private next = 0;
  private readonly inbox = `_INBOX.${Math.random().toString(36).slice(2)}`;
  private ready: () => void = () => {};

  private constructor(private readonly sock: Socket) {}

  static async open(port: number): Promise<NatsConn> {
    const sock = connect(port, "127.0.0.1");
    sock.setNoDelay(true);
    const c = new NatsConn(sock);
    const pong = new Promise<void>((r) => (c.ready = r));
    sock.on("data", (d: Buffer) => c.onData(d));
    sock.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    sock.write(`CONNECT {"verbose":false,"pedantic":false,"protocol":1,"headers":false,"echo":false,"lang":"dledger-bench","version":"0"}\r\nSUB ${c.inbox}.* 1\r\nPING\r\n`);
    await Promise.race([pong, sleep(5000).then(() => Promise.reject(new GroupError("nats: no PONG within 5 s")))]);
    return c;
  }

  request(subject: string, payload: Buffer | string, timeoutMs: number): Promise<Buffer> {
    const token = String(this.next++);
    const body = typeof payload === "string" ? Buffer.from(payload) : payload;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(token);
        reject(new Error(`nats: no reply to ${subject} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(token, (p) => {
        clearTimeout(timer);
        resolve(p);
      });
      this.sock.write(Buffer.concat([Buffer.from(`PUB ${subject} ${this.inbox}.${token} ${body.byteLength}\r\n`), body, Buffer.from("\r\n")]));
    });
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.byteLength === 0 ? d : Buffer.concat([this.buf, d]);
    // Bounded: each turn consumes one protocol line (and its payload) or stops.
    for (let n = 0; n < 100_000; n++) {
      const eol = this.buf.indexOf("\r\n");
      if (eol < 0) return;
      const line = this.buf.toString("latin1", 0, eol);
      if (line.startsWith("MSG ")) {
        const parts = line.split(" ");
        const len = Number(parts[parts.length - 1]);
        if (this.buf.byteLength < eol + 2 + len + 2) return;
        const payload = this.buf.subarray(eol + 2, eol + 2 + len);
        this.buf = this.buf.subarray(eol + 2 + len + 2);
        const token = (parts[1] ?? "").slice(this.inbox.length + 1);
        const w = this.waiting.get(token);
        this.waiting.delete(token);
        w?.(Buffer.from(payload));
        continue;
      }
      this.buf = this.buf.subarray(eol + 2);
      if (line === "PING") this.sock.write("PONG\r\n");
      else if (line === "PONG") this.ready();
    }
  }

  close(): void {
    this.sock.destroy();
  }
}

function natsConf(i: number, dir: string, client: number[], route: number[]): string {
  const routes = route.map((p) => `    nats-route://127.0.0.1:${p}`).join("\n");
  return `server_name: n${i + 1}\nlisten: 127.0.0.1:${client[i]}\njetstream {\n  store_dir: "${join(dir, `n${i + 1}`)}"\n  max_memory_store: 1GB\n  max_file_store: 20GB\n}\ncluster {\n  name: bench\n  listen: 127.0.0.1:${route[i]}\n  routes: [\n${routes}\n  ]\n}\n`;
}

async function startNats(bin: string, dir: string): Promise<{ children: ChildProcess[]; ports: number[] }> {
  const ports: number[] = [];
  const routes: number[] = [];
  for (let i = 0; i < 3; i++) {
    ports.push(await freePort());
    routes.push(await freePort());
  }
  const children = [0, 1, 2].map((i) => {
    mkdirSync(join(dir, `n${i + 1}`), { recursive: true });
    writeFileSync(join(dir, `n${i + 1}.conf`), natsConf(i, dir, ports, routes));
    const fd = openSync(join(dir, `n${i + 1}.log`), "a");
    try {
      return spawn(bin, ["-c", join(dir, `n${i + 1}.conf`)], { stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
  });
  return { children, ports };
}

/** Creates the R3 file stream (retrying while JetStream forms) and returns its leader's server name. */
async function createStream(c: NatsConn, timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  const config = JSON.stringify({ name: "BENCH", subjects: ["bench.>"], storage: "file", num_replicas: 3, retention: "limits" });
  let last = "";
  while (performance.now() < deadline) {
    try {
      const created = JSON.parse((await c.request("$JS.API.STREAM.CREATE.BENCH", config, 5000)).toString()) as { error?: { description?: string; err_code?: number } };
      const exists = created.error?.err_code === 10058;
      if (created.error === undefined || exists) {
        const info = JSON.parse((await c.request("$JS.API.STREAM.INFO.BENCH", "", 5000)).toString()) as { cluster?: { leader?: string; replicas?: { current?: boolean }[] } };
        const cl = info.cluster;
        if (cl?.leader !== undefined && (cl.replicas ?? []).length === 2 && (cl.replicas ?? []).every((r) => r.current === true)) return cl.leader;
      } else last = created.error.description ?? JSON.stringify(created.error);
    } catch (err) {
      last = String(err);
    }
    await sleep(250);
  }
  throw new GroupError(`nats: stream not ready within ${timeoutMs} ms: ${last}`);
}

/**
 * A 3-node NATS JetStream cluster with an R3 file stream; writes are publishes awaited for their
 * PubAck from the stream leader's server. nats-server 2.9 does not fsync each message (stream
 * stores sync every 2 min): its ack means "in the page cache of a quorum".
 */
export async function startNatsPeer(bin: string, entryBytes: number): Promise<PeerSystem> {
  const dir = mkdtempSync(join(os.tmpdir(), "dledger-bench-nats-"));
  const { children, ports } = await startNats(bin, dir);
  const conns: NatsConn[] = [];
  const stop = async (): Promise<void> => {
    for (const c of conns) c.close();
    await stopChildren(children, 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    let admin: NatsConn | null = null;
    for (let i = 0; i < 100 && admin === null; i++) admin = await NatsConn.open(ports[0] as number).catch(() => sleep(100).then(() => null));
    if (admin === null) throw new GroupError("nats: could not connect");
    conns.push(admin);
    const leader = await createStream(admin, 40_000);
    const port = ports[Number(leader.replace(/^n/, "")) - 1] as number;
    for (let i = 0; i < 8; i++) conns.push(await NatsConn.open(port));
    const payload = Buffer.alloc(entryBytes, 0x61);
    return {
      name: "nats",
      pids: children.map((c) => c.pid as number),
      op: async (w) => {
        const ack = (await (conns[1 + (w % 8)] as NatsConn).request(`bench.${w % 64}`, payload, 5000)).toString();
        if (!ack.includes('"seq"')) throw new Error(`nats: ${ack.slice(0, 80)}`);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
