import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Entry } from "../../raft/core/types.js";
import { openCommitLog, type CommitLog } from "../../storage/commit_log.js";
import { DiskOs } from "../../storage/disk_os.js";
import { encodedBytes } from "../../storage/entry_codec.js";
import { histogram, round, summarize, type Histogram, type LatencyMs } from "../common/latency.js";
import { recoveryPhase } from "./recovery_phase.js";

/**
 * The storage benchmark. In one run it measures, alternating in rounds so drift hits both alike:
 *   - the raw floor: `fs.writeSync` of B bytes + `fs.fdatasyncSync`, appending to a plain file
 *     (the loop of ../shared/anchors/fsync.mjs), where B is exactly what one CommitLog batch
 *     writes (bodies + 48-byte headers), so both sides push the same bytes per fsync;
 *   - the CommitLog: append(batch) + sync() on DiskOs;
 * for the requested batch and for single entries; then reopen time of a large log after a clean
 * close and after SIGKILL of a writer process. MB/s counts on-disk bytes (1 MB = 10^6 bytes).
 */
export interface StorageBenchOptions {
  readonly entryBytes: number;
  readonly batch: number;
  readonly duration: number;
  readonly rounds: number;
  readonly dir?: string;
  readonly recoveryBytes: number;
  readonly kill: "child" | "inprocess";
  readonly out?: string;
}

interface Throughput {
  readonly mbPerSec: number;
  readonly payloadMbPerSec: number;
  readonly opsPerSec: number;
  readonly latencyMs: LatencyMs;
}

const nowMs = (): number => performance.now();

/** Counts what a phase did so rounds can be summed. */
interface Tally {
  bytes: number;
  payload: number;
  ops: number;
  ms: number;
  readonly hist: Histogram;
}

const tally = (): Tally => ({ bytes: 0, payload: 0, ops: 0, ms: 0, hist: histogram() });

function toThroughput(t: Tally): Throughput {
  const s = t.ms / 1000;
  return { mbPerSec: round(t.bytes / 1e6 / s), payloadMbPerSec: round(t.payload / 1e6 / s), opsPerSec: Math.round(t.ops / s), latencyMs: summarize(t.hist) };
}

/** The floor: append `bytes` + fdatasync in a loop for `seconds`. */
function floorRound(file: string, bytes: number, payload: number, seconds: number, t: Tally): void {
  const buf = Buffer.alloc(bytes, 0x61);
  const fd = fs.openSync(file, "a");
  try {
    const end = nowMs() + seconds * 1000;
    const t0 = nowMs();
    // Bounded by the deadline.
    while (nowMs() < end) {
      const s = nowMs();
      fs.writeSync(fd, buf);
      fs.fdatasyncSync(fd);
      t.hist.recordValue(Math.max(1, Math.round((nowMs() - s) * 1000)));
      t.bytes += bytes;
      t.payload += payload;
      t.ops++;
    }
    t.ms += nowMs() - t0;
  } finally {
    fs.closeSync(fd);
  }
}

export function makeBatch(next: number, count: number, term: number, body: Uint8Array): Entry[] {
  const out: Entry[] = new Array<Entry>(count);
  for (let i = 0; i < count; i++) out[i] = { index: next + i, term, type: "normal", data: body };
  return out;
}

/** The CommitLog: append(batch) + sync() in a loop for `seconds`. */
function storageRound(log: CommitLog, batch: number, body: Uint8Array, seconds: number, t: Tally): void {
  const end = nowMs() + seconds * 1000;
  const t0 = nowMs();
  while (nowMs() < end) {
    const entries = makeBatch(log.lastIndex() + 1, batch, 1, body);
    const s = nowMs();
    log.append(entries);
    log.sync();
    t.hist.recordValue(Math.max(1, Math.round((nowMs() - s) * 1000)));
    t.bytes += encodedBytes(entries);
    t.payload += batch * body.byteLength;
    t.ops++;
  }
  t.ms += nowMs() - t0;
}

export function randomBody(bytes: number): Uint8Array {
  const body = new Uint8Array(bytes);
  let x = 0x9e3779b9;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    body[i] = x & 0xff;
  }
  return body;
}

