/**
 * The gRPC peer transport over real loopback sockets (127.0.0.1, ports from ports.ts), no mocks.
 * Every wait is bounded by a timeout and ends on an observed event, never on elapsed time.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import type { Clock } from "../base/clock.js";
import type { Logger } from "../base/logger.js";
import type { Entry, ReplicaId, Rpc } from "../core/types.js";
import { encodeFrame } from "./codec.js";
import { GrpcTransport } from "./grpc_transport.js";
import { freePort } from "./ports.js";
import { TransportConfigError, type GrpcTransportOptions, type TransportTls } from "./transport_config.js";

/* --- Harness -------------------------------------------------------------------------------- */

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** A peer in another process: dials argv[1] as n2 of g1 and writes the frame in argv[2] (hex). */
const peerProcessScript = `
import * as grpc from "@grpc/grpc-js";
const [address, frameHex] = process.argv.slice(1);
const client = new grpc.Client(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
const md = new grpc.Metadata();
md.set("dledger-group", "g1");
md.set("dledger-replica", "n2");
md.set("dledger-target", "n1");
md.set("dledger-version", "1");
const identity = (x) => x;
const call = client.makeBidiStreamRequest("/dledger.peer.v1.PeerTransport/Stream", identity, identity, md, {});
call.on("error", () => process.exit(1));
call.on("metadata", () => call.write(Buffer.from(frameHex, "hex")));
setTimeout(() => process.exit(2), 60000);
`;

const realClock: Clock = {
  nowMs: () => performance.now(),
  setTimer(delayMs, fn) {
    const t = setTimeout(fn, delayMs);
    return () => clearTimeout(t);
  },
};

interface LogLine {
  readonly level: string;
  readonly event: string;
  readonly fields: Record<string, unknown>;
}

function recordingLogger(lines: LogLine[], bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, event: string): void => {
      lines.push({ level, event, fields: { ...bindings, ...fields } });
    };
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (more) => recordingLogger(lines, { ...bindings, ...more }),
  };
}


async function waitFor(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const opened: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const t of opened.splice(0)) await t.close();
});

interface Node {
  readonly id: ReplicaId;
  readonly transport: GrpcTransport;
  readonly received: Array<{ from: ReplicaId; rpc: Rpc }>;
  readonly down: ReplicaId[];
  readonly logs: LogLine[];
}

type Extra = Partial<Omit<GrpcTransportOptions, "selfId" | "listen" | "peers" | "logger" | "clock">>;

async function startNode(id: ReplicaId, ports: Record<ReplicaId, number>, extra: Extra = {}): Promise<Node> {
  const peers: Record<ReplicaId, string> = {};
  for (const [peer, port] of Object.entries(ports)) if (peer !== id) peers[peer] = `127.0.0.1:${port}`;
  const logs: LogLine[] = [];
  const transport = new GrpcTransport({
    groupId: "g1",
    reconnectBaseMs: 10,
    reconnectMaxMs: 200,
    ...extra,
    selfId: id,
    listen: `127.0.0.1:${ports[id]}`,
    peers,
    logger: recordingLogger(logs),
    clock: realClock,
  });
  opened.push(transport);
  const node: Node = { id, transport, received: [], down: [], logs };
  transport.onReceive((from, rpcs) => {
    for (const rpc of rpcs) node.received.push({ from, rpc });
  });
  transport.onPeerDown((peer) => node.down.push(peer));
  await transport.start();
  return node;
}

async function ports(...ids: ReplicaId[]): Promise<Record<ReplicaId, number>> {
  const out: Record<ReplicaId, number> = {};
  for (const id of ids) out[id] = await freePort();
  return out;
}

function heartbeat(from: ReplicaId, to: ReplicaId, readSeq: number): Rpc {
  return { type: "heartbeat", from, to, term: 1, commit: 0, readSeq };
}

function connected(a: Node, b: Node): boolean {
  return a.transport.stats().peers[b.id]?.state === "established" && b.transport.stats().peers[a.id]?.state === "established";
}

function seqsFrom(node: Node, from: ReplicaId): number[] {
  return node.received.filter((r) => r.from === from && r.rpc.type === "heartbeat").map((r) => (r.rpc as { readSeq: number }).readSeq);
}

