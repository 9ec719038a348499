import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CorpusHistory, CorpusMode, ExpectedVerdict } from "./corpus.js";
import { modelNames } from "./models.js";

/**
 * The file side of the corpus (the only I/O in this folder besides the CLI): the hand-made
 * histories in corpus/, listed with their expected verdicts in corpus/manifest.json, and writing a
 * generated corpus out as files so that `dledger check` can be timed on it.
 */

/** A corpus manifest that does not describe its files. */
export class CorpusError extends Error {
  override readonly name = "CorpusError";
}

/** corpus/ in the source tree, found from this module whether it runs from source or from dist/. */
export function defaultCorpusDir(): string | null {
  const here = fileURLToPath(new URL(".", import.meta.url));
  for (const candidate of [join(here, "corpus"), join(here, "..", "..", "..", "chaos", "checkers", "corpus")]) {
    if (existsSync(join(candidate, "manifest.json"))) return candidate;
  }
  return null;
}

const modes: ReadonlySet<string> = new Set([...modelNames, "append"]);
const verdicts: ReadonlySet<string> = new Set(["linearizable", "not-linearizable", "valid", "invalid"]);

/** Reads manifest.json and every history it lists. */
export function loadCorpusDir(dir: string): CorpusHistory[] {
  const manifestPath = join(dir, "manifest.json");
  let entries: unknown;
  try {
    entries = JSON.parse(readFileSync(manifestPath, "utf8"));
  } catch (err) {
    throw new CorpusError(`cannot read ${manifestPath}: ${(err as Error).message}`, { cause: err });
  }
  if (!Array.isArray(entries)) throw new CorpusError(`${manifestPath} must hold an array`);
  return entries.map((raw: unknown, i: number) => {
    const e = raw as { file?: unknown; mode?: unknown; init?: unknown; expected?: unknown; anomaly?: unknown };
    if (typeof e.file !== "string" || typeof e.mode !== "string" || !modes.has(e.mode) || typeof e.expected !== "string" || !verdicts.has(e.expected)) {
      throw new CorpusError(`${manifestPath} entry ${i} needs "file", a "mode" in ${[...modes].join("|")} and an "expected" verdict; got ${JSON.stringify(raw)}`);
    }
    const init = e.init === undefined ? null : e.init;
    if (init !== null && typeof init !== "string" && typeof init !== "number" && typeof init !== "boolean") {
      throw new CorpusError(`${manifestPath} entry ${i}: "init" must be a JSON scalar`);
    }
    const history: CorpusHistory = {
      name: e.file,
      mode: e.mode as CorpusMode,
      init,
      expected: e.expected as ExpectedVerdict,
      text: readFileSync(join(dir, e.file), "utf8"),
    };
    return typeof e.anomaly === "string" ? { ...history, anomaly: e.anomaly } : history;
  });
}

/** Writes histories as `<name>.jsonl` plus a manifest.json that loadCorpusDir reads back. */
export function writeCorpusDir(dir: string, histories: readonly CorpusHistory[]): void {
  mkdirSync(dir, { recursive: true });
  const manifest = histories.map((h) => {
    const file = `${h.name}.jsonl`;
    writeFileSync(join(dir, file), h.text);
    return { file, mode: h.mode, init: h.init, expected: h.expected, ...(h.anomaly === undefined ? {} : { anomaly: h.anomaly }) };
  });
  writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifest, null, 1) + "\n");
}
