/**
 * Real three-process groups: each replica is `node dist/broker/cli/main.js start --config`, on
 * 127.0.0.1 with free ports and a temp dir. Faults are real signals (SIGKILL, SIGTERM). Every
 * process started here is stopped by PID in afterAll; every wait is bounded.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ledgerService, type AppendStreamResponse } from "../api/ledger_messages.js";
import { LedgerClient, type AppendOutcome } from "../client/ledger_client.js";
import { replicaNodeArgs, spawnReplica, type ClusterMember } from "./cluster_runner.js";
import { freePort, randomLoopbackHost, waitFor } from "./test_helpers.js";
import { ensureBuilt, repoRoot } from "./test_build.js";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);
const everyProcess: ChildProcess[] = [];
const cleanups: (() => void)[] = [];

beforeAll(() => {
  // The processes run the compiled CLI: build it from the sources under test, unless `npm test`
  // (tsc, then vitest) has just done so.
  ensureBuilt();
}, 120_000);

afterAll(() => {
  for (const p of everyProcess) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  for (const c of cleanups) c();
});

/** A group of replica processes with its configs, logs and data in a temp dir. */
class Group {
  readonly members: ClusterMember[] = [];
  readonly procs = new Map<string, ChildProcess>();
  readonly client: LedgerClient;
  private constructor(readonly dir: string) {
    this.client = null as unknown as LedgerClient;
  }

  static async start(snapshots: { everyEntries: number; keepEntries: number } | null): Promise<Group> {
    const g = new Group(mkdtempSync(join(tmpdir(), "dledger-proc-")));
    cleanups.push(() => rmSync(g.dir, { recursive: true, force: true }));
    const ids = ["n1", "n2", "n3"];
    // A loopback address of its own: no port clash with the test files running alongside.
    const host = randomLoopbackHost();
    const peers: Record<string, string> = {};
    const clients: Record<string, string> = {};
    for (const id of ids) {
      peers[id] = `${host}:${await freePort(host)}`;
      clients[id] = `${host}:${await freePort(host)}`;
    }
    for (const id of ids) {
      const metrics = `${host}:${await freePort(host)}`;
      const m: ClusterMember = { id, client: clients[id] as string, peer: peers[id] as string, metrics, configPath: join(g.dir, `${id}.yaml`), logPath: join(g.dir, `${id}.log`) };
      const config = { group: "g1", id, dataDir: join(g.dir, id), listen: { peer: m.peer, client: m.client, metrics }, peers, clients, ...(snapshots === null ? {} : { snapshots }) };
      writeFileSync(m.configPath, stringify(config));
      g.members.push(m);
    }
    (g as { client: LedgerClient }).client = new LedgerClient({ endpoints: Object.values(clients), attemptTimeoutMs: 1000, operationTimeoutMs: 20_000 });
    cleanups.unshift(() => g.client.close());
    for (const id of ids) g.startReplica(id);
    try {
      await g.leader();
      // Every replica serving its client port and past the leader's no-op.
      await g.converged(1);
      const dead = ids.filter((id) => !g.alive(id));
      if (dead.length > 0) throw new Error(`replicas ${dead.join(", ")} exited during start`);
    } catch (err) {
      throw g.withLogs(err);
    }
    return g;
  }

  /** `err` with the tail of every replica's log appended: the directory is gone after the run. */
  withLogs(err: unknown): Error {
    const tails = this.members.map((m) => `--- ${m.id} (${this.alive(m.id) ? "running" : "exited"}) ---\n${this.log(m.id).split("\n").slice(-15).join("\n")}`);
    return new Error(`${err instanceof Error ? err.message : String(err)}\n${tails.join("\n")}`, { cause: err });
  }

  member(id: string): ClusterMember {
    const m = this.members.find((x) => x.id === id);
    if (m === undefined) throw new Error(`no member ${id}`);
    return m;
  }

  startReplica(id: string): void {
    const p = spawnReplica(this.member(id), join(repoRoot, "dist/broker/cli/main.js"));
    everyProcess.push(p);
    this.procs.set(id, p);
  }

