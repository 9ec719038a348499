import type { Command } from "commander";
import { int } from "../common/latency.js";
import { runFailoverBench } from "./failover_bench.js";
import { appendRpcOption } from "../cluster/ledger_load.js";

interface Flags {
  kills: number;
  writers: number;
  entryBytes: number;
  attemptTimeoutMs: number;
  appendRpc: string;
  failoverWaitMs: number;
  settleMs: number;
  replicaNodeOptions?: string;
  keepDir?: boolean;
  out?: string;
}

/** `dledger bench failover`: kill -9 the leader under load; kill → first new-term ack. */
export function registerFailoverBench(bench: Command): void {
  bench
    .command("failover")
    .description("SIGKILL the leader of a 3-replica group under steady load, --kills times: kill → first acknowledged append on the new leader")
    .option("--kills <n>", "leader kills", int("kills", 1), 20)
    .option("--writers <n>", "concurrent writers (one append each at a time)", int("writers", 1), 8)
    .option("--append-rpc <how>", "session (AppendSession streams) or calls (unary Append)", "session")
    .option("--entry-bytes <n>", "entry body size", int("entry-bytes", 1), 1024)
    .option("--attempt-timeout-ms <n>", "per-attempt deadline (jittered 0.5–1.5×)", int("attempt-timeout-ms", 1), 100)
    .option("--failover-wait-ms <n>", "give up on a kill after this long", int("failover-wait-ms", 100), 10_000)
    .option("--settle-ms <n>", "steady load before each kill", int("settle-ms", 0), 500)
    .option("--replica-node-options <flags>", "node flags for the replica processes (e.g. --cpu-prof)")
    .option("--keep-dir", "keep the group's directory after the run")
    .option("--out <file>", "JSON report path (default: <tmp>/dledger-bench-failover-<time>.json)")
    .action(async (f: Flags) => {
      await runFailoverBench(
        {
          kills: f.kills,
          writers: f.writers,
          entryBytes: f.entryBytes,
          attemptTimeoutMs: f.attemptTimeoutMs,
          appendRpc: appendRpcOption(f.appendRpc),
          failoverWaitMs: f.failoverWaitMs,
          settleMs: f.settleMs,
          keepDir: f.keepDir === true,
          ...(f.replicaNodeOptions === undefined ? {} : { replicaNodeOptions: f.replicaNodeOptions }),
          ...(f.out === undefined ? {} : { out: f.out }),
        },
        (line) => process.stdout.write(`${line}\n`),
      );
    });
}
