/**
 * The network layer of the real-process chaos harness (issue 5, item 1).
 *
 * A TestNetwork is N hosts, each in its own network namespace, wired through veth pairs to one
 * "switch" namespace that holds a Linux bridge. Faults come from real OS tools run inside those
 * namespaces: nftables for partitions and tc netem for delay and loss.
 *
 * The root (host) network namespace is never modified: veth pairs are created inside the switch
 * namespace with their peer placed straight into the host namespace (`ip link add ... netns`), so
 * no interface, address, route or rule ever exists in the root namespace, even transiently.
 */
import { execFileSync, spawn as spawnChild } from "node:child_process";
import type { ChildProcess, SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";

/** A failed or impossible network operation. The message quotes the command and its stderr. */
export class NetnsError extends Error {
  override readonly name = "NetnsError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export type NetnsProbe = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Every namespace this module creates starts with this, so leftovers are easy to find. */
export const namespacePrefix = "dlj-";
/** Upper bound on hosts: one /24 per run, and interface names must stay under 16 bytes. */
export const hostCountMax = 64;
/** Default bound on any single OS command; `ip`/`nft`/`tc` answer in milliseconds normally. */
export const commandTimeoutMsDefault = 10_000;
/** The host-side interface name inside every host namespace. */
const hostInterface = "eth0";
/** The nftables table that holds every partition rule; heal() deletes it. */
const nemesisTable = "dlj_nemesis";

interface RunResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly missing: boolean;
  readonly error: unknown;
}

/** Runs a command with a hard timeout and returns the outcome as a value (never throws). */
function tryRun(file: string, args: readonly string[], timeoutMs: number, input?: string): RunResult {
  try {
    const stdout = execFileSync(file, args, {
      timeout: timeoutMs,
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
      ...(input === undefined ? {} : { input }),
    });
    return { ok: true, stdout, stderr: "", missing: false, error: null };
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string | Buffer; stdout?: string | Buffer };
    return {
      ok: false,
      stdout: String(e.stdout ?? ""),
      stderr: String(e.stderr ?? "").trim() || e.message,
      missing: e.code === "ENOENT",
      error,
    };
  }
}

/** Runs a command and throws NetnsError quoting the command line and stderr on failure. */
function run(file: string, args: readonly string[], timeoutMs: number, input?: string): string {
  const result = tryRun(file, args, timeoutMs, input);
  if (!result.ok) {
    throw new NetnsError(`${[file, ...args].join(" ")} failed: ${result.stderr}`, { cause: result.error });
  }
  return result.stdout;
}

/** The tools the harness needs, and the Debian package that provides each one. */
const requiredTools: readonly { file: string; versionArgs: string[]; pkg: string }[] = [
  { file: "ip", versionArgs: ["-V"], pkg: "iproute2" },
  { file: "nft", versionArgs: ["--version"], pkg: "nftables" },
  { file: "tc", versionArgs: ["-V"], pkg: "iproute2" },
];

/**
 * Checks that this process can build a TestNetwork: root, `ip`, `nft`, `tc`, and a namespace that
 * can actually be created and deleted (containers often lack CAP_SYS_ADMIN even as uid 0).
 * Every step is bounded by a timeout, so the probe never hangs. The reason names what is missing.
 */
export function probeNetns(timeoutMs = 5_000): NetnsProbe {
  if (process.getuid?.() !== 0) {
    return { ok: false, reason: `not root (uid ${String(process.getuid?.())}): network namespaces need root` };
  }
  for (const tool of requiredTools) {
    const result = tryRun(tool.file, tool.versionArgs, timeoutMs);
    if (result.missing) return { ok: false, reason: `${tool.file} not found: apt-get install ${tool.pkg}` };
    if (!result.ok) return { ok: false, reason: `${tool.file} does not run: ${result.stderr}` };
  }
  return withProbeNamespace(timeoutMs, (ns) => {
    const nft = tryRun("ip", ["netns", "exec", ns, "nft", "list", "ruleset"], timeoutMs);
    if (!nft.ok) return { ok: false, reason: `nft cannot run inside a namespace: ${nft.stderr}` };
    return { ok: true };
  });
}

/**
 * Checks that the kernel has the netem qdisc. It is a separate probe because partitions work
 * without it; minimal kernels (e.g. Firecracker guests) are often built without CONFIG_NET_SCH_NETEM.
 */
