import { assert } from "../../raft/base/assert.js";
import { Prng } from "../../raft/base/prng.js";
import { type CorpusHistory, type Ev, type GenOp, type GeneratorParams, Run, type Thread } from "./corpus.js";

/**
 * The append workload's generator (see corpus.ts for the method): appends take effect at a random
 * moment between invoke and completion and get the next log index; some reads see the log as it
 * was at their own linearization point; a final read returns the whole log. In the paired form
 * (`{index, value}` entries) the log has gaps, as no-op entries leave in a Raft log; in the dense
 * form it is a plain array of payloads and index = position + 1.
 */

interface LogEntry {
  readonly index: number;
  readonly value: string;
}

interface AppendRun {
  readonly run: Run;
  readonly paired: boolean;
  readonly log: LogEntry[];
  /** Index of the final read's ok event. */
  readonly finalAt: number;
}

function runAppends(params: GeneratorParams): AppendRun {
  const run = new Run(new Prng(params.seed), params);
  const paired = params.seed % 8 !== 3;
  const log: LogEntry[] = [];
  const snapshots = new Map<GenOp, LogEntry[]>();
  let lastIndex = 0;
  const apply = (op: GenOp): void => {
    op.applied = true;
    if (op.f === "read") {
      snapshots.set(op, [...log]);
      return;
    }
    lastIndex += paired && run.prng.chance(0.1) ? 2 : 1;
    log.push({ index: lastIndex, value: op.value as string });
    op.result = lastIndex;
  };
  const shape = (entries: readonly LogEntry[]): unknown => (paired ? entries : entries.map((e) => e.value));
  let invoked = 0;
  while (invoked < params.ops || run.threads.some((t) => t.op !== null)) {
    run.maybeLateEffect(apply);
    const t = run.prng.pick(run.threads);
    if (t.op === null) {
      if (invoked >= params.ops) continue;
      invoked++;
      const read = run.prng.chance(0.05);
      run.invoke(t, read ? { f: "read", key: null, value: null } : { f: "append", key: null, value: `e${++run.fresh}` });
    } else if (!t.op.applied) run.pendingStep(t, apply);
    else if (run.prng.chance(params.crashP)) run.complete(t, "info");
    else if (t.op.f === "read") run.complete(t, "ok", { value: shape(snapshots.get(t.op) ?? []) });
    else run.complete(t, "ok", { index: t.op.result });
  }
  const reader: Thread = { process: run.nextProcess++, op: null };
  run.invoke(reader, { f: "read", key: null, value: null });
  run.complete(reader, "ok", { value: shape(log) });
  return { run, paired, log, finalAt: run.events.length - 1 };
}

/** The valid history and its corrupted variants, each with the anomaly it must produce. */
export function appendHistories(params: GeneratorParams): CorpusHistory[] {
  assert(params.mode === "append", "appendHistories: mode must be append");
  const a = runAppends(params);
  const base = `append-seed${params.seed}`;
  const result: CorpusHistory[] = [{ name: base, mode: "append", init: null, expected: "valid", text: a.run.text() }];
  for (const c of appendCorruptions(a)) {
    result.push({ name: `${base}-${c.name}`, mode: "append", init: null, expected: "invalid", anomaly: c.anomaly, text: a.run.text(c.events) });
  }
  return result;
}

function appendCorruptions(a: AppendRun): { name: string; anomaly: string; events: Ev[] }[] {
  const { run } = a;
  const out: { name: string; anomaly: string; events: Ev[] }[] = [];
  const withFinal = (entries: readonly LogEntry[]): Ev[] => {
    const events = run.events.map((e) => ({ ...e }));
    (events[a.finalAt] as Ev)["value"] = a.paired ? entries : entries.map((e) => e.value);
    return events;
  };
  const acked = run.ops.filter((op) => op.f === "append" && op.outcome === "ok");
  const pick = acked[run.prng.int(0, Math.max(1, acked.length))];
  const last = a.log.at(-1)?.index ?? 0;
  if (pick !== undefined) {
    out.push({ name: "duplicate-append", anomaly: "duplicated", events: withFinal([...a.log, { index: last + 1, value: pick.value as string }]) });
    out.push({ name: "lost-append", anomaly: "lost", events: withFinal(a.log.filter((e) => e.value !== pick.value)) });
  }
  const failed = run.ops.find((op) => op.f === "append" && op.outcome === "fail");
  out.push({ name: "unexpected-append", anomaly: "unexpected", events: withFinal([...a.log, { index: last + 1, value: (failed?.value as string | undefined) ?? "ghost" }]) });
  const pair = realTimePair(acked);
  if (pair !== null) {
    const events = run.events.map((e) => ({ ...e }));
    (events[pair.first.completeAt] as Ev)["index"] = pair.second.result;
    (events[pair.second.completeAt] as Ev)["index"] = pair.first.result;
    out.push({ name: "reordered-append", anomaly: "reordered", events });
  }
  return out;
}

/** Two ok appends where the first completed before the second was invoked. */
function realTimePair(acked: readonly GenOp[]): { first: GenOp; second: GenOp } | null {
  for (const first of acked) {
    const second = acked.find((op) => op.invokeAt > first.completeAt);
    if (second !== undefined) return { first, second };
  }
  return null;
}
