import type { Command } from "commander";
import { registerStorageBench } from "./storage/storage_command.js";

/** Registers the benchmarks owned by bench/ under `dledger bench`. */
export function registerBenchCommands(program: Command, groups: { readonly bench: Command }): void {
  void program;
  registerStorageBench(groups.bench);
}
