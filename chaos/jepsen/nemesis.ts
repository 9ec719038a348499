/**
 * The fault catalogue and its seeded scheduler (issue 5, item 2). The scheduler alternates a
 * quiet period and a fault period, one fault at a time; the plan (which fault, how long) comes
 * from the run's seed alone, so one seed gives the same sequence of planned faults whatever the
 * cluster does; targets (a random replica, the current leader) are drawn from a separate stream.
 * Every start and stop is recorded as a nemesis note `{fault, nodes, detail}`; the start note
 * is written once the fault is in place, the stop note once it is lifted. Before run() returns,
 * everything is healed: the final reads see a whole cluster.
 */
import { CorruptionUnavailableError } from "./corruption.js";
import { Prng } from "../../raft/base/prng.js";
import type { Json } from "../checkers/history.js";
import type { ChaosCluster, Corruption, HistoryRecorder, NemesisFamily, NodeId } from "./contracts.js";
import { nemesisFamilies } from "./contracts.js";

export const faultKinds = [
  "kill-random",
  "kill-leader",
  "pause-random",
  "pause-leader",
  "partition-halves",
  "isolate-leader",
  "partition-ring",
  "partition-bridge",
  "partition-one-way",
  "loss",
  "delay",
  "clock-skew",
  "corrupt",
] as const;
export type FaultKind = (typeof faultKinds)[number];

export const faultFamily: Readonly<Record<FaultKind, NemesisFamily>> = {
  "kill-random": "kill",
  "kill-leader": "kill",
  "pause-random": "pause",
  "pause-leader": "pause",
  "partition-halves": "partition",
  "isolate-leader": "partition",
  "partition-ring": "partition",
  "partition-bridge": "partition",
  "partition-one-way": "partition",
  loss: "netem",
  delay: "netem",
  "clock-skew": "clock",
  corrupt: "corrupt",
};

export class NemesisConfigError extends Error {
  override readonly name = "NemesisConfigError";
}

/** Parses `--nemesis kill,pause,...` or `all`; unknown names throw NemesisConfigError naming them. */
export function parseNemesisFamilies(spec: string): NemesisFamily[] {
  const names = spec.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length === 0) throw new NemesisConfigError(`--nemesis is empty; choose from ${nemesisFamilies.join(", ")} or all`);
  if (names.includes("all")) return [...nemesisFamilies];
  const bad = names.filter((n) => !(nemesisFamilies as readonly string[]).includes(n));
  if (bad.length > 0) throw new NemesisConfigError(`unknown nemesis ${bad.map((b) => JSON.stringify(b)).join(", ")}; choose from ${nemesisFamilies.join(", ")} or all`);
  return [...new Set(names)] as NemesisFamily[];
}

export interface NemesisTiming {
  /** Quiet period between faults, ms, [lo, hi). */
  readonly quietMs: readonly [number, number];
  /** Fault period, ms, [lo, hi). */
  readonly faultMs: readonly [number, number];
}
export const nemesisTimingDefaults: NemesisTiming = { quietMs: [1000, 3000], faultMs: [1000, 4000] };

/** Bounds the scheduler needs. */
export const nemesisDefaults = {
  /** Bound on a leader lookup for a "-leader" fault. */
  leaderLookupMs: 1000,
  lossPct: 20,
  delayMs: 50,
  /** Faults per run at most (a run is also bounded by its signal). */
  faultsMax: 100_000,
} as const;

export interface PlannedFault {
  readonly kind: FaultKind;
  readonly quietMs: number;
  readonly faultMs: number;
}

/**
 * The seeded plan: an endless, deterministic sequence of (fault kind, quiet, fault duration).
 * `kinds` is what the cluster can do; `only` repeats one kind (e.g. 20 leader isolations).
 */
export function* planFaults(seed: number, kinds: readonly FaultKind[], timing: NemesisTiming = nemesisTimingDefaults): Generator<PlannedFault> {
  if (kinds.length === 0) return;
  checkRange("quietMs", timing.quietMs);
  checkRange("faultMs", timing.faultMs);
  const prng = new Prng(seed).fork();
  for (;;) {
    const kind = prng.pick(kinds);
    const quietMs = prng.int(timing.quietMs[0], timing.quietMs[1]);
    const faultMs = prng.int(timing.faultMs[0], timing.faultMs[1]);
    yield { kind, quietMs, faultMs };
  }
}

function checkRange(field: string, r: readonly [number, number]): void {
  if (!Number.isInteger(r[0]) || !Number.isInteger(r[1]) || r[0] < 0 || r[0] >= r[1]) throw new NemesisConfigError(`${field} [${r[0]}, ${r[1]}) must be integers with 0 <= lo < hi`);
}

