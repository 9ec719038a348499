#!/usr/bin/env -S node --initial-old-space-size=256
/**
 * The `dledger` binary. This is the composition root: the one place allowed to reach into chaos/
 * and bench/ (lazily, so that `dledger start` never loads the simulator). Each tool registers its
 * own subcommand from a `command.ts` module.
 */
import { Command } from "commander";

/** A tool adds its subcommands to the program, or to a shared group such as `dledger bench`. */
type Registrar = (program: Command, groups: { readonly bench: Command }) => void;

async function main(argv: readonly string[]): Promise<void> {
  const program = new Command("dledger")
    .description("dledger-ts: a Raft-replicated CommitLog (a TypeScript DLedger)")
    .showHelpAfterError()
    .exitOverride();
  const bench = program.command("bench").description("benchmarks: print figures and write a JSON report");
  const registrars: Registrar[] = [
    (await import("../../chaos/sim/command.js")).registerSimCommand,
    (await import("../../storage/command.js")).registerStorageCommands,
    (await import("../server/command.js")).registerServerCommands,
    (await import("../../bench/command.js")).registerBenchCommands,
    (await import("../../chaos/checkers/command.js")).registerCheckCommand,
    (await import("../../chaos/jepsen/command.js")).registerChaosCommand,
  ];
  for (const register of registrars) register(program, { bench });
  try {
    await program.parseAsync(argv as string[]);
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    if (typeof code === "number") process.exit(code);
    throw err;
  }
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`dledger: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
