import { assert } from "../../raft/base/assert.js";
import { Prng } from "../../raft/base/prng.js";
import { silentLogger } from "../../raft/base/logger.js";
import { rpcTypes, type Rpc, type RpcType } from "../../raft/core/types.js";
import { chainNext } from "../checkers/chain.js";
import { RaftChecker } from "../checkers/raft_checker.js";
import { ReadChecker } from "../checkers/read_checker.js";
import { ViolationKind, ViolationLog, formatViolation, type Violation } from "../checkers/violation.js";
import { EventQueue } from "./event_queue.js";
import { encodePut, kvKeys } from "./kv.js";
import { Network } from "./network.js";
import { ReplicaHost, type HostEnv, type ProposedOp, type SimStore } from "./replica_host.js";
import { drawNetParams, drawSimParams, type SimParams } from "./sim_params.js";
import { formatRpc, formatTime, traceLogger } from "./trace.js";

/**
 * The deterministic simulator (TigerBeetle's VOPR in spirit). One seed → one PRNG, forked per
 * component, drives every choice; a binary heap of events keyed by (simulated µs, sequence)
 * orders everything. A run is a safety phase with faults, then a liveness phase: heal the
 * network, restart replicas so a quorum is up, and require a fresh proposal to be acknowledged
 * within a bound. Checkers run after every step; the first violation ends the seed.
 */

export interface SimOptions {
  readonly seed: number;
  readonly replicas: number;
  /** Record a readable per-step trace (replay mode). Off in batch runs: it is the expensive part. */
  readonly trace?: boolean;
  /** Call core.checkInvariants() after every turn (default true). */
  readonly checkInvariants?: boolean;
  /** The log store under each replica (default "commitlog": the real CommitLog on a DiskSim). */
  readonly store?: SimStore;
}

export interface SimStats {
  proposals: number;
  acks: number;
  reads: number;
  readsServed: number;
  transfers: number;
  rpcs: number;
  crashes: number;
  restarts: number;
  /** Restarts whose CommitLog recovery cut a torn tail. */
  tornTailsCut: number;
  pauses: number;
  partitions: number;
  leaderTerms: number;
  committedIndex: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
}

export interface SeedResult {
  readonly seed: number;
  readonly replicas: number;
  readonly store: SimStore;
  readonly violation: Violation | null;
  readonly livenessFailure: string | null;
  readonly simulatedUs: number;
  readonly events: number;
  /** A hash over every event (time, kind, replica, RPC): equal hashes mean identical runs. */
  readonly traceHash: number;
  /** Time from the start of the liveness phase to the first acknowledged fresh proposal, or -1. */
  readonly livenessUs: number;
  readonly stats: SimStats;
}

const EventKind = {
  tick: 0,
  deliver: 1,
  syncDone: 2,
  pauseEnd: 3,
  restart: 4,
  client: 5,
  fault: 6,
  liveness: 7,
  deadline: 8,
  end: 9,
  crash: 10,
  isolate: 11,
} as const;
type EventKind = (typeof EventKind)[keyof typeof EventKind];

interface SimEvent {
  readonly timeUs: number;
  readonly seq: number;
  readonly kind: EventKind;
  readonly host: number;
  /** The host's incarnation the event belongs to; for deliveries, the sender's index. */
  readonly inc: number;
  readonly rpc: Rpc | null;
}

const rpcTypeCode = new Map<RpcType, number>(rpcTypes.map((t, i) => [t, i + 1]));

/** Deterministic bound on a seed's work: a livelock fails the seed instead of hanging it. */
export const eventsMaxPerSeed = 5_000_000;