export function probeNetem(timeoutMs = 5_000): NetnsProbe {
  const base = probeNetns(timeoutMs);
  if (!base.ok) return base;
  return withProbeNamespace(timeoutMs, (ns) => {
    const args = ["netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"];
    const tc = tryRun("ip", args, timeoutMs);
    if (!tc.ok) return { ok: false, reason: netemUnavailableReason(tc.stderr) };
    return { ok: true };
  });
}

function netemUnavailableReason(stderr: string): string {
  if (/qdisc kind is unknown/i.test(stderr)) {
    return "tc netem unavailable: the kernel lacks the sch_netem qdisc (CONFIG_NET_SCH_NETEM)";
  }
  return `tc netem failed: ${stderr}`;
}

/** Creates a throwaway namespace, runs `body` in it, and always deletes it. */
function withProbeNamespace(timeoutMs: number, body: (ns: string) => NetnsProbe): NetnsProbe {
  const ns = `${namespacePrefix}probe-${process.pid}-${randomBytes(3).toString("hex")}`;
  const add = tryRun("ip", ["netns", "add", ns], timeoutMs);
  if (!add.ok) return { ok: false, reason: `cannot create a network namespace: ${add.stderr}` };
  try {
    return body(ns);
  } finally {
    tryRun("ip", ["netns", "del", ns], timeoutMs);
  }
}

/** Names of all network namespaces on this machine (`ip netns list`). */
export function listNamespaces(timeoutMs = commandTimeoutMsDefault): string[] {
  return parseNamespaceList(run("ip", ["netns", "list"], timeoutMs));
}

export interface NetemOptions {
  /** Added one-way delay on the host's egress, in ms. */
  readonly delayMs?: number;
  /** Uniform jitter around delayMs, in ms; needs delayMs. */
  readonly jitterMs?: number;
  /** Egress packet loss, in percent [0, 100]. */
  readonly lossPct?: number;
}

export interface TestNetworkOptions {
  /** Number of hosts, named n1..nN; in [1, hostCountMax]. */
  readonly hostCount: number;
  /** Unique id of this run: lowercase hex, 4 to 8 characters. Random when absent. */
  readonly runId?: string;
  /** Bound on each OS command, in ms. */
  readonly commandTimeoutMs?: number;
  /**
   * Named hosts after n1..nN (e.g. ["c"] for the chaos run's coordinator): lowercase, a letter
   * then up to 7 letters or digits, not "sw" and not of the form n<digits>.
   */
  readonly extraHosts?: readonly string[];
}

interface ValidNetworkOptions {
  readonly hostCount: number;
  readonly runId: string;
  readonly commandTimeoutMs: number;
  readonly extraHosts: readonly string[];
}

const extraHostPattern = /^[a-z][a-z0-9]{0,7}$/;
const runIdPattern = /^[0-9a-f]{4,8}$/;

function validateOptions(options: TestNetworkOptions): ValidNetworkOptions {
  const { hostCount } = options;
  if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > hostCountMax) {
    throw new NetnsError(`hostCount (${hostCount}) must be an integer in [1, ${hostCountMax}]`);
  }
  const runId = options.runId ?? randomBytes(3).toString("hex");
  if (!runIdPattern.test(runId)) {
    throw new NetnsError(`runId (${JSON.stringify(runId)}) must be 4 to 8 lowercase hex characters`);
  }
  const commandTimeoutMs = options.commandTimeoutMs ?? commandTimeoutMsDefault;
  if (!Number.isInteger(commandTimeoutMs) || commandTimeoutMs <= 0) {
    throw new NetnsError(`commandTimeoutMs (${commandTimeoutMs}) must be a positive integer`);
  }
  const extraHosts = [...(options.extraHosts ?? [])];
  for (const h of extraHosts) {
    if (!extraHostPattern.test(h) || h === "sw" || /^n\d+$/.test(h)) {
      throw new NetnsError(`extraHosts entry ${JSON.stringify(h)} must match ${extraHostPattern}, and not be "sw" or n<digits>`);
    }
  }
  if (new Set(extraHosts).size !== extraHosts.length) throw new NetnsError(`extraHosts has duplicates: ${extraHosts.join(", ")}`);
  if (hostCount + extraHosts.length > hostCountMax) {
    throw new NetnsError(`hostCount + extraHosts (${hostCount + extraHosts.length}) must be at most ${hostCountMax}`);
  }
  return Object.freeze({ hostCount, runId, commandTimeoutMs, extraHosts: Object.freeze(extraHosts) });
}

