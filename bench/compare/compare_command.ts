import type { Command } from "commander";
import { int, intList, positive } from "../common/latency.js";
import { runCompareBench } from "./compare_bench.js";
import { appendRpcOption } from "../cluster/ledger_load.js";

interface Flags {
  entryBytes: number;
  duration: number;
  warmup: number;
  levels: number[];
  peerLevels: number[];
  batch: number;
  channels: number;
  appendRpc: string;
  only?: string;
  out?: string;
}

/** `dledger bench compare`: dledger vs etcd, RabbitMQ quorum queues and NATS JetStream, in one run. */
export function registerCompareBench(bench: Command): void {
  bench
    .command("compare")
    .description("the same 1 KiB acknowledged-write sweep against dledger, etcd, RabbitMQ and NATS JetStream (each when installed), side by side")
    .option("--entry-bytes <n>", "write size", int("entry-bytes", 1), 1024)
    .option("--duration <s>", "measured seconds per level", positive("duration"), 6)
    .option("--warmup <s>", "unmeasured seconds before each level", positive("warmup"), 1.5)
    .option("--levels <list>", "dledger's in-flight levels", intList("levels"), [1, 16, 64, 256, 1024])
    .option("--peer-levels <list>", "the peers' in-flight levels (../shared/anchors used 1,16,64,256; RabbitMQ and NATS still gain at 1024)", intList("peer-levels"), [1, 16, 64, 256, 1024])
    .option("--batch <n>", "dledger: appends per producer call at most (≤ 64)", int("batch", 1), 32)
    .option("--channels <n>", "dledger: gRPC connections to the leader (one AppendSession each)", int("channels", 1), 4)
    .option("--append-rpc <how>", "dledger: session (AppendSession streams) or calls (AppendStream per batch, unary for one)", "session")
    .option("--only <list>", "run only these systems (dledger,etcd,rabbitmq,nats)")
    .option("--out <file>", "JSON report path (default: <tmp>/dledger-bench-compare-<time>.json)")
    .action(async (f: Flags) => {
      const only = f.only?.split(",").map((s) => s.trim());
      await runCompareBench(
        { entryBytes: f.entryBytes, duration: f.duration, warmup: f.warmup, levels: f.levels, peerLevels: f.peerLevels, batch: f.batch, channels: f.channels, appendRpc: appendRpcOption(f.appendRpc), ...(only === undefined ? {} : { only }), ...(f.out === undefined ? {} : { out: f.out }) },
        (line) => process.stdout.write(`${line}\n`),
      );
    });
}