export interface NemesisOptions {
  readonly cluster: ChaosCluster;
  readonly recorder: HistoryRecorder;
  readonly seed: number;
  /** Families to mix; default all. Ignored when `only` is set. */
  readonly families?: readonly NemesisFamily[];
  /** Run this one fault kind repeatedly instead (e.g. "isolate-leader"). */
  readonly only?: FaultKind;
  /** Stop after this many faults (the run's signal also stops it). */
  readonly faultsMax?: number;
  readonly timing?: NemesisTiming;
  /** Lines for the operator: skipped families, incidents. */
  readonly print?: (line: string) => void;
}

/** The kinds a cluster can inject, and a line per family or kind it cannot (never silent). */
export function availableKinds(cluster: ChaosCluster, families: readonly NemesisFamily[], only?: FaultKind): { kinds: FaultKind[]; skipped: string[] } {
  const caps = cluster.capabilities;
  const wanted = only !== undefined ? [only] : faultKinds.filter((k) => families.includes(faultFamily[k]));
  const skipped: string[] = [];
  const kinds: FaultKind[] = [];
  const limitation = (prefix: string): string => caps.limitations.find((l) => l.startsWith(prefix)) ?? `${prefix}: unavailable in ${caps.mode} mode`;
  for (const k of wanted) {
    const family = faultFamily[k];
    if (family === "partition" && !caps.partitions) skipped.push(`nemesis ${k} skipped: ${limitation("partitions")}`);
    else if (k === "loss" && !caps.loss) skipped.push(`nemesis ${k} skipped: ${limitation("loss")}`);
    else if (k === "delay" && !caps.delay) skipped.push(`nemesis ${k} skipped: ${limitation("delay")}`);
    else if (family === "clock" && !caps.clock) skipped.push(`nemesis ${k} skipped: clock skew unavailable`);
    else if (cluster.nodes.length < 3 && (family === "partition" || k === "corrupt")) skipped.push(`nemesis ${k} skipped: needs at least 3 replicas`);
    else if (k === "partition-ring" && cluster.nodes.length < 5) skipped.push(`nemesis ${k} skipped: with ${cluster.nodes.length} replicas every replica is its neighbours' neighbour (needs 5)`);
    else kinds.push(k);
  }
  return { kinds, skipped };
}

/** A fault in place: what the stop note and the undo need. */
interface ActiveFault {
  readonly kind: FaultKind;
  readonly nodes: readonly NodeId[];
  readonly detail: Record<string, Json>;
  readonly undo: () => Promise<void>;
}