/* --- Exchange ------------------------------------------------------------------------------- */

describe("GrpcTransport exchange", { timeout: 30_000 }, () => {
  it("two replicas exchange batches, and sends within one turn leave as one frame", async () => {
    const p = await ports("n1", "n2");
    const [a, b] = [await startNode("n1", p), await startNode("n2", p)];
    await waitFor("n1 and n2 connected", () => connected(a, b));

    a.transport.send([heartbeat("n1", "n2", 1), heartbeat("n1", "n2", 2)]);
    a.transport.send([heartbeat("n1", "n2", 3)]);
    b.transport.send([heartbeat("n2", "n1", 7)]);
    await waitFor("n2 got 3 rpcs", () => b.received.length === 3);
    await waitFor("n1 got 1 rpc", () => a.received.length === 1);
    expect(seqsFrom(b, "n1")).toEqual([1, 2, 3]);
    expect(a.received[0]).toEqual({ from: "n2", rpc: heartbeat("n2", "n1", 7) });
    expect(b.transport.stats().peers["n1"]?.framesReceived).toBe(1);
    expect(a.transport.stats().peers["n2"]?.framesSent).toBe(1);
  });

  it("three replicas exchange append batches with entry data intact", async () => {
    const p = await ports("n1", "n2", "n3");
    const nodes = [await startNode("n1", p), await startNode("n2", p), await startNode("n3", p)];
    const entries: Entry[] = Array.from({ length: 64 }, (_, i) => ({
      index: 11 + i,
      term: 2,
      type: "normal" as const,
      data: new Uint8Array(1024).fill(i),
    }));
    for (const from of nodes) {
      for (const to of nodes) {
        if (from === to) continue;
        from.transport.send([{ type: "append_request", from: from.id, to: to.id, term: 2, prevIndex: 10, prevTerm: 1, commit: 9, entries }]);
      }
    }
    for (const n of nodes) await waitFor(`${n.id} got 2 appends`, () => n.received.length === 2);
    for (const n of nodes) {
      expect(new Set(n.received.map((r) => r.from))).toEqual(new Set(nodes.filter((m) => m !== n).map((m) => m.id)));
      for (const { rpc } of n.received) {
        expect(rpc.type).toBe("append_request");
        if (rpc.type !== "append_request") continue;
        expect(rpc.entries.length).toBe(64);
        expect(rpc.entries[63]!.data).toEqual(new Uint8Array(1024).fill(63));
      }
    }
  });

  it("queues RPCs sent before a peer is up and delivers them once it is", async () => {
    const p = await ports("n1", "n2");
    const a = await startNode("n1", p);
    a.transport.send([heartbeat("n1", "n2", 1)]);
    const b = await startNode("n2", p);
    await waitFor("the early rpc arrives", () => b.received.length === 1);
    expect(seqsFrom(b, "n1")).toEqual([1]);
  });

  it("drops the oldest RPCs beyond outboundRpcsMax and counts them", async () => {
    const p = await ports("n1", "n2");
    const a = await startNode("n1", p, { outboundRpcsMax: 4 });
    for (let i = 1; i <= 10; i++) a.transport.send([heartbeat("n1", "n2", i)]);
    expect(a.transport.stats().peers["n2"]?.rpcsDroppedQueueFull).toBe(6);
    const b = await startNode("n2", p);
    await waitFor("the newest four arrive", () => b.received.length === 4);
    expect(seqsFrom(b, "n1")).toEqual([7, 8, 9, 10]);
  });

  it("drops an RPC that alone exceeds frameBytesMax, with a log line and a counter", async () => {
    const p = await ports("n1", "n2");
    const [a, b] = [await startNode("n1", p, { frameBytesMax: 65536 }), await startNode("n2", p)];
    const huge: Entry = { index: 1, term: 1, type: "normal", data: new Uint8Array(65536) };
    a.transport.send([
      { type: "append_request", from: "n1", to: "n2", term: 1, prevIndex: 0, prevTerm: 0, commit: 0, entries: [huge] },
      heartbeat("n1", "n2", 1),
    ]);
    await waitFor("the small rpc arrives", () => b.received.length === 1);
    expect(seqsFrom(b, "n1")).toEqual([1]);
    expect(a.transport.stats().peers["n2"]?.rpcsDroppedTooLarge).toBe(1);
    expect(a.logs.find((l) => l.event === "rpc_too_large_dropped")?.level).toBe("error");
  });

  it("splits a queue larger than one frame into several frames", async () => {
    const p = await ports("n1", "n2");
    const [a, b] = [await startNode("n1", p, { frameBytesMax: 65536 }), await startNode("n2", p, { frameBytesMax: 65536 })];
    await waitFor("n1 and n2 connected", () => connected(a, b));
    const entry = (i: number): Entry => ({ index: i, term: 1, type: "normal", data: new Uint8Array(1024).fill(i) });
    const rpcs: Rpc[] = Array.from({ length: 200 }, (_, i) => ({
      type: "append_request", from: "n1", to: "n2", term: 1, prevIndex: i, prevTerm: 1, commit: 0, entries: [entry(i + 1)],
    }));
    a.transport.send(rpcs);
    await waitFor("all 200 arrive", () => b.received.length === 200);
    expect(b.received.map((r) => (r.rpc as { prevIndex: number }).prevIndex)).toEqual(rpcs.map((_, i) => i));
    expect(b.transport.stats().peers["n1"]?.framesReceived).toBeGreaterThan(2);
  });

  it("validates its options, naming the field and the value", () => {
    const base = { groupId: "g1", selfId: "n1", listen: "127.0.0.1:0", peers: { n2: "127.0.0.1:1" }, logger: recordingLogger([]), clock: realClock };
    expect(() => new GrpcTransport({ ...base, peers: { n1: "127.0.0.1:1" } })).toThrow(/peers must not include selfId \(n1\)/);
    expect(() => new GrpcTransport({ ...base, peers: { n2: "nowhere" } })).toThrow(TransportConfigError);
    expect(() => new GrpcTransport({ ...base, frameBytesMax: 10 })).toThrow(/frameBytesMax \(10\)/);
    expect(() => new GrpcTransport({ ...base, groupId: "" })).toThrow(/groupId/);
  });
});

