import { assert } from "../../raft/base/assert.js";
import type { Json } from "../checkers/history.js";
import type { ReportChecker, ReportFailingOperation, ReportFault, ReportOperation, RunReport } from "../jepsen/contracts.js";

/**
 * The end of a chaos run, for people: a one-screen text summary (what `dledger chaos` prints last)
 * and one self-contained HTML file (inline CSS and SVG, no script, no external resource, so it
 * opens offline, from file://, and from an e-mail attachment alike).
 *
 * Everything that came from the history is untrusted: keys, values, errors and checker details
 * may hold any text. The HTML escapes every such string once, where it is written into markup
 * (`esc`), and a Content-Security-Policy forbids scripts anyway; the text summary replaces control
 * characters so that a value cannot drive the reader's terminal.
 *
 * Size is bounded whatever the run's length (STYLE.md rule 13): the scatter keeps at most
 * `reportLimits.scatterPointsMax` points (see `downsampleScatter`), throughput has at most one
 * bucket per two pixels, and lists and details are cut at named maxima with a note saying so.
 */

export type RunVerdict = "VALID" | "INVALID" | "UNKNOWN";

export const reportLimits = {
  /** Points drawn in the latency scatter (~12 bytes each in the SVG path). */
  scatterPointsMax: 40_000,
  faultsMax: 1_000,
  checkersMax: 50,
  detailLinesMax: 200,
  lineCharsMax: 300,
  incidentsMax: 200,
  listItemsMax: 50,
  valueCharsMax: 400,
} as const;

export const summaryLinesMax = 30;
export const summaryColumnsMax = 100;

/**
 * The run's verdict: INVALID when any checker found a violation; UNKNOWN when a checker could not
 * decide, when no checker ran, or when the runner voided the run (valid false with no violation,
 * e.g. a replica that would not restart); VALID otherwise.
 */
export function runVerdict(report: RunReport): RunVerdict {
  if (report.checkers.some((c) => c.ok === false)) return "INVALID";
  if (report.checkers.length === 0) return "UNKNOWN";
  if (report.checkers.some((c) => c.ok === null)) return "UNKNOWN";
  return report.valid ? "VALID" : "UNKNOWN";
}

/** One sentence that says why the verdict is what it is. */
export function verdictReason(report: RunReport): string {
  const n = report.checkers.length;
  const failed = report.checkers.filter((c) => c.ok === false).length;
  const undecided = report.checkers.filter((c) => c.ok === null).length;
  const incidents = report.incidents.length;
  const incidentNote = incidents === 0 ? "" : `; ${plural(incidents, "incident")}`;
  if (failed > 0) return `${failed} of ${n} checkers found a violation${incidentNote}`;
  if (n === 0) return `no checker ran${incidentNote}`;
  if (undecided > 0) return `${undecided} of ${n} checkers could not decide${incidentNote}`;
  if (!report.valid) return `the run was voided${incidentNote === "" ? "" : ` by ${plural(incidents, "incident")}`}`;
  return `all ${n} checkers passed${incidentNote}`;
}

/* --- Text summary ---------------------------------------------------------------------------- */

/**
 * At most `summaryLinesMax` lines of at most `summaryColumnsMax` characters, the last one the
 * verdict. Lists (checkers, limitations, incidents) are cut with "... and N more".
 */
export function renderTextSummary(report: RunReport): string {
  const lines: string[] = [];
  const add = (label: string, text: string): void => {
    lines.push(label === "" ? text : `${label.padEnd(12)}${text}`);
  };
  const mode = report.capabilities.mode === "netns" ? "netns" : "process-only";
  add("", `dledger chaos: ${report.workload} | nemesis ${listText(report.nemeses)} | seed ${report.seed}`);
  add("run", `${formatSeconds(report.durationNs)}, ${report.nodes.length} replicas, ${mode} mode, started ${report.startedAt}`);
  const c = report.counts;
  add("operations", `${fmtInt(c.invoked)} invoked: ${fmtInt(c.ok)} ok, ${fmtInt(c.fail)} fail, ${fmtInt(c.info)} info`);
  const faultText = report.faults.length === 0 ? "none injected" : `${fmtInt(report.faults.length)} injected: ${faultCountsText(report.faults)}`;
  for (const [i, part] of wrap(faultText, summaryColumnsMax - 12, 2).entries()) add(i === 0 ? "faults" : " ", part);
  const f = report.failover;
  add("failover", f.measured === 0 ? "none measured" : `${f.measured} measured: median ${fmtMsOrNone(f.medianMs)}, max ${fmtMsOrNone(f.maxMs)} (fault to first ok)`);
  // Per kind, the leader faults first (they are the ones a client waits out); the rest in report.html.
  const kinds = [...(f.byFault ?? [])].sort((a, b) => Number(b.fault.endsWith("-leader")) - Number(a.fault.endsWith("-leader")));
  for (const k of kinds.slice(0, 2)) {
    add("", `  ${k.fault}: ${k.count}×, median ${fmtMsOrNone(k.medianMs)}, max ${fmtMsOrNone(k.maxMs)}${k.measured < k.count ? `, ${k.count - k.measured} without an ok after it` : ""}`);
  }
  add("checkers", report.checkers.length === 0 ? "none ran" : "");
  for (const checker of report.checkers.slice(0, 6)) {
    add("", `  ${checkerBadge(checker).padEnd(8)} ${checker.name}: ${checker.verdict}${checker.summary === "" ? "" : ` (${checker.summary})`}`);
  }
  if (report.checkers.length > 6) add("", `  ... and ${report.checkers.length - 6} more`);
  const failing = report.checkers.find((ch) => ch.failingOperation !== undefined);
  if (failing?.failingOperation !== undefined) add("failing op", `${failing.name}: ${describeOperation(failing.failingOperation)}`);
  addList(add, "limitations", report.capabilities.limitations, 3);
  addList(add, "incidents", report.incidents, 4);
  add("history", report.historyPath);
  add("verdict", `${runVerdict(report)}: ${verdictReason(report)}`);
  let out = lines.map((l) => clip(terminalSafe(l).trimEnd(), summaryColumnsMax));
  if (out.length > summaryLinesMax) {
    // Never lose the verdict (the last line) to the bound: cut from the middle, and say so.
    const verdict = out.at(-1) as string;
    out = [...out.slice(0, summaryLinesMax - 2), `... ${out.length - summaryLinesMax + 1} more lines in report.html`, verdict];
  }
  assert(out.length <= summaryLinesMax, `summary has ${out.length} lines, more than ${summaryLinesMax}`);
  return `${out.join("\n")}\n`;
}

