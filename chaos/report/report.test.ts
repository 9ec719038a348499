import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inflateSync } from "node:zlib";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { Prng } from "../../raft/base/prng.js";
import type { ReportChecker, ReportFault, ReportOperation, RunReport } from "../jepsen/contracts.js";
import {
  downsampleScatter,
  renderHtmlReport,
  renderTextSummary,
  reportLimits,
  runVerdict,
  summaryColumnsMax,
  summaryLinesMax,
} from "./report.js";

/* --- A realistic run ------------------------------------------------------------------------- */

const hostile = `</script><img src=x onerror="alert(1)">`;

const faultPlan: readonly Omit<ReportFault, "failoverMs">[] = [
  { fault: "kill-leader", nodes: ["n1"], startNs: 6e9, stopNs: 11e9 },
  { fault: "isolate-leader", nodes: ["n2"], startNs: 17e9, stopNs: 25e9 },
  { fault: "pause", nodes: ["n3"], startNs: 29e9, stopNs: 33.5e9 },
  { fault: "partition-halves", nodes: ["n1", "n3"], startNs: 38e9, stopNs: 45e9 },
  { fault: "packet-loss", nodes: ["n1", "n2", "n3"], startNs: 40e9, stopNs: 44e9 },
  { fault: "kill", nodes: ["n2"], startNs: 49e9, stopNs: 53e9 },
  { fault: "clock-skew", nodes: ["n3"], startNs: 55e9, stopNs: null },
];
const failoverMsOf = [412, 538, 0.8, 611, 95, 301, 2.1];

/** The fault whose first `failoverMs` an invoke falls in (the group is unavailable then), if any. */
function unavailableAt(ns: number): { startNs: number; failoverMs: number } | null {
  for (const [i, f] of faultPlan.entries()) {
    const failoverMs = failoverMsOf[i] ?? 0;
    if (ns >= f.startNs && ns < f.startNs + failoverMs * 1e6) return { startNs: f.startNs, failoverMs };
  }
  return null;
}

/** About `opsTarget` operations over 60 s from 8 processes, with latency spikes in the faults. */
function operations(prng: Prng, opsTarget: number): ReportOperation[] {
  const ops: ReportOperation[] = [];
  const processes = opsTarget > 10_000 ? 128 : 8;
  const spacingNs = (60e9 * processes) / opsTarget;
  for (let p = 0; p < processes; p++) {
    let process = p;
    let t = prng.float() * spacingNs;
    while (t < 60e9) {
      const down = unavailableAt(t);
      const f = prng.pick(["read", "write", "cas"]);
      const key = prng.int(0, 5);
      let outcome: ReportOperation["outcome"] = "ok";
      let latencyNs = (1.2 + 6 * prng.float() ** 3) * 1e6;
      if (down !== null && prng.chance(0.35)) {
        outcome = "info";
        latencyNs = 1000e6;
      } else if (down !== null) latencyNs = down.startNs + down.failoverMs * 1e6 - t + prng.float() * 4e6;
      else if (prng.chance(0.015)) {
        outcome = "fail";
        latencyNs = (0.3 + prng.float()) * 1e6;
      } else if (f === "cas" && prng.chance(0.2)) outcome = "fail";
      ops.push({ process, f, key, outcome, invokeNs: Math.round(t), completeNs: Math.round(t + latencyNs) });
      if (outcome === "info") process += processes; // Jepsen: a process whose op is unknown is retired.
      t += latencyNs + spacingNs * (0.5 + prng.float());
    }
  }
  return ops.sort((a, b) => a.invokeNs - b.invokeNs);
}

const failingChecker: ReportChecker = {
  name: "linearizability (cas-register)",
  verdict: "not-linearizable",
  ok: false,
  summary: "key 3: a read returned 7 after a write of 9 had completed",
  details: [
    "key 3: no linearization of 412 operations; stuck after 188 linearized",
    "operation that could not be linearized:",
    "  process 12 read key 3 -> 7 (ok) invoked at 22.418 s, completed at 22.421 s, lines 6177-6180",
    "states the search held when it got stuck: 9, 11",
    `a value from the history: ${hostile}`,
  ],
  failingOperation: {
    process: 12,
    f: "read",
    key: 3,
    outcome: "ok",
    resultValue: 7,
    invokeNs: 22_418_000_000,
    completeNs: 22_421_000_000,
    invokeLine: 6177,
    completeLine: 6180,
  },
};

