import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import * as os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LedgerClient } from "../../broker/client/ledger_client.js";
import type { MetadataResponse } from "../../broker/api/ledger_messages.js";
import { cliMainJs, spawnReplica, stopChildren, writeClusterConfigs, type ClusterMember } from "../../broker/server/cluster_runner.js";
import { sleep } from "./latency.js";

/** A benchmark could not start or drive its replica group. */
export class GroupError extends Error {
  override readonly name = "GroupError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The compiled CLI. Compiled benches find it beside themselves; tests that run the TypeScript
 * sources use dist/ (which they build first, as broker/server/real_process.test.ts does).
 */
export function replicaMainJs(): string {
  if (existsSync(cliMainJs)) return cliMainJs;
  return resolve(dirname(fileURLToPath(import.meta.url)), "../../dist/broker/cli/main.js");
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once("error", () => done(false));
    s.listen(port, "127.0.0.1", () => s.close(() => done(true)));
  });
}

/** A base port whose client, peer and metrics ports (base+1.., +101.., +201..) are free now. */
async function pickBasePort(nodes: number): Promise<number> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const base = 30_000 + Math.floor(Math.random() * 300) * 100;
    const ports = [0, 100, 200].flatMap((o) => Array.from({ length: nodes }, (_, i) => base + o + i + 1));
    let free = true;
    for (const p of ports) if (!(await portFree(p))) free = false;
    if (free) return base;
  }
  throw new GroupError("no free block of ports found in 30000-60000 after 40 tries");
}

export interface LocalGroupOptions {
  readonly nodes?: number;
  /** Node flags for every replica, space-separated (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"). */
  readonly replicaNodeOptions?: string;
  /** Keep the data directory after stop (to read the replicas' logs). */
  readonly keepDir?: boolean;
}

/**
 * A replica group of `dledger start` child processes on 127.0.0.1, laid out by the same code as
 * `dledger cluster` (writeClusterConfigs + spawnReplica) in a fresh temporary directory. Every
 * process is started, killed and stopped by its PID.
 */
export class LocalGroup {
  private readonly children = new Map<string, ChildProcess>();
  private readonly client: LedgerClient;

  private constructor(
    readonly dir: string,
    readonly members: readonly ClusterMember[],
    private readonly nodeArgs: readonly string[],
    private readonly keepDir: boolean,
  ) {
    this.client = new LedgerClient({ endpoints: members.map((m) => m.client), attemptTimeoutMs: 300 });
  }

  static async start(o: LocalGroupOptions = {}): Promise<LocalGroup> {
    const nodes = o.nodes ?? 3;
    const dir = mkdtempSync(join(os.tmpdir(), "dledger-bench-group-"));
    const members = writeClusterConfigs(dir, nodes, await pickBasePort(nodes));
    const nodeArgs = (o.replicaNodeOptions ?? "").split(" ").filter((a) => a !== "");
    const g = new LocalGroup(dir, members, nodeArgs, o.keepDir ?? false);
    for (const m of members) g.spawn(m.id);
    return g;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.client);
  }

  member(id: string): ClusterMember {
    const m = this.members.find((x) => x.id === id);
    if (m === undefined) throw new GroupError(`no member ${id}`);
    return m;
  }

  /** PIDs of the replicas that are running now. */
  pids(): number[] {
    return [...this.children.values()].filter(alive).map((c) => c.pid as number);
  }

  pidOf(id: string): number | null {
    const c = this.children.get(id);
    return c !== undefined && alive(c) ? (c.pid as number) : null;
  }

  spawn(id: string): void {
    const c = spawnReplica(this.member(id), replicaMainJs(), this.nodeArgs);
    if (c.pid === undefined) throw new GroupError(`could not spawn replica ${id}`);
    this.children.set(id, c);
  }

  /** SIGKILLs replica `id` by PID and waits (bounded) until the OS reports it gone. */
  async kill(id: string): Promise<void> {
    const c = this.children.get(id);
    if (c === undefined || !alive(c)) return;
    const gone = new Promise<void>((r) => c.once("exit", () => r()));
    process.kill(c.pid as number, "SIGKILL");
    await Promise.race([gone, sleep(5000)]);
  }

  /** Metadata of one replica, or null when it does not answer. */
  async metadata(id: string): Promise<MetadataResponse | null> {
    try {
      return await this.client.metadata({ endpoint: this.member(id).client });
    } catch {
      return null;
    }
  }

  /** Waits (bounded) until a replica reports itself leader and ready; returns its metadata. */
  async waitLeader(timeoutMs = 20_000): Promise<MetadataResponse> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const all = await Promise.all(this.members.map((m) => this.metadata(m.id)));
      const leader = all.find((md) => md !== null && md.role === "leader" && md.appliedIndex >= md.commitIndex && md.commitIndex > 0);
      if (leader !== undefined && leader !== null) return leader;
      await sleep(20);
    }
    throw new GroupError(`no leader within ${timeoutMs} ms; see the logs in ${this.dir}`);
  }

  /** Waits (bounded) until replica `id` has applied at least `index`. */
  async waitApplied(id: string, index: number, timeoutMs = 30_000): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const md = await this.metadata(id);
      if (md !== null && md.appliedIndex >= index) return true;
      await sleep(20);
    }
    return false;
  }

  /** SIGTERM every replica (SIGKILL after the grace period) and remove the directory. */
  async stop(graceMs = 5000): Promise<void> {
    this.client.close();
    await stopChildren([...this.children.values()], graceMs);
    if (!this.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(c: ChildProcess): boolean {
  return c.pid !== undefined && c.exitCode === null && c.signalCode === null;
}

export { freePort } from "../../raft/transport/ports.js";

/** Whether `cmd` is on PATH (a peer is compared only when installed). */
export function onPath(cmd: string): string | null {
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    if (dir !== "" && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}
