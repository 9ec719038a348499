import type { ChildProcess } from "node:child_process";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listNamespaces, NetnsError, probeNetem, probeNetns, subnetOctet, TestNetwork } from "./netns.js";

// Probed once at collection time so the skip reason appears in the suite title.
const netnsProbe = probeNetns();
const netemProbe = netnsProbe.ok ? probeNetem() : netnsProbe;
const netnsSkip = netnsProbe.ok ? "" : ` (skipped: ${netnsProbe.reason})`;
const netemSkip = netemProbe.ok ? "" : ` (skipped: ${netemProbe.reason})`;

const echoPort = 7000;
/** Bound on any wait for a child process in these tests. */
const waitMsMax = 5_000;

/** Echo server: prints "listening" once bound, echoes every byte back. */
const echoServer = (address: string): string =>
  `const net = require("node:net");
   net.createServer((s) => s.pipe(s)).listen(${echoPort}, ${JSON.stringify(address)}, () => console.log("listening"));`;

/** Client: exits 0 only if "ping" comes back within 1 s of starting to connect, else 1. */
const echoClient = (address: string): string =>
  `const net = require("node:net");
   const s = net.connect({ host: ${JSON.stringify(address)}, port: ${echoPort} });
   const timer = setTimeout(() => process.exit(1), 1000);
   s.on("connect", () => s.write("ping"));
   s.on("data", (d) => { if (d.toString() === "ping") { clearTimeout(timer); process.exit(0); } });
   s.on("error", () => process.exit(1));`;

function waitExit(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`pid ${child.pid} did not exit within ${waitMsMax} ms`));
    }, waitMsMax);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function waitForLine(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`no "${line}" within ${waitMsMax} ms: ${seen}`)), waitMsMax);
    child.stdout?.on("data", (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before "${line}"`));
    });
  });
}

/** True when a TCP echo round trip from `from` to `to` succeeds within 1 s. */
async function canReach(net: TestNetwork, from: string, to: string): Promise<boolean> {
  const client = net.spawn(from, [process.execPath, "-e", echoClient(net.address(to))], { stdio: "ignore" });
  return (await waitExit(client)) === 0;
}

describe("netns config and probe (no root needed)", () => {
  it("rejects bad options with the field, rule and value", () => {
    expect(() => TestNetwork.create({ hostCount: 0 })).toThrow(NetnsError);
    expect(() => TestNetwork.create({ hostCount: 0 })).toThrow("hostCount (0) must be an integer in [1, 64]");
    expect(() => TestNetwork.create({ hostCount: 3, runId: "Bad!" })).toThrow('runId ("Bad!")');
  });

  it("derives a subnet octet in [1, 254] that differs between run ids", () => {
    const octets = new Set(["ab12", "ab13", "ffff", "0000", "1234abcd"].map(subnetOctet));
    for (const k of octets) expect(k >= 1 && k <= 254).toBe(true);
    expect(octets.size).toBe(5);
  });

  it("probes to a value: ok, or a reason that names what is missing", () => {
    if (netnsProbe.ok) expect(netnsProbe).toEqual({ ok: true });
    else expect(netnsProbe.reason).toMatch(/not root|not found: apt-get install|cannot|does not run/);
  });
});

describe.skipIf(!netnsProbe.ok)(`netns TestNetwork with real namespaces${netnsSkip}`, () => {
  let net: TestNetwork;
  let server: ChildProcess;

  beforeAll(async () => {
    net = TestNetwork.create({ hostCount: 3 });
    server = net.spawn("n1", [process.execPath, "-e", echoServer(net.address("n1"))], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    await waitForLine(server, "listening");
  }, 20_000);

  afterAll(() => {
    // Runs even when a test failed; destroy() is idempotent, so the explicit test below is safe.
    net?.destroy();
  });

  it("puts each host and the switch in namespaces named by the run id", () => {
    const ours = listNamespaces().filter((n) => n.startsWith(`dlj-${net.runId}-`));
    expect(ours.sort()).toEqual(["n1", "n2", "n3", "sw"].map((h) => `dlj-${net.runId}-${h}`));
    expect(net.address("n2")).toBe(`10.77.${subnetOctet(net.runId)}.3`);
    const addrs = net.exec("n2", ["ip", "-4", "-o", "addr", "show"]);
    expect(addrs).toContain(`${net.address("n2")}/24`);
    expect(addrs).toContain("127.0.0.1/8");
  });

  it("connects n2 -> n1 through the bridge, fails after isolate(n1), works again after heal()", async () => {
    expect(await canReach(net, "n2", "n1")).toBe(true);
    net.isolate("n1");
    expect(net.ruleset("n1")).toContain(net.address("n2"));
    expect(await canReach(net, "n2", "n1")).toBe(false);
    expect(await canReach(net, "n3", "n1")).toBe(false);
    net.heal();
    expect(net.ruleset("n1")).not.toContain("dlj_nemesis");
    expect(await canReach(net, "n2", "n1")).toBe(true);
  }, 15_000);

  it("partition() keeps hosts in the same group connected", async () => {
    net.partition([["n1", "n3"], ["n2"]]);
    expect(await canReach(net, "n3", "n1")).toBe(true);
    expect(await canReach(net, "n2", "n1")).toBe(false);
    net.heal();
  }, 15_000);

  it("partitionOneWay(n2, n1) puts the rule in n1 only: n2 -> n1 fails, n3 -> n1 works", async () => {
    net.partitionOneWay("n2", "n1");
    const n1Rules = net.ruleset("n1");
    expect(n1Rules).toContain("hook input");
    expect(n1Rules).toContain(net.address("n2"));
    expect(n1Rules).not.toContain(net.address("n3"));
    expect(net.ruleset("n2")).not.toContain("dlj_nemesis");
    expect(await canReach(net, "n2", "n1")).toBe(false);
    expect(await canReach(net, "n3", "n1")).toBe(true);
    net.heal();
    expect(await canReach(net, "n2", "n1")).toBe(true);
  }, 15_000);

  it.skipIf(!netemProbe.ok)(`netem shows in tc qdisc show and clearNetem removes it${netemSkip}`, () => {
    net.netem("n2", { delayMs: 50, jitterMs: 5, lossPct: 1 });
    expect(net.qdiscs("n2")).toMatch(/netem .*delay 50ms/);
    expect(net.qdiscs("n3")).not.toContain("netem");
    net.clearNetem("n2");
    net.clearNetem("n2");
    expect(net.qdiscs("n2")).not.toContain("netem");
  });

  it.skipIf(netemProbe.ok)("netem fails with a typed error naming the missing kernel qdisc", () => {
    expect(() => net.netem("n2", { delayMs: 50 })).toThrow(NetnsError);
    expect(() => net.netem("n2", { delayMs: 50 })).toThrow(/CONFIG_NET_SCH_NETEM/);
  });

  it("netem validates its options before touching tc", () => {
    expect(() => net.netem("n2", { lossPct: 101 })).toThrow("lossPct (101) must be in [0, 100]");
    expect(() => net.netem("n2", { jitterMs: 5 })).toThrow("jitterMs (5) needs delayMs");
  });

  it("destroy() kills spawned processes and leaves no namespace with the run id, even leftovers", async () => {
    // A leftover from a crashed earlier run with the same id must go too.
    execFileSync("ip", ["netns", "add", `dlj-${net.runId}-stale`], { timeout: 5_000 });
    net.destroy();
    net.destroy();
    expect(listNamespaces().filter((n) => n.startsWith(`dlj-${net.runId}-`))).toEqual([]);
    await waitExit(server);
    expect(server.signalCode).toBe("SIGKILL");
  });
});