function sampleReport(opts: { opsTarget?: number; valid?: boolean } = {}): RunReport {
  const prng = new Prng(20240611);
  const ops = operations(prng, opsTarget(opts.opsTarget));
  const faults = faultPlan.map((f, i) => ({ ...f, failoverMs: failoverMsOf[i] ?? null }));
  const valid = opts.valid ?? false;
  const checkers: ReportChecker[] = [
    valid ? { ...failingChecker, verdict: "linearizable", ok: true, summary: "3,121 operations on 6 keys", details: ["no anomaly"] } : failingChecker,
    { name: "failover", verdict: "measured", ok: true, summary: "7 faults, median 301 ms, max 611 ms", details: faults.map((f) => `${f.fault}: ${f.failoverMs} ms`) },
    { name: "replica logs", verdict: "identical", ok: true, summary: "3 replicas agree up to index 9,412", details: [] },
  ];
  const count = (o: ReportOperation["outcome"]): number => ops.filter((op) => op.outcome === o).length;
  return {
    workload: "register",
    nemeses: ["kill", "partition", "pause", "netem", "clock"],
    seed: 20240611,
    startedAt: "2024-06-11T09:30:00.000Z",
    durationNs: 60e9,
    capabilities: { mode: "netns", partitions: true, loss: true, delay: true, clock: true, limitations: [] },
    nodes: ["n1", "n2", "n3"],
    historyPath: "/tmp/chaos-20240611/history.jsonl",
    counts: { invoked: ops.length, ok: count("ok"), fail: count("fail"), info: count("info") },
    operations: ops,
    faults,
    checkers,
    failover: {
      measured: 7,
      medianMs: 301,
      maxMs: 611,
      byFault: [
        { fault: "kill-random", count: 2, measured: 2, medianMs: 40, maxMs: 80 },
        { fault: "isolate-leader", count: 3, measured: 3, medianMs: 420, maxMs: 611 },
        { fault: "pause-leader", count: 2, measured: 1, medianMs: 301, maxMs: 301 },
      ],
    },
    incidents: valid ? [] : [`n2 exited with code 1 after its restart at 53.0 s: ${hostile}`],
    valid,
  };
}

function opsTarget(n: number | undefined): number {
  return n ?? 3_000;
}

/* --- Unit tests ------------------------------------------------------------------------------ */

describe("runVerdict", () => {
  const base = sampleReport({ valid: true });
  it.each([
    ["every checker passed", base, "VALID"],
    ["a checker failed", sampleReport(), "INVALID"],
    ["a checker ran out of time", { ...base, checkers: [...base.checkers, { ...failingChecker, ok: null, verdict: "unknown" }], valid: false }, "UNKNOWN"],
    ["no checker ran", { ...base, checkers: [] }, "UNKNOWN"],
    ["the runner voided the run", { ...base, valid: false, incidents: ["n3 would not restart"] }, "UNKNOWN"],
  ] as const)("%s", (_name, report, expected) => {
    expect(runVerdict(report)).toBe(expected);
  });
});