export class Simulator implements HostEnv {
  nowUs = 0;
  readonly violations = new ViolationLog();
  readonly checker: RaftChecker;
  readonly reads: ReadChecker;
  readonly trace: string[] | null;
  readonly params: SimParams;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly hosts: ReplicaHost[] = [];
  private readonly ids: string[] = [];
  private readonly idIndex = new Map<string, number>();
  private readonly net: Network;
  private readonly faultPrng: Prng;
  private readonly clientPrng: Prng;
  private readonly diskPrng: Prng;
  private readonly store: SimStore;
  private readonly delays: number[] = [];
  private phase: "safety" | "liveness" | "done" = "safety";
  private livenessStartUs = -1;
  private livenessAckUs = -1;
  private leaderGuess = -1;
  private nextOpId = 1;
  private nextReadId = 1;
  private events = 0;
  private hash = 0x811c9dc5;
  private livenessFailure: string | null = null;
  readonly stats: SimStats = {
    proposals: 0,
    acks: 0,
    reads: 0,
    readsServed: 0,
    transfers: 0,
    rpcs: 0,
    crashes: 0,
    restarts: 0,
    tornTailsCut: 0,
    pauses: 0,
    partitions: 0,
    leaderTerms: 0,
    committedIndex: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
  };

  constructor(options: SimOptions) {
    assert(options.replicas >= 1 && options.replicas <= 9, `simulator replicas must be in [1, 9], got ${options.replicas}`);
    const root = new Prng(options.seed);
    this.params = drawSimParams(options.seed, options.replicas, root.fork());
    this.trace = options.trace === true ? [] : null;
    this.net = new Network(options.replicas, this.params.net, root.fork());
    this.faultPrng = root.fork();
    this.clientPrng = root.fork();
    this.diskPrng = root.fork();
    for (let i = 0; i < options.replicas; i++) {
      this.ids.push(`n${i + 1}`);
      this.idIndex.set(`n${i + 1}`, i);
    }
    this.checker = new RaftChecker(this.ids, this.violations);
    this.reads = new ReadChecker(this.violations);
    const store = options.store ?? "commitlog";
    this.store = store;
    for (let i = 0; i < options.replicas; i++) this.hosts.push(this.makeHost(i, root.fork(), options.checkInvariants ?? true, store));
  }

  private makeHost(i: number, prng: Prng, checkInvariants: boolean, store: SimStore): ReplicaHost {
    const id = this.ids[i] as string;
    const p = this.params;
    const logger = this.trace === null ? silentLogger : traceLogger(this.trace, () => this.nowUs, { replica: id });
    return new ReplicaHost(
      {
        id,
        store,
        index: i,
        members: this.ids,
        core: p.core,
        prng,
        snapshotEvery: p.snapshotEvery,
        snapshotPadBytes: p.snapshotPadBytes,
        compactLagMax: p.compactLagMax,
        pipeline: p.pipeline,
        checkInvariants,
        logger,
      },
      this,
    );
  }

  /** Runs the seed to the end and returns its result. */
  run(): SeedResult {
    this.traceNote(`seed ${this.params.seed}: ${JSON.stringify(this.params)}`);
    try {
      for (const h of this.hosts) this.startHost(h);
      this.push(this.clientDelay(), EventKind.client, 0, 0, null);
      this.push(this.faultDelay(), EventKind.fault, 0, 0, null);
      this.push(this.params.safetyUs, EventKind.liveness, 0, 0, null);
      this.loop();
      if (this.violations.count === 0 && this.livenessFailure === null) this.finalChecks();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      const where = (e.stack ?? "").split("\n").slice(1, 4).map((l) => l.trim()).join(" | ");
      this.violations.report(ViolationKind.coreAssertion, null, `${e.name}: ${e.message} (${where})`);
    }
    const violation = this.violations.violations[0] ?? null;
    if (violation !== null) this.traceNote(`VIOLATION ${formatViolation(violation)}`);
    if (this.livenessFailure !== null) this.traceNote(`LIVENESS FAILURE ${this.livenessFailure}`);
    this.stats.readsServed = this.reads.readsChecked;
    this.stats.leaderTerms = this.checker.leaderTerms;
    this.stats.committedIndex = this.checker.committedIndex;
    for (const h of this.hosts) {
      this.stats.snapshotsTaken += h.snapshotsTaken;
      this.stats.snapshotsInstalled += h.snapshotsInstalled;
      this.stats.tornTailsCut += h.tornTailsCut;
    }
    return {
      seed: this.params.seed,
      replicas: this.params.replicas,
      store: this.store,
      violation,
      livenessFailure: violation === null ? this.livenessFailure : null,
      simulatedUs: this.nowUs,
      events: this.events,
      traceHash: this.hash,
      livenessUs: this.livenessAckUs < 0 ? -1 : this.livenessAckUs - this.livenessStartUs,
      stats: this.stats,
    };
  }