function addList(add: (label: string, text: string) => void, label: string, items: readonly string[], max: number): void {
  if (items.length === 0) return;
  add(label, "");
  for (const item of items.slice(0, max)) add("", `  ${firstLine(item)}`);
  if (items.length > max) add("", `  ... and ${items.length - max} more (see the HTML report)`);
}

function faultCountsText(faults: readonly ReportFault[]): string {
  const counts = new Map<string, number>();
  for (const f of faults) counts.set(f.fault, (counts.get(f.fault) ?? 0) + 1);
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([name, n]) => `${name} ${n}`)
    .join(", ");
}

/** Splits `text` at ", " into at most `linesMax` lines of at most `width` characters. */
function wrap(text: string, width: number, linesMax: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const part of text.split(", ")) {
    const next = line === "" ? part : `${line}, ${part}`;
    if (next.length <= width || line === "") line = next;
    else {
      out.push(`${line},`);
      line = part;
    }
  }
  out.push(line);
  if (out.length <= linesMax) return out;
  const kept = out.slice(0, linesMax);
  kept[linesMax - 1] = clip(`${kept[linesMax - 1] ?? ""} ...`, width);
  return kept;
}

function checkerBadge(c: ReportChecker): string {
  return c.ok === true ? "PASS" : c.ok === false ? "FAIL" : "UNKNOWN";
}

function describeOperation(op: ReportFailingOperation): string {
  const key = op.key === undefined ? "" : ` key ${String(op.key)}`;
  const value = op.invokeValue === undefined ? "" : ` ${jsonText(op.invokeValue, 60)}`;
  const result = op.resultValue === undefined ? "" : ` -> ${jsonText(op.resultValue, 60)}`;
  const at = op.completeNs === null ? "" : ` at ${formatSeconds(op.completeNs)}`;
  return `process ${op.process} ${op.f}${key}${value}${result} (${op.outcome}${at}, line ${op.invokeLine})`;
}

/* --- HTML report ----------------------------------------------------------------------------- */

