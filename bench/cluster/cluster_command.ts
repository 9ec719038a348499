import type { Command } from "commander";
import { int, intList, positive } from "../common/latency.js";
import { runClusterBench } from "./cluster_bench.js";
import { appendRpcOption } from "./ledger_load.js";

interface Flags {
  clients: number;
  entryBytes: number;
  duration: number;
  warmup: number;
  rate?: number;
  sweep?: number[];
  halfPeak: boolean;
  reps: number;
  endpoints?: string;
  batch: number;
  channels: number;
  appendRpc: string;
  callTimeoutMs: number;
  replicaNodeOptions?: string;
  keepDir?: boolean;
  soak?: number;
  out?: string;
}

/** `dledger bench cluster`: acknowledged appends/s and latency of a 3-replica group. */
export function registerClusterBench(bench: Command): void {
  bench
    .command("cluster")
    .description("acknowledged 1 KiB appends against a 3-replica group (own child processes or --endpoints): closed loop, open loop (--rate) or a sweep")
    .option("--clients <n>", "closed loop: appends in flight", int("clients", 1), 256)
    .option("--entry-bytes <n>", "entry body size", int("entry-bytes", 1), 1024)
    .option("--duration <s>", "measured seconds per level", positive("duration"), 8)
    .option("--warmup <s>", "unmeasured seconds before each level", positive("warmup"), 1.5)
    .option("--rate <n>", "open loop: offered appends/s (latency from each scheduled arrival)", int("rate", 1))
    .option("--sweep <list>", "closed loop at each concurrency (e.g. 1,16,64,256,1024,4096), then open loop at 50% of the peak", intList("sweep"))
    .option("--no-half-peak", "with --sweep: skip the open-loop run at 50% of the peak")
    .option("--reps <n>", "repetitions, each on a fresh group; figures are medians", int("reps", 1), 1)
    .option("--endpoints <list>", "target an existing group (client host:port list) instead of starting one")
    .option("--batch <n>", "appends per producer call at most (≤ 64)", int("batch", 1), 32)
    .option("--channels <n>", "gRPC connections to the leader (one AppendSession each)", int("channels", 1), 4)
    .option("--append-rpc <how>", "session: AppendSession streams; calls: an AppendStream call per batch, unary Append for one", "session")
    .option("--call-timeout-ms <n>", "deadline of one call", int("call-timeout-ms", 1), 5000)
    .option("--replica-node-options <flags>", "node flags for the replica processes (e.g. \"--cpu-prof --cpu-prof-dir=/tmp/prof\"; NODE_OPTIONS refuses --cpu-prof)")
    .option("--keep-dir", "keep the group's directory (configs, logs, data) after the run")
    .option("--soak <s>", "a steady open-loop run of <s> seconds at --rate (default 5000/s); reports elections and leader changes from /metrics", positive("soak"))
    .option("--out <file>", "JSON report path (default: <tmp>/dledger-bench-cluster-<time>.json)")
    .action(async (f: Flags) => {
      if (f.batch > 64) throw new Error(`--batch (${f.batch}) must be ≤ 64, the server's per-client dedup window`);
      if (f.soak !== undefined && f.sweep !== undefined) throw new Error("--soak and --sweep exclude each other");
      const endpoints = f.endpoints?.split(",").map((s) => s.trim()).filter((s) => s !== "");
      const soak = f.soak === undefined ? {} : { duration: f.soak, rate: f.rate ?? 5000 };
      await runClusterBench(
        {
          clients: f.clients,
          entryBytes: f.entryBytes,
          duration: f.duration,
          warmup: f.warmup,
          halfPeak: f.halfPeak,
          reps: f.reps,
          batch: f.batch,
          channels: f.channels,
          appendRpc: appendRpcOption(f.appendRpc),
          callTimeoutMs: f.callTimeoutMs,
          keepDir: f.keepDir === true,
          ...(f.rate === undefined ? {} : { rate: f.rate }),
          ...(f.sweep === undefined ? {} : { sweep: f.sweep }),
          ...(endpoints === undefined ? {} : { endpoints }),
          ...(f.replicaNodeOptions === undefined ? {} : { replicaNodeOptions: f.replicaNodeOptions }),
          ...(f.out === undefined ? {} : { out: f.out }),
          ...soak,
        },
        (line) => process.stdout.write(`${line}\n`),
      );
    });
}
