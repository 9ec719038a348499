import { parentPort } from "node:worker_threads";
import { assert } from "../../raft/base/assert.js";
import type { SimStore } from "./replica_host.js";
import { runSeed, type SeedResult } from "./simulator.js";

/**
 * Worker-thread entry for multi-seed runs (runner.ts). Receives { seeds, replicas, store }, answers
 * { results } in the same order. Only loaded from the compiled dist/ tree.
 */
const port = parentPort;
assert(port !== null, "sim worker must run in a worker thread");
port.on("message", (msg: { readonly seeds: readonly number[]; readonly replicas: number; readonly store: SimStore }) => {
  const results: SeedResult[] = msg.seeds.map((seed) => runSeed({ seed, replicas: msg.replicas, store: msg.store }).result);
  port.postMessage({ results });
});
