import type { Command } from "commander";
import { registerClusterBench } from "./cluster/cluster_command.js";
import { registerCompareBench } from "./compare/compare_command.js";
import { registerFailoverBench } from "./failover/failover_command.js";
import { registerStorageBench } from "./storage/storage_command.js";

/** Registers the benchmarks owned by bench/ under `dledger bench`. */
export function registerBenchCommands(program: Command, groups: { readonly bench: Command }): void {
  void program;
  registerStorageBench(groups.bench);
  registerClusterBench(groups.bench);
  registerFailoverBench(groups.bench);
  registerCompareBench(groups.bench);
}
