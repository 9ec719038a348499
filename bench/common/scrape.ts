import { request } from "node:http";

/** The election counters of one replica's /metrics, summed over label sets. */
export interface ElectionCounters {
  readonly elections: number;
  readonly leaderChanges: number;
}

/** GET http://<address>/metrics, bounded by `timeoutMs`; null when it does not answer. */
export function scrapeMetrics(address: string, timeoutMs = 2000): Promise<string | null> {
  const at = address.lastIndexOf(":");
  return new Promise((resolve) => {
    const req = request({ host: address.slice(0, at), port: Number(address.slice(at + 1)), path: "/metrics", timeout: timeoutMs }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve(res.statusCode === 200 ? text : null));
      res.on("error", () => resolve(null));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(null));
    req.end();
  });
}

/** Sums the samples of a counter (any labels) in Prometheus text. */
export function counterValue(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

export async function electionCounters(metricsAddress: string): Promise<ElectionCounters | null> {
  const text = await scrapeMetrics(metricsAddress);
  if (text === null) return null;
  return { elections: counterValue(text, "dledger_elections_total"), leaderChanges: counterValue(text, "dledger_leader_changes_total") };
}
