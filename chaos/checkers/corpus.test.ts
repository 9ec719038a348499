import { describe, expect, it } from "vitest";
import { appendHistories } from "./corpus_append.js";
import { corpusParams, registerHistories } from "./corpus.js";
import { defaultCorpusDir, loadCorpusDir } from "./corpus_files.js";
import { generatedCorpus, runCorpus } from "./corpus_run.js";

/** Seeds of the generated corpus in the test: each yields one valid history and up to four corrupted ones. */
const seedCount = 60;

describe("the generator", () => {
  it("is deterministic per seed", () => {
    for (const seed of [0, 1, 2, 3, 9]) {
      const params = corpusParams(seed);
      const make = params.mode === "append" ? appendHistories : registerHistories;
      expect(make(params).map((h) => h.text)).toEqual(make(params).map((h) => h.text));
    }
  });
  it("plants every kind of corruption many times over the corpus", () => {
    const counts = new Map<string, number>();
    for (const h of generatedCorpus(seedCount)) {
      const kind = /-seed\d+-(.+)$/.exec(h.name)?.[1] ?? "valid";
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    expect(counts.get("valid")).toBe(seedCount);
    for (const kind of ["stale-read", "lost-write", "phantom-read", "duplicate-append", "lost-append", "unexpected-append", "reordered-append"]) {
      expect(counts.get(kind) ?? 0, kind).toBeGreaterThanOrEqual(10);
    }
    expect(counts.get("cas-twice") ?? 0).toBeGreaterThanOrEqual(5);
  });
});

describe("the corpus", () => {
  it("has at least 100 histories and every verdict is decided correctly", () => {
    const dir = defaultCorpusDir();
    expect(dir).not.toBeNull();
    const handMade = loadCorpusDir(dir as string);
    expect(handMade.length).toBeGreaterThanOrEqual(11);
    const histories = [...handMade, ...generatedCorpus(seedCount)];
    expect(histories.length).toBeGreaterThanOrEqual(100);
    // Durations are not asserted (`dledger check-corpus` reports them); a generous limit only
    // keeps a regression from hanging the test, and would show up as a wrong "unknown".
    const summary = runCorpus(histories, () => performance.now(), 60_000);
    const wrong = summary.wrong.map((r) => `${r.history.name}: expected ${r.history.expected}, got ${r.outcome.summary}`);
    expect(wrong).toEqual([]);
    const expected = new Set(histories.map((h) => h.expected));
    expect([...expected].sort()).toEqual(["invalid", "linearizable", "not-linearizable", "valid"]);
  }, 120_000);

  it("names the planted operation in the report of a hand-made stale read", () => {
    const stale = loadCorpusDir(defaultCorpusDir() as string).find((h) => h.name === "stale_read.bad.jsonl");
    expect(stale).toBeDefined();
    const r = runCorpus([stale as NonNullable<typeof stale>], () => 0).results[0];
    expect(r?.outcome.details[0]).toBe("could not linearize line 5 (process 2) read -> 1, ok on line 6");
  });
});
