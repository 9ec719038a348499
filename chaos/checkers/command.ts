import { readFileSync } from "node:fs";
import { type Command, CommanderError } from "commander";
import { type CheckMode, ExitCode, type FileOutcome, checkText, worstExitCode } from "./check_run.js";
import { loadCorpusDir, defaultCorpusDir, writeCorpusDir } from "./corpus_files.js";
import { corpusSummaryLine, generatedCorpus, runCorpus } from "./corpus_run.js";
import { HistoryError } from "./history.js";
import { type Scalar, modelNames, parseInit } from "./models.js";

/**
 * `dledger check`: decides recorded histories (JSON lines, see history.ts) and exits
 * 0 linearizable / valid, 1 a violation, 2 unknown (time or memory limit; or, for the append
 * workload, no final read), 3 bad input. With one file the last line printed is the verdict, first
 * word first; with several, one line `<file> <verdict> <ms>` each (details go to stderr) and the
 * exit code is the worst (1 > 3 > 2 > 0: a proven violation matters most).
 *
 * `dledger check-corpus`: generates the seeded corpus (corpus.ts), adds the hand-made histories of
 * corpus/, checks all of them and prints the total and worst checking time.
 */

interface CheckCliOptions {
  readonly model?: string;
  readonly workload?: string;
  readonly init?: string;
  readonly timeLimit: string;
}

interface CorpusCliOptions {
  readonly seeds: string;
  readonly dir?: string;
  readonly handMade: boolean;
  readonly out?: string;
  readonly timeLimit: string;
}

const timeLimitDefaultS = "60";
const seedsDefault = "60";
const seedsMax = 100_000;

/** A usage error: exits 3 like any other bad input. */
class UsageError extends Error {
  override readonly name = "UsageError";
}

export function registerCheckCommand(program: Command, _groups: { readonly bench: Command }): void {
  program
    .command("check")
    .description("check recorded histories: linearizability (WGL) for a model, or the append workload")
    .argument("<history...>", "history files, JSON lines")
    .option("--model <model>", `register | cas-register | kv | append`)
    .option("--workload <workload>", "append: the append workload's checker (same as --model append)")
    .option("--init <json>", "the value of every key before any write (default null)")
    .option("--time-limit <s>", "seconds per history before the answer becomes unknown", timeLimitDefaultS)
    .exitOverride(usageExitsThree)
    .action((files: string[], opts: CheckCliOptions) => {
      process.exitCode = runCheck(files, opts);
    });
  program
    .command("check-corpus")
    .description("check the seeded corpus and the hand-made histories; print the total and worst checking time")
    .option("--seeds <n>", "generated runs (each a valid history plus corrupted variants)", seedsDefault)
    .option("--dir <dir>", "hand-made corpus directory with a manifest.json (default: chaos/checkers/corpus)")
    .option("--no-hand-made", "only the generated corpus")
    .option("--out <dir>", "also write the generated histories and a manifest.json there")
    .option("--time-limit <s>", "seconds per history", timeLimitDefaultS)
    .exitOverride(usageExitsThree)
    .action((opts: CorpusCliOptions) => {
      process.exitCode = runCorpusCommand(opts);
    });
}

/** Commander's own usage errors (unknown option, missing argument) are bad input too: exit 3. */
function usageExitsThree(err: CommanderError): never {
  if (err.exitCode === 0) throw err; // --help
  throw new CommanderError(ExitCode.badInput, err.code, err.message);
}

function parseSeconds(text: string, what: string): number {
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0) throw new UsageError(`${what} must be a positive number of seconds, got ${text}`);
  return s * 1000;
}

function parseMode(opts: CheckCliOptions): CheckMode {
  if (opts.workload !== undefined && opts.workload !== "append") throw new UsageError(`--workload must be append, got ${opts.workload}; use --model for registers`);
  if (opts.workload === "append" && opts.model !== undefined && opts.model !== "append") {
    throw new UsageError(`--workload append and --model ${opts.model} disagree`);
  }
  const mode = opts.workload ?? opts.model;
  if (mode === undefined) throw new UsageError(`--model (${modelNames.join(" | ")} | append) or --workload append is required`);
  if (mode !== "append" && !(modelNames as readonly string[]).includes(mode)) {
    throw new UsageError(`--model must be one of ${modelNames.join(", ")}, append; got ${mode}`);
  }
  return mode as CheckMode;
}

function runCheck(files: readonly string[], opts: CheckCliOptions): ExitCode {
  let mode: CheckMode;
  let init: Scalar;
  let timeLimitMs: number;
  try {
    mode = parseMode(opts);
    init = opts.init === undefined ? null : parseInit(opts.init);
    timeLimitMs = parseSeconds(opts.timeLimit, "--time-limit");
  } catch (err) {
    if (!(err instanceof UsageError) && !(err instanceof HistoryError)) throw err;
    console.error(`dledger check: ${err.message}`);
    console.log("bad-input");
    return ExitCode.badInput;
  }
  const outcomes = files.map((file) => ({ file, outcome: checkFile(file, { mode, init, timeLimitMs, nowMs: () => performance.now() }) }));
  if (outcomes.length === 1) {
    const { outcome } = outcomes[0] as { outcome: FileOutcome };
    for (const line of outcome.details) console.log(line);
    console.log(`${outcome.summary}; ${outcome.elapsedMs.toFixed(1)} ms`);
  } else {
    for (const { file, outcome } of outcomes) {
      for (const line of outcome.verdict === "bad-input" ? [outcome.summary] : outcome.details) console.error(`${file}: ${line}`);
      console.log(`${file} ${outcome.verdict} ${Math.round(outcome.elapsedMs)}`);
    }
  }
  return worstExitCode(outcomes.map((o) => o.outcome.exitCode));
}

function checkFile(file: string, options: Parameters<typeof checkText>[1]): FileOutcome {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    return {
      verdict: "bad-input",
      exitCode: ExitCode.badInput,
      details: [],
      summary: `bad-input: cannot read ${file}: ${(err as Error).message}`,
      elapsedMs: 0,
      linearizability: null,
      appends: null,
      failover: null,
    };
  }
  return checkText(text, options);
}

function runCorpusCommand(opts: CorpusCliOptions): ExitCode {
  let seeds: number;
  let timeLimitMs: number;
  try {
    seeds = Number(opts.seeds);
    if (!Number.isSafeInteger(seeds) || seeds < 0 || seeds > seedsMax) throw new UsageError(`--seeds must be an integer in [0, ${seedsMax}], got ${opts.seeds}`);
    timeLimitMs = parseSeconds(opts.timeLimit, "--time-limit");
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`dledger check-corpus: ${err.message}`);
    return ExitCode.badInput;
  }
  const generated = generatedCorpus(seeds);
  if (opts.out !== undefined) writeCorpusDir(opts.out, generated);
  const dir = opts.handMade ? (opts.dir ?? defaultCorpusDir()) : null;
  if (opts.handMade && dir === null) console.error("dledger check-corpus: no hand-made corpus directory found; checking the generated corpus only");
  const histories = dir === null ? generated : [...loadCorpusDir(dir), ...generated];
  const summary = runCorpus(histories, () => performance.now(), timeLimitMs);
  for (const r of summary.wrong) console.log(`WRONG ${r.history.name}: expected ${r.history.expected}, got ${r.outcome.summary}`);
  console.log(corpusSummaryLine(summary));
  return summary.wrong.length === 0 ? ExitCode.ok : ExitCode.violation;
}