/** The whole report as one HTML document (UTF-8). */
export function renderHtmlReport(report: RunReport): string {
  const verdict = runVerdict(report);
  const title = `Chaos run ${verdict}: ${report.workload}, seed ${report.seed}`;
  const body = [
    headerHtml(report, verdict),
    noticesHtml(report),
    tilesHtml(report),
    checkerTableHtml(report),
    failingHtml(report),
    chartsHtml(report),
    faultTableHtml(report),
    checkerDetailsHtml(report),
    `<footer>dledger-ts chaos harness · history ${esc(report.historyPath)} · started ${esc(report.startedAt)}</footer>`,
  ].join("\n");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${css}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

const css = `
:root{--ok:#0969da;--fail:#cf222e;--info:#b08800;--fg:#1f2328;--muted:#59636e;--border:#d1d9e0;--bg:#f3f5f8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 "Segoe UI","Helvetica Neue","Liberation Sans",Arial,sans-serif}
main{max-width:1220px;margin:0 auto;padding:24px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:0 0 12px;letter-spacing:.01em}
.run{background:#fff;border:1px solid var(--border);border-radius:8px;padding:20px 24px;display:flex;gap:28px;align-items:center}
.verdict{font-weight:700;font-size:26px;letter-spacing:.08em;padding:14px 24px;border-radius:6px;color:#fff;min-width:170px;text-align:center}
.verdict small{display:block;font-size:11px;font-weight:600;letter-spacing:.06em;opacity:.9}
.verdict.valid{background:#1a7f37}.verdict.invalid{background:#cf222e}.verdict.unknown{background:#9a6700}
.reason{color:var(--muted);margin:0 0 10px}
dl.meta{display:grid;grid-template-columns:max-content minmax(0,1fr) max-content minmax(0,1fr);gap:3px 16px;margin:0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere;font-variant-numeric:tabular-nums}
.card{background:#fff;border:1px solid var(--border);border-radius:8px;padding:16px 20px;margin-top:16px}
.tiles{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin-top:16px}
.tile{background:#fff;border:1px solid var(--border);border-radius:8px;padding:12px 14px}
.tile .k{color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.06em}
.tile .v{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.tile .s{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--border);vertical-align:top}
th{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;font-size:11px;font-weight:700;letter-spacing:.04em;padding:2px 8px;border-radius:10px}
.badge.pass{background:#dafbe1;color:#116329}.badge.fail{background:#ffebe9;color:#a40e26}.badge.unknown{background:#fff8c5;color:#7d4e00}
pre{background:#f6f8fa;border:1px solid var(--border);border-radius:6px;padding:10px 12px;margin:8px 0 0;overflow:auto;max-height:480px;
 font:12px/1.5 "DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;white-space:pre-wrap;overflow-wrap:anywhere}
code{font:12px "DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;overflow-wrap:anywhere}
.notice{border-radius:8px;padding:12px 16px;margin-top:16px;border:1px solid}
.notice h2{margin-bottom:6px}.notice ul{margin:0;padding-left:20px}
.notice.incident{background:#ffebe9;border-color:#ff8182}.notice.limit{background:#fff8c5;border-color:#d4a72c}
.failing{border-left:5px solid var(--fail)}
.failing dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 16px;margin:0}
.chart-head{display:flex;justify-content:space-between;align-items:baseline;gap:16px}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:var(--muted)}
.sw{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:5px;vertical-align:-1px}
.sw.band{border-radius:2px}
.note{color:var(--muted);font-size:12px;margin:6px 0 0}
svg{display:block;width:100%;height:auto}
svg text{font-family:"Segoe UI","Helvetica Neue","Liberation Sans",Arial,sans-serif;font-size:11px;fill:#59636e}
svg text.lane{fill:#1f2328;font-size:10.5px}
details>summary{cursor:pointer;padding:6px 0}
footer{color:var(--muted);font-size:12px;margin:20px 0 8px;overflow-wrap:anywhere}
@media print{body{background:#fff}.card,.run,.tile{break-inside:avoid}}
`;

function headerHtml(report: RunReport, verdict: RunVerdict): string {
  const mode = report.capabilities.mode === "netns" ? "network namespaces (netns)" : "process faults only";
  const meta: [string, string][] = [
    ["Workload", report.workload],
    ["Nemeses", listText(report.nemeses)],
    ["Seed", String(report.seed)],
    ["Duration", formatSeconds(report.durationNs)],
    ["Mode", mode],
    ["Replicas", listText(report.nodes)],
    ["Started", report.startedAt],
    ["Limitations", report.capabilities.limitations.length === 0 ? "none" : `${report.capabilities.limitations.length} (below)`],
  ];
  const dl = meta.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("");
  return `<header class="run">
<div class="verdict ${verdict.toLowerCase()}"><small>VERDICT</small>${verdict}</div>
<div><h1>Chaos run: ${esc(report.workload)} under ${esc(listText(report.nemeses))}</h1>
<p class="reason">${esc(capitalise(verdictReason(report)))}.</p>
<dl class="meta">${dl}</dl></div>
</header>`;
}

function noticesHtml(report: RunReport): string {
  const parts: string[] = [];
  if (report.incidents.length > 0) {
    parts.push(`<section class="notice incident"><h2>Incidents (${report.incidents.length})</h2>
${listHtml(report.incidents, reportLimits.incidentsMax)}</section>`);
  }
  const lim = report.capabilities.limitations;
  if (lim.length > 0) {
    parts.push(`<section class="notice limit"><h2>Limitations of this run</h2>${listHtml(lim, reportLimits.listItemsMax)}</section>`);
  }
  return parts.join("\n");
}

function listHtml(items: readonly string[], max: number): string {
  const li = items.slice(0, max).map((s) => `<li>${esc(clip(s, reportLimits.lineCharsMax * 4))}</li>`);
  if (items.length > max) li.push(`<li>… and ${items.length - max} more (see the runner's output)</li>`);
  return `<ul>${li.join("")}</ul>`;
}

function tilesHtml(report: RunReport): string {
  const c = report.counts;
  const pct = (n: number): string => (c.invoked === 0 ? "" : `${((100 * n) / c.invoked).toFixed(1)} % of invoked`);
  const f = report.failover;
  const tiles: [string, string, string][] = [
    ["Operations", fmtInt(c.invoked), `${formatRate(c.invoked, report.durationNs)} invoked`],
    ["ok", fmtInt(c.ok), pct(c.ok)],
    ["fail", fmtInt(c.fail), pct(c.fail)],
    ["info (unknown)", fmtInt(c.info), pct(c.info)],
    ["Faults injected", fmtInt(report.faults.length), `${new Set(report.faults.map((x) => x.fault)).size} kinds`],
    ["Failover median", fmtMsOrNone(f.medianMs), `max ${fmtMsOrNone(f.maxMs)}, ${f.measured} measured`],
  ];
  const html = tiles.map(([k, v, s]) => `<div class="tile"><div class="k">${esc(k)}</div><div class="v">${esc(v)}</div><div class="s">${esc(s)}</div></div>`);
  return `<div class="tiles">${html.join("")}</div>`;
}

function checkerTableHtml(report: RunReport): string {
  const rows = report.checkers.slice(0, reportLimits.checkersMax).map((c) => {
    const cls = c.ok === true ? "pass" : c.ok === false ? "fail" : "unknown";
    return `<tr><td><span class="badge ${cls}">${checkerBadge(c)}</span></td><td>${esc(c.name)}</td><td>${esc(c.verdict)}</td><td>${esc(clip(c.summary, reportLimits.lineCharsMax))}</td></tr>`;
  });
  if (rows.length === 0) rows.push(`<tr><td colspan="4">No checker ran: the run cannot be called valid.</td></tr>`);
  return `<section class="card"><h2>Checkers</h2>
<table><thead><tr><th>Result</th><th>Checker</th><th>Verdict</th><th>Summary</th></tr></thead><tbody>${rows.join("")}</tbody></table></section>`;
}

function failingHtml(report: RunReport): string {
  const failing = report.checkers.filter((c) => c.ok === false);
  if (failing.length === 0) return "";
  return failing
    .slice(0, reportLimits.checkersMax)
    .map((c) => {
      const op = c.failingOperation;
      if (op === undefined) {
        return `<section class="card failing" id="failing-operation"><h2>Violation: ${esc(c.name)}</h2>
<p>${esc(c.summary)}</p><p class="note">The checker named no single operation; its details are below.</p></section>`;
      }
      const rows: [string, string][] = [
        ["Operation", `${op.f}${op.key === undefined ? "" : ` key ${String(op.key)}`}`],
        ["Process", String(op.process)],
        ["Invoked with", op.invokeValue === undefined ? "—" : jsonText(op.invokeValue, reportLimits.valueCharsMax)],
        ["Returned", op.resultValue === undefined ? "—" : jsonText(op.resultValue, reportLimits.valueCharsMax)],
        ["Outcome", op.outcome],
        ["Invoked at", op.invokeNs === null ? "unknown" : formatSecondsPrecise(op.invokeNs)],
        ["Completed at", op.completeNs === null ? "never" : formatSecondsPrecise(op.completeNs)],
        ["History lines", `${op.invokeLine}${op.completeLine === null ? "" : `–${op.completeLine}`} of ${report.historyPath}`],
      ];
      const dl = rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd><code>${esc(v)}</code></dd>`).join("");
      return `<section class="card failing" id="failing-operation"><h2>Failing operation: ${esc(c.name)}</h2>
<p>${esc(c.summary)}</p><dl>${dl}</dl><p class="note">Marked in red on the charts below. The checker's full explanation is under “Checker details”.</p></section>`;
    })
    .join("\n");
}

function faultTableHtml(report: RunReport): string {
  if (report.faults.length === 0) return `<section class="card"><h2>Faults</h2><p>No fault was injected.</p></section>`;
  const rows = report.faults.slice(0, reportLimits.faultsMax).map((f, i) => {
    const dur = f.stopNs === null ? "until the end" : formatSeconds(f.stopNs - f.startNs);
    const family = faultFamily(f.fault);
    return `<tr><td class="num">${i + 1}</td><td><span class="sw band" style="background:${familyColours[family]}"></span>${esc(f.fault)}</td>
<td>${esc(listText(f.nodes))}</td><td class="num">${formatSecondsPrecise(f.startNs)}</td><td class="num">${f.stopNs === null ? "—" : formatSecondsPrecise(f.stopNs)}</td>
<td class="num">${esc(dur)}</td><td class="num">${f.failoverMs === null ? "no ok after it" : esc(fmtMs(f.failoverMs))}</td></tr>`;
  });
  const more = report.faults.length > reportLimits.faultsMax ? `<p class="note">${report.faults.length - reportLimits.faultsMax} more faults not listed.</p>` : "";
  return `<section class="card"><h2>Faults and failover</h2>
<table><thead><tr><th class="num">#</th><th>Fault</th><th>Nodes</th><th class="num">Start</th><th class="num">Stop</th><th class="num">Length</th><th class="num">Failover (to first ok)</th></tr></thead>
<tbody>${rows.join("")}</tbody></table>${more}
<p class="note">Failover is the time from the fault being in place to the first ok any client received after it.</p></section>`;
}

function checkerDetailsHtml(report: RunReport): string {
  const blocks = report.checkers.slice(0, reportLimits.checkersMax).map((c) => {
    const lines = c.details.slice(0, reportLimits.detailLinesMax).map((l) => clip(l, reportLimits.lineCharsMax));
    if (c.details.length > reportLimits.detailLinesMax) lines.push(`… ${c.details.length - reportLimits.detailLinesMax} more lines not shown`);
    const body = lines.length === 0 ? `<p class="note">No details.</p>` : `<pre>${esc(lines.join("\n"))}</pre>`;
    return `<details${c.ok === true ? "" : " open"}><summary><span class="badge ${c.ok === true ? "pass" : c.ok === false ? "fail" : "unknown"}">${checkerBadge(c)}</span> <strong>${esc(c.name)}</strong>: ${esc(c.verdict)}</summary>${body}</details>`;
  });
  return `<section class="card"><h2>Checker details</h2>${blocks.join("\n")}</section>`;
}

/* --- Charts ---------------------------------------------------------------------------------- */

const chartWidth = 1140;
const marginLeft = 64;
const marginRight = 16;
const plotWidth = chartWidth - marginLeft - marginRight;
const laneHeight = 17;
const lanesMax = 4;
const axisHeight = 38;
const latencyPlotHeight = 300;
const throughputPlotHeight = 200;
/** Throughput has at most one bucket per this many pixels. */
const bucketPxMin = 2;

const outcomeColours = { ok: "#0969da", fail: "#cf222e", info: "#d29922" } as const;

type FaultFamily = "kill" | "pause" | "partition" | "netem" | "clock" | "corrupt" | "other";
const familyColours: Record<FaultFamily, string> = {
  kill: "#8250df",
  pause: "#1b7c83",
  partition: "#e16f24",
  netem: "#bf3989",
  clock: "#6f7f00",
  corrupt: "#8c5a2b",
  other: "#6e7781",
};

function faultFamily(name: string): FaultFamily {
  const n = name.toLowerCase();
  if (n.includes("kill") || n.includes("crash")) return "kill";
  if (n.includes("pause") || n.includes("stop")) return "pause";
  if (n.includes("corrupt")) return "corrupt";
  if (n.includes("clock") || n.includes("skew")) return "clock";
  if (n.includes("loss") || n.includes("delay") || n.includes("netem")) return "netem";
  if (/partition|isolate|ring|bridge|halves|one-way|majorit/.test(n)) return "partition";
  return "other";
}

/** The time axis shared by both charts: [0, spanNs) mapped onto the plot's width. */
interface TimeAxis {
  readonly spanNs: number;
  x(ns: number): number;
}

function timeAxis(report: RunReport): TimeAxis {
  let spanNs = Math.max(report.durationNs, 1e9);
  for (const op of report.operations) spanNs = Math.max(spanNs, op.completeNs);
  for (const f of report.faults) spanNs = Math.max(spanNs, f.stopNs ?? f.startNs);
  return { spanNs, x: (ns) => marginLeft + (Math.min(Math.max(ns, 0), spanNs) / spanNs) * plotWidth };
}

interface LanePlacement {
  readonly fault: ReportFault;
  readonly number: number;
  readonly lane: number;
  readonly x0: number;
  readonly x1: number;
  readonly label: string;
}

/** Gives each fault a lane so that bars and their labels do not overlap, up to `lanesMax` lanes. */
function placeFaults(report: RunReport, axis: TimeAxis): { placements: LanePlacement[]; lanes: number } {
  const order = report.faults.slice(0, reportLimits.faultsMax).map((fault, i) => ({ fault, number: i + 1 }));
  order.sort((a, b) => a.fault.startNs - b.fault.startNs || a.number - b.number);
  const laneEnds: number[] = [];
  const placements: LanePlacement[] = [];
  for (const { fault, number } of order) {
    const x0 = axis.x(fault.startNs);
    const x1 = Math.max(axis.x(fault.stopNs ?? axis.spanNs), x0 + 2);
    const full = clip(`${number} ${fault.fault} ${fault.nodes.join(",")}`, 40);
    const fullEnd = x0 + textWidthPx(full) + 8;
    let lane = laneEnds.findIndex((end) => end <= x0);
    let label = full;
    if (lane === -1 && laneEnds.length < lanesMax) lane = laneEnds.length;
    if (lane === -1) {
      // Every lane is busy here: share the one that frees first, with the number only if it fits.
      lane = laneEnds.indexOf(Math.min(...laneEnds));
      label = (laneEnds[lane] ?? 0) <= x0 ? String(number) : "";
    }
    laneEnds[lane] = Math.max(laneEnds[lane] ?? 0, x1, label === full ? fullEnd : x0 + textWidthPx(label) + 4);
    placements.push({ fault, number, lane, x0, x1, label });
  }
  return { placements, lanes: Math.max(laneEnds.length, 1) };
}

/** An estimate for 10.5 px sans-serif text; it only has to keep labels apart. */
function textWidthPx(text: string): number {
  return text.length * 6.1;
}

function faultLanesSvg(placements: readonly LanePlacement[], top: number, axis: TimeAxis): string {
  return placements
    .map((p) => {
      const y = top + p.lane * laneHeight;
      const colour = familyColours[faultFamily(p.fault.fault)];
      const stop = p.fault.stopNs === null ? "the end" : formatSecondsPrecise(p.fault.stopNs);
      const failover = p.fault.failoverMs === null ? "no ok after it" : fmtMs(p.fault.failoverMs);
      const tip = `#${p.number} ${p.fault.fault} on ${listText(p.fault.nodes)}: ${formatSecondsPrecise(p.fault.startNs)} to ${stop}, failover ${failover}`;
      // A solid strip along the bar's top shows the failover: from the fault to the first ok.
      let strip = "";
      if (p.fault.failoverMs !== null) {
        const w = Math.min(axis.x(p.fault.startNs + p.fault.failoverMs * 1e6) - p.x0, p.x1 - p.x0);
        strip = `<rect x="${r1(p.x0)}" y="${y + 2}" width="${r1(Math.max(w, 1))}" height="3" fill="${colour}"/>`;
      }
      const text = p.label === "" ? "" : `<text class="lane" x="${r1(p.x0 + 4)}" y="${y + 13}">${esc(p.label)}</text>`;
      const bar = `<rect x="${r1(p.x0)}" y="${y + 2}" width="${r1(p.x1 - p.x0)}" height="${laneHeight - 3}" rx="2" fill="${colour}" fill-opacity="0.2"/>`;
      return `<g><title>${esc(tip)}</title>${bar}${strip}${text}</g>`;
    })
    .join("");
}

/** Light bands over the plot for every fault interval, so the eye can line effects up with causes. */
function faultShadingSvg(placements: readonly LanePlacement[], top: number, height: number): string {
  return placements
    .map((p) => {
      const colour = familyColours[faultFamily(p.fault.fault)];
      return `<rect x="${r1(p.x0)}" y="${top}" width="${r1(p.x1 - p.x0)}" height="${height}" fill="${colour}" fill-opacity="0.08"/>` +
        `<line x1="${r1(p.x0)}" x2="${r1(p.x0)}" y1="${top}" y2="${top + height}" stroke="${colour}" stroke-opacity="0.55" stroke-dasharray="3 3"/>`;
    })
    .join("");
}

function timeGridSvg(axis: TimeAxis, top: number, height: number): string {
  const spanS = axis.spanNs / 1e9;
  const step = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600].find((s) => spanS / s <= 12) ?? Math.ceil(spanS / 12);
  const parts: string[] = [];
  for (let t = 0; t <= spanS + 1e-9 && parts.length < 40; t += step) {
    const x = r1(axis.x(t * 1e9));
    parts.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${top + height}" stroke="#eaeef2"/>`);
    parts.push(`<text x="${x}" y="${top + height + 15}" text-anchor="middle">${t} s</text>`);
  }
  parts.push(`<text x="${marginLeft + plotWidth}" y="${top + height + 32}" text-anchor="end">time since the start of the run</text>`);
  return parts.join("");
}