/** Sleeps `ms`, or less when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((done) => {
    if (signal.aborted) return done();
    const t = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", finish);
      done();
    }
    signal.addEventListener("abort", finish, { once: true });
  });
}

export class Nemesis {
  /** One line per fault kind or family that this cluster cannot inject. */
  readonly skipped: readonly string[];
  readonly kinds: readonly FaultKind[];
  /** Problems injecting or lifting faults (e.g. a replica that will not restart). */
  readonly incidents: string[] = [];
  /** Faults started (the start note written). */
  faultsInjected = 0;
  readonly #opts: NemesisOptions;
  readonly #targets: Prng;
  readonly #print: (line: string) => void;

  constructor(opts: NemesisOptions) {
    this.#opts = opts;
    this.#print = opts.print ?? (() => {});
    const { kinds, skipped } = availableKinds(opts.cluster, opts.families ?? nemesisFamilies, opts.only);
    this.kinds = kinds;
    this.skipped = skipped;
    // Targets come from their own stream, so the plan does not depend on the cluster's answers.
    this.#targets = new Prng(opts.seed).fork().fork();
    for (const line of skipped) this.#print(line);
  }

  #incident(message: string): void {
    this.incidents.push(message);
    this.#print(`nemesis incident: ${message}`);
  }

  /** Runs faults until `signal` aborts (or faultsMax), then heals everything. Never throws. */
  async run(signal: AbortSignal): Promise<void> {
    const plan = planFaults(this.#opts.seed, this.kinds, this.#opts.timing ?? nemesisTimingDefaults);
    const faultsMax = this.#opts.faultsMax ?? nemesisDefaults.faultsMax;
    try {
      for (let n = 0; n < faultsMax && !signal.aborted; n++) {
        const next = plan.next();
        if (next.done === true) {
          await pause(2 ** 31 - 1, signal); // Nothing to inject: wait for the end of the run.
          break;
        }
        await pause(next.value.quietMs, signal);
        if (signal.aborted) break;
        const active = await this.#startFault(next.value.kind);
        if (active === null) continue;
        await pause(next.value.faultMs, signal);
        await this.#stopFault(active);
      }
    } finally {
      await this.healAll();
    }
  }

  async #startFault(kind: FaultKind): Promise<ActiveFault | null> {
    try {
      const active = await this.#inject(kind);
      this.faultsInjected++;
      this.#opts.recorder.nemesis({ f: "start", value: { fault: kind, nodes: [...active.nodes], detail: active.detail } });
      return active;
    } catch (e) {
      this.#incident(`${kind}: could not start: ${(e as Error).message}`);
      await this.healAll();
      return null;
    }
  }

  async #stopFault(active: ActiveFault): Promise<void> {
    let error: string | null = null;
    try {
      await active.undo();
    } catch (e) {
      error = (e as Error).message;
      this.#incident(`${active.kind}: could not stop: ${error}`);
      await this.healAll();
    }
    const detail = error === null ? active.detail : { ...active.detail, error };
    this.#opts.recorder.nemesis({ f: "stop", value: { fault: active.kind, nodes: [...active.nodes], detail } });
  }

  /** Picks the leader (bounded lookup) or, with none, a random replica, saying which in the detail. */
  async #leaderOrRandom(): Promise<{ id: NodeId; detail: Record<string, Json> }> {
    const ids = this.#opts.cluster.nodes.map((n) => n.id);
    const random = this.#targets.pick(ids);
    const leader = await this.#opts.cluster.leader(nemesisDefaults.leaderLookupMs);
    if (leader !== null) return { id: leader, detail: { leader } };
    return { id: random, detail: { leader: null, note: `no leader within ${nemesisDefaults.leaderLookupMs} ms; picked ${random} at random` } };
  }

  #running(): NodeId[] {
    return this.#opts.cluster.nodes.map((n) => n.id).filter((id) => this.#opts.cluster.isRunning(id));
  }

  async #inject(kind: FaultKind): Promise<ActiveFault> {
    const c = this.#opts.cluster;
    const ids = c.nodes.map((n) => n.id);
    const shuffled = [...ids];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = this.#targets.int(0, i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j] as NodeId, shuffled[i] as NodeId];
    }
    switch (kind) {
      case "kill-random":
      case "kill-leader": {
        const t = kind === "kill-leader" ? await this.#leaderOrRandom() : { id: this.#targets.pick(this.#running()), detail: {} };
        await c.kill(t.id);
        return { kind, nodes: [t.id], detail: t.detail, undo: () => c.restart(t.id) };
      }
      case "pause-random":
      case "pause-leader": {
        const t = kind === "pause-leader" ? await this.#leaderOrRandom() : { id: this.#targets.pick(this.#running()), detail: {} };
        await c.pause(t.id);
        return { kind, nodes: [t.id], detail: t.detail, undo: () => c.resume(t.id) };
      }
      case "partition-halves": {
        const cut = Math.floor(ids.length / 2);
        const groups = [shuffled.slice(0, cut), shuffled.slice(cut)];
        await c.partition(groups);
        return { kind, nodes: ids, detail: { groups }, undo: () => c.heal() };
      }
      case "isolate-leader": {
        const t = await this.#leaderOrRandom();
        const groups = [[t.id], ids.filter((id) => id !== t.id)];
        await c.partition(groups);
        return { kind, nodes: [t.id], detail: { ...t.detail, groups }, undo: () => c.heal() };
      }
      case "partition-ring":
      case "partition-bridge": {
        const grudge = kind === "partition-ring" ? ringGrudge(shuffled) : bridgeGrudge(shuffled);
        await c.partitionGrudge(grudge);
        return { kind, nodes: ids, detail: { grudge: Object.fromEntries(grudge) }, undo: () => c.heal() };
      }
      case "partition-one-way": {
        const [from, to] = shuffled as [NodeId, NodeId];
        await c.partitionOneWay(from, to);
        return { kind, nodes: [from, to], detail: { from, to }, undo: () => c.heal() };
      }
      case "loss":
      case "delay": {
        const faults = kind === "loss" ? { lossPct: nemesisDefaults.lossPct } : { lossPct: 0, delayMs: nemesisDefaults.delayMs };
        await c.setLinkFaults(faults);
        return { kind, nodes: ids, detail: { ...faults }, undo: () => c.setLinkFaults(null) };
      }
      case "clock-skew": {
        const id = this.#targets.pick(ids);
        const skew = { offsetMs: this.#targets.int(-10_000, 10_001), rate: this.#targets.pick([0.5, 0.8, 1.25, 2]) };
        await c.setClockSkew(id, skew);
        return { kind, nodes: [id], detail: { ...skew }, undo: () => c.setClockSkew(id, null) };
      }
      case "corrupt":
        return this.#corrupt();
    }
  }

  /**
   * Kill a replica, flip a byte in a committed entry, and expect the refusal on restart (row E1,
   * entry_body_crc); then repair and restart. The whole cycle is one fault interval: the start
   * note is written once the replica has refused; the stop after it is back.
   */
  async #corrupt(): Promise<ActiveFault> {
    const c = this.#opts.cluster;
    // A replica that just restarted may hold no committed entry outside its last write yet:
    // try the running replicas in a seeded order until one has an entry to damage.
    const order = [...this.#running()];
    for (let i = order.length - 1; i > 0; i--) {
      const j = this.#targets.int(0, i + 1);
      [order[i], order[j]] = [order[j] as NodeId, order[i] as NodeId];
    }
    const unavailable: string[] = [];
    let found: { id: NodeId; corruption: Corruption } | null = null;
    for (const candidate of order) {
      const knownCommit = await c.commitIndex(candidate, 1000);
      if (knownCommit === null) {
        unavailable.push(`${candidate}: no answer to Metadata`);
        continue;
      }
      await c.kill(candidate);
      try {
        found = { id: candidate, corruption: await c.corrupt(candidate, (n) => this.#targets.int(0, n), knownCommit) };
        break;
      } catch (e) {
        await c.restart(candidate);
        if (!(e instanceof CorruptionUnavailableError)) throw e;
        unavailable.push(e.message);
      }
    }
    if (found === null) throw new CorruptionUnavailableError(`no running replica had a committed entry to damage: ${unavailable.join("; ")}`);
    const { id, corruption } = found;
    let refusal: string;
    try {
      await c.restart(id);
      refusal = "restarted with a corrupt entry";
    } catch (e) {
      refusal = (e as Error).message;
    }
    const refused = /entry_body_crc/.test(refusal);
    const detail: Record<string, Json> = { entryIndex: corruption.entryIndex, file: corruption.file, offset: corruption.offset, refused };
    if (!refused) {
      // The replica started on a log it should have refused (or failed for another reason):
      // a finding, not a scheduling hiccup. Stop it, undo the damage, bring it back.
      this.#incident(`corrupt ${id}: expected a refusal naming entry_body_crc, got: ${refusal.split("\n")[0] ?? ""}`);
      if (c.isRunning(id)) await c.kill(id);
    }
    return {
      kind: "corrupt",
      nodes: [id],
      detail,
      undo: async () => {
        await c.repair(corruption);
        await c.restart(id);
      },
    };
  }

  /** Lifts every fault: partitions, link faults, clock skews, pauses, stopped replicas. Never throws. */
  async healAll(): Promise<void> {
    const c = this.#opts.cluster;
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        this.#incident(`heal: ${what}: ${(e as Error).message}`);
      }
    };
    if (c.capabilities.partitions) await attempt("partitions", () => c.heal());
    if (c.capabilities.loss) await attempt("link faults", () => c.setLinkFaults(null));
    for (const n of c.nodes) {
      if (c.isRunning(n.id)) {
        await attempt(`resume ${n.id}`, () => c.resume(n.id));
        if (c.capabilities.clock) await attempt(`clock of ${n.id}`, () => c.setClockSkew(n.id, null));
      } else {
        if (c.capabilities.clock) await attempt(`clock of ${n.id}`, () => c.setClockSkew(n.id, null));
        await attempt(`restart ${n.id}`, () => c.restart(n.id));
      }
    }
  }
}