  private loop(): void {
    while (this.phase !== "done") {
      const ev = this.queue.pop();
      if (ev === undefined) {
        this.livenessFailure = "event queue ran dry";
        return;
      }
      this.nowUs = ev.timeUs;
      this.events++;
      this.hash = chainNext(this.hash, ev.timeUs >>> 0, ev.kind * 8 + ev.host, ev.rpc === null ? 0 : ev.rpc.term * 16 + (rpcTypeCode.get(ev.rpc.type) ?? 0));
      this.dispatch(ev);
      if (this.violations.count > 0) return;
      if (this.events >= eventsMaxPerSeed) {
        this.livenessFailure = `event budget of ${eventsMaxPerSeed} exhausted at ${formatTime(this.nowUs)}`;
        return;
      }
    }
  }

  private dispatch(ev: SimEvent): void {
    const host = this.hosts[ev.host] as ReplicaHost;
    switch (ev.kind) {
      case EventKind.tick:
        if (ev.inc !== host.incarnation || !host.alive) return;
        host.tick();
        this.push(this.nowUs + (this.params.tickUs[ev.host] as number), EventKind.tick, ev.host, ev.inc, null);
        return;
      case EventKind.deliver:
        if (this.net.isCut(ev.inc, ev.host)) return this.traceNote(`drop (partition) ${formatRpc(ev.rpc as Rpc)}`);
        return host.deliver(ev.rpc as Rpc);
      case EventKind.syncDone:
        if (ev.inc === host.incarnation && host.alive) host.onSyncDone();
        return;
      case EventKind.pauseEnd:
        if (ev.inc === host.incarnation && host.paused) {
          host.traceLine("resume");
          host.resume();
        }
        return;
      case EventKind.restart:
        if (!host.alive) this.startHost(host);
        return;
      case EventKind.client:
        return this.clientStep();
      case EventKind.fault:
        return this.faultStep();
      case EventKind.liveness:
        return this.startLiveness();
      case EventKind.deadline:
        if (this.livenessAckUs < 0) {
          this.livenessFailure = `no fresh proposal acknowledged within ${this.params.livenessBoundUs / 1e6} s of healing`;
          this.phase = "done";
        }
        return;
      case EventKind.end:
        this.phase = "done";
        return;
      case EventKind.isolate:
        if (ev.inc === host.incarnation && host.alive && this.phase === "safety") this.isolate(host.index);
        return;
      case EventKind.crash:
        if (ev.inc === host.incarnation && host.alive && this.phase === "safety") this.crash(host, this.faultPrng.int(5_000, 300_000));
        return;
    }
  }

  private push(timeUs: number, kind: EventKind, host: number, inc: number, rpc: Rpc | null): void {
    this.queue.push({ timeUs, seq: this.queue.seq(), kind, host, inc, rpc });
  }

  private startHost(host: ReplicaHost): void {
    if (host.incarnation > 0) this.stats.restarts++;
    host.traceLine(host.incarnation > 0 ? "restart" : "start");
    host.start();
    const tickUs = this.params.tickUs[host.index] as number;
    this.push(this.nowUs + this.faultPrng.int(1, tickUs), EventKind.tick, host.index, host.incarnation, null);
  }

  /* HostEnv ----------------------------------------------------------------------------------- */