function frameSvg(top: number, height: number): string {
  return `<rect x="${marginLeft}" y="${top}" width="${plotWidth}" height="${height}" fill="none" stroke="#d1d9e0"/>`;
}

function yTitleSvg(top: number, height: number, text: string): string {
  const y = top + height / 2;
  return `<text x="14" y="${y}" text-anchor="middle" transform="rotate(-90 14 ${y})">${esc(text)}</text>`;
}

/** Vertical red markers at the failing operations, with a ring at each one's point when `pointY` is given. */
function failingMarkersSvg(report: RunReport, axis: TimeAxis, top: number, height: number, pointY?: (ms: number) => number): string {
  const parts: string[] = [];
  for (const c of report.checkers) {
    const op = c.failingOperation;
    if (c.ok !== false || op === undefined || op.invokeNs === null) continue;
    const x = r1(axis.x(op.invokeNs));
    parts.push(`<line x1="${x}" x2="${x}" y1="${top}" y2="${top + height}" stroke="#cf222e" stroke-width="1.5" stroke-dasharray="5 3"/>`);
    const anchor = axis.x(op.invokeNs) > marginLeft + plotWidth - 140 ? "end" : "start";
    const dx = anchor === "end" ? -5 : 5;
    parts.push(`<text x="${r1(Number(x) + dx)}" y="${top + 13}" text-anchor="${anchor}" style="fill:#cf222e;font-weight:600">failing operation</text>`);
    if (pointY !== undefined && op.completeNs !== null) {
      const y = r1(top + pointY((op.completeNs - op.invokeNs) / 1e6));
      parts.push(`<circle cx="${x}" cy="${y}" r="7" fill="none" stroke="#cf222e" stroke-width="2"/><circle cx="${x}" cy="${y}" r="2.5" fill="#cf222e"/>`);
    }
  }
  return parts.join("");
}

