import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as os from "node:os";

/**
 * What a benchmark report says about where it ran: the box (cores, memory, Node), the commit, and
 * how busy the box was with work that is not ours. The machine is shared (2 vCPUs and other
 * sessions), so every figure is only as good as the background load recorded beside it.
 */
export interface MachineFacts {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
  readonly loadavg: readonly number[];
}

export function machineFacts(): MachineFacts {
  return {
    cores: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "?",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadavg: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

/** The checked-out commit (read-only git calls), with "+dirty" when the tree has local changes. */
export function gitCommit(cwd: string = process.cwd()): string {
  try {
    const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    return dirty === "" ? head : `${head}+dirty`;
  } catch {
    return "unknown";
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN once it is gone. */
export function procCpuSeconds(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 (utime, stime) in clock ticks; USER_HZ is 100 on Linux.
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

interface SystemTicks {
  readonly idle: number;
  readonly total: number;
}

function systemTicks(): SystemTicks {
  try {
    const f = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return { idle: Number.NaN, total: Number.NaN };
  }
}

/** CPU use over one window. 100 = one core; machineBusyPct is of all cores. */
export interface CpuUse {
  readonly generatorCpuPct: number;
  readonly serversCpuPct: number;
  readonly machineBusyPct: number;
  /** CPU used by processes that are neither the generator nor the servers: other tenants. */
  readonly foreignCpuPct: number;
}

/** Measures the generator (this process), a set of server PIDs and the whole box over a window. */
export class CpuMeter {
  private t0 = 0;
  private self: NodeJS.CpuUsage = { user: 0, system: 0 };
  private servers: number[] = [];
  private sys: SystemTicks = { idle: 0, total: 0 };

  constructor(private readonly pids: readonly number[]) {}

  start(): void {
    this.t0 = performance.now();
    this.self = process.cpuUsage();
    this.servers = this.pids.map(procCpuSeconds);
    this.sys = systemTicks();
  }

  stop(): CpuUse {
    const seconds = Math.max(1e-3, (performance.now() - this.t0) / 1000);
    const d = process.cpuUsage(this.self);
    const servers = this.pids.map(procCpuSeconds).reduce((acc, v, i) => acc + (Number.isFinite(v) ? v - (this.servers[i] ?? v) : 0), 0);
    const s = systemTicks();
    const busy = 1 - (s.idle - this.sys.idle) / Math.max(1, s.total - this.sys.total);
    const gen = ((d.user + d.system) / 1e6 / seconds) * 100;
    const srv = (servers / seconds) * 100;
    const foreign = busy * os.cpus().length * 100 - gen - srv;
    return { generatorCpuPct: Math.round(gen), serversCpuPct: Math.round(srv), machineBusyPct: Math.round(busy * 100), foreignCpuPct: Math.max(0, Math.round(foreign)) };
  }
}

/** Background load: machine-wide busy % over `ms` (before our servers start, it is all foreign). */
export async function backgroundLoad(ms = 1000): Promise<{ readonly busyPct: number; readonly loadavg1: number }> {
  const meter = new CpuMeter([]);
  meter.start();
  await new Promise((r) => setTimeout(r, ms));
  const u = meter.stop();
  return { busyPct: Math.max(0, u.machineBusyPct - Math.round(u.generatorCpuPct / os.cpus().length)), loadavg1: Math.round((os.loadavg()[0] ?? 0) * 100) / 100 };
}

/**
 * Waits up to `maxWaitS` for the box's background load to fall below `pct` (sampling 1 s at a
 * time), like ../shared/anchors: a measurement on a box another session saturates says little.
 * Returns the last sample and how long it waited; it proceeds anyway after the bound.
 */
export async function waitQuiet(pct: number, maxWaitS: number, print: (l: string) => void): Promise<{ readonly busyPct: number; readonly loadavg1: number; readonly waitedS: number }> {
  const t0 = performance.now();
  let last = await backgroundLoad(1000);
  while (last.busyPct >= pct && performance.now() - t0 < maxWaitS * 1000) {
    last = await backgroundLoad(1000);
  }
  const waitedS = Math.round((performance.now() - t0) / 100) / 10;
  if (last.busyPct >= pct) print(`background load still ${last.busyPct}% after ${waitedS} s (≥ ${pct}%): measuring anyway; read the figures with that in mind`);
  return { ...last, waitedS };
}

/** The quiet-box rule: busy % threshold and wait bound (env DLEDGER_BENCH_QUIET_PCT / _WAIT_S). */
export function quietRule(): { readonly pct: number; readonly maxWaitS: number } {
  return { pct: Number(process.env["DLEDGER_BENCH_QUIET_PCT"] ?? 25), maxWaitS: Number(process.env["DLEDGER_BENCH_QUIET_WAIT_S"] ?? 30) };
}
