import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NodeConfigError } from "../node_config.js";
import { flagsToRawConfig, resolveStartConfig, toFlag, type StartFlags } from "./start_flags.js";

const good: StartFlags = {
  group: "g1",
  id: "n2",
  dataDir: "/tmp/d/n2",
  listenPeer: "127.0.0.1:7102",
  listenClient: "127.0.0.1:7002",
  listenMetrics: "127.0.0.1:7202",
  peers: "n1=127.0.0.1:7101,n2=127.0.0.1:7102,n3=127.0.0.1:7103",
  clients: "n1=127.0.0.1:7001,n3=127.0.0.1:7003",
  tickMs: "10",
  electionTicks: "30",
  heartbeatTicks: "5",
  snapshotEveryEntries: "500",
  snapshotKeepEntries: "50",
};

describe("dledger start: flags map onto the YAML config", () => {
  it("maps every flag to its YAML field, with numbers and id=address maps", () => {
    expect(flagsToRawConfig({ ...good, preferredLeader: "n1", tlsCa: "ca.pem", tlsCert: "c.pem", tlsKey: "k.pem" })).toEqual({
      group: "g1",
      id: "n2",
      dataDir: "/tmp/d/n2",
      listen: { peer: "127.0.0.1:7102", client: "127.0.0.1:7002", metrics: "127.0.0.1:7202" },
      peers: { n1: "127.0.0.1:7101", n2: "127.0.0.1:7102", n3: "127.0.0.1:7103" },
      clients: { n1: "127.0.0.1:7001", n3: "127.0.0.1:7003" },
      raft: { tickMs: 10, electionTicks: 30, heartbeatTicks: 5, preferredLeader: "n1" },
      snapshots: { everyEntries: 500, keepEntries: 50 },
      tls: { ca: "ca.pem", cert: "c.pem", key: "k.pem" },
    });
  });

  it("validates flags like the file: the own client address joins the clients map", () => {
    const c = resolveStartConfig(good);
    expect(c.clients).toEqual({ n1: "127.0.0.1:7001", n2: "127.0.0.1:7002", n3: "127.0.0.1:7003" });
    expect(c.raft.electionTicks).toBe(30);
  });

  const bad: { name: string; patch: { [K in keyof StartFlags]?: StartFlags[K] | undefined }; message: RegExp }[] = [
    { name: "a non-numeric tick", patch: { tickMs: "fast" }, message: /raft.tickMs \("fast"\) must be an integer/ },
    { name: "a negative keep", patch: { snapshotKeepEntries: "-1" }, message: /snapshots.keepEntries \(-1\) must be an integer/ },
    { name: "a malformed peers list", patch: { peers: "n1:7101" }, message: /peers \("n1:7101"\) must be id=host:port pairs/ },
    { name: "a client address for a stranger", patch: { clients: "n9=127.0.0.1:1" }, message: /clients.n9 names no member/ },
    { name: "a missing id", patch: { id: undefined }, message: /id \(missing\)/ },
  ];
  for (const b of bad) {
    it(`refuses ${b.name}, naming field and value`, () => {
      const flags = { ...good, ...b.patch } as StartFlags;
      expect(() => resolveStartConfig(flags)).toThrow(NodeConfigError);
      expect(() => resolveStartConfig(flags)).toThrow(b.message);
    });
  }

  it("takes --config alone, and refuses it combined with setting flags", () => {
    const dir = mkdtempSync(join(tmpdir(), "dledger-flags-"));
    const path = join(dir, "n1.yaml");
    writeFileSync(path, "group: g1\nid: n1\ndataDir: /tmp/x\nlisten: {peer: '127.0.0.1:7101', client: '127.0.0.1:7001'}\npeers: {n1: '127.0.0.1:7101'}\n");
    expect(resolveStartConfig({ config: path }).id).toBe("n1");
    expect(() => resolveStartConfig({ config: path, tickMs: "3" })).toThrow(/cannot be combined with setting flags \(--tick-ms\)/);
    expect(toFlag("snapshotEveryEntries")).toBe("--snapshot-every-entries");
    rmSync(dir, { recursive: true, force: true });
  });
});