function chartsHtml(report: RunReport): string {
  const axis = timeAxis(report);
  const { placements, lanes } = placeFaults(report, axis);
  const families = [...new Set(placements.map((p) => faultFamily(p.fault.fault)))];
  const faultLegend = families.map((f) => `<span><span class="sw band" style="background:${familyColours[f]};opacity:.6"></span>${f}</span>`).join("");
  const outcomeLegend = (["ok", "fail", "info"] as const)
    .map((o) => `<span><span class="sw" style="background:${outcomeColours[o]}"></span>${o}</span>`)
    .join("");
  const failLegend = report.checkers.some((c) => c.ok === false && c.failingOperation !== undefined)
    ? `<span><span class="sw" style="background:#fff;border:2px solid #cf222e"></span>failing operation</span>`
    : "";
  const latency = latencyChartSvg(report, axis, placements, lanes);
  const throughput = throughputChartSvg(report, axis, placements, lanes);
  return `<section class="card"><div class="chart-head"><h2>Latency over time</h2><div class="legend">${outcomeLegend}${failLegend}${faultLegend}</div></div>
${latency.svg}
<p class="note">Each point is one operation at its invoke time; its height is the time to its completion (for info, until the client gave up). Shaded bands are the faults, numbered as in the table; the solid strip on a fault's bar is its failover time.${latency.note}</p></section>
<section class="card"><div class="chart-head"><h2>Throughput over time</h2><div class="legend">${outcomeLegend}${faultLegend}</div></div>
${throughput.svg}
<p class="note">Completions per second by outcome, in ${throughput.bucketS} s buckets.</p></section>`;
}