  send(rpc: Rpc): void {
    const from = this.idIndex.get(rpc.from);
    const to = this.idIndex.get(rpc.to);
    if (from === undefined || to === undefined || from === to) {
      this.violations.report(ViolationKind.driverContract, rpc.from, `rpc to an unknown or self peer: ${rpc.from}->${rpc.to}`);
      return;
    }
    this.stats.rpcs++;
    if (this.net.isCut(from, to)) return this.traceNote(`drop (partition) ${formatRpc(rpc)}`);
    this.net.deliveryDelays(this.delays);
    if (this.trace !== null && this.delays.length !== 1) {
      this.traceNote(`${this.delays.length === 0 ? "lose" : "duplicate"} ${formatRpc(rpc)}`);
    }
    for (const d of this.delays) this.push(this.nowUs + d, EventKind.deliver, to, from, rpc);
  }

  scheduleSync(host: ReplicaHost): void {
    const p = this.params;
    let d = p.fsyncUs + this.diskPrng.int(0, (p.fsyncUs >> 1) + 1);
    if (p.fsyncSlowP > 0 && this.diskPrng.chance(p.fsyncSlowP)) d += p.fsyncSlowUs;
    this.push(this.nowUs + d, EventKind.syncDone, host.index, host.incarnation, null);
    if (this.phase === "safety" && p.crashOnSyncP > 0 && this.faultPrng.chance(p.crashOnSyncP)) {
      this.push(this.nowUs + this.faultPrng.int(0, d), EventKind.crash, host.index, host.incarnation, null);
    }
  }

  onProposeRefused(leaderHint: string | null): void {
    this.leaderGuess = leaderHint === null ? -1 : (this.idIndex.get(leaderHint) ?? -1);
  }

  onAck(op: ProposedOp, _index: number, host: ReplicaHost): void {
    this.stats.acks++;
    this.leaderGuess = host.index;
    if (this.phase === "liveness" && this.livenessAckUs < 0 && op.proposedUs >= this.livenessStartUs) {
      this.livenessAckUs = this.nowUs;
      this.traceNote(`liveness: op${op.opId} acknowledged ${(this.nowUs - this.livenessStartUs) / 1000} ms after healing`);
      this.push(this.nowUs + this.params.tailUs, EventKind.end, 0, 0, null);
    }
  }

  onBecameLeader(host: ReplicaHost): void {
    const p = this.params;
    if (this.phase !== "safety" || p.newLeaderFaultP === 0 || !this.faultPrng.chance(p.newLeaderFaultP)) return;
    const delayUs = this.faultPrng.int(0, 20_000);
    if (this.faultPrng.chance(0.5)) this.push(this.nowUs + delayUs, EventKind.crash, host.index, host.incarnation, null);
    else this.push(this.nowUs + delayUs, EventKind.isolate, host.index, host.incarnation, null);
  }

  /* Client workload ---------------------------------------------------------------------------- */

  private clientDelay(): number {
    return this.nowUs + this.clientPrng.int(1, 2 * this.params.clientMeanUs);
  }

  private clientStep(): void {
    this.push(this.clientDelay(), EventKind.client, 0, 0, null);
    const target = this.clientTarget();
    if (target === null) return;
    const prng = this.clientPrng;
    const r = prng.float();
    const key = prng.int(0, kvKeys);
    if (r < this.params.transferP) {
      const to = this.ids[prng.int(0, this.ids.length)] as string;
      if (to === target.id) return;
      this.stats.transfers++;
      target.traceLine(`client: transfer leadership to ${to}`);
      target.transfer(to);
    } else if (r < this.params.transferP + this.params.readP) {
      const readId = this.nextReadId++;
      this.stats.reads++;
      this.reads.onReadInvoke(readId, key);
      target.read(readId, key);
    } else {
      const opId = this.nextOpId++;
      const pad = prng.chance(0.1) ? prng.int(1, 64) : 0;
      this.stats.proposals++;
      target.propose({ opId, key, data: encodePut(opId, key, pad), proposedUs: this.nowUs });
    }
  }

  /** The replica the client talks to: its leader guess if alive, else a random live replica. */
  private clientTarget(): ReplicaHost | null {
    const guess = this.leaderGuess >= 0 ? this.hosts[this.leaderGuess] : undefined;
    if (guess !== undefined && guess.alive && this.clientPrng.chance(0.95)) return guess;
    const live = this.hosts.filter((h) => h.alive);
    if (live.length === 0) return null;
    return this.clientPrng.pick(live);
  }

