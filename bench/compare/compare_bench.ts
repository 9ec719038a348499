import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LocalGroup, onPath } from "../common/local_group.js";
import { round } from "../common/latency.js";
import { gitCommit, machineFacts, quietRule, waitQuiet } from "../common/machine.js";
import { electionCounters } from "../common/scrape.js";
import { printLevel } from "../cluster/cluster_bench.js";
import { entryBody, LeaderTarget, type AppendRpc } from "../cluster/ledger_load.js";
import { closedLoop, openLoop, type LevelResult } from "../cluster/load_loops.js";
import { startEtcdPeer } from "./etcd_peer.js";
import { startNatsPeer } from "./nats_peer.js";
import { rabbitmqServerBin, startRabbitPeer } from "./rabbit_peer.js";
import { peerClosedLoop, type PeerSystem } from "./peer_loop.js";

/**
 * `dledger bench compare`: the same workload (1 KiB acknowledged writes, 3 replicas on loopback,
 * closed-loop concurrency sweep, best level wins) against dledger and each installed peer, one
 * after the other in one run. The peers run only when installed: etcd (KV.Put, fsync before ack),
 * RabbitMQ 3.10 (a quorum queue, persistent publishes awaited for their publisher confirms via
 * amqplib, loaded only when RabbitMQ runs; its cluster takes ~30 s to form) and NATS JetStream
 * (R3 file stream; no fsync per message). A missing peer's column reads "-".
 */
export interface CompareBenchOptions {
  readonly entryBytes: number;
  readonly duration: number;
  readonly warmup: number;
  readonly levels: readonly number[];
  readonly peerLevels: readonly number[];
  readonly batch: number;
  readonly channels: number;
  readonly appendRpc?: AppendRpc;
  readonly only?: readonly string[];
  readonly out?: string;
}

interface SystemResult {
  readonly name: string;
  readonly installed: boolean;
  readonly note: string;
  readonly levels: readonly LevelResult[];
  readonly best: LevelResult | null;
  readonly halfPeak?: LevelResult | null;
  readonly elections?: number | null;
}

const best = (xs: readonly LevelResult[]): LevelResult | null => (xs.length === 0 ? null : xs.reduce((a, b) => (b.appendsPerSec > a.appendsPerSec ? b : a)));

async function runDledger(o: CompareBenchOptions, print: (l: string) => void): Promise<SystemResult> {
  const group = await LocalGroup.start();
  try {
    const leader = await group.waitLeader();
    const target = new LeaderTarget(group.endpoints, leader.leaderAddress, o.channels, o.appendRpc);
    const loop = { body: entryBody(o.entryBytes), warmupMs: o.warmup * 1000, durationMs: o.duration * 1000, batchMax: o.batch, callTimeoutMs: 5000, serverPids: group.pids() };
    const before = await Promise.all(group.members.map((m) => electionCounters(m.metrics)));
    const levels: LevelResult[] = [];
    try {
      for (const c of o.levels) {
        levels.push(await closedLoop(target, c, loop));
        printLevel(print, levels[levels.length - 1] as LevelResult, "dledger");
      }
      const peak = best(levels) as LevelResult;
      const halfPeak = await openLoop(target, Math.max(1, Math.round(peak.appendsPerSec / 2)), loop);
      printLevel(print, halfPeak, "dledger 50% of peak");
      const after = await Promise.all(group.members.map((m) => electionCounters(m.metrics)));
      const elections = after.reduce((a, x, i) => a + (x?.elections ?? 0) - (before[i]?.elections ?? 0), 0);
      return { name: "dledger", installed: true, note: "fsync on every replica before ack", levels, best: peak, halfPeak, elections };
    } finally {
      target.close();
    }
  } finally {
    await group.stop();
  }
}