interface LatencyScale {
  readonly loMs: number;
  readonly hiMs: number;
  /** Plot-relative y: 0 at the top (hiMs), `latencyPlotHeight` at the bottom (loMs). */
  y(ms: number): number;
}

function latencyScale(ops: readonly ReportOperation[]): LatencyScale {
  let minMs = Infinity;
  let maxMs = 0;
  for (const op of ops) {
    const ms = (op.completeNs - op.invokeNs) / 1e6;
    if (ms > 0) minMs = Math.min(minMs, ms);
    maxMs = Math.max(maxMs, ms);
  }
  const loExp = Math.floor(Math.log10(Number.isFinite(minMs) ? Math.max(minMs, 0.01) : 0.1));
  const hiExp = Math.max(Math.ceil(Math.log10(Math.max(maxMs, 1e-3))), loExp + 1);
  const loMs = 10 ** loExp;
  const hiMs = 10 ** hiExp;
  const y = (ms: number): number => {
    const v = Math.log10(Math.min(Math.max(ms, loMs), hiMs));
    return latencyPlotHeight * (1 - (v - loExp) / (hiExp - loExp));
  };
  return { loMs, hiMs, y };
}

function latencyChartSvg(report: RunReport, axis: TimeAxis, placements: readonly LanePlacement[], lanes: number): { svg: string; note: string } {
  const ops = report.operations;
  const scale = latencyScale(ops);
  const top = lanes * laneHeight + 8;
  const height = top + latencyPlotHeight + axisHeight;
  const kept = downsampleScatter(ops, (op) => ({ x: axis.x(op.invokeNs), y: scale.y((op.completeNs - op.invokeNs) / 1e6) }), reportLimits.scatterPointsMax);
  // Smaller dots once the plot is crowded, so that density stays readable.
  const dotPx = kept.length > 5_000 ? 2.4 : 3.2;
  const paths = (["ok", "info", "fail"] as const).map((outcome) => {
    const d: string[] = [];
    for (const op of kept) {
      if (op.outcome !== outcome) continue;
      d.push(`M${Math.round(axis.x(op.invokeNs))} ${Math.round(top + scale.y((op.completeNs - op.invokeNs) / 1e6))}h0`);
    }
    const opacity = outcome === "ok" ? 0.55 : 0.85;
    return d.length === 0 ? "" : `<path class="points ${outcome}" d="${d.join("")}" stroke="${outcomeColours[outcome]}" stroke-opacity="${opacity}" stroke-width="${dotPx}" stroke-linecap="round" fill="none"/>`;
  });
  const grid: string[] = [];
  for (let ms = scale.loMs; ms <= scale.hiMs * 1.0001; ms *= 10) {
    const y = r1(top + scale.y(ms));
    grid.push(`<line x1="${marginLeft}" x2="${marginLeft + plotWidth}" y1="${y}" y2="${y}" stroke="#d8dee4"/>`);
    grid.push(`<text x="${marginLeft - 6}" y="${Number(y) + 4}" text-anchor="end">${fmtMsTick(ms)}</text>`);
    for (const m of [2, 5]) {
      if (ms * m >= scale.hiMs) continue;
      const ym = r1(top + scale.y(ms * m));
      grid.push(`<line x1="${marginLeft}" x2="${marginLeft + plotWidth}" y1="${ym}" y2="${ym}" stroke="#f0f3f6"/>`);
    }
  }
  const svg = `<svg class="chart latency" viewBox="0 0 ${chartWidth} ${height}" role="img" aria-label="Latency of every operation over time, log scale, with fault intervals">
<title>Latency over time (log scale)</title>
${faultShadingSvg(placements, top, latencyPlotHeight)}${faultLanesSvg(placements, 4, axis)}${timeGridSvg(axis, top, latencyPlotHeight)}${grid.join("")}
${paths.join("\n")}
${failingMarkersSvg(report, axis, top, latencyPlotHeight, scale.y)}${frameSvg(top, latencyPlotHeight)}${yTitleSvg(top, latencyPlotHeight, "latency (log scale)")}
</svg>`;
  const note = kept.length < ops.length ? ` Showing ${fmtInt(kept.length)} of ${fmtInt(ops.length)} operations: at most one point per outcome per pixel, the slowest kept.` : "";
  return { svg, note };
}