  /* Faults ----------------------------------------------------------------------------------- */

  private faultDelay(): number {
    return this.nowUs + this.faultPrng.int(1, 2 * this.params.faultMeanUs);
  }

  private faultStep(): void {
    if (this.phase !== "safety") return;
    this.push(this.faultDelay(), EventKind.fault, 0, 0, null);
    const prng = this.faultPrng;
    const roll = prng.int(0, 100);
    if (roll < 12) this.partitionRandom();
    else if (roll < 20) this.isolateOne();
    else if (roll < 28) this.cutOneWay();
    else if (roll < 36) this.deafenLeader();
    else if (roll < 56) this.heal();
    else if (roll < 70) this.crashOne();
    else if (roll < 76) this.restartOne();
    else if (roll < 88) this.pauseOne();
    else if (roll < 94) {
      this.net.params = drawNetParams(prng);
      this.traceNote(`fault: network now ${JSON.stringify(this.net.params)}`);
    }
  }

  /** Cuts from→to; when a live sender notices (most of the time) it reports the peer unreachable. */
  private cut(from: number, to: number): void {
    if (!this.net.cutLink(from, to)) return;
    const sender = this.hosts[from] as ReplicaHost;
    if (sender.alive && this.faultPrng.chance(0.7)) sender.reportUnreachable(this.ids[to] as string);
  }

  private partitionRandom(): void {
    const n = this.hosts.length;
    const side: number[] = [];
    for (let i = 0; i < n; i++) side.push(this.faultPrng.int(0, 2));
    if (side.every((s) => s === side[0])) side[this.faultPrng.int(0, n)] = 1 - (side[0] as number);
    this.stats.partitions++;
    this.traceNote(`fault: partition ${side.map((s, i) => `${this.ids[i]}:${s === 0 ? "A" : "B"}`).join(" ")}`);
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if (side[a] !== side[b]) this.cut(a, b);
  }

  private isolateOne(): void {
    const leader = this.findLeader();
    this.isolate(leader !== null && this.faultPrng.chance(0.6) ? leader.index : this.faultPrng.int(0, this.hosts.length));
  }

  private isolate(victim: number): void {
    this.stats.partitions++;
    this.traceNote(`fault: isolate ${this.ids[victim]}`);
    for (let i = 0; i < this.hosts.length; i++) {
      this.cut(victim, i);
      this.cut(i, victim);
    }
  }

  /**
   * Cuts every link into the leader (it still sends) and sometimes one link out of it: it keeps
   * replicating entries it never hears acknowledged, until check-quorum deposes it. The next
   * leader then holds earlier-term entries that are on a majority but not committed, which a
   * lagging follower receives in several batches: the setting of Raft §5.4.2.
   */
  private deafenLeader(): void {
    const leader = this.findLeader();
    const victim = leader !== null && this.faultPrng.chance(0.8) ? leader.index : this.faultPrng.int(0, this.hosts.length);
    const n = this.hosts.length;
    this.stats.partitions++;
    this.traceNote(`fault: deafen ${this.ids[victim]}`);
    for (let i = 0; i < n; i++) this.cut(i, victim);
    if (this.faultPrng.chance(0.5)) this.cut(victim, (victim + this.faultPrng.int(1, n)) % n);
  }

  private cutOneWay(): void {
    const n = this.hosts.length;
    const from = this.faultPrng.int(0, n);
    const to = (from + this.faultPrng.int(1, n)) % n;
    this.stats.partitions++;
    this.traceNote(`fault: cut one way ${this.ids[from]}->${this.ids[to]}`);
    this.cut(from, to);
  }

  private heal(): void {
    if (this.net.cutLinks === 0) return;
    this.traceNote("fault: heal network");
    this.net.healAll();
  }

