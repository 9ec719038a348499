import type { Json } from "../checkers/history.js";
import { LedgerClient, type AppendOutcome } from "../../broker/client/ledger_client.js";
import type { LedgerEntry } from "../../broker/api/ledger_messages.js";
import type { Workload, WorkloadContext } from "./contracts.js";
import { ClientProcess, type Completion, ProcessIds, errorText, pause, pick } from "./workload_common.js";

/**
 * The `append` workload (checked by chaos/checkers/append_checker.ts): writers append unique
 * payloads through dledger.v1.Ledger, a reader reads the whole log now and then, and once the run
 * is over (the runner heals every fault before it aborts the signal) a final read sees everything.
 *
 * History:
 * - `append`: invoke value = the payload, a unique integer; `ok` carries `index`.
 * - `read`: `ok` value = `[{ index, value }]` for every client entry of the log, indexes rising
 *   (election no-ops, and retries the server applied as no-ops, are left out: they hold no payload).
 *
 * One RPC per attempt (LedgerClient with attemptsMax 1): a library retry must not hide an outcome.
 * The client's own classification is honest for a single attempt: refused before proposing
 * (not_leader, leader_not_ready, connection refused) is `failed`, a deadline or a lost connection
 * is `unknown`; the hint in a not_leader answer moves the next attempt to the leader.
 *
 * A read is linearizable at its start: Read (ReadIndex at the leader) returns the read index R;
 * then Get 1..R from that same replica, which has applied R. The committed prefix never changes,
 * so the entries are what the log held at R; any append acknowledged before the read began is
 * at an index <= R.
 */

export interface AppendWorkloadOptions {
  readonly writers?: number;
  /** Pause between a writer's appends, ms (drawn uniformly in [0, max)). */
  readonly appendPauseMsMax?: number;
  /** A periodic read starts this long after the previous one ended, at least. */
  readonly readIntervalMs?: number;
  /** Get calls in flight during a read. */
  readonly readConcurrency?: number;
  /** Entries one read may fetch; a longer log makes the read fail (said in its error). */
  readonly readEntriesMax?: number;
  /** How long the final read keeps trying (each try is an operation of its own). */
  readonly finalReadMs?: number;
}

export const appendWorkloadDefaults = {
  writers: 4,
  appendPauseMsMax: 10,
  readIntervalMs: 3000,
  readConcurrency: 32,
  readEntriesMax: 500_000,
  finalReadMs: 30_000,
} as const;

/**
 * Body text of an append: "a<run>.<payload>", `run` 8 hex digits drawn per workload run. Entries
 * of another run (an earlier workload on the same group) are not this history's and are skipped;
 * a body of any other shape is reported as an unexpected payload (e.g. a corrupted entry served).
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function appendBody(run: string, payload: number): Uint8Array {
  return encoder.encode(`a${run}.${payload}`);
}

/** The payload an entry of run `run` carries, or null for one without client data of this run. */
export function entryPayload(run: string, e: LedgerEntry): number | string | null {
  if (e.noop || e.duplicateOf > 0) return null;
  const text = decoder.decode(e.body);
  const m = /^a([0-9a-f]{8})\.([1-9][0-9]{0,14})$/.exec(text);
  if (m === null) return `foreign:${text.slice(0, 40)}`;
  return m[1] === run ? Number(m[2]) : null;
}

export function createAppendWorkload(options: AppendWorkloadOptions = {}): Workload {
  const o = { ...appendWorkloadDefaults, ...options };
  return {
    name: "append",
    checkMode: "append",
    run: (ctx) => runAppend(ctx, o),
  };
}

