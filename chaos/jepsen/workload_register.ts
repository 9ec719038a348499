import type { Json } from "../checkers/history.js";
import type { Workload, WorkloadContext } from "./contracts.js";
import { ClientProcess, type Completion, ProcessIds, errorText, pause, pick } from "./workload_common.js";

/**
 * The `register` workload, checked for linearizability with the cas-register model partitioned by
 * key: several client processes read, write and compare-and-set small integers on a few keys
 * through the replicas' KV service (dledger.v1.Kv; reads go through ReadIndex at the leader).
 *
 * History: f "read" / "write" / "cas" with `key`; a write's value is the integer written; a cas's
 * value is `[expected, new]`, and a cas that found another value ends `fail` (the model's rule);
 * a read's ok carries the value read (null for an absent key: the checker's init).
 *
 * Keys rotate (Jepsen's "independent" keys): each key takes at most `opsPerKeyMax` operations,
 * then a fresh key replaces it. Per-key histories stay short, which keeps the WGL search fast
 * even with the `info` operations a fault leaves behind (each may take effect at any later point).
 *
 * Every attempt is one RPC to one replica. A worker starts at a random replica; an answer
 * "not_leader" with a hint sends its next operation to the hinted leader; a refusal without a hint
 * or a timeout sends it to another replica.
 */

/** A KV answer as the workload needs it: Jepsen's three outcomes plus a leader hint. */
export type KvAnswer =
  /** `value`: what a read found (a string when the stored bytes are not one of our integers). */
  | { readonly outcome: "ok"; readonly value: number | string | null }
  /** `cas` only: the key held another value, nothing was written. */
  | { readonly outcome: "cas_mismatch"; readonly actual: number | string | null }
  | { readonly outcome: "failed" | "unknown"; readonly reason: string; readonly message: string; readonly leaderAddress: string | null };

/** One attempt = one RPC to `endpoint`, bounded by `timeoutMs`; resolves, never rejects. */
export interface RegisterClient {
  read(endpoint: string, key: string, timeoutMs: number): Promise<KvAnswer>;
  write(endpoint: string, key: string, value: number, timeoutMs: number): Promise<KvAnswer>;
  cas(endpoint: string, key: string, expected: number, next: number, timeoutMs: number): Promise<KvAnswer>;
  close(): void;
}

export type RegisterClientFactory = (endpoints: readonly string[]) => RegisterClient;

export interface RegisterWorkloadOptions {
  readonly workers?: number;
  /** Keys in use at once. */
  readonly keys?: number;
  /** Operations invoked on one key before it is replaced by a fresh one. */
  readonly opsPerKeyMax?: number;
  /** Values are integers in [0, valuesMax). */
  readonly valuesMax?: number;
  readonly pauseMsMax?: number;
  readonly clientFactory: RegisterClientFactory;
}

export const registerWorkloadDefaults = { workers: 5, keys: 3, opsPerKeyMax: 200, valuesMax: 5, pauseMsMax: 10 } as const;

export function createRegisterWorkload(options: RegisterWorkloadOptions): Workload {
  const o = { ...registerWorkloadDefaults, ...options };
  return { name: "register", checkMode: "cas-register", run: (ctx) => runRegister(ctx, o) };
}

/** The rotating key set: slot i holds key `k<n>` until it has had opsPerKeyMax invocations. */
class Keys {
  private readonly slots: { name: string; used: number }[] = [];
  private nextKey = 0;
  constructor(
    count: number,
    private readonly opsPerKeyMax: number,
  ) {
    for (let i = 0; i < count; i++) this.slots.push({ name: `k${this.nextKey++}`, used: 0 });
  }
  take(random: () => number): string {
    const i = pick(random, 0, this.slots.length);
    const slot = this.slots[i] as { name: string; used: number };
    const name = slot.name;
    if (++slot.used >= this.opsPerKeyMax) this.slots[i] = { name: `k${this.nextKey++}`, used: 0 };
    return name;
  }
}

async function runRegister(ctx: WorkloadContext, o: Required<RegisterWorkloadOptions>): Promise<void> {
  const endpoints = ctx.nodes.map((n) => n.clientAddress);
  const client = o.clientFactory(endpoints);
  const ids = new ProcessIds();
  const keys = new Keys(o.keys, o.opsPerKeyMax);
  try {
    await Promise.all(Array.from({ length: o.workers }, () => worker(ctx, o, client, endpoints, new ClientProcess(ctx, ids), keys)));
  } finally {
    client.close();
  }
}

async function worker(ctx: WorkloadContext, o: Required<RegisterWorkloadOptions>, client: RegisterClient, endpoints: readonly string[], proc: ClientProcess, keys: Keys): Promise<void> {
  let target = endpoints[pick(ctx.random, 0, endpoints.length)] as string;
  while (!ctx.signal.aborted) {
    const key = keys.take(ctx.random);
    const roll = ctx.random();
    const t = ctx.requestTimeoutMs;
    let answer: KvAnswer | null = null;
    const remember = (a: KvAnswer): KvAnswer => (answer = a);
    if (roll < 0.5) {
      await proc.run({ f: "read", key }, async () => toCompletion(remember(await client.read(target, key, t)), "read"));
    } else if (roll < 0.75) {
      const value = pick(ctx.random, 0, o.valuesMax);
      await proc.run({ f: "write", key, value }, async () => toCompletion(remember(await client.write(target, key, value, t)), "write"));
    } else {
      const value: Json = [pick(ctx.random, 0, o.valuesMax), pick(ctx.random, 0, o.valuesMax)];
      const [expected, next] = value as [number, number];
      await proc.run({ f: "cas", key, value }, async () => toCompletion(remember(await client.cas(target, key, expected, next, t)), "cas"));
    }
    target = nextTarget(answer, target, endpoints, ctx.random);
    await pause(pick(ctx.random, 0, o.pauseMsMax), ctx.signal);
  }
}

/** Jepsen's outcome of one KV answer. */
export function toCompletion(a: KvAnswer, f: "read" | "write" | "cas"): Completion {
  switch (a.outcome) {
    case "ok":
      return f === "read" ? { type: "ok", value: a.value } : { type: "ok" };
    case "cas_mismatch":
      return { type: "fail", error: `cas_mismatch: held ${JSON.stringify(a.actual)}` };
    case "failed":
      return { type: "fail", error: errorText(a.reason, a.message) };
    case "unknown":
      // A read has no effect, so a read without an answer is a failed read, not an unknown one:
      // recording it as fail keeps the process and saves the checker a pending operation.
      return f === "read" ? { type: "fail", error: errorText(a.reason, a.message) } : { type: "info", error: errorText(a.reason, a.message) };
  }
}

/** Where the next operation goes: the hinted leader, the same replica after a success, else another one. */
export function nextTarget(a: KvAnswer | null, current: string, endpoints: readonly string[], random: () => number): string {
  if (a === null || a.outcome === "ok" || a.outcome === "cas_mismatch") return current;
  if (a.leaderAddress !== null && a.leaderAddress !== "" && a.leaderAddress !== current) return a.leaderAddress;
  const others = endpoints.filter((e) => e !== current);
  return others.length === 0 ? current : (others[pick(random, 0, others.length)] as string);
}