  /** Crashes a replica, preferring one with an fsync in flight (it loses that batch) or the leader. */
  private crashOne(): void {
    const live = this.hosts.filter((h) => h.alive);
    if (live.length === 0) return;
    const syncing = live.filter((h) => h.syncing !== null);
    const leader = this.findLeader();
    const roll = this.faultPrng.float();
    let victim = this.faultPrng.pick(live);
    if (roll < 0.4 && syncing.length > 0) victim = this.faultPrng.pick(syncing);
    else if (roll < 0.7 && leader !== null) victim = leader;
    const restartUs = this.faultPrng.chance(0.5) ? this.faultPrng.int(5_000, 200_000) : this.faultPrng.int(200_000, 2_000_000);
    this.crash(victim, this.faultPrng.chance(0.85) ? restartUs : -1);
  }

  /** Crashes `victim`; restarts it after `restartUs` unless that is negative. */
  private crash(victim: ReplicaHost, restartUs: number): void {
    this.stats.crashes++;
    victim.traceLine(`CRASH${victim.syncing !== null ? " (fsync in flight: its batch is lost)" : ""}`);
    victim.crash();
    if (restartUs >= 0) this.push(this.nowUs + restartUs, EventKind.restart, victim.index, 0, null);
  }

  private restartOne(): void {
    const down = this.hosts.filter((h) => !h.alive);
    if (down.length > 0) this.startHost(this.faultPrng.pick(down));
  }

  private pauseOne(): void {
    const live = this.hosts.filter((h) => h.alive && !h.paused);
    if (live.length === 0) return;
    const victim = this.faultPrng.pick(live);
    const us = this.faultPrng.int(10_000, 800_000);
    this.stats.pauses++;
    victim.traceLine(`PAUSE for ${us / 1000} ms`);
    victim.pause();
    this.push(this.nowUs + us, EventKind.pauseEnd, victim.index, victim.incarnation, null);
  }

  /** The live replica that last reported itself leader in the highest term, if any. */
  private findLeader(): ReplicaHost | null {
    let best: ReplicaHost | null = null;
    let bestTerm = -1;
    for (const h of this.hosts) {
      if (h.alive && h.lastRole === "leader" && h.lastTerm > bestTerm) {
        best = h;
        bestTerm = h.lastTerm;
      }
    }
    return best;
  }

  /* Liveness ----------------------------------------------------------------------------------- */

  /**
   * Ends the faults: heal every link, make the network reliable (delays stay), resume paused
   * replicas, and restart crashed ones — all of them, or sometimes all but a minority, so the
   * bound is shown for "a quorum is healthy", not only "everything is healthy".
   */
  private startLiveness(): void {
    this.phase = "liveness";
    this.livenessStartUs = this.nowUs;
    this.net.healAll();
    this.net.params = { ...this.net.params, lossP: 0, dupP: 0, longDelayP: 0 };
    const n = this.hosts.length;
    const minorityMax = (n - 1) >> 1;
    let keepDown = this.faultPrng.chance(0.3) ? this.faultPrng.int(1, minorityMax + 1) : 0;
    this.traceNote(`liveness phase: heal, restart all crashed replicas but ${keepDown}`);
    for (const h of this.hosts) {
      if (h.paused) h.resume();
      if (h.alive) continue;
      if (keepDown > 0) {
        keepDown--;
        continue;
      }
      this.startHost(h);
    }
    this.push(this.nowUs + this.params.livenessBoundUs, EventKind.deadline, 0, 0, null);
  }

  private finalChecks(): void {
    const leader = this.findLeader();
    for (const h of this.hosts) if (h.alive) this.checker.finalCheck(h.id, h === leader);
  }

  private traceNote(text: string): void {
    this.trace?.push(`${formatTime(this.nowUs)}    ${text}`);
  }
}

/** Runs one seed; with `trace` the per-step trace is returned too. */
export function runSeed(options: SimOptions): { readonly result: SeedResult; readonly trace: readonly string[] | null } {
  const sim = new Simulator(options);
  const result = sim.run();
  return { result, trace: sim.trace };
}