/* --- Refusals ------------------------------------------------------------------------------- */

describe("GrpcTransport refuses strangers and bad frames, and keeps serving", { timeout: 30_000 }, () => {
  it("rejects a peer from another group with a clear log line; the others keep working", async () => {
    const p = await ports("n1", "n2", "n3");
    const [a, b] = [await startNode("n1", p), await startNode("n2", p)];
    const intruder = await startNode("n3", p, { groupId: "other" });
    await waitFor("the foreign stream is rejected", () => a.logs.some((l) => l.event === "peer_rejected_foreign_group"));
    const line = a.logs.find((l) => l.event === "peer_rejected_foreign_group")!;
    expect(line.level).toBe("warn");
    expect(line.fields).toMatchObject({ groupId: "other", peer: "n3" });
    await waitFor("the intruder hears it was refused", () => intruder.logs.some((l) => l.event === "peer_refused_our_stream"));
    expect(intruder.transport.stats().peers["n1"]?.state).not.toBe("established");
    // A refused dial was never established: no down report, and the backoff keeps growing.
    expect(intruder.down).toEqual([]);
    expect(intruder.logs.some((l) => l.event === "peer_stream_established")).toBe(false);

    await waitFor("n1 and n2 connected", () => connected(a, b));
    a.transport.send([heartbeat("n1", "n2", 5)]);
    await waitFor("n2 still served", () => b.received.length === 1);
    expect(a.transport.stats().streamsRejected).toBeGreaterThanOrEqual(1);
    expect(a.received.filter((r) => r.from === "n3")).toEqual([]);
  });

  it("rejects a replica id it does not know", async () => {
    const p = await ports("n1", "n2", "n9");
    const a = await startNode("n1", { n1: p["n1"]!, n2: p["n2"]! });
    const stranger = await startNode("n9", { n9: p["n9"]!, n1: p["n1"]! });
    stranger.transport.send([heartbeat("n9", "n1", 1)]);
    await waitFor("the unknown id is rejected", () => a.logs.some((l) => l.event === "peer_rejected_unknown_id"));
    expect(a.logs.find((l) => l.event === "peer_rejected_unknown_id")!.fields).toMatchObject({ groupId: "g1", peer: "n9" });
    await waitFor("the stranger redials and is refused again", () => (stranger.transport.stats().peers["n1"]?.reconnects ?? 0) >= 2);
    expect(a.received).toEqual([]);
  });

  it("refuses malformed frames with a named error and keeps the stream serving", async () => {
    const p = await ports("n1", "n2", "n3");
    const [a, b] = [await startNode("n1", p, { frameBytesMax: 65536 }), await startNode("n2", p)];
    // A raw gRPC client that completes the handshake as n3, then writes whatever it likes.
    const client = new grpc.Client(`127.0.0.1:${p["n1"]}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    opened.push(client);
    const md = new grpc.Metadata();
    md.set("dledger-group", "g1");
    md.set("dledger-replica", "n3");
    md.set("dledger-target", "n1");
    md.set("dledger-version", "1");
    const identity = (x: Buffer): Buffer => x;
    const call = client.makeBidiStreamRequest<Buffer, Buffer>("/dledger.peer.v1.PeerTransport/Stream", identity, identity, md, {});
    let status: grpc.StatusObject | null = null;
    call.on("error", () => {});
    call.on("status", (s: grpc.StatusObject) => (status = s));
    let accepted = false;
    call.on("metadata", () => (accepted = true));
    await waitFor("the raw stream is accepted", () => accepted);

    const good = encodeFrame({ groupId: "g1", from: "n3", to: "n1" }, [heartbeat("n3", "n1", 42)]);
    const badCrc = Buffer.from(good);
    badCrc[badCrc.length - 1] = badCrc[badCrc.length - 1]! ^ 1;
    const otherSender = encodeFrame({ groupId: "g1", from: "n2", to: "n1" }, [heartbeat("n2", "n1", 1)]);
    call.write(Buffer.from("this is not a frame"));
    call.write(badCrc);
    call.write(Buffer.from(otherSender));
    call.write(Buffer.alloc(65536 + 100));
    call.write(Buffer.from(good));
    await waitFor("the good frame after the bad ones is delivered", () => a.received.length === 1);
    expect(a.received[0]).toEqual({ from: "n3", rpc: heartbeat("n3", "n1", 42) });
    const rejected = a.logs.filter((l) => l.event === "frame_rejected").map((l) => l.fields["kind"]);
    expect(rejected).toEqual(["bad_magic", "crc_mismatch", "identity_mismatch", "oversized"]);
    expect(a.logs.find((l) => l.event === "frame_rejected")!.fields["error"]).toMatch(/^bad_magic: /);
    expect(a.transport.stats().peers["n3"]?.framesMalformed).toBe(4);
    expect(status).toBeNull();

    await waitFor("n1 and n2 connected", () => connected(a, b));
    b.transport.send([heartbeat("n2", "n1", 9)]);
    await waitFor("n2's frames still arrive", () => a.received.length === 2);
    call.cancel();
  });
});

/* --- Failures and recovery ------------------------------------------------------------------ */

describe("GrpcTransport failure detection and reconnect", { timeout: 30_000 }, () => {
  it("reports a peer down once when its transport closes, and reconnects when it restarts", async () => {
    const p = await ports("n1", "n2");
    const a = await startNode("n1", p);
    const b = await startNode("n2", p);
    await waitFor("n1 and n2 connected", () => connected(a, b));
    await b.transport.close();
    await waitFor("n1 reports n2 down", () => a.down.length === 1);
    expect(a.down).toEqual(["n2"]);
    a.transport.send([heartbeat("n1", "n2", 1)]);
    await waitFor("n1 redials with backoff", () => (a.transport.stats().peers["n2"]?.reconnects ?? 0) >= 2);
    expect(a.down).toEqual(["n2"]);
    expect(a.transport.stats().peers["n2"]?.peerDownReports).toBe(1);

    const b2 = await startNode("n2", p);
    await waitFor("n1 and the new n2 connected", () => connected(a, b2));
    a.transport.send([heartbeat("n1", "n2", 2)]);
    b2.transport.send([heartbeat("n2", "n1", 3)]);
    await waitFor("n2 gets the new rpc", () => seqsFrom(b2, "n1").includes(2));
    await waitFor("n1 hears from n2 again", () => seqsFrom(a, "n2").includes(3));
    await b2.transport.close();
    await waitFor("n1 reports the second outage", () => a.down.length === 2);
  });

  it("reports a peer down when its process is killed with SIGKILL", async () => {
    const p = await ports("n1", "n2");
    const a = await startNode("n1", p);
    // The peer is a separate node process that dials n1 as n2 and sends one frame; SIGKILL gives
    // it no chance to close anything, so only the kernel closing its socket tells n1.
    const frame = encodeFrame({ groupId: "g1", from: "n2", to: "n1" }, [heartbeat("n2", "n1", 77)]);
    const child = spawn(process.execPath, ["--input-type=module", "-e", peerProcessScript, `127.0.0.1:${p["n1"]}`, Buffer.from(frame).toString("hex")], {
      cwd: repoRoot,
      stdio: "ignore",
    });
    opened.push({ close: () => child.kill("SIGKILL") });
    await waitFor("the child's frame arrives", () => a.received.length === 1);
    expect(a.received[0]).toEqual({ from: "n2", rpc: heartbeat("n2", "n1", 77) });
    expect(a.down).toEqual([]);
    child.kill("SIGKILL");
    await waitFor("n1 reports n2 down", () => a.down.length === 1);
    expect(a.down).toEqual(["n2"]);
  });

  it("fires onPeerDown on both sides of a pair when either closes", async () => {
    const p = await ports("n1", "n2", "n3");
    const nodes = [await startNode("n1", p), await startNode("n2", p), await startNode("n3", p)];
    const [a, b, c] = nodes as [Node, Node, Node];
    await waitFor("all connected", () => connected(a, b) && connected(b, c) && connected(a, c));
    await a.transport.close();
    await waitFor("n2 and n3 report n1 down", () => b.down.includes("n1") && c.down.includes("n1"));
    expect(b.down).toEqual(["n1"]);
    expect(c.down).toEqual(["n1"]);
    b.transport.send([heartbeat("n2", "n3", 1)]);
    await waitFor("n2 and n3 still talk", () => c.received.length === 1);
  });
});

/* --- mTLS ----------------------------------------------------------------------------------- */

describe("GrpcTransport with mutual TLS", { timeout: 60_000 }, () => {
  let dir = "";
  afterEach(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
    dir = "";
  });

  function openssl(args: string[]): void {
    execFileSync("/usr/bin/openssl", args, { cwd: dir, stdio: "pipe", timeout: 30_000 });
  }

  function makeCa(name: string): void {
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "1", "-subj", `/CN=${name}`]);
  }

  function makeCert(name: string, ca: string, commonName = name): TransportTls {
    writeFileSync(join(dir, "ext.cnf"), `subjectAltName=DNS:${commonName},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${commonName}`]);
    openssl(["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.crt`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.crt`, "-days", "1", "-extfile", "ext.cnf"]);
    const read = (f: string): string => readFileSync(join(dir, f), "utf8");
    return { ca: read("ca.crt"), cert: read(`${name}.crt`), key: read(`${name}.key`) };
  }

  it("connects peers with certificates from the group's CA and refuses others", async () => {
    dir = mkdtempSync(join(tmpdir(), "dledger-mtls-"));
    makeCa("ca");
    makeCa("rogue-ca");
    const tls1 = makeCert("n1", "ca");
    const tls2 = makeCert("n2", "ca");
    // The rogue trusts the real CA (so it accepts n1's server certificate) but presents a
    // certificate from another CA: only n1's client-certificate check can stop it.
    const rogueTls = makeCert("n3", "rogue-ca");
    // The impostor holds a valid certificate from the group's CA, but it names n2, not n5.
    const impostorTls = makeCert("n5", "ca", "n2");

    const p = await ports("n1", "n2", "n3", "n4", "n5");
    const a = await startNode("n1", p, { tls: tls1 });
    const b = await startNode("n2", p, { tls: tls2 });
    const rogue = await startNode("n3", p, { tls: rogueTls });
    const plain = await startNode("n4", p);
    const impostor = await startNode("n5", p, { tls: impostorTls });
    await waitFor("n1 and n2 connected over mTLS", () => connected(a, b));
    a.transport.send([heartbeat("n1", "n2", 1)]);
    b.transport.send([heartbeat("n2", "n1", 2)]);
    await waitFor("both directions deliver", () => b.received.length === 1 && a.received.length === 1);

    rogue.transport.send([heartbeat("n3", "n1", 1)]);
    plain.transport.send([heartbeat("n4", "n1", 1)]);
    await waitFor("the rogue and the plaintext peer keep failing", () => {
      const s1 = rogue.transport.stats().peers["n1"]!;
      const s2 = plain.transport.stats().peers["n1"]!;
      return s1.reconnects >= 3 && s2.reconnects >= 3;
    });
    expect(rogue.transport.stats().peers["n1"]?.framesSent).toBe(0);
    expect(plain.transport.stats().peers["n1"]?.framesSent).toBe(0);
    expect(a.received.filter((r) => r.from === "n3" || r.from === "n4")).toEqual([]);
    expect(a.transport.stats().peers["n3"]?.inboundConnected).toBe(false);
    expect(a.transport.stats().peers["n4"]?.inboundConnected).toBe(false);

    impostor.transport.send([heartbeat("n5", "n1", 1)]);
    await waitFor("the impostor is refused by name", () => a.logs.some((l) => l.event === "peer_rejected_certificate_name"));
    expect(a.logs.find((l) => l.event === "peer_rejected_certificate_name")!.fields).toMatchObject({ peer: "n5", certificateName: "n2" });
    expect(a.received.filter((r) => r.from === "n5")).toEqual([]);
    // The other way round: n1 dialing n5 finds a certificate that does not name n5, and gives up.
    a.transport.send([heartbeat("n1", "n5", 1)]);
    await waitFor("n1 keeps failing to reach the impostor", () => (a.transport.stats().peers["n5"]?.reconnects ?? 0) >= 3);
    expect(a.transport.stats().peers["n5"]?.framesSent).toBe(0);
    expect(impostor.received).toEqual([]);
    b.transport.send([heartbeat("n2", "n1", 3)]);
    await waitFor("n1 still serves n2", () => a.received.length === 2);
  });

  it("accepts a certificate shared by all replicas when verifyPeerIdentity is off", async () => {
    dir = mkdtempSync(join(tmpdir(), "dledger-mtls-"));
    makeCa("ca");
    const shared = { ...makeCert("shared", "ca"), verifyPeerIdentity: false };
    const p = await ports("n1", "n2");
    const [a, b] = [await startNode("n1", p, { tls: shared }), await startNode("n2", p, { tls: shared })];
    a.transport.send([heartbeat("n1", "n2", 1)]);
    b.transport.send([heartbeat("n2", "n1", 2)]);
    await waitFor("both directions deliver", () => b.received.length === 1 && a.received.length === 1);
    // With identity checks on, the same certificate (CN and SAN "shared") names neither replica:
    // each dialer refuses the server's certificate, so no stream is ever established.
    const p2 = await ports("n1", "n2");
    const strict = { ...shared, verifyPeerIdentity: true };
    const c = await startNode("n1", p2, { tls: strict });
    const d = await startNode("n2", p2, { tls: strict });
    c.transport.send([heartbeat("n1", "n2", 1)]);
    d.transport.send([heartbeat("n2", "n1", 2)]);
    await waitFor("both keep failing", () => {
      return (c.transport.stats().peers["n2"]?.reconnects ?? 0) >= 3 && (d.transport.stats().peers["n1"]?.reconnects ?? 0) >= 3;
    });
    expect(c.transport.stats().peers["n2"]?.framesSent).toBe(0);
    expect(c.received).toEqual([]);
    expect(d.received).toEqual([]);
  });
});