describe("renderTextSummary", () => {
  it("fits one screen and ends with the verdict", () => {
    const report = sampleReport();
    const text = renderTextSummary(report);
    const lines = text.trimEnd().split("\n");
    expect(lines.length).toBeLessThanOrEqual(summaryLinesMax);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(summaryColumnsMax);
    expect(lines.at(-1)).toMatch(/^verdict +INVALID: 1 of 3 checkers found a violation; 1 incident$/);
    expect(text).toContain(`${report.counts.invoked.toLocaleString("en-US")} invoked: ${report.counts.ok.toLocaleString("en-US")} ok`);
    expect(text).toContain("7 injected: ");
    expect(text).toContain("kill-leader 1");
    expect(text).toContain("median 301 ms, max 611 ms");
    expect(text).toMatch(/FAIL +linearizability \(cas-register\): not-linearizable/);
    expect(text).toMatch(/PASS +replica logs: identical/);
    expect(text).toContain("failing op  linearizability (cas-register): process 12 read key 3 -> 7 (ok at 22.4 s, line 6177)");
    expect(text).toContain("seed 20240611");
  });

  it("stays within its limits when every list is long, and strips terminal escapes", () => {
    const base = sampleReport();
    const long = "x".repeat(400);
    const report: RunReport = {
      ...base,
      nemeses: Array.from({ length: 30 }, (_, i) => `nemesis-${i}`),
      faults: Array.from({ length: 200 }, (_, i) => ({ fault: `fault-kind-${i % 40}-${long.slice(0, i % 7)}`, nodes: ["n1"], startNs: i * 1e8, stopNs: i * 1e8 + 5e7, failoverMs: 10 })),
      checkers: Array.from({ length: 20 }, (_, i) => ({ ...failingChecker, name: `checker ${i} ${long}` })),
      capabilities: { ...base.capabilities, mode: "process", limitations: Array.from({ length: 9 }, (_, i) => `limitation ${i}: ${long}`) },
      incidents: Array.from({ length: 12 }, (_, i) => `incident ${i}\u001b[31m red \u001b]0;title\u0007 ${long}\nsecond line`),
      historyPath: `/tmp/${long}/history.jsonl`,
    };
    const text = renderTextSummary(report);
    const lines = text.trimEnd().split("\n");
    expect(lines.length).toBeLessThanOrEqual(summaryLinesMax);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(summaryColumnsMax);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
    expect(text).toContain("... and 14 more");
    expect(text).toContain("isolate-leader: 3×, median 420 ms, max 611 ms");
    expect(text).toContain("... and 8 more (see the HTML report)");
    expect(text).toContain("process-only mode");
    expect(lines.at(-1)).toMatch(/^verdict +INVALID/);
  });
});

