import { describe, expect, it } from "vitest";
import { onPath } from "../common/local_group.js";
import { startNatsPeer, type NatsPeer } from "./nats_peer.js";
import { alive, expectAcknowledgedWrites, tryConnect } from "./peer_test_helpers.js";

// Real processes, no mocks. Where nats-server is missing the test skips saying so, except in CI
// (.ci/run installs nats-server), where a missing server must fail rather than pass quietly.
const bin = onPath("nats-server");
const inCi = process.env["CI"] === "true";
const skip = bin === null && !inCi;

describe.skipIf(skip)(`NATS JetStream peer${skip ? " (skipped: nats-server not on PATH; apt-get install nats-server)" : ""}`, () => {
  it("forms a 3-node cluster with an R3 stream, gets PubAcks, and stop() leaves no process or port behind", { timeout: 90_000 }, async () => {
    expect(bin, "nats-server must be installed in CI").not.toBeNull();
    const peer: NatsPeer = await startNatsPeer(bin as string, 1024);
    try {
      expect(peer.pids).toHaveLength(3);
      expect(peer.pids.every(alive)).toBe(true);
      await expectAcknowledgedWrites(peer);
    } finally {
      await peer.stop();
    }
    expect(peer.pids.filter(alive)).toEqual([]);
    for (const port of peer.clientPorts) expect(await tryConnect(port)).toBe("ECONNREFUSED");
  });
});