/** Floor and CommitLog, alternating `rounds` times, `duration` seconds each in total. */
function comparePhase(root: string, tag: string, batch: number, o: StorageBenchOptions): { floor: Throughput; storage: Throughput; batchBytes: number } {
  const body = randomBody(o.entryBytes);
  const batchBytes = batch * (o.entryBytes + 48);
  const floor = tally();
  const storage = tally();
  const logDir = path.join(root, `log-${tag}`);
  const log = openCommitLog({ disk: new DiskOs(), dir: logDir, members: ["n1"] });
  log.setHardState({ term: 1, votedFor: "n1", commit: 0 });
  log.sync();
  // Warm-up: JIT, page cache, first segment.
  storageRound(log, batch, body, 0.3, tally());
  floorRound(path.join(root, `floor-${tag}.dat`), batchBytes, batch * o.entryBytes, 0.3, tally());
  for (let r = 0; r < o.rounds; r++) {
    floorRound(path.join(root, `floor-${tag}.dat`), batchBytes, batch * o.entryBytes, o.duration / o.rounds, floor);
    storageRound(log, batch, body, o.duration / o.rounds, storage);
  }
  log.close();
  fs.rmSync(logDir, { recursive: true, force: true });
  fs.rmSync(path.join(root, `floor-${tag}.dat`), { force: true });
  return { floor: toThroughput(floor), storage: toThroughput(storage), batchBytes };
}


export async function runStorageBench(o: StorageBenchOptions, print: (line: string) => void): Promise<Record<string, unknown>> {
  const base = o.dir ?? os.tmpdir();
  fs.mkdirSync(base, { recursive: true });
  const root = fs.mkdtempSync(path.join(base, "dledger-bench-storage-"));
  try {
    print(`bench storage: entry ${o.entryBytes} B, batch ${o.batch}, ${o.duration} s per phase in ${o.rounds} rounds, dir ${root}`);
    const batched = comparePhase(root, "batch", o.batch, o);
    printPair(print, `batch ${o.batch}`, batched);
    const single = comparePhase(root, "single", 1, o);
    printPair(print, "batch 1", single);
    const recovery = o.recoveryBytes > 0 ? await recoveryPhase(root, o, print) : null;
    const report = {
      kind: "bench-storage",
      at: new Date().toISOString(),
      env: { node: process.version, platform: `${os.platform()} ${os.release()}`, cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "?" },
      options: o,
      batched,
      single,
      targets: {
        batchedRatio: round(batched.storage.mbPerSec / batched.floor.mbPerSec),
        batchedRatioTarget: 0.7,
        // Per-sync p50s are robust to stalls from other tenants that hit one round and not the
        // other; floor p50 / storage p50 is the throughput ratio a quiet disk would show.
        batchedP50Ratio: round(batched.floor.latencyMs.p50 / batched.storage.latencyMs.p50),
        singleP50Ratio: round(single.storage.latencyMs.p50 / single.floor.latencyMs.p50),
        singleP50RatioTarget: 1.5,
      },
      recovery,
    };
    const out = o.out ?? path.join(os.tmpdir(), `dledger-bench-storage-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    print(`batch ${o.batch} p50: storage ${batched.storage.latencyMs.p50} ms, floor ${batched.floor.latencyMs.p50} ms (floor/storage ${report.targets.batchedP50Ratio})`);
    print(`single-entry p50: storage ${single.storage.latencyMs.p50} ms, floor ${single.floor.latencyMs.p50} ms, ratio ${report.targets.singleP50Ratio} (target ≤ 1.5)`);
    print(`report: ${out}`);
    print(`storage: ${batched.storage.mbPerSec} MB/s, floor ${batched.floor.mbPerSec} MB/s, ratio ${report.targets.batchedRatio}`);
    return report;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function printPair(print: (line: string) => void, label: string, r: { floor: Throughput; storage: Throughput; batchBytes: number }): void {
  for (const [name, t] of [["floor  ", r.floor], ["storage", r.storage]] as const) {
    const l = t.latencyMs;
    print(`${label.padEnd(9)} ${name} ${String(t.mbPerSec).padStart(8)} MB/s  ${String(t.opsPerSec).padStart(7)} syncs/s  p50 ${l.p50} ms  p99 ${l.p99} ms  p99.9 ${l.p999} ms  max ${l.max} ms  (${r.batchBytes} B/sync)`);
  }
}