/**
 * Majorities ring (5 replicas): each replica reaches only its two ring neighbours, so each sees a
 * majority (itself and two) but no two see the same one. Symmetric, because TCP needs both ways.
 */
export function ringGrudge(order: readonly NodeId[]): Map<NodeId, NodeId[]> {
  const n = order.length;
  const grudge = new Map<NodeId, NodeId[]>();
  order.forEach((id, i) => {
    const keep = new Set([id, order[(i + 1) % n], order[(i + n - 1) % n]]);
    grudge.set(id, order.filter((p) => !keep.has(p)));
  });
  return grudge;
}

/** Two halves joined only through one bridge replica (Jepsen's bridge): the bridge sees everyone. */
export function bridgeGrudge(order: readonly NodeId[]): Map<NodeId, NodeId[]> {
  const bridge = order[0] as NodeId;
  const rest = order.slice(1);
  const left = rest.slice(0, Math.ceil(rest.length / 2));
  const right = rest.slice(Math.ceil(rest.length / 2));
  const grudge = new Map<NodeId, NodeId[]>([[bridge, []]]);
  for (const id of left) grudge.set(id, [...right]);
  for (const id of right) grudge.set(id, [...left]);
  return grudge;
}

export function createNemesis(opts: NemesisOptions): Nemesis {
  return new Nemesis(opts);
}