  alive(id: string): boolean {
    const p = this.procs.get(id);
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  /** Sends `signal` to replica `id` by PID and waits (bounded) for it to exit. */
  async signal(id: string, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const p = this.procs.get(id);
    if (p === undefined || p.pid === undefined) throw new Error(`${id} not running`);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.once("exit", (code, sig) => r({ code, signal: sig })));
    process.kill(p.pid, signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${id} did not exit within 10 s of ${signal}`)), 10_000)));
    try {
      return await Promise.race([exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Waits for a leader that takes Appends; returns its id. */
  async leader(timeoutMs = 15_000): Promise<string> {
    let id = "";
    await waitFor("a leader", async () => {
      const address = await this.client.findLeader();
      const m = this.members.find((x) => x.client === address);
      if (m === undefined || !this.alive(m.id)) return false;
      id = m.id;
      return true;
    }, timeoutMs);
    return id;
  }

  /** Waits until every live replica has applied at least `index`. */
  async converged(index: number): Promise<void> {
    for (const m of this.members.filter((x) => this.alive(x.id))) {
      await waitFor(`${m.id} applies ${index}`, async () => (await this.client.metadata({ endpoint: m.client }).catch(() => null))?.appliedIndex !== undefined && (await this.client.metadata({ endpoint: m.client })).appliedIndex >= index);
    }
  }

  /** Entries [lo, hi] as read by Get from one replica, in order (32 calls in flight). */
  async entries(endpoint: string, lo: number, hi: number): Promise<Awaited<ReturnType<LedgerClient["get"]>>[]> {
    const out = [];
    for (let i = lo; i <= hi; i += 32) {
      const batch = [];
      for (let j = i; j <= Math.min(hi, i + 31); j++) batch.push(this.client.get(j, { endpoint }));
      out.push(...(await Promise.all(batch)));
    }
    return out;
  }

  log(id: string): string {
    const path = this.member(id).logPath;
    return existsSync(path) ? readFileSync(path, "utf8") : "";
  }
}

/** Appends from `workers` concurrent loops until `stop()`; records every outcome. */
function load(client: LedgerClient, workers: number) {
  const acked: { index: number; body: string }[] = [];
  const other: AppendOutcome[] = [];
  let running = true;
  const loops = Array.from({ length: workers }, async (_, w) => {
    for (let k = 0; running && k < 100_000; k++) {
      const body = `w${w}-${k}`;
      const r = await client.append(text(body));
      if (r.ok) acked.push({ index: r.index, body });
      else other.push(r);
    }
  });
  return {
    acked,
    other,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe("real processes: failover, restart, retries, bad input", () => {
  let g: Group;
  beforeAll(async () => {
    g = await Group.start(null);
  }, 30_000);

  it("kill -9 of the leader mid-load: a new leader takes over and no acknowledged append is lost", async () => {
    const l = load(g.client, 8);
    await waitFor("200 acknowledged appends", () => l.acked.length >= 200, 20_000);
    const old = await g.leader();
    const atKill = l.acked.length;
    expect((await g.signal(old, "SIGKILL")).signal).toBe("SIGKILL");
    await waitFor("200 more acknowledged appends after the kill", () => l.acked.length >= atKill + 200, 20_000).catch((e: unknown) => {
      throw g.withLogs(e);
    });
    await l.stop();
    const now = await g.leader().catch((e: unknown) => {
      throw g.withLogs(e);
    });
    expect(now).not.toBe(old);
    // Every acknowledged append is in the new leader's log, at its index, exactly once.
    const commit = (await g.client.metadata({ endpoint: g.member(now).client })).commitIndex;
    const log = await g.entries(g.member(now).client, 1, commit);
    for (const a of l.acked) expect(decode(log[a.index - 1]?.body ?? new Uint8Array(0))).toBe(a.body);
    const counts = new Map<string, number>();
    for (const e of log) if (!e.noop && e.duplicateOf === 0) counts.set(decode(e.body), (counts.get(decode(e.body)) ?? 0) + 1);
    for (const a of l.acked) expect(counts.get(a.body)).toBe(1);
    expect(l.other.filter((o) => !o.ok && o.outcome === "failed" && o.reason === "too_large")).toEqual([]);
    // The killed replica recovers from its SIGKILLed directory and catches up.
    g.startReplica(old);
    await g.converged(commit);
  }, 60_000);

  it("restart of every replica (SIGTERM all, start again): the logs are identical", async () => {
    const leader = await g.leader();
    const commit = (await g.client.metadata({ endpoint: g.member(leader).client })).commitIndex;
    await g.converged(commit);
    for (const m of g.members) expect(await g.signal(m.id, "SIGTERM")).toEqual({ code: 0, signal: null });
    for (const m of g.members) g.startReplica(m.id);
    await g.leader();
    await g.converged(commit);
    const digests = new Map<string, string>();
    for (const m of g.members) {
      const h = createHash("sha256");
      for (const e of await g.entries(m.client, 1, commit)) h.update(`${e.index}/${e.term}/${e.noop}/${e.clientId}/${e.sequence}/${e.duplicateOf}/`).update(e.body);
      digests.set(m.id, h.digest("hex"));
    }
    expect(new Set(digests.values()).size).toBe(1);
    // A graceful stop closes the CommitLog cleanly: the reopen skips the crash rescan.
    for (const m of g.members) expect(g.log(m.id)).toMatch(/"report":\{"fresh":false,"clean":true/);
  }, 60_000);

  it("a client retry after a timeout does not duplicate the entry", async () => {
    const leader = await g.leader();
    const proxy = await responseDroppingProxy(g.member(leader).client);
    cleanups.unshift(() => proxy.close());
    const others = g.members.filter((m) => m.id !== leader).map((m) => m.client);
    const client = new LedgerClient({ endpoints: [proxy.address, ...others], attemptTimeoutMs: 700, operationTimeoutMs: 15_000 });
    try {
      await client.metadata({ endpoint: proxy.address });
      proxy.dropResponses(true);
      const r = await client.append(text("exactly once"));
      // The first attempt reached the leader and was applied (its answer was dropped); the retry
      // went round through a follower's hint and was answered with the original index.
      expect(r).toMatchObject({ ok: true, duplicate: true });
      if (!r.ok) return;
      expect(r.attempts).toBeGreaterThanOrEqual(2);
      const commit = (await g.client.metadata({ endpoint: g.member(leader).client })).commitIndex;
      const mine = (await g.entries(g.member(leader).client, 1, commit)).filter((e) => e.clientId === client.clientId && e.sequence === r.sequence);
      expect(mine.map((e) => e.index)).toEqual([r.index]);
    } finally {
      client.close();
    }
  }, 60_000);

  it("a client retry after a timeout against a paused (SIGSTOP) leader leaves exactly one copy", async () => {
    const paused = await g.leader();
    const client = new LedgerClient({ endpoints: [g.member(paused).client, ...g.members.filter((m) => m.id !== paused).map((m) => m.client)], attemptTimeoutMs: 500, operationTimeoutMs: 15_000 });
    const pid = g.procs.get(paused)?.pid as number;
    process.kill(pid, "SIGSTOP");
    try {
      // The first attempt sits unread in the paused leader's socket; the retry finds the new leader.
      const r = await client.append(text("paused leader"));
      expect(r).toMatchObject({ ok: true });
      if (!r.ok) return;
      expect(r.attempts).toBeGreaterThanOrEqual(2);
      process.kill(pid, "SIGCONT");
      // The old leader now reads the stale request, and must not get a second copy committed.
      const next = await client.append(text("after resume"));
      if (!next.ok) throw new Error(`append failed: ${next.message}`);
      await g.converged(next.index);
      const now = await g.leader();
      const log = await g.entries(g.member(now).client, 1, next.index);
      expect(log.filter((e) => e.clientId === client.clientId && e.sequence === r.sequence && e.duplicateOf === 0).map((e) => e.index)).toEqual([r.index]);
    } finally {
      process.kill(pid, "SIGCONT");
      client.close();
    }
  }, 60_000);

  it("bad input — oversized entry, malformed peer frame, foreign group, client gone mid-stream — gets a clear error and the replicas keep serving", async () => {
    const leader = await g.leader();
    const big = await g.client.append(new Uint8Array(4 * 1024 * 1024 + 1));
    expect(big).toMatchObject({ ok: false, outcome: "failed", code: grpc.status.INVALID_ARGUMENT, reason: "too_large" });
    if (!big.ok) expect(big.message).toMatch(/exceeds entryBytesMax \(4194304\)/);

    const [f1, f2] = g.members.filter((m) => m.id !== leader);
    if (f1 === undefined || f2 === undefined) throw new Error("need two followers");
    const malformed = await peerStream(f1.peer, { group: "g1", replica: f2.id, target: f1.id }, Buffer.from("DLPF this is not a frame"));
    expect(malformed).toBe("accepted");
    await waitFor("frame_rejected in the follower's log", () => /"msg":"frame_rejected"/.test(g.log(f1.id)), 10_000);
    const foreign = await peerStream(f1.peer, { group: "other-group", replica: f2.id, target: f1.id }, Buffer.from("x"));
    expect(foreign).toMatch(/^code 7: peer_rejected_foreign_group/);

    const m = ledgerService.AppendStream;
    const raw = new grpc.Client(g.member(leader).client, grpc.credentials.createInsecure());
    const cancelled = await new Promise<grpc.ServiceError | AppendStreamResponse | undefined>((done) => {
      const call = raw.makeClientStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, (err, v) => done(err ?? v));
      for (let i = 1; i <= 20; i++) call.write({ clientId: "gone", sequence: i, body: text(`gone ${i}`) });
      setTimeout(() => call.cancel(), 10);
    });
    raw.close();
    expect(cancelled instanceof Error ? cancelled.code : "answered").toBe(grpc.status.CANCELLED);

    for (const x of g.members) expect(g.alive(x.id)).toBe(true);
    const after = await g.client.append(text("still serving"));
    expect(after.ok).toBe(true);
    if (after.ok) await g.converged(after.index);
    // The refusals are visible to operators too.
    const metrics = await (await fetch(`http://${f1.metrics}/metrics`)).text();
    expect(metrics).toMatch(/^dledger_role\{group="g1",replica="n\d"\} 0$/m);
    const leaderMetrics = await (await fetch(`http://${g.member(leader).metrics}/metrics`)).text();
    expect(leaderMetrics).toMatch(/^dledger_role\{[^}]*\} 3$/m);
    expect(leaderMetrics).toMatch(/^dledger_append_seconds_count\{[^}]*\} [1-9]/m);
  }, 60_000);
});

