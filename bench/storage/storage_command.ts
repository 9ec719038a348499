import type { Command } from "commander";
import { runStorageBench, type StorageBenchOptions } from "./storage_bench.js";

function int(name: string, lo: number): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < lo) throw new Error(`--${name} (${JSON.stringify(v)}) must be an integer ≥ ${lo}`);
    return n;
  };
}

/** `dledger bench storage`: CommitLog append/fsync throughput and latency vs the raw floor. */
export function registerStorageBench(bench: Command): void {
  bench
    .command("storage")
    .description("CommitLog append+fsync throughput/latency, recovery time, and the raw append+fdatasync floor, in one run")
    .option("--entry-bytes <n>", "entry body size", int("entry-bytes", 1), 1024)
    .option("--batch <n>", "entries per append+sync", int("batch", 1), 64)
    .option("--duration <s>", "seconds per measured phase (split in alternating rounds)", int("duration", 1), 6)
    .option("--rounds <n>", "alternating floor/storage rounds per phase", int("rounds", 1), 3)
    .option("--dir <d>", "directory to benchmark in (a fresh subdirectory is made and removed)")
    .option("--recovery-bytes <n>", "log size for the reopen measurement (0 skips it)", int("recovery-bytes", 0), 1024 * 1024 * 1024)
    .option("--kill <mode>", "how the unclean reopen is produced: child (SIGKILL a writer process) or inprocess", "child")
    .option("--out <file>", "JSON report path (default: <tmp>/dledger-bench-storage-<time>.json)")
    .action(async (opts: StorageBenchOptions) => {
      if (opts.kill !== "child" && opts.kill !== "inprocess") throw new Error(`--kill (${JSON.stringify(opts.kill)}) must be child or inprocess`);
      await runStorageBench(opts, (line) => process.stdout.write(`${line}\n`));
    });
}
