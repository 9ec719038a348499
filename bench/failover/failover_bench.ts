import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LocalGroup } from "../common/local_group.js";
import { median, round, sleep } from "../common/latency.js";
import { gitCommit, machineFacts, quietRule, waitQuiet } from "../common/machine.js";
import { entryBody, isFailure, LedgerChannels, Producer, type AppendRpc } from "../cluster/ledger_load.js";

/**
 * `dledger bench failover`: under steady load, SIGKILL the leader and time kill → the first
 * acknowledged append that was sent after the kill and committed in a newer term (so it was
 * acknowledged by a new leader). Then restart the killed replica on its data and wait until it
 * has caught up before the next kill. Writers use short jittered deadlines and move to the
 * leader hint (or the next replica) on any failure, as ../shared/anchors' failover scripts do.
 */
export interface FailoverBenchOptions {
  readonly kills: number;
  readonly writers: number;
  readonly entryBytes: number;
  /** Per-attempt deadline: a writer stuck on the dead leader gives up after about this long. */
  readonly attemptTimeoutMs: number;
  readonly appendRpc?: AppendRpc;
  /** How long after a kill we wait for a new leader's ack before recording a failure. */
  readonly failoverWaitMs: number;
  /** Steady load between a caught-up restart and the next kill. */
  readonly settleMs: number;
  readonly replicaNodeOptions?: string;
  readonly keepDir: boolean;
  readonly out?: string;
}

interface Ack {
  readonly sentAt: number;
  readonly ackAt: number;
  readonly term: number;
}

/** Steady-load writers that follow the leader across a kill and report every ack. */
class Writers {
  private stopped = false;
  private readonly channels: Map<string, LedgerChannels>;
  private readonly loops: Promise<void>[] = [];
  acks = 0;
  failures = 0;

  constructor(
    private readonly endpoints: readonly string[],
    private readonly o: FailoverBenchOptions,
    private readonly onAck: (a: Ack) => void,
  ) {
    this.channels = new Map(endpoints.map((e) => [e, new LedgerChannels(e, 1, o.appendRpc)]));
  }

  start(leaderAddress: string): void {
    for (let w = 0; w < this.o.writers; w++) this.loops.push(this.run(leaderAddress));
  }

  private async run(first: string): Promise<void> {
    const p = new Producer(entryBody(this.o.entryBytes));
    let target = first;
    // Bounded by stop(): each turn is one attempt with a deadline, or a short sleep.
    while (!this.stopped) {
      const ch = this.channels.get(target) as LedgerChannels;
      const sentAt = performance.now();
      const timeout = this.o.attemptTimeoutMs * (0.5 + Math.random());
      const r = await ch.send(p.requests(1), timeout);
      const x = r.ok ? r.responses[0] : undefined;
      if (x !== undefined && !isFailure(x)) {
        this.acks++;
        this.onAck({ sentAt, ackAt: performance.now(), term: x.term });
        continue;
      }
      this.failures++;
      const hint = r.ok ? (x !== undefined && isFailure(x) ? x.leaderAddress : null) : r.leaderAddress;
      target = hint !== null && this.channels.has(hint) ? hint : this.next(target);
      await sleep(2);
    }
  }

  private next(address: string): string {
    const i = this.endpoints.indexOf(address);
    return this.endpoints[(i + 1) % this.endpoints.length] as string;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    for (const c of this.channels.values()) c.close();
  }
}

export interface KillResult {
  readonly kill: number;
  readonly killed: string;
  readonly oldTerm: number;
  readonly newTerm: number | null;
  /** kill → first ack (sent after the kill) in a newer term; null if none within failoverWaitMs. */
  readonly failoverMs: number | null;
  readonly catchUpMs: number;
}