async function runAppend(ctx: WorkloadContext, o: Required<AppendWorkloadOptions>): Promise<void> {
  const ids = new ProcessIds();
  const endpoints = ctx.nodes.map((n) => n.clientAddress);
  const clients: LedgerClient[] = [];
  const newClient = (): LedgerClient => {
    const c = new LedgerClient({ endpoints, attemptsMax: 1, attemptTimeoutMs: ctx.requestTimeoutMs, operationTimeoutMs: ctx.requestTimeoutMs });
    clients.push(c);
    return c;
  };
  let nextPayload = 1;
  const run = Math.floor(ctx.random() * 0x1_0000_0000)
    .toString(16)
    .padStart(8, "0");
  try {
    const writers = Array.from({ length: o.writers }, () => writer(ctx, o, new ClientProcess(ctx, ids), newClient(), () => nextPayload++, run));
    const readerClient = newClient();
    const readerProc = new ClientProcess(ctx, ids);
    const reader = periodicReads(ctx, o, readerProc, readerClient, run);
    await Promise.all([...writers, reader]);
    await finalRead(ctx, o, readerProc, readerClient, run);
  } finally {
    for (const c of clients) c.close();
  }
}

async function writer(ctx: WorkloadContext, o: Required<AppendWorkloadOptions>, proc: ClientProcess, client: LedgerClient, payload: () => number, run: string): Promise<void> {
  while (!ctx.signal.aborted) {
    const value = payload();
    await proc.run({ f: "append", value }, async () => appendCompletion(await client.append(appendBody(run, value))));
    await pause(pick(ctx.random, 0, o.appendPauseMsMax), ctx.signal);
  }
}

export function appendCompletion(r: AppendOutcome): Completion {
  if (r.ok) return { type: "ok", index: r.index };
  const error = errorText(r.reason, r.message);
  return r.outcome === "failed" ? { type: "fail", error } : { type: "info", error };
}

async function periodicReads(ctx: WorkloadContext, o: Required<AppendWorkloadOptions>, proc: ClientProcess, client: LedgerClient, run: string): Promise<void> {
  await pause(o.readIntervalMs, ctx.signal);
  while (!ctx.signal.aborted) {
    await proc.run({ f: "read" }, () => readLog(client, o, run));
    await pause(o.readIntervalMs, ctx.signal);
  }
}

/** Tries a whole-log read until one succeeds or `finalReadMs` passes; every try is recorded. */
async function finalRead(ctx: WorkloadContext, o: Required<AppendWorkloadOptions>, proc: ClientProcess, client: LedgerClient, run: string): Promise<void> {
  const deadline = performance.now() + o.finalReadMs;
  const never = new AbortController().signal;
  for (let tries = 0; tries < 1000 && performance.now() < deadline; tries++) {
    const done = await proc.run({ f: "read" }, () => readLog(client, o, run));
    if (done.type === "ok") return;
    await client.findLeader().catch(() => null);
    await pause(200, never);
  }
}

/** One whole-log read: ReadIndex at the leader, then Get 1..R from the replica that answered. */
async function readLog(client: LedgerClient, o: Required<AppendWorkloadOptions>, run: string): Promise<Completion> {
  let readIndex: number;
  let endpoint: string;
  try {
    readIndex = (await client.read(0)).readIndex;
    endpoint = client.leaderAddress;
  } catch (err) {
    // A read changes nothing, so a read that got no answer is simply a failed read.
    return { type: "fail", error: `read index: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (readIndex > o.readEntriesMax) return { type: "fail", error: `the log holds ${readIndex} entries, more than readEntriesMax (${o.readEntriesMax})` };
  const entries: Json[] = [];
  const fetched: (LedgerEntry | null)[] = new Array<LedgerEntry | null>(readIndex).fill(null);
  let next = 1;
  let failure: string | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next <= readIndex) {
      const index = next++;
      try {
        fetched[index - 1] = await client.get(index, { endpoint });
      } catch (err) {
        failure = `get ${index} from ${endpoint}: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.readConcurrency, Math.max(1, readIndex)) }, worker));
  if (failure !== null) return { type: "fail", error: failure };
  for (const e of fetched) {
    if (e === null) return { type: "fail", error: "internal: an index was not fetched" };
    const payload = entryPayload(run, e);
    if (payload !== null) entries.push({ index: e.index, value: payload });
  }
  return { type: "ok", value: entries };
}