/**
 * The third octet of the run's 10.77.k.0/24, in [1, 254], derived from the run id. Each run has
 * its own bridge, so addresses cannot clash on the wire; distinct subnets keep logs and captures
 * from parallel runs unambiguous.
 */
export function subnetOctet(runId: string): number {
  let hash = 0;
  for (const ch of runId) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return (hash % 254) + 1;
}

/** Validates NetemOptions once and renders the `tc ... netem` arguments. */
function netemArgs(options: NetemOptions): string[] {
  const { delayMs, jitterMs, lossPct } = options;
  const checkMs = (field: string, value: number | undefined): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < 0 || value > 60_000)) {
      throw new NetnsError(`${field} (${value}) must be an integer in [0, 60000]`);
    }
  };
  checkMs("delayMs", delayMs);
  checkMs("jitterMs", jitterMs);
  if (jitterMs !== undefined && delayMs === undefined) {
    throw new NetnsError(`jitterMs (${jitterMs}) needs delayMs`);
  }
  if (lossPct !== undefined && (!Number.isFinite(lossPct) || lossPct < 0 || lossPct > 100)) {
    throw new NetnsError(`lossPct (${lossPct}) must be in [0, 100]`);
  }
  if (delayMs === undefined && lossPct === undefined) {
    throw new NetnsError("netem needs delayMs or lossPct");
  }
  const args: string[] = [];
  if (delayMs !== undefined) args.push("delay", `${delayMs}ms`);
  if (jitterMs !== undefined) args.push(`${jitterMs}ms`);
  if (lossPct !== undefined) args.push("loss", `${lossPct}%`);
  return args;
}

/**
 * N hosts (n1..nN) in their own network namespaces on one bridge. Build with `TestNetwork.create`;
 * always call `destroy()` (idempotent), e.g. in afterAll, so nothing outlives the run.
 *
 * Partition model (as in Jepsen's "grudge"): each host has a set of peers whose packets it drops on
 * ingress. A symmetric partition makes both sides drop each other; a one-way partition from→to
 * only makes `to` drop packets from `from`. Note that TCP then fails in both directions, because
 * replies are dropped too; only connectionless traffic shows the asymmetry.
 */
export class TestNetwork {
  readonly runId: string;
  readonly hosts: readonly string[];
  readonly subnetOctet: number;
  readonly #commandTimeoutMs: number;
  /** host -> peers whose packets it drops. Empty sets are allowed; absent means none. */
  readonly #grudge = new Map<string, Set<string>>();
  /** Random ingress loss among `#lossHosts` (nftables numgen; for kernels without netem). */
  #lossPct = 0;
  #lossHosts: readonly string[] = [];
  readonly #children = new Set<ChildProcess>();
  /** host -> IPv4 address; read from the namespaces when attached. */
  readonly #addresses = new Map<string, string>();
  /** False for a network attached by another process: destroy() then leaves the namespaces. */
  readonly #owned: boolean;
  #destroyed = false;

