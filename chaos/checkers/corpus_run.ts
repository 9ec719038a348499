import { appendHistories } from "./corpus_append.js";
import { type CorpusHistory, corpusParams, registerHistories } from "./corpus.js";
import { type FileOutcome, checkText } from "./check_run.js";

/**
 * Runs a corpus of histories with known verdicts through the same path as `dledger check`
 * (check_run.ts) and times each one. A history is decided correctly when the verdict is the
 * expected one (and, for a corrupted append history, the planted anomaly is among those found).
 */

/** The generated corpus: seeds [0, seedCount), each a valid history plus its corrupted variants. */
export function generatedCorpus(seedCount: number): CorpusHistory[] {
  const out: CorpusHistory[] = [];
  for (let seed = 0; seed < seedCount; seed++) {
    const params = corpusParams(seed);
    out.push(...(params.mode === "append" ? appendHistories(params) : registerHistories(params)));
  }
  return out;
}

export interface CorpusResult {
  readonly history: CorpusHistory;
  readonly outcome: FileOutcome;
  readonly correct: boolean;
}

export interface CorpusSummary {
  readonly results: readonly CorpusResult[];
  readonly wrong: readonly CorpusResult[];
  readonly totalMs: number;
  readonly worst: CorpusResult | null;
  /** Lines of the whole corpus, for scale. */
  readonly events: number;
}

/** Checks every history; `timeLimitMs` applies to each. */
export function runCorpus(histories: readonly CorpusHistory[], nowMs: () => number, timeLimitMs = Number.POSITIVE_INFINITY): CorpusSummary {
  const results: CorpusResult[] = [];
  let events = 0;
  for (const history of histories) {
    const outcome = checkText(history.text, { mode: history.mode, init: history.init, timeLimitMs, nowMs });
    const anomalyFound = history.anomaly === undefined || (outcome.appends?.counts[history.anomaly as keyof typeof outcome.appends.counts] ?? 0) > 0;
    results.push({ history, outcome, correct: outcome.verdict === history.expected && anomalyFound });
    events += countLines(history.text);
  }
  const worst = results.reduce<CorpusResult | null>((w, r) => (w === null || r.outcome.elapsedMs > w.outcome.elapsedMs ? r : w), null);
  return {
    results,
    wrong: results.filter((r) => !r.correct),
    totalMs: results.reduce((sum, r) => sum + r.outcome.elapsedMs, 0),
    worst,
    events,
  };
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) n++;
  return n;
}

/** One line: `corpus: 212 histories (…), 212 decided correctly; checking took 1234 ms in total, worst 321 ms (name)`. */
export function corpusSummaryLine(s: CorpusSummary): string {
  const byVerdict = new Map<string, number>();
  for (const r of s.results) byVerdict.set(r.history.expected, (byVerdict.get(r.history.expected) ?? 0) + 1);
  const mix = [...byVerdict].map(([v, n]) => `${n} ${v}`).join(", ");
  const worst = s.worst === null ? "" : `, worst ${s.worst.outcome.elapsedMs.toFixed(1)} ms (${s.worst.history.name}, ${countLines(s.worst.history.text)} events)`;
  return `corpus: ${s.results.length} histories (${mix}; ${s.events} events), ${s.results.length - s.wrong.length} decided correctly; checking took ${s.totalMs.toFixed(1)} ms in total${worst}`;
}