/** One kill: SIGKILL the leader, wait for the first new-term ack, restart it, wait for catch-up. */
async function oneKill(group: LocalGroup, k: number, o: FailoverBenchOptions, watch: { first: ((a: Ack) => void) | null }, print: (l: string) => void): Promise<KillResult> {
  const leader = await group.waitLeader();
  const killed = leader.replicaId;
  let firstAck: Ack | null = null;
  let killAt = 0;
  const seen = new Promise<void>((resolve) => {
    watch.first = (a) => {
      if (firstAck === null && killAt > 0 && a.sentAt >= killAt && a.term > leader.term) {
        firstAck = a;
        resolve();
      }
    };
  });
  killAt = performance.now();
  await group.kill(killed);
  await Promise.race([seen, sleep(o.failoverWaitMs)]);
  watch.first = null;
  const got = firstAck as Ack | null;
  const failoverMs = got === null ? null : round(got.ackAt - killAt, 1);
  const t0 = performance.now();
  group.spawn(killed);
  const now = await group.waitLeader();
  const caughtUp = await group.waitApplied(killed, now.commitIndex, 30_000);
  const catchUpMs = Math.round(performance.now() - t0);
  print(`kill ${k}: ${killed} (term ${leader.term}) → ${failoverMs === null ? `no new-term ack within ${o.failoverWaitMs} ms` : `${failoverMs} ms`}, new leader ${now.replicaId} term ${now.term}; restarted and ${caughtUp ? "caught up" : "NOT caught up"} in ${catchUpMs} ms`);
  return { kill: k, killed, oldTerm: leader.term, newTerm: got === null ? null : (got as Ack).term, failoverMs, catchUpMs };
}

export async function runFailoverBench(o: FailoverBenchOptions, print: (line: string) => void): Promise<Record<string, unknown>> {
  const background = await waitQuiet(quietRule().pct, quietRule().maxWaitS, print);
  print(`bench failover: ${o.kills} kills, ${o.writers} writers of ${o.entryBytes} B, attempt deadline ~${o.attemptTimeoutMs} ms; background load ${background.busyPct}%`);
  const group = await LocalGroup.start({ keepDir: o.keepDir, ...(o.replicaNodeOptions === undefined ? {} : { replicaNodeOptions: o.replicaNodeOptions }) });
  const results: KillResult[] = [];
  const watch: { first: ((a: Ack) => void) | null } = { first: null };
  let writers: Writers | null = null;
  try {
    const leader = await group.waitLeader();
    writers = new Writers(group.endpoints, o, (a) => watch.first?.(a));
    writers.start(leader.leaderAddress);
    await sleep(o.settleMs);
    for (let k = 1; k <= o.kills; k++) {
      results.push(await oneKill(group, k, o, watch, print));
      await sleep(o.settleMs);
    }
  } finally {
    await writers?.stop();
    await group.stop();
  }
  const figures = results.map((r) => r.failoverMs).filter((x): x is number => x !== null);
  const missed = results.length - figures.length;
  const summary = { medianMs: round(median(figures), 1), maxMs: figures.length === 0 ? Number.NaN : Math.max(...figures), minMs: figures.length === 0 ? Number.NaN : Math.min(...figures), kills: results.length, missed, acks: writers?.acks ?? 0, failedAttempts: writers?.failures ?? 0 };
  const report = { kind: "bench-failover", at: new Date().toISOString(), commit: gitCommit(), machine: machineFacts(), background, options: o, summary, kills: results };
  const out = o.out ?? path.join(os.tmpdir(), `dledger-bench-failover-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  print(`figures (ms): ${figures.join(", ")}${missed > 0 ? `; ${missed} kill(s) without a new-term ack within ${o.failoverWaitMs} ms (counted as missing)` : ""}`);
  print(`report: ${out}`);
  // A kill without any new-term ack counts as the wait bound in the max, so it cannot hide.
  const max = missed > 0 ? o.failoverWaitMs : summary.maxMs;
  print(`failover: median ${summary.medianMs} ms, max ${max} ms over ${results.length} kills`);
  return report;
}