describe("real processes: snapshot catch-up", () => {
  it("a follower that missed compacted entries catches up by snapshot", async () => {
    const g = await Group.start({ everyEntries: 50, keepEntries: 10 });
    const leader = await g.leader();
    const lagger = g.members.find((m) => m.id !== leader) as ClusterMember;
    const lastBefore = (await g.client.metadata({ endpoint: lagger.client })).lastIndex;
    await g.signal(lagger.id, "SIGKILL");
    let last: AppendOutcome | null = null;
    for (let i = 0; i < 6; i++) {
      const batch = await g.client.appendBatch(Array.from({ length: 50 }, (_, k) => text(`b${i}-${k}`)));
      expect(batch.every((o) => o.ok)).toBe(true);
      last = batch[batch.length - 1] ?? null;
    }
    if (last === null || !last.ok) throw new Error("no append");
    const lm = await g.client.metadata({ endpoint: g.member(leader).client });
    // The leader no longer holds what the follower lacks: only a snapshot can catch it up.
    expect(lm.firstIndex).toBeGreaterThan(lastBefore + 1);
    g.startReplica(lagger.id);
    await g.converged(last.index);
    expect(g.log(lagger.id)).toMatch(/"msg":"snapshot_installed"/);
    // It then follows by ordinary replication. (Indexes inside the installed snapshot are not in
    // its log: the log is the data, and a snapshot carries only the dedup table.)
    const next = await g.client.append(text("after catch-up"));
    if (!next.ok) throw new Error(`append failed: ${next.message}`);
    await g.converged(next.index);
    expect(decode((await g.client.get(next.index, { endpoint: lagger.client })).body)).toBe("after catch-up");
    await expect(g.client.get(1, { endpoint: lagger.client })).rejects.toMatchObject({ reason: "compacted", code: grpc.status.NOT_FOUND });
    for (const m of g.members) expect(await g.signal(m.id, "SIGTERM")).toEqual({ code: 0, signal: null });
  }, 60_000);
});

