import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { openCommitLog } from "../../storage/commit_log.js";
import { DiskOs } from "../../storage/disk_os.js";
import { makeBatch, randomBody, type StorageBenchOptions } from "./storage_bench.js";

/**
 * Reopen time of a large CommitLog: after a clean close, and after the writer was killed with
 * SIGKILL while appending (the kernel keeps its page cache; the state has no clean mark, so open
 * rescans the last segment and trusts the sealed segments' indexes).
 */
export interface RecoveryResult {
  readonly logBytes: number;
  readonly entries: number;
  readonly buildSeconds: number;
  readonly cleanReopenMs: number;
  readonly killMode: "child" | "inprocess";
  readonly killedReopenMs: number;
  readonly killedLastIndex: number;
  readonly killedTornTail: boolean;
}

const buildBatchEntries = 1024;

export async function recoveryPhase(root: string, o: StorageBenchOptions, print: (line: string) => void): Promise<RecoveryResult> {
  const dir = path.join(root, "recovery");
  const body = randomBody(o.entryBytes);
  const t0 = performance.now();
  const log = openCommitLog({ disk: new DiskOs(), dir, members: ["n1"] });
  log.setHardState({ term: 1, votedFor: "n1", commit: 0 });
  let written = 0;
  // Bounded: stops once recoveryBytes are written.
  while (written < o.recoveryBytes) {
    log.append(makeBatch(log.lastIndex() + 1, buildBatchEntries, 1, body));
    log.sync();
    written += buildBatchEntries * (o.entryBytes + 48);
  }
  const entries = log.lastIndex();
  log.close();
  const buildSeconds = (performance.now() - t0) / 1000;
  const cleanReopenMs = timeReopen(dir).ms;
  print(`recovery  built ${(written / 2 ** 30).toFixed(2)} GiB (${entries} entries) in ${buildSeconds.toFixed(1)} s; clean reopen ${cleanReopenMs.toFixed(1)} ms`);
  const child = fileURLToPath(new URL("./kill_child.js", import.meta.url));
  const mode = o.kill === "child" && fs.existsSync(child) ? "child" : "inprocess";
  if (mode === "child") await killWriter(child, dir, o);
  else dropWriter(dir, o);
  const killed = timeReopen(dir);
  print(`recovery  reopen after ${mode === "child" ? "SIGKILL of a writer process" : "dropping an unclosed writer"}: ${killed.ms.toFixed(1)} ms (last index ${killed.lastIndex}, torn tail ${killed.torn})`);
  return { logBytes: written, entries, buildSeconds, cleanReopenMs, killMode: mode, killedReopenMs: killed.ms, killedLastIndex: killed.lastIndex, killedTornTail: killed.torn };
}

/** Opens, reads the last entry (a disk read through the index), and closes. */
function timeReopen(dir: string): { ms: number; lastIndex: number; torn: boolean } {
  const t0 = performance.now();
  const log = openCommitLog({ disk: new DiskOs(), dir, members: ["n1"], tailCacheBytes: 0 });
  const last = log.lastIndex();
  log.entries(last, last + 1, 1 << 30);
  const ms = performance.now() - t0;
  const torn = log.report.tornTail !== null;
  log.close();
  return { ms, lastIndex: last, torn };
}

/** Runs kill_child.js, waits until it has appended for a while, and SIGKILLs it mid-stream. */
function killWriter(child: string, dir: string, o: StorageBenchOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir, String(o.entryBytes), String(o.batch)], { stdio: ["ignore", "pipe", "inherit"] });
    const guard = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error("kill child did not become ready within 60 s"));
    }, 60_000);
    proc.stdout.on("data", (chunk: Buffer) => {
      if (!chunk.toString().includes("ready")) return;
      setTimeout(() => proc.kill("SIGKILL"), 300);
    });
    proc.on("exit", (_code, signal) => {
      clearTimeout(guard);
      if (signal === "SIGKILL") resolve();
      else reject(new Error(`kill child exited on its own (signal ${signal})`));
    });
  });
}

/** In-process stand-in: append, then abandon the store without close (files stay as written). */
function dropWriter(dir: string, o: StorageBenchOptions): void {
  const log = openCommitLog({ disk: new DiskOs(), dir, members: ["n1"] });
  const body = randomBody(o.entryBytes);
  for (let i = 0; i < 2000; i++) {
    log.append(makeBatch(log.lastIndex() + 1, o.batch, 1, body));
    log.sync();
  }
}