function throughputChartSvg(report: RunReport, axis: TimeAxis, placements: readonly LanePlacement[], lanes: number): { svg: string; bucketS: number } {
  const bucketS = Math.max(1, Math.ceil(axis.spanNs / 1e9 / (plotWidth / bucketPxMin)));
  const buckets = Math.max(1, Math.ceil(axis.spanNs / (bucketS * 1e9)));
  const counts = { ok: new Array<number>(buckets).fill(0), fail: new Array<number>(buckets).fill(0), info: new Array<number>(buckets).fill(0) };
  for (const op of report.operations) {
    const i = Math.min(Math.max(Math.floor(op.completeNs / (bucketS * 1e9)), 0), buckets - 1);
    counts[op.outcome][i] = (counts[op.outcome][i] ?? 0) + 1;
  }
  let maxRate = 1;
  for (const series of Object.values(counts)) for (const n of series) maxRate = Math.max(maxRate, n / bucketS);
  const step = niceStep(maxRate / 4);
  const yMax = Math.ceil(maxRate / step) * step;
  const top = lanes * laneHeight + 8;
  const height = top + throughputPlotHeight + axisHeight;
  const y = (rate: number): number => top + throughputPlotHeight * (1 - rate / yMax);
  const stepPath = (series: readonly number[]): string => {
    const d = [`M${r1(axis.x(0))} ${r1(y((series[0] ?? 0) / bucketS))}`];
    series.forEach((n, i) => {
      if (i > 0) d.push(`V${r1(y(n / bucketS))}`);
      d.push(`H${r1(axis.x(Math.min((i + 1) * bucketS * 1e9, axis.spanNs)))}`);
    });
    return d.join("");
  };
  const grid: string[] = [];
  for (let v = 0; v <= yMax + step / 2 && grid.length < 40; v += step) {
    const yy = r1(y(v));
    grid.push(`<line x1="${marginLeft}" x2="${marginLeft + plotWidth}" y1="${yy}" y2="${yy}" stroke="#d8dee4"/>`);
    grid.push(`<text x="${marginLeft - 6}" y="${Number(yy) + 4}" text-anchor="end">${fmtInt(v)}</text>`);
  }
  const okPath = stepPath(counts.ok);
  const base = r1(y(0));
  const svg = `<svg class="chart throughput" viewBox="0 0 ${chartWidth} ${height}" role="img" aria-label="Completed operations per second by outcome, with fault intervals">
<title>Throughput over time</title>
${faultShadingSvg(placements, top, throughputPlotHeight)}${faultLanesSvg(placements, 4, axis)}${timeGridSvg(axis, top, throughputPlotHeight)}${grid.join("")}
<path class="series ok-area" d="${okPath}V${base}H${r1(axis.x(0))}Z" fill="${outcomeColours.ok}" fill-opacity="0.12" stroke="none"/>
<path class="series ok" d="${okPath}" fill="none" stroke="${outcomeColours.ok}" stroke-width="1.6"/>
<path class="series info" d="${stepPath(counts.info)}" fill="none" stroke="${outcomeColours.info}" stroke-width="1.6"/>
<path class="series fail" d="${stepPath(counts.fail)}" fill="none" stroke="${outcomeColours.fail}" stroke-width="1.6"/>
${failingMarkersSvg(report, axis, top, throughputPlotHeight)}${frameSvg(top, throughputPlotHeight)}${yTitleSvg(top, throughputPlotHeight, "operations / s")}
</svg>`;
  return { svg, bucketS };
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return Math.max(1, m * p);
  return Math.max(1, 10 * p);
}