/** Opens a peer-transport stream with the given handshake and writes `frame`. */
async function peerStream(address: string, hs: { group: string; replica: string; target: string }, frame: Buffer): Promise<string> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set("dledger-group", hs.group);
  md.set("dledger-replica", hs.replica);
  md.set("dledger-target", hs.target);
  md.set("dledger-version", "1");
  const id = (x: Buffer) => x;
  try {
    return await new Promise<string>((done) => {
      const call = client.makeBidiStreamRequest("/dledger.peer.v1.PeerTransport/Stream", id, id, md, {});
      call.on("error", (e: grpc.ServiceError) => done(`code ${e.code}: ${e.details}`));
      call.on("metadata", () => {
        call.write(frame);
        // Give the frame time to arrive before hanging up (the replica logs it on receipt).
        setTimeout(() => {
          call.cancel();
          done("accepted");
        }, 200);
      });
      setTimeout(() => done("no answer within 5 s"), 5000);
    });
  } finally {
    client.close();
  }
}

/** A TCP proxy to `target` that can silently drop everything the server sends back. */
async function responseDroppingProxy(target: string): Promise<{ address: string; dropResponses(on: boolean): void; close(): void }> {
  const at = target.lastIndexOf(":");
  let drop = false;
  const sockets: Socket[] = [];
  const server: Server = createServer((down) => {
    const up = connect(Number(target.slice(at + 1)), target.slice(0, at));
    sockets.push(down, up);
    down.on("data", (d) => up.write(d));
    up.on("data", (d) => {
      if (!drop) down.write(d);
    });
    const close = () => {
      down.destroy();
      up.destroy();
    };
    down.on("error", close).on("close", close);
    up.on("error", close).on("close", close);
  });
  const port = await new Promise<number>((r) => server.listen(0, "127.0.0.1", () => r((server.address() as { port: number }).port)));
  return {
    address: `127.0.0.1:${port}`,
    dropResponses: (on) => (drop = on),
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe("real processes: the CLI", () => {
  const cli = join(repoRoot, "dist/broker/cli/main.js");
  const run = (args: readonly string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      execFile(process.execPath, [cli, ...args], { timeout: 20_000 }, (err, stdout, stderr) => done({ code: err === null ? 0 : typeof err.code === "number" ? err.code : null, stdout, stderr }));
    });

  it("dledger start refuses a bad setting with exit code 2, naming the field and the value", async () => {
    const r = await run(["start", "--group", "g1", "--id", "n1", "--data-dir", "/tmp/unused", "--listen-peer", "127.0.0.1:1", "--listen-client", "127.0.0.1:2", "--peers", "n1=127.0.0.1:1", "--election-ticks", "often"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/raft.electionTicks \("often"\) must be an integer/);
  }, 30_000);

  it("dledger cluster starts a group, operators append/get/status/transfer-leader, and SIGTERM stops every child", async () => {
    const base = await freeBasePort();
    const dir = mkdtempSync(join(tmpdir(), "dledger-cluster-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const cluster = spawn(process.execPath, [cli, "cluster", "--dir", dir, "--base-port", String(base)], { stdio: ["ignore", "pipe", "pipe"] });
    everyProcess.push(cluster);
    let output = "";
    cluster.stdout?.on("data", (d: Buffer) => (output += d.toString()));
    // If the test fails before SIGTERM, afterAll's SIGKILL of `dledger cluster` would orphan its
    // replicas: stop them by the PIDs it printed (a no-op once they have exited).
    cleanups.unshift(() => {
      for (const m of output.matchAll(/^n\d: pid (\d+)/gm)) {
        try {
          process.kill(Number(m[1]), "SIGKILL");
        } catch {
          // already gone
        }
      }
    });
    await waitFor("the cluster to print its leader", () => /^leader: n\d at /m.test(output), 20_000);
    const childPids = [...output.matchAll(/^n\d: pid (\d+)/gm)].map((m) => Number(m[1]));
    expect(childPids).toHaveLength(3);
    // Every replica runs with replicaNodeArgs (V8 refuses them in NODE_OPTIONS: only argv carries them).
    for (const pid of childPids) expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).toEqual(expect.arrayContaining([...replicaNodeArgs]));
    const endpoints = ["--endpoints", [1, 2, 3].map((i) => `127.0.0.1:${base + i}`).join(",")];
    const appended = await run(["append", "hello cli", ...endpoints]);
    expect(appended.stdout).toMatch(/^appended: index (\d+), term \d+$/m);
    const index = /index (\d+)/.exec(appended.stdout)?.[1] ?? "0";
    expect((await run(["get", index, ...endpoints])).stdout).toMatch(/: hello cli$/m);
    const status = await run(["status", ...endpoints]);
    expect(status.stdout.match(/^n\d +(leader|follower) /gm)).toHaveLength(3);
    expect((await run(["transfer-leader", "--to", "n2", ...endpoints])).stdout).toMatch(/^leader: n2 \(term \d+\)$/m);
    const missing = await run(["get", "999999", ...endpoints]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not_committed/);
    const exited = new Promise<number | null>((r) => cluster.once("exit", (code) => r(code)));
    process.kill(cluster.pid as number, "SIGTERM");
    expect(await exited).toBe(0);
    expect(output).toMatch(/^cluster: stopped$/m);
    for (const pid of childPids) expect(() => process.kill(pid, 0)).toThrow();
  }, 60_000);
});

/** A base port whose cluster ports (base+1..3, +101..103, +201..203) are all free right now. */
async function freeBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const ports = [1, 2, 3].flatMap((i) => [base + i, base + 100 + i, base + 200 + i]);
    if ((await Promise.all(ports.map(portIsFree))).every(Boolean)) return base;
  }
  throw new Error("no free base port found in 50 attempts");
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen(port, "127.0.0.1", () => server.close(() => done(true)));
  });
}
