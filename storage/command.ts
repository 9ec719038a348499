import type { Command } from "commander";
import { DiskOs } from "./disk_os.js";
import { formatFinding, verifyDataDir } from "./verify.js";

/**
 * CLI registration for storage tools: `dledger verify <data-dir> [--json]`.
 * Exit code 0 when the directory is clean (notes allowed), 1 when anything is corrupt.
 */
export function registerStorageCommands(program: Command, groups: { readonly bench: Command }): void {
  void groups;
  program
    .command("verify")
    .description("check a CommitLog data directory offline: every entry, index slot, state slot and snapshot")
    .argument("<data-dir>", "the replica's data directory")
    .option("--json", "print the report as JSON")
    .action((dataDir: string, opts: { json?: boolean }) => {
      const disk = new DiskOs();
      if (!disk.exists(dataDir)) {
        process.stderr.write(`verify: ${dataDir} does not exist\n`);
        process.exitCode = 1;
        return;
      }
      const report = verifyDataDir(disk, dataDir.replace(/\/+$/, "") || "/");
      if (opts.json === true) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        for (const f of report.findings) process.stdout.write(`${formatFinding(f)}\n`);
        process.stdout.write(
          `verify: ${report.ok ? "clean" : "CORRUPT"}: ${report.segments} segment(s), ${report.entries} entries, ` +
            `index ${report.firstIndex}..${report.lastIndex}, ${report.snapshots} snapshot(s), ${report.findings.length} finding(s)\n`,
        );
      }
      process.exitCode = report.ok ? 0 : 1;
    });
}
