import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadNodeConfig, NodeConfigError, validateNodeConfig } from "./node_config.js";

const good = {
  group: "g1",
  id: "n1",
  dataDir: "/tmp/d/n1",
  listen: { peer: "127.0.0.1:7101", client: "127.0.0.1:7201", metrics: "127.0.0.1:7301" },
  peers: { n1: "127.0.0.1:7101", n2: "127.0.0.1:7102", n3: "127.0.0.1:7103" },
};

describe("node config", () => {
  it("accepts a valid config, fills defaults and freezes it", () => {
    const c = validateNodeConfig(good);
    expect(c.raft).toEqual({ tickMs: 5, electionTicks: 60, heartbeatTicks: 6, leaderLostSpreadTicks: 10, preferredLeader: null, pipeline: false });
    expect(Object.isFrozen(c.raft)).toBe(true);
    expect(c.tls).toBeNull();
  });

  const bad: { name: string; patch: Record<string, unknown>; message: RegExp }[] = [
    { name: "id not among peers", patch: { id: "n9" }, message: /id \(n9\) must be one of peers/ },
    { name: "two peers", patch: { peers: { n1: "127.0.0.1:7101", n2: "127.0.0.1:7102" } }, message: /peers must list 1, 3 or 5 replicas, got 2/ },
    { name: "bad address", patch: { peers: { ...good.peers, n2: "localhost" } }, message: /peers.n2 \("localhost"\) must be host:port/ },
    { name: "heartbeat not below election", patch: { raft: { electionTicks: 4, heartbeatTicks: 4 } }, message: /raft.heartbeatTicks \(4\) must be < raft.electionTicks \(4\)/ },
    { name: "tick of zero", patch: { raft: { tickMs: 0 } }, message: /raft.tickMs \(0\) must be an integer in \[1, 1000\]/ },
    { name: "leader-lost spread beyond the election timeout", patch: { raft: { electionTicks: 8, heartbeatTicks: 2, leaderLostSpreadTicks: 9 } }, message: /raft.leaderLostSpreadTicks \(9\) must be an integer in \[1, 8\]/ },
    { name: "unknown setting", patch: { raft: { electionTimeoutMs: 100 } }, message: /unknown setting raft.electionTimeoutMs/ },
    { name: "listen.peer differs from own peer address", patch: { listen: { ...good.listen, peer: "127.0.0.1:9999" } }, message: /listen.peer \(127.0.0.1:9999\) must equal peers.n1/ },
    { name: "preferred leader outside", patch: { raft: { preferredLeader: "n7" } }, message: /raft.preferredLeader \("n7"\) must be one of peers/ },
    { name: "pipeline not a boolean", patch: { raft: { pipeline: "yes" } }, message: /raft.pipeline \("yes"\) must be true or false/ },
    { name: "missing group", patch: { group: undefined }, message: /group \(missing\) must be a string/ },
  ];
  for (const b of bad) {
    it(`refuses ${b.name}, naming field and value`, () => {
      expect(() => validateNodeConfig({ ...good, ...b.patch })).toThrow(NodeConfigError);
      expect(() => validateNodeConfig({ ...good, ...b.patch })).toThrow(b.message);
    });
  }

  it("reports unreadable files and invalid YAML with the path", () => {
    const dir = mkdtempSync(join(tmpdir(), "dledger-config-"));
    expect(() => loadNodeConfig(join(dir, "missing.yaml"))).toThrow(/cannot read config file .*missing.yaml/);
    writeFileSync(join(dir, "bad.yaml"), "group: [unclosed\n");
    expect(() => loadNodeConfig(join(dir, "bad.yaml"))).toThrow(/bad.yaml is not valid YAML/);
    writeFileSync(join(dir, "ok.yaml"), "group: g1\nid: n1\ndataDir: /tmp/x\nlisten: {peer: '127.0.0.1:7101', client: '127.0.0.1:7201'}\npeers: {n1: '127.0.0.1:7101'}\n");
    expect(loadNodeConfig(join(dir, "ok.yaml")).listen.metrics).toBeNull();
  });
});

describe("node config: client addresses for leader hints", () => {
  it("adds this replica's own client address and keeps the others given", () => {
    const c = validateNodeConfig({ ...good, clients: { n2: "127.0.0.1:7202" } });
    expect(c.clients).toEqual({ n1: "127.0.0.1:7201", n2: "127.0.0.1:7202" });
  });
  it("refuses a client address for a non-member or a bad address, naming field and value", () => {
    expect(() => validateNodeConfig({ ...good, clients: { n9: "127.0.0.1:1" } })).toThrow(/clients.n9 names no member of peers/);
    expect(() => validateNodeConfig({ ...good, clients: { n2: "nowhere" } })).toThrow(/clients.n2 \("nowhere"\) must be host:port/);
    expect(() => validateNodeConfig({ ...good, clients: { n1: "127.0.0.1:9" } })).toThrow(/clients.n1 \(127.0.0.1:9\) must equal listen.client \(127.0.0.1:7201\)/);
  });
});
