import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { stopChildren } from "../../broker/server/cluster_runner.js";
import { sleep } from "../common/latency.js";
import { freePort, GroupError } from "../common/local_group.js";
import { bytesAt, bytesField, decodeFields, numberAt } from "./proto_mini.js";
import type { PeerSystem } from "./peer_loop.js";

const ident = (b: Buffer): Buffer => b;

/** etcd with its defaults (fsync before ack); as ../shared/anchors/etcd-cluster.sh starts it. */
async function startEtcd(bin: string, dir: string): Promise<{ children: ChildProcess[]; clients: string[] }> {
  const ids = ["m1", "m2", "m3"];
  const client: string[] = [];
  const peer: string[] = [];
  for (let i = 0; i < 3; i++) {
    client.push(`127.0.0.1:${await freePort()}`);
    peer.push(`127.0.0.1:${await freePort()}`);
  }
  const cluster = ids.map((id, i) => `${id}=http://${peer[i]}`).join(",");
  const children = ids.map((id, i) => {
    const fd = openSync(join(dir, `${id}.log`), "a");
    try {
      const args = ["--name", id, "--data-dir", join(dir, `${id}.etcd`), "--listen-client-urls", `http://${client[i]}`, "--advertise-client-urls", `http://${client[i]}`];
      args.push("--listen-peer-urls", `http://${peer[i]}`, "--initial-advertise-peer-urls", `http://${peer[i]}`, "--initial-cluster", cluster, "--initial-cluster-token", "dledger-bench", "--initial-cluster-state", "new", "--logger", "zap", "--log-outputs", "stderr");
      return spawn(bin, args, { stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
  });
  return { children, clients: client };
}

class EtcdConns {
  readonly clients: grpc.Client[];
  constructor(address: string, n: number) {
    this.clients = Array.from({ length: n }, () => new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, "grpc.enable_retries": 0 }));
  }
  unary(i: number, method: string, req: Buffer, timeoutMs: number): Promise<Buffer> {
    const c = this.clients[i % this.clients.length] as grpc.Client;
    return new Promise((resolve, reject) => {
      c.makeUnaryRequest(method, ident, ident, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err !== null || res === undefined ? reject(err ?? new Error("no response")) : resolve(res)));
    });
  }
  close(): void {
    for (const c of this.clients) c.close();
  }
}

/** Status of one member: its own id and the leader's id (Maintenance.Status). */
async function status(address: string): Promise<{ member: bigint; leader: bigint } | null> {
  const c = new EtcdConns(address, 1);
  try {
    const m = decodeFields(await c.unary(0, "/etcdserverpb.Maintenance/Status", Buffer.alloc(0), 1000));
    const header = bytesAt(m, 1);
    return { member: header === null ? 0n : numberAt(decodeFields(header), 2), leader: numberAt(m, 4) };
  } catch {
    return null;
  } finally {
    c.close();
  }
}

async function findLeader(clients: readonly string[], timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const all = await Promise.all(clients.map((a) => status(a)));
    const i = all.findIndex((s) => s !== null && s.leader !== 0n && s.member === s.leader);
    if (i >= 0 && all.every((s) => s !== null)) return clients[i] as string;
    await sleep(100);
  }
  throw new GroupError(`etcd: no leader within ${timeoutMs} ms`);
}

/** The etcd peer, plus its members' client ports (so a test can check they are closed after stop()). */
export interface EtcdPeer extends PeerSystem {
  readonly clientPorts: readonly number[];
}

/** A 3-member etcd on loopback; writes are KV.Put of 1 KiB values to the leader (8 channels max). */
export async function startEtcdPeer(bin: string, entryBytes: number): Promise<EtcdPeer> {
  const dir = mkdtempSync(join(os.tmpdir(), "dledger-bench-etcd-"));
  const { children, clients } = await startEtcd(bin, dir);
  const stop = async (): Promise<void> => {
    await stopChildren(children, 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const leader = await findLeader(clients, 30_000);
    const conns = new EtcdConns(leader, 8);
    const value = Buffer.alloc(entryBytes, 0x61);
    const puts = Array.from({ length: 4096 }, (_, w) => Buffer.concat([bytesField(1, Buffer.from(`bench/${w}`)), bytesField(2, value)]));
    return {
      name: "etcd",
      pids: children.map((c) => c.pid as number),
      clientPorts: clients.map((a) => Number(a.slice(a.lastIndexOf(":") + 1))),
      op: async (w) => {
        await conns.unary(w, "/etcdserverpb.KV/Put", puts[w % puts.length] as Buffer, 5000);
      },
      stop: async () => {
        conns.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