describe("renderHtmlReport", () => {
  it("shows the failing operation of an INVALID run, and none for a VALID one", () => {
    const invalid = renderHtmlReport(sampleReport());
    expect(invalid).toContain(`<div class="verdict invalid"><small>VERDICT</small>INVALID</div>`);
    expect(invalid).toContain(`id="failing-operation"`);
    expect(invalid).toContain("Failing operation: linearizability (cas-register)");
    expect(invalid).toContain("<code>read key 3</code>");
    expect(invalid).toContain("<code>22.418 s</code>");
    expect(invalid).toContain("<code>6177–6180 of /tmp/chaos-20240611/history.jsonl</code>");
    expect(invalid).toContain(">failing operation</text>");
    const valid = renderHtmlReport(sampleReport({ valid: true }));
    expect(valid).toContain(`<div class="verdict valid"><small>VERDICT</small>VALID</div>`);
    expect(valid).not.toContain(`id="failing-operation"`);
  });

  it("escapes untrusted text and holds no script or external resource", () => {
    const html = renderHtmlReport(sampleReport());
    expect(html).toContain("&lt;/script&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    expect(html).not.toContain(hostile);
    expect(html).not.toMatch(/<script|<img|<link|@import|url\(|src=["']?http|href=["']?http/i);
    expect(html).toContain("default-src 'none'");
  });

  it("draws every fault, numbered, and about a point per operation when the run is small", () => {
    const report = sampleReport();
    const html = renderHtmlReport(report);
    const points = scatterPointCount(html);
    expect(points).toBeLessThanOrEqual(report.operations.length);
    expect(points).toBeGreaterThan(report.operations.length / 2);
    expect(html).toMatch(/<path class="points fail" d="M\d/);
    expect(html).toMatch(/<path class="points info" d="M\d/);
    for (const f of report.faults) expect(html).toContain(`${f.fault}</td>`);
    expect(html).toContain(">1 kill-leader n1</text>");
  });
});

/** Points drawn in the latency scatter: one "h0" dot per point in the paths of class "points". */
function scatterPointCount(html: string): number {
  let n = 0;
  for (const m of html.matchAll(/<path class="points [a-z]+" d="([^"]*)"/g)) n += (m[1] ?? "").split("h0").length - 1;
  return n;
}

describe("downsampleScatter", () => {
  const position = (op: ReportOperation): { x: number; y: number } => ({ x: op.invokeNs / 1e6, y: (op.completeNs - op.invokeNs) / 1e6 });

  it("keeps everything under the budget", () => {
    const ops = operations(new Prng(1), 2_000);
    expect(downsampleScatter(ops, position, 1e9).length).toBeGreaterThan(1_900);
  });

  it("bounds the points, keeps every visible failure and the slowest op, and is deterministic", () => {
    const prng = new Prng(7);
    const ops: ReportOperation[] = [];
    for (let i = 0; i < 300_000; i++) {
      const outcome = i % 1000 === 0 ? "fail" : i % 1000 === 500 ? "info" : "ok";
      const invokeNs = i * 1e6;
      ops.push({ process: i % 16, f: "write", outcome, invokeNs, completeNs: invokeNs + (1 + prng.float() * 50) * 1e6 });
    }
    ops[123_456] = { ...(ops[123_456] as ReportOperation), completeNs: 123_456e6 + 9e9 };
    const kept = downsampleScatter(ops, position, 10_000);
    expect(kept.length).toBeLessThanOrEqual(10_000);
    expect(kept.length).toBeGreaterThan(5_000);
    expect(kept.filter((op) => op.outcome !== "ok").length).toBe(600);
    expect(kept).toContain(ops[123_456]);
    expect(downsampleScatter(ops, position, 10_000)).toEqual(kept);
  });

  it("keeps a long run's HTML to a few MB", () => {
    const report = sampleReport({ opsTarget: 400_000 });
    expect(report.operations.length).toBeGreaterThan(300_000);
    const html = renderHtmlReport(report);
    expect(scatterPointCount(html)).toBeLessThanOrEqual(reportLimits.scatterPointsMax);
    expect(scatterPointCount(html)).toBeGreaterThan(1_000);
    expect(html.length).toBeLessThan(3_000_000);
    expect(html).toMatch(/Showing [\d,]+ of [\d,]+ operations/);
  });
});

/* --- Headless Chromium ----------------------------------------------------------------------- */

const chromiumPath = "/usr/bin/chromium";
const inCi = (process.env.CI ?? "") !== "";
const chromiumSkip = !existsSync(chromiumPath) && !inCi;
/** Bound on one Chromium run; it takes about a second here. */
const chromiumTimeoutMs = 45_000;
const started = new Set<number>();
const workDir = mkdtempSync(join(tmpdir(), "dledger-report-test-"));

afterEach(() => {
  // A Chromium left behind by a failed test: end its whole process group (it was started detached).
  for (const pid of started) killGroup(pid);
  started.clear();
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Runs Chromium headless with a fresh profile; resolves with its stdout, rejects on a timeout or a non-zero exit. */
function chromium(args: readonly string[]): Promise<string> {
  const profile = mkdtempSync(join(workDir, "profile-"));
  const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"];
  flags.push("--disable-component-update", "--disable-sync", "--hide-scrollbars", `--user-data-dir=${profile}`);
  return new Promise((resolve, reject) => {
    const child = spawn(chromiumPath, [...flags, ...args], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const pid = child.pid;
    if (pid !== undefined) started.add(pid);
    const out: Buffer[] = [];
    let err = "";
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => {
      if (err.length < 20_000) err += b.toString();
    });
    const timer = setTimeout(() => {
      if (pid !== undefined) killGroup(pid);
      reject(new Error(`chromium did not finish within ${chromiumTimeoutMs} ms`));
    }, chromiumTimeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (pid !== undefined) killGroup(pid); // Helpers it forked, if any outlived it.
      if (pid !== undefined) started.delete(pid);
      if (code === 0) resolve(Buffer.concat(out).toString("utf8"));
      else reject(new Error(`chromium exited with ${code ?? signal}: ${err.slice(-2000)}`));
    });
  });
}

interface Png {
  readonly width: number;
  readonly height: number;
  /** RGBA, row-major. */
  readonly rgba: Uint8Array;
}

/** A minimal PNG decoder: 8-bit RGB or RGBA, not interlaced (what Chromium writes). */
function decodePng(file: Buffer): Png {
  expect(file.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10])), "PNG signature").toBe(true);
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  for (let chunks = 0; pos < file.length && chunks < 100_000; chunks++) {
    const length = file.readUInt32BE(pos);
    const type = file.toString("latin1", pos + 4, pos + 8);
    const data = file.subarray(pos + 8, pos + 8 + length);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect(data[8], "bit depth").toBe(8);
      expect([2, 6], "colour type").toContain(data[9]);
      expect(data[12], "interlace").toBe(0);
      channels = data[9] === 6 ? 4 : 3;
    }
    if (type === "IDAT") idat.push(data);
    if (type === "IEND") break;
    pos += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  expect(raw.length).toBe(height * (stride + 1));
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) unfilterRow(raw, px, y, stride, channels);
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) rgba[i * 4 + c] = px[i * channels + c] ?? 0;
    rgba[i * 4 + 3] = channels === 4 ? (px[i * 4 + 3] ?? 0) : 255;
  }
  return { width, height, rgba };
}

function unfilterRow(raw: Buffer, px: Uint8Array, y: number, stride: number, bpp: number): void {
  const filter = raw[y * (stride + 1)];
  const src = y * (stride + 1) + 1;
  const row = y * stride;
  for (let i = 0; i < stride; i++) {
    const a = i >= bpp ? (px[row + i - bpp] ?? 0) : 0;
    const b = y > 0 ? (px[row - stride + i] ?? 0) : 0;
    const c = i >= bpp && y > 0 ? (px[row - stride + i - bpp] ?? 0) : 0;
    const x = raw[src + i] ?? 0;
    let v: number;
    if (filter === 0) v = x;
    else if (filter === 1) v = x + a;
    else if (filter === 2) v = x + b;
    else if (filter === 3) v = x + ((a + b) >> 1);
    else if (filter === 4) {
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
    } else throw new Error(`PNG row ${y}: unknown filter ${filter}`);
    px[row + i] = v & 0xff;
  }
}

describe.skipIf(chromiumSkip)(`the report in headless Chromium${chromiumSkip ? ` (skipped: ${chromiumPath} not installed; apt-get install chromium)` : ""}`, () => {
  // REPORT_SCREENSHOT_DIR keeps the page and its screenshot for a person to look at.
  const outDir = process.env.REPORT_SCREENSHOT_DIR ?? workDir;
  const htmlPath = join(outDir, "report.html");
  const pngPath = join(outDir, "report.png");
  writeFileSync(htmlPath, renderHtmlReport(sampleReport()));

  it("renders a screenshot that is neither blank nor missing the verdict", { timeout: 60_000 }, async () => {
    expect(existsSync(chromiumPath), `${chromiumPath} is required in CI (.ci/run installs it)`).toBe(true);
    await chromium([`--screenshot=${pngPath}`, "--window-size=1280,2000", `file://${htmlPath}`]);
    const png = decodePng(readFileSync(pngPath));
    expect([png.width, png.height]).toEqual([1280, 2000]);
    const colours = new Set<number>();
    let inked = 0;
    let verdictRed = 0;
    for (let i = 0; i < png.width * png.height; i++) {
      const [r, g, b] = [png.rgba[i * 4] ?? 0, png.rgba[i * 4 + 1] ?? 0, png.rgba[i * 4 + 2] ?? 0];
      colours.add((r << 16) | (g << 8) | b);
      if (r + g + b < 600) inked++;
      if (Math.abs(r - 0xcf) < 6 && Math.abs(g - 0x22) < 6 && Math.abs(b - 0x2e) < 6) verdictRed++;
    }
    expect(colours.size).toBeGreaterThan(200);
    expect(inked / (png.width * png.height)).toBeGreaterThan(0.02);
    expect(verdictRed).toBeGreaterThan(3_000); // The INVALID badge alone is ~170 x 70 px.
  });

  it("builds the SVG charts in the DOM and shows hostile values as text", { timeout: 60_000 }, async () => {
    expect(existsSync(chromiumPath), `${chromiumPath} is required in CI (.ci/run installs it)`).toBe(true);
    const dom = await chromium(["--dump-dom", `file://${htmlPath}`]);
    expect(dom).toMatch(/<svg class="chart latency"[^>]*>/);
    expect(dom).toMatch(/<svg class="chart throughput"[^>]*>/);
    expect(dom).toMatch(/<path class="points ok" d="M\d/);
    expect(dom).toMatch(/<path class="series ok" d="M\d/);
    expect((dom.match(/<rect [^>]*fill-opacity="0.08"/g) ?? []).length).toBe(2 * faultPlan.length);
    expect(dom).toContain("&lt;/script&gt;&lt;img src=x onerror=\"alert(1)\"&gt;");
    expect(dom).not.toMatch(/<img|<script/i);
  });
});