/**
 * Thins the scatter to at most `pointsMax` points, deterministically (the same input gives the
 * same output). Points are bucketed into square cells of the plot, per outcome, and each cell keeps
 * its slowest operation: below one pixel, more points add nothing a reader can see. The non-ok
 * outcomes are thinned first and at most to half the budget, so failures and timeouts stay
 * visible however many successes surround them; the successes get the rest. Cells double in size
 * until the budget holds.
 */
export function downsampleScatter<T extends ReportOperation>(
  ops: readonly T[],
  position: (op: T) => { readonly x: number; readonly y: number },
  pointsMax: number,
): T[] {
  assert(pointsMax >= 16, `pointsMax (${pointsMax}) must be >= 16`);
  const notOk = thinToBudget(ops.filter((op) => op.outcome !== "ok"), position, Math.floor(pointsMax / 2));
  const ok = thinToBudget(ops.filter((op) => op.outcome === "ok"), position, pointsMax - notOk.length);
  const kept = [...ok, ...notOk];
  assert(kept.length <= pointsMax, `scatter kept ${kept.length} points, more than ${pointsMax}`);
  return kept;
}

const outcomeIndex = { ok: 0, fail: 1, info: 2 } as const;

function thinToBudget<T extends ReportOperation>(ops: readonly T[], position: (op: T) => { readonly x: number; readonly y: number }, budget: number): T[] {
  let kept: readonly T[] = ops;
  // Cell sizes 1, 2, 4, ... px; at 4096 px a cell covers the whole plot, so the loop ends with at
  // most one point per outcome (3), which every budget allowed here (>= 8) holds.
  for (let cellPx = 1; cellPx <= 4096; cellPx *= 2) {
    const cells = new Map<number, T>();
    for (const op of kept) {
      const p = position(op);
      const key = (outcomeIndex[op.outcome] * 8192 + Math.floor(p.x / cellPx)) * 8192 + Math.floor(Math.max(p.y, 0) / cellPx);
      const held = cells.get(key);
      if (held === undefined || latencyNs(op) > latencyNs(held)) cells.set(key, op);
    }
    kept = [...cells.values()];
    if (kept.length <= budget) return [...kept];
  }
  assert(kept.length <= budget, `cannot thin ${ops.length} points to ${budget}`);
  return [...kept];
}

function latencyNs(op: ReportOperation): number {
  return op.completeNs - op.invokeNs;
}

/* --- Text helpers ---------------------------------------------------------------------------- */

const htmlEscapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML content and quoted attributes; control characters become U+FFFD. */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => htmlEscapes[c] ?? c).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, "\ufffd");
}

/** For a terminal: no control characters (escape sequences) and no bidirectional overrides. */
function terminalSafe(text: string): string {
  return text.replace(/\t/g, " ").replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, "?");
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function firstLine(text: string): string {
  const i = text.indexOf("\n");
  return i === -1 ? text : `${text.slice(0, i)} …`;
}

function jsonText(value: Json, max: number): string {
  return clip(JSON.stringify(value) ?? "undefined", max);
}

function listText(items: readonly string[]): string {
  if (items.length === 0) return "none";
  const shown = items.slice(0, reportLimits.listItemsMax).join(", ");
  return items.length > reportLimits.listItemsMax ? `${shown}, … (${items.length} in all)` : shown;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function fmtInt(n: number): string {
  const s = String(Math.round(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return n < 0 ? `-${s}` : s;
}

function formatSeconds(ns: number): string {
  return `${(ns / 1e9).toFixed(1)} s`;
}

function formatSecondsPrecise(ns: number): string {
  return `${(ns / 1e9).toFixed(3)} s`;
}

function formatRate(n: number, durationNs: number): string {
  return durationNs <= 0 ? "—" : `${fmtInt(n / (durationNs / 1e9))} /s`;
}

function fmtMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

function fmtMsOrNone(ms: number | null): string {
  return ms === null ? "—" : fmtMs(ms);
}

function fmtMsTick(ms: number): string {
  if (ms >= 1000) return `${ms / 1000} s`;
  return ms >= 1 ? `${ms} ms` : `${Number(ms.toPrecision(1))} ms`;
}

/** One decimal place is plenty for SVG coordinates. */
function r1(v: number): string {
  return String(Math.round(v * 10) / 10);
}
