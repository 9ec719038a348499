import { resolve } from "node:path";
import { type Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { nemesisFamilies, type NemesisFamily } from "./contracts.js";
import { ClusterSetupError, chooseClusterMode, createChaosCluster, insideNetnsFlag, runInsideChaosNetwork } from "./cluster.js";
import { type ChaosRunDeps, RunExit, runChaos } from "./runner.js";
import { faultFamily, faultKinds, type FaultKind } from "./nemesis.js";
import { loadNemesisFactory } from "./runner_nemesis.js";
import { workloadNames } from "./workload_registry.js";

/**
 * `dledger chaos`: one Jepsen-style run against real replica processes (runner.ts). In netns mode
 * the command runs twice: the outer process builds the test network and re-executes the same
 * command inside the coordinator's namespace (cluster.ts runInsideChaosNetwork), with the seed
 * and output directory fixed so both halves agree; the inner process does the run.
 *
 * Exit codes: 0 valid, 1 a violation, 2 unknown, 3 bad input or a harness failure.
 */

interface ChaosCliOptions {
  readonly workload: string;
  readonly nemesis: string;
  readonly timeLimit: number;
  readonly seed?: number;
  readonly out?: string;
  readonly nodes: number;
  readonly netns: boolean;
  readonly insideNetns?: string;
  readonly requestTimeout: number;
  readonly fault?: FaultKind;
  readonly faults?: number;
}

/** Families that need network namespaces; in process-only mode asking for them is refused up front. */
const networkFamilies: readonly NemesisFamily[] = ["partition", "netem"];
const timeLimitMaxS = 86_400;

/** A usage error: exits 3 like any other bad input. */
class UsageError extends Error {
  override readonly name = "UsageError";
}

export function parseNemesisSpec(spec: string): { families: NemesisFamily[]; all: boolean } {
  const parts = spec
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (parts.length === 0) throw new InvalidArgumentError(`must name at least one of ${nemesisFamilies.join(", ")} or all`);
  if (parts.includes("all")) {
    if (parts.length > 1) throw new InvalidArgumentError(`"all" cannot be combined with other families, got ${JSON.stringify(spec)}`);
    return { families: [...nemesisFamilies], all: true };
  }
  const unknown = parts.filter((p) => !(nemesisFamilies as readonly string[]).includes(p));
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown nemesis ${unknown.map((u) => JSON.stringify(u)).join(", ")}; known: ${nemesisFamilies.join(", ")}, all`);
  return { families: [...new Set(parts)] as NemesisFamily[], all: false };
}

function intIn(lo: number, hi: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`must be an integer in [${lo}, ${hi}], got ${value}`);
    return n;
  };
}

function parseNodes(value: string): number {
  if (value !== "1" && value !== "3" && value !== "5") throw new InvalidArgumentError(`must be 1, 3 or 5, got ${value}`);
  return Number(value);
}

export function registerChaosCommand(program: Command, _groups: { readonly bench: Command }): void {
  program
    .command("chaos")
    .description("run a Jepsen-style chaos test against real replica processes and check the history")
    .requiredOption("--workload <name>", `the workload: ${workloadNames.join(" | ")}`)
    .option("--nemesis <families>", `comma-separated fault families (${nemesisFamilies.join(", ")}) or all`, "all")
    .option("--time-limit <s>", "seconds of faults and load", intIn(1, timeLimitMaxS), 60)
    .option("--seed <s>", "seed of the nemesis schedule and the workload (random when absent; printed)", intIn(0, Number.MAX_SAFE_INTEGER))
    .option("--out <dir>", "where history.jsonl, report.html, report.json, summary.txt and the replicas' logs go")
    .option("--nodes <n>", "replicas: 1, 3 or 5", parseNodes, 3)
    .option("--no-netns", "process faults only (no network namespaces, no partitions or netem)")
    .addOption(new Option("--fault <kind>", "repeat one fault kind instead of mixing families (e.g. isolate-leader)").choices([...faultKinds]))
    .option("--faults <n>", "stop after this many faults (the run then ends early)", intIn(1, 100_000))
    .option("--request-timeout <ms>", "client request timeout; an unanswered request is recorded as info", intIn(50, 60_000), 1000)
    .addOption(new Option(`${insideNetnsFlag} <runId>`, "internal: the inner half of a netns run").hideHelp())
    .exitOverride(usageExitsThree)
    .action(async (opts: ChaosCliOptions) => {
      process.exitCode = await chaosAction(opts);
    });
}

function usageExitsThree(err: CommanderError): never {
  if (err.code === "commander.helpDisplayed" || err.code === "commander.version") throw err;
  throw new CommanderError(RunExit.harness, err.code, err.message);
}

const print = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

async function chaosAction(opts: ChaosCliOptions): Promise<number> {
  try {
    return await chaos(opts);
  } catch (err) {
    const bad = err instanceof UsageError || err instanceof InvalidArgumentError || err instanceof RangeError || err instanceof ClusterSetupError;
    process.stderr.write(`dledger chaos: ${err instanceof Error ? (bad ? err.message : (err.stack ?? err.message)) : String(err)}\n`);
    return RunExit.harness;
  }
}

async function chaos(opts: ChaosCliOptions): Promise<number> {
  if (!workloadNames.includes(opts.workload)) throw new UsageError(`--workload must be one of ${workloadNames.join(", ")}; got ${JSON.stringify(opts.workload)}`);
  const spec = parseNemesisSpec(opts.nemesis);
  // --fault names one kind; its family is what the run needs (and what process-only mode may refuse).
  const { families, all } = opts.fault === undefined ? spec : { families: [faultFamily[opts.fault]], all: false };
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 31);
  const out = resolve(opts.out ?? `chaos-runs/${new Date().toISOString().replace(/[:.]/g, "-")}-${opts.workload}-s${seed}`);
  let modeNote: string | null = null;
  if (opts.insideNetns === undefined) {
    const choice = chooseClusterMode(opts.netns ? "auto" : "process");
    if (choice.mode === "netns") {
      const argv = ["chaos", "--workload", opts.workload, "--nemesis", opts.nemesis, "--time-limit", String(opts.timeLimit), "--seed", String(seed), "--out", out];
      argv.push("--nodes", String(opts.nodes), "--request-timeout", String(opts.requestTimeout));
      if (opts.fault !== undefined) argv.push("--fault", opts.fault);
      if (opts.faults !== undefined) argv.push("--faults", String(opts.faults));
      return await runInsideChaosNetwork({ replicas: opts.nodes, argv, print });
    }
    modeNote = choice.reason ?? "process-only mode";
    const needNet = all ? [] : families.filter((f) => networkFamilies.includes(f));
    if (needNet.length > 0) {
      throw new UsageError(`--nemesis ${needNet.join(",")} needs network namespaces, which are unavailable: ${modeNote}. Run as root with iproute2 and nftables installed, without --no-netns, or leave ${needNet.join(",")} out.`);
    }
  }
  const createNemesis = await loadNemesisFactory();
  const deps: ChaosRunDeps = {
    createCluster: (o) => createChaosCluster({ ...o, ...(opts.insideNetns === undefined ? { mode: "process" as const } : { insideNetns: opts.insideNetns }) }),
    createNemesis,
  };
  const result = await runChaos(
    {
      workload: opts.workload,
      families,
      all,
      ...(opts.fault === undefined ? {} : { only: opts.fault }),
      ...(opts.faults === undefined ? {} : { faultsMax: opts.faults }),
      timeLimitMs: opts.timeLimit * 1000, seed, outDir: out, replicas: opts.nodes, modeNote, requestTimeoutMs: opts.requestTimeout },
    deps,
    { print, progress: { isTTY: process.stderr.isTTY === true, columns: process.stderr.columns, write: (t) => process.stderr.write(t) } },
  );
  return result.exitCode;
}