  private constructor(options: ValidNetworkOptions, owned: boolean) {
    this.runId = options.runId;
    this.#commandTimeoutMs = options.commandTimeoutMs;
    this.#owned = owned;
    this.subnetOctet = subnetOctet(options.runId);
    const numbered = Array.from({ length: options.hostCount }, (_, i) => `n${i + 1}`);
    this.hosts = Object.freeze([...numbered, ...options.extraHosts]);
    this.hosts.forEach((h, i) => this.#addresses.set(h, `10.77.${this.subnetOctet}.${i + 2}`));
  }

  /** Builds the whole network. On any failure it removes what it built, then throws NetnsError. */
  static create(options: TestNetworkOptions): TestNetwork {
    const net = new TestNetwork(validateOptions(options), true);
    try {
      net.#build();
    } catch (error) {
      net.destroy();
      throw error;
    }
    return net;
  }

  /**
   * Drives a network another process created (the chaos run's outer process builds it, the inner
   * one, running inside a host's namespace, applies the faults). Hosts are found from the
   * namespaces of `runId` and their addresses read from them. destroy() on an attached network
   * kills what it spawned and removes its rules, but leaves the namespaces to their creator.
   */
  static attach(runId: string, commandTimeoutMs = commandTimeoutMsDefault): TestNetwork {
    if (!runIdPattern.test(runId)) throw new NetnsError(`runId (${JSON.stringify(runId)}) must be 4 to 8 lowercase hex characters`);
    const prefix = `${namespacePrefix}${runId}-`;
    const names = listNamespaces(commandTimeoutMs)
      .filter((n) => n.startsWith(prefix))
      .map((n) => n.slice(prefix.length))
      .filter((h) => h !== "sw");
    const numbered = names.filter((h) => /^n\d+$/.test(h)).sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)));
    const extraHosts = names.filter((h) => !/^n\d+$/.test(h)).sort();
    if (numbered.length === 0) throw new NetnsError(`no network with run id ${runId}: no namespace ${prefix}n1 (ip netns list)`);
    if (numbered.some((h, i) => h !== `n${i + 1}`)) throw new NetnsError(`network ${runId} has hosts ${numbered.join(", ")}, not n1..n${numbered.length}`);
    const net = new TestNetwork(validateOptions({ hostCount: numbered.length, runId, commandTimeoutMs, extraHosts }), false);
    for (const host of net.hosts) {
      const out = run("ip", ["-n", net.namespace(host), "-4", "-o", "addr", "show", "dev", hostInterface], commandTimeoutMs);
      const m = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out);
      if (m === null) throw new NetnsError(`host ${host} of network ${runId} has no IPv4 address on ${hostInterface}: ${out.trim()}`);
      net.#addresses.set(host, m[1] as string);
    }
    return net;
  }

  /** Namespace name of a host, e.g. "dlj-ab12cd-n1"; the switch is "<prefix>sw". */
  namespace(host: string): string {
    this.#checkHost(host);
    return `${this.#prefix()}${host}`;
  }

  /** The host's IPv4 address: 10.77.<subnetOctet>.<hostNumber + 1>. */
  address(host: string): string {
    this.#checkHost(host);
    return this.#addresses.get(host) as string;
  }

  #prefix(): string {
    return `${namespacePrefix}${this.runId}-`;
  }

  #switchNamespace(): string {
    return `${this.#prefix()}sw`;
  }

  #checkHost(host: string): void {
    if (!this.hosts.includes(host)) {
      throw new NetnsError(`unknown host ${JSON.stringify(host)}; hosts are ${this.hosts.join(", ")}`);
    }
  }

  #ip(args: readonly string[]): string {
    return run("ip", args, this.#commandTimeoutMs);
  }

  #build(): void {
    const sw = this.#switchNamespace();
    this.#ip(["netns", "add", sw]);
    this.#ip(["-n", sw, "link", "set", "lo", "up"]);
    this.#ip(["-n", sw, "link", "add", "br0", "type", "bridge"]);
    this.#ip(["-n", sw, "link", "set", "br0", "up"]);
    for (const host of this.hosts) {
      const ns = this.namespace(host);
      const port = `p-${host}`;
      this.#ip(["netns", "add", ns]);
      this.#ip(["-n", ns, "link", "set", "lo", "up"]);
      // Both ends are born in non-root namespaces: the root namespace never sees them.
      this.#ip(["-n", sw, "link", "add", port, "type", "veth", "peer", "name", hostInterface, "netns", ns]);
      this.#ip(["-n", sw, "link", "set", port, "master", "br0"]);
      this.#ip(["-n", sw, "link", "set", port, "up"]);
      this.#ip(["-n", ns, "addr", "add", `${this.address(host)}/24`, "dev", hostInterface]);
      this.#ip(["-n", ns, "link", "set", hostInterface, "up"]);
    }
  }

  /**
   * Symmetric partition: hosts in different groups cannot reach each other. Replaces any earlier
   * partition. Hosts not named in any group keep full connectivity. Each host may appear once.
   */
  partition(groups: readonly (readonly string[])[]): void {
    const groupOf = new Map<string, number>();
    groups.forEach((group, g) => {
      for (const host of group) {
        this.#checkHost(host);
        if (groupOf.has(host)) throw new NetnsError(`host ${host} appears in two partition groups`);
        groupOf.set(host, g);
      }
    });
    this.#grudge.clear();
    for (const [host, g] of groupOf) {
      const drops = new Set([...groupOf].filter(([, other]) => other !== g).map(([peer]) => peer));
      this.#grudge.set(host, drops);
    }
    this.#applyAll();
  }

  /** Drops packets travelling from `from` to `to` (ingress at `to`). Adds to any existing partition. */
  partitionOneWay(from: string, to: string): void {
    this.#checkHost(from);
    this.#checkHost(to);
    if (from === to) throw new NetnsError(`partitionOneWay needs two hosts, got ${from} twice`);
    const drops = this.#grudge.get(to) ?? new Set<string>();
    drops.add(from);
    this.#grudge.set(to, drops);
    this.#apply(to);
  }

  /**
   * Replaces the whole partition with `grudge`: host -> the hosts whose packets it drops. Any
   * topology (ring, bridge, one-way) is a grudge. A host may not hold a grudge against itself.
   */
  setGrudge(grudge: ReadonlyMap<string, readonly string[]>): void {
    for (const [host, peers] of grudge) {
      this.#checkHost(host);
      for (const peer of peers) {
        this.#checkHost(peer);
        if (peer === host) throw new NetnsError(`host ${host} cannot drop its own packets`);
      }
    }
    this.#grudge.clear();
    for (const [host, peers] of grudge) if (peers.length > 0) this.#grudge.set(host, new Set(peers));
    this.#applyAll();
  }

  /** The current grudge (host -> peers it drops), for reports and assertions. */
  grudge(): Map<string, string[]> {
    return new Map([...this.#grudge].map(([h, peers]) => [h, [...peers].sort()]));
  }

  /**
   * Random packet loss without netem: each host in `among` drops `lossPct` percent of the packets
   * arriving from the other hosts in `among` (nftables `numgen random`), so the loss is applied
   * once per direction. Hosts outside `among` (e.g. the coordinator) are unaffected. Replaces any
   * earlier loss; lossPct 0 clears it.
   */
  setLoss(lossPct: number, among: readonly string[]): void {
    if (!Number.isInteger(lossPct) || lossPct < 0 || lossPct > 100) throw new NetnsError(`lossPct (${lossPct}) must be an integer in [0, 100]`);
    for (const h of among) this.#checkHost(h);
    const before = this.#lossHosts;
    this.#lossPct = lossPct;
    this.#lossHosts = lossPct === 0 ? [] : [...among];
    for (const host of new Set([...before, ...this.#lossHosts])) this.#apply(host);
  }

  /** Cuts `host` off from every other host, in both directions. */
  isolate(host: string): void {
    this.#checkHost(host);
    this.partition([[host], this.hosts.filter((h) => h !== host)]);
  }

  /** Removes every partition rule from every host (not the loss of setLoss). Idempotent. */
  heal(): void {
    this.#grudge.clear();
    this.#applyAll();
  }

  #applyAll(): void {
    for (const host of this.hosts) this.#apply(host);
  }

  /**
   * Rewrites the host's nemesis table in one nft transaction, so a packet never sees a half-applied
   * rule set. The leading "table ...; delete table ..." pair makes the delete safe when absent.
   */
  #apply(host: string): void {
    const drops = [...(this.#grudge.get(host) ?? [])].map((peer) => this.address(peer));
    const lossy = this.#lossHosts.includes(host) ? this.#lossHosts.filter((h) => h !== host).map((peer) => this.address(peer)) : [];
    const rules: string[] = [];
    if (drops.length > 0) rules.push(`    ip saddr { ${drops.join(", ")} } drop`);
    if (lossy.length > 0) rules.push(`    ip saddr { ${lossy.join(", ")} } numgen random mod 100 < ${this.#lossPct} drop`);
    const lines = [`table inet ${nemesisTable}`, `delete table inet ${nemesisTable}`];
    if (rules.length > 0) {
      lines.push(`table inet ${nemesisTable} {`, "  chain input {", "    type filter hook input priority 0; policy accept;", ...rules, "  }", "}");
    }
    const args = ["netns", "exec", this.namespace(host), "nft", "-f", "-"];
    run("ip", args, this.#commandTimeoutMs, `${lines.join("\n")}\n`);
  }

  /** The host's current nftables ruleset (`nft list ruleset`), for assertions and reports. */
  ruleset(host: string): string {
    return this.#ip(["netns", "exec", this.namespace(host), "nft", "list", "ruleset"]);
  }

  /** Adds delay, jitter and/or loss to the host's egress with tc netem; replaces earlier netem. */
  netem(host: string, options: NetemOptions): void {
    const params = netemArgs(options);
    const args = ["-n", this.namespace(host), "qdisc", "replace", "dev", hostInterface, "root", "netem", ...params];
    const result = tryRun("tc", args, this.#commandTimeoutMs);
    if (!result.ok) throw new NetnsError(netemUnavailableReason(result.stderr), { cause: result.error });
  }

  /** Removes netem from the host's interface. Idempotent: a host without netem is left alone. */
  clearNetem(host: string): void {
    if (!this.qdiscs(host).includes("netem")) return;
    run("tc", ["-n", this.namespace(host), "qdisc", "del", "dev", hostInterface, "root"], this.#commandTimeoutMs);
  }

  /** `tc qdisc show` inside the host's namespace. */
  qdiscs(host: string): string {
    return run("tc", ["-n", this.namespace(host), "qdisc", "show"], this.#commandTimeoutMs);
  }

  /**
   * Runs argv to completion inside the host's namespace and returns stdout. Throws NetnsError on a
   * non-zero exit or when timeoutMs (default: the network's command timeout) passes.
   */
  exec(host: string, argv: readonly string[], options: { timeoutMs?: number; input?: string } = {}): string {
    if (argv.length === 0) throw new NetnsError("exec needs a non-empty argv");
    const args = ["netns", "exec", this.namespace(host), ...argv];
    return run("ip", args, options.timeoutMs ?? this.#commandTimeoutMs, options.input);
  }

  /**
   * Starts argv inside the host's namespace. `ip netns exec` execs argv in place, so the returned
   * ChildProcess's pid is argv's own pid and callers can signal it directly. The network keeps a
   * reference and SIGKILLs it in destroy() if it is still running.
   */
  spawn(host: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
    if (argv.length === 0) throw new NetnsError("spawn needs a non-empty argv");
    if (this.#destroyed) throw new NetnsError(`network ${this.runId} is destroyed`);
    const child = spawnChild("ip", ["netns", "exec", this.namespace(host), ...argv], options);
    this.#children.add(child);
    child.once("exit", () => this.#children.delete(child));
    return child;
  }

  /**
   * Removes everything with this run's prefix: processes started here, every namespace (which takes
   * the veths, bridge, rules and qdiscs with it), and leftovers from an earlier crash of the same
   * run id. Idempotent and best-effort: it keeps going past failures, then throws the first one.
   */
  destroy(): void {
    this.#destroyed = true;
    for (const child of this.#children) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    this.#children.clear();
    if (!this.#owned) {
      this.#detach();
      return;
    }
    const failures: string[] = [];
    const ours = tryRun("ip", ["netns", "list"], this.#commandTimeoutMs);
    const names = ours.ok ? parseNamespaceList(ours.stdout).filter((n) => n.startsWith(this.#prefix())) : [];
    for (const ns of names) {
      // A namespace lingers while any process is inside it. Only processes of this run's
      // namespaces are listed, so these pids are ours (grandchildren of spawn()).
      const pids = tryRun("ip", ["netns", "pids", ns], this.#commandTimeoutMs);
      for (const pid of pids.ok ? pids.stdout.split(/\s+/).filter(Boolean) : []) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // Already gone: nothing to do.
        }
      }
      const del = tryRun("ip", ["netns", "del", ns], this.#commandTimeoutMs);
      if (!del.ok) failures.push(`ip netns del ${ns}: ${del.stderr}`);
    }
    if (!ours.ok) failures.push(`ip netns list: ${ours.stderr}`);
    if (failures.length > 0) throw new NetnsError(`destroy ${this.runId}: ${failures.join("; ")}`);
  }

  /** An attached network's destroy(): remove this process's rules, leave the namespaces. */
  #detach(): void {
    this.#grudge.clear();
    this.#lossPct = 0;
    this.#lossHosts = [];
    const failures: string[] = [];
    for (const host of this.hosts) {
      try {
        this.#apply(host);
      } catch (error) {
        // The creator may already have deleted the namespaces: nothing left to clean then.
        if (listNamespaces(this.#commandTimeoutMs).includes(this.namespace(host))) failures.push((error as Error).message);
      }
    }
    if (failures.length > 0) throw new NetnsError(`detach ${this.runId}: ${failures.join("; ")}`);
  }
}

/** `ip netns list` prints "name (id: 3)" or just "name", one a line. */
function parseNamespaceList(out: string): string[] {
  return out
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name.length > 0);
}
