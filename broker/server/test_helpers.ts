/** Helpers shared by the broker's server tests: free loopback ports, bounded waits, configs, an in-process group. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { silentLogger } from "../../raft/base/logger.js";
import { freePort, randomLoopbackHost } from "../../raft/transport/ports.js";
import { validateNodeConfig, type NodeConfig } from "../node_config.js";
import { LedgerNode } from "./ledger_node.js";

export { freePort, randomLoopbackHost } from "../../raft/transport/ports.js";

/** Polls `condition` every 10 ms until true; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface GroupLayout {
  readonly ids: readonly string[];
  readonly peer: Readonly<Record<string, string>>;
  readonly client: Readonly<Record<string, string>>;
}

/** Picks free ports for an n-replica group on a loopback address of its own (raft/transport/ports.ts). */
export async function layoutGroup(n: number): Promise<GroupLayout> {
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const host = randomLoopbackHost();
  const peer: Record<string, string> = {};
  const client: Record<string, string> = {};
  for (const id of ids) {
    peer[id] = `${host}:${await freePort(host)}`;
    client[id] = `${host}:${await freePort(host)}`;
  }
  return { ids, peer, client };
}

/** The validated config of replica `id` of `layout`, data under `root/<id>`. */
export function configFor(layout: GroupLayout, id: string, root: string, snapshots?: { everyEntries: number; keepEntries: number }, raft?: Readonly<Record<string, unknown>>): NodeConfig {
  return validateNodeConfig({
    ...(raft === undefined ? {} : { raft }),
    group: "g1",
    id,
    dataDir: `${root}/${id}`,
    listen: { peer: layout.peer[id], client: layout.client[id] },
    peers: layout.peer,
    clients: layout.client,
    ...(snapshots === undefined ? {} : { snapshots }),
  });
}

/**
 * Three (or n) LedgerNodes in this process on loopback gRPC, data under a fresh temp dir. `start`
 * resolves once a leader is ready for Appends; `stop` closes the raw clients, stops every node and
 * removes the dir.
 */
export class InProcessGroup {
  readonly nodes = new Map<string, LedgerNode>();
  readonly #raw: grpc.Client[] = [];

  private constructor(
    readonly root: string,
    readonly layout: GroupLayout,
  ) {}

  static async start(o: {
    readonly prefix: string;
    readonly entryBytesMax: number;
    readonly snapshots?: { everyEntries: number; keepEntries: number };
    readonly seedOffset?: number;
    readonly replicas?: number;
    /** The nodes' `raft` settings (as in node.yaml), e.g. { pipeline: true }. */
    readonly raft?: Readonly<Record<string, unknown>>;
  }): Promise<InProcessGroup> {
    const g = new InProcessGroup(mkdtempSync(join(tmpdir(), o.prefix)), await layoutGroup(o.replicas ?? 3));
    for (const id of g.layout.ids) {
      const config = configFor(g.layout, id, g.root, o.snapshots, o.raft);
      g.nodes.set(id, await LedgerNode.start({ config, logger: silentLogger, prngSeed: id.charCodeAt(1) + (o.seedOffset ?? 0), entryBytesMax: o.entryBytesMax }));
    }
    await waitFor("a ready leader", () => g.leaderNode() !== null);
    return g;
  }

  /** The leader that has applied its own no-op (ready for Appends), or null. */
  leaderNode(): LedgerNode | null {
    for (const n of this.nodes.values()) if (n.service.acceptsAppends()) return n;
    return null;
  }

  /** A plain grpc-js client (closed by stop()), for calls the typed clients would not make. */
  rawClient(address: string): grpc.Client {
    const c = new grpc.Client(address, grpc.credentials.createInsecure());
    this.#raw.push(c);
    return c;
  }

  async stop(): Promise<void> {
    for (const c of this.#raw) c.close();
    await Promise.all([...this.nodes.values()].map((n) => n.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }
}
