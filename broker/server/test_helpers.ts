/** Helpers shared by the broker's server tests: free loopback ports, bounded waits, configs. */
import { createServer } from "node:net";
import { validateNodeConfig, type NodeConfig } from "../node_config.js";

/** A port that was free a moment ago on 127.0.0.1 (the OS may reuse it; tests accept the race). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      server.close(() => resolve(port));
    });
  });
}

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

/** Picks free ports for an n-replica group on loopback. */
export async function layoutGroup(n: number): Promise<GroupLayout> {
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const peer: Record<string, string> = {};
  const client: Record<string, string> = {};
  for (const id of ids) {
    peer[id] = `127.0.0.1:${await freePort()}`;
    client[id] = `127.0.0.1:${await freePort()}`;
  }
  return { ids, peer, client };
}

/** The validated config of replica `id` of `layout`, data under `root/<id>`. */
export function configFor(layout: GroupLayout, id: string, root: string, snapshots?: { everyEntries: number; keepEntries: number }): NodeConfig {
  return validateNodeConfig({
    group: "g1",
    id,
    dataDir: `${root}/${id}`,
    listen: { peer: layout.peer[id], client: layout.client[id] },
    peers: layout.peer,
    clients: layout.client,
    ...(snapshots === undefined ? {} : { snapshots }),
  });
}
