import { describe, expect, it } from "vitest";
import { ReplicaMetrics, type MetricsSource } from "./metrics.js";

function source(): { src: MetricsSource; state: ReturnType<MetricsSource["status"]> & { matches: Record<string, number> } } {
  const state = { term: 3, role: "leader" as const, commit: 40, applied: 39, lastIndex: 42, matches: { n2: 42, n3: 30 } as Record<string, number> };
  return { src: { status: () => state }, state };
}

const value = (text: string, metric: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(metric));
  if (line === undefined) throw new Error(`no ${metric} in:\n${text}`);
  return Number(line.split(" ").pop());
};

describe("replica metrics", () => {
  it("exposes role, term, indexes and per-peer match and lag", async () => {
    const { src } = source();
    const m = new ReplicaMetrics(src, { group: "g1", replica: "n1" });
    const text = await m.text();
    expect(value(text, 'dledger_role{group="g1",replica="n1"}')).toBe(3);
    expect(value(text, 'dledger_term{group="g1",replica="n1"}')).toBe(3);
    expect(value(text, 'dledger_commit_index{group="g1",replica="n1"}')).toBe(40);
    expect(value(text, 'dledger_peer_match_index{peer="n3",group="g1",replica="n1"}')).toBe(30);
    expect(value(text, 'dledger_peer_lag_entries{peer="n3",group="g1",replica="n1"}')).toBe(12);
  });

  it("counts elections and leader changes from role transitions, and observes fsyncs", async () => {
    const { src } = source();
    const m = new ReplicaMetrics(src, { group: "g1", replica: "n1" });
    const f = { role: "follower", leader: "n2", term: 1 } as const;
    m.hooks.onSoftState?.({ role: "pre_candidate", leader: null, term: 1 }, f);
    m.hooks.onSoftState?.({ role: "candidate", leader: null, term: 2 }, { role: "pre_candidate", leader: null, term: 1 });
    m.hooks.onSoftState?.({ role: "leader", leader: "n1", term: 2 }, { role: "candidate", leader: null, term: 2 });
    m.hooks.onFsync?.(0.3, 64);
    const text = await m.text();
    expect(value(text, "dledger_elections_total")).toBe(1);
    expect(value(text, "dledger_leader_changes_total")).toBe(1);
    expect(value(text, 'dledger_fsync_seconds_count{group="g1",replica="n1"}')).toBe(1);
  });

  it("exports the process's Node.js metrics (event-loop lag, GC, heap) only when asked", async () => {
    const { src } = source();
    const plain = await new ReplicaMetrics(src, { group: "g1", replica: "n1" }).text();
    expect(plain).not.toContain("nodejs_eventloop_lag");
    const m = new ReplicaMetrics(src, { group: "g1", replica: "n1" }, { processMetrics: true });
    const text = await m.text();
    expect(value(text, 'nodejs_eventloop_lag_p99_seconds{group="g1",replica="n1"}')).toBeGreaterThanOrEqual(0);
    expect(text).toContain("nodejs_heap_size_used_bytes");
    expect(text).toContain("process_cpu_seconds_total");
  });
});