async function runPeer(name: string, bin: string | null, start: (bin: string) => Promise<PeerSystem>, note: string, o: CompareBenchOptions, print: (l: string) => void): Promise<SystemResult> {
  if (bin === null) {
    print(`  ${name}: not installed, skipped`);
    return { name, installed: false, note: "not installed", levels: [], best: null };
  }
  const peer = await start(bin);
  try {
    const levels: LevelResult[] = [];
    for (const c of o.peerLevels) {
      levels.push(await peerClosedLoop(peer, c, o.warmup * 1000, o.duration * 1000));
      printLevel(print, levels[levels.length - 1] as LevelResult, name);
    }
    return { name, installed: true, note, levels, best: best(levels) };
  } finally {
    await peer.stop();
  }
}

function printTable(print: (l: string) => void, results: readonly SystemResult[]): void {
  const us = results.find((r) => r.name === "dledger")?.best ?? null;
  print("system     best/s  in flight  p50 ms   p99 ms  1-in-flight p50  dledger ÷ peer  note");
  for (const r of results) {
    const b = r.best;
    const one = r.levels.find((l) => l.inFlight === 1);
    const ratio = b === null || us === null || r.name === "dledger" ? "-" : `${round(us.appendsPerSec / Math.max(1, b.appendsPerSec), 2)}×`;
    const cells = b === null ? ["-", "-", "-", "-", "-"] : [String(b.appendsPerSec), String(b.inFlight), String(b.latencyMs.p50), String(b.latencyMs.p99), one === undefined ? "-" : `${one.latencyMs.p50} ms`];
    print(`${r.name.padEnd(9)} ${(cells[0] as string).padStart(7)}  ${(cells[1] as string).padStart(9)}  ${(cells[2] as string).padStart(6)}  ${(cells[3] as string).padStart(7)}  ${(cells[4] as string).padStart(15)}  ${ratio.padStart(14)}  ${r.note}`);
  }
}

export async function runCompareBench(o: CompareBenchOptions, print: (line: string) => void): Promise<Record<string, unknown>> {
  const wanted = (n: string): boolean => o.only === undefined || o.only.includes(n);
  const background = await waitQuiet(quietRule().pct, quietRule().maxWaitS, print);
  print(`bench compare: ${o.entryBytes} B writes, 3 replicas on loopback, closed-loop sweep (dledger ${o.levels.join(",")}; peers ${o.peerLevels.join(",")}), ${o.duration} s per level; background load ${background.busyPct}%`);
  const results: SystemResult[] = [];
  const skip = (name: string): SystemResult => ({ name, installed: false, note: "not selected", levels: [], best: null });
  results.push(wanted("dledger") ? await runDledger(o, print) : skip("dledger"));
  const etcd = onPath("etcd");
  results.push(wanted("etcd") ? await runPeer("etcd", etcd, (b) => startEtcdPeer(b, o.entryBytes), "etcd 3.4 Put, fsync before ack", o, print) : skip("etcd"));
  // Not onPath("rabbitmq-server"): Debian's is a wrapper that switches to user rabbitmq and the
  // system's data dir; rabbitmqServerBin() finds the start script it wraps.
  const rabbit = rabbitmqServerBin();
  results.push(wanted("rabbitmq") ? await runPeer("rabbitmq", rabbit, (b) => startRabbitPeer(b, o.entryBytes), "RabbitMQ 3.10 quorum queue, publisher confirms, fdatasync before confirm", o, print) : skip("rabbitmq"));
  const nats = onPath("nats-server");
  results.push(wanted("nats") ? await runPeer("nats", nats, (b) => startNatsPeer(b, o.entryBytes), "JetStream R3 file stream; does NOT fsync each message", o, print) : skip("nats"));
  printTable(print, results);
  const report = { kind: "bench-compare", at: new Date().toISOString(), commit: gitCommit(), machine: machineFacts(), background, options: o, systems: results };
  const out = o.out ?? path.join(os.tmpdir(), `dledger-bench-compare-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  print(`report: ${out}`);
  const cell = (n: string): string => {
    const b = results.find((r) => r.name === n)?.best ?? null;
    return b === null ? "-" : String(b.appendsPerSec);
  };
  print(`compare: dledger ${cell("dledger")}/s, etcd ${cell("etcd")}/s, rabbitmq ${cell("rabbitmq")}/s, nats ${cell("nats")}/s`);
  return report;
}
