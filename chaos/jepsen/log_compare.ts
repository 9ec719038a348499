import { LedgerClient, LedgerError } from "../../broker/client/ledger_client.js";
import type { LedgerEntry, MetadataResponse } from "../../broker/api/ledger_messages.js";
import type { ChaosNode, NodeId, ReportChecker } from "./contracts.js";

/**
 * The end-of-run comparison of the replicas' logs: Raft's Log Matching and State Machine Safety
 * seen from outside. Once every fault is healed and the replicas have applied the same index,
 * every replica must hold the identical committed prefix: the same term, kind and bytes at every
 * index. A replica that serves a different entry at a committed index (a divergent log, a
 * corrupted entry served) is a violation.
 *
 * Each entry is fetched with Ledger.Get from each replica (any role answers Get for an applied
 * index). The comparison covers [max firstIndex, min appliedIndex], at most `entriesMax` entries
 * (the newest ones when the log is longer; the summary says so).
 */

export interface LogCompareOptions {
  readonly entriesMax?: number;
  /** How long to wait for every replica to apply the same index. */
  readonly convergeMs?: number;
  readonly requestTimeoutMs?: number;
  readonly concurrency?: number;
}

export const logCompareDefaults = { entriesMax: 100_000, convergeMs: 20_000, requestTimeoutMs: 2000, concurrency: 32 } as const;

/** Mismatches described in full; the rest are counted. */
const mismatchesShownMax = 10;

export async function compareReplicaLogs(nodes: readonly ChaosNode[], options: LogCompareOptions = {}): Promise<ReportChecker> {
  const o = { ...logCompareDefaults, ...options };
  const name = "replica logs";
  if (nodes.length < 2) return { name, verdict: "unknown", ok: null, summary: "fewer than two running replicas to compare", details: [] };
  const clients = new Map<NodeId, LedgerClient>(
    nodes.map((n) => [n.id, new LedgerClient({ endpoints: [n.clientAddress], attemptsMax: 3, attemptTimeoutMs: o.requestTimeoutMs, operationTimeoutMs: o.requestTimeoutMs * 3 })]),
  );
  try {
    const meta = await converge(nodes, clients, o.convergeMs);
    if (!meta.ok) return { name, verdict: "unknown", ok: null, summary: meta.why, details: meta.details };
    const applied = Math.min(...meta.value.map((m) => m.appliedIndex));
    const first = Math.max(1, ...meta.value.map((m) => m.firstIndex));
    const lo = Math.max(first, applied - o.entriesMax + 1);
    if (applied < lo) return { name, verdict: "valid", ok: true, summary: `no committed entries to compare (applied ${applied})`, details: [] };
    return await compareRange(nodes, clients, lo, applied, first, o.concurrency);
  } finally {
    for (const c of clients.values()) c.close();
  }
}

type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly why: string; readonly details: string[] };

/** Waits (bounded) until every replica reports the same applied index. */
async function converge(nodes: readonly ChaosNode[], clients: ReadonlyMap<NodeId, LedgerClient>, convergeMs: number): Promise<Result<MetadataResponse[]>> {
  const deadline = performance.now() + convergeMs;
  let last: string[] = [];
  for (let round = 0; round < 10_000; round++) {
    const answers = await Promise.all(nodes.map((n) => (clients.get(n.id) as LedgerClient).metadata({ endpoint: n.clientAddress }).then((m) => m, (e: unknown) => e)));
    const metas = answers.filter((a): a is MetadataResponse => !(a instanceof Error));
    last = nodes.map((n, i) => {
      const a = answers[i];
      return a instanceof Error ? `${n.id}: no metadata (${a.message})` : `${n.id}: applied ${(a as MetadataResponse).appliedIndex}, commit ${(a as MetadataResponse).commitIndex}`;
    });
    if (metas.length === nodes.length) {
      const applied = new Set(metas.map((m) => m.appliedIndex));
      const commit = Math.max(...metas.map((m) => m.commitIndex));
      if (applied.size === 1 && metas[0]?.appliedIndex === commit) return { ok: true, value: metas };
    }
    if (performance.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ok: false, why: `the replicas did not converge on one applied index within ${convergeMs} ms`, details: last };
}

async function compareRange(
  nodes: readonly ChaosNode[],
  clients: ReadonlyMap<NodeId, LedgerClient>,
  lo: number,
  hi: number,
  first: number,
  concurrency: number,
): Promise<ReportChecker> {
  const name = "replica logs";
  const mismatches: string[] = [];
  let mismatchCount = 0;
  let failure: string | null = null;
  let next = lo;
  const worker = async (): Promise<void> => {
    while (failure === null && next <= hi) {
      const index = next++;
      const got: LedgerEntry[] = [];
      for (const n of nodes) {
        try {
          got.push(await (clients.get(n.id) as LedgerClient).get(index, { endpoint: n.clientAddress }));
        } catch (err) {
          failure = `get ${index} from ${n.id}: ${err instanceof LedgerError ? `${err.reason || err.code} ${err.message}` : String(err)}`;
          return;
        }
      }
      const base = got[0] as LedgerEntry;
      for (let i = 1; i < got.length; i++) {
        const other = got[i] as LedgerEntry;
        if (sameEntry(base, other)) continue;
        mismatchCount++;
        if (mismatches.length < mismatchesShownMax) mismatches.push(`index ${index}: ${nodes[0]?.id} has ${describe(base)}, ${nodes[i]?.id} has ${describe(other)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, hi - lo + 1)) }, worker));
  const range = `[${lo}, ${hi}]${lo > first ? ` (the newest ${hi - lo + 1} entries; the log starts at ${first})` : ""}`;
  const replicas = nodes.map((n) => n.id).join(", ");
  if (failure !== null) return { name, verdict: "unknown", ok: null, summary: `could not read every entry of ${range}: ${failure}`, details: mismatches };
  if (mismatchCount > 0) {
    const more = mismatchCount > mismatches.length ? [`... and ${mismatchCount - mismatches.length} more`] : [];
    return { name, verdict: "divergent", ok: false, summary: `${mismatchCount} committed entries differ between replicas in ${range}`, details: [...mismatches, ...more] };
  }
  return { name, verdict: "identical", ok: true, summary: `${replicas} hold identical entries at ${range}`, details: [] };
}

function sameEntry(a: LedgerEntry, b: LedgerEntry): boolean {
  return (
    a.index === b.index &&
    a.term === b.term &&
    a.noop === b.noop &&
    a.clientId === b.clientId &&
    a.sequence === b.sequence &&
    a.duplicateOf === b.duplicateOf &&
    Buffer.from(a.body).equals(Buffer.from(b.body))
  );
}

function describe(e: LedgerEntry): string {
  const body = Buffer.from(e.body).toString("hex");
  return `term ${e.term}${e.noop ? " no-op" : ""} client ${JSON.stringify(e.clientId)}#${e.sequence} body ${body.length > 32 ? `${body.slice(0, 32)}…` : body} (${e.body.byteLength} bytes)`;
}
