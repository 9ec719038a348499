import { describe, expect, it } from "vitest";
import { onPath } from "../common/local_group.js";
import { startEtcdPeer } from "./etcd_peer.js";
import { alive, expectAcknowledgedWrites, tryConnect } from "./peer_test_helpers.js";

// Real processes, no mocks. Where etcd is missing the test skips saying so, except in CI
// (.ci/run installs etcd-server), where a missing server must fail rather than pass quietly.
const bin = onPath("etcd");
const inCi = process.env["CI"] === "true";
const skip = bin === null && !inCi;

describe.skipIf(skip)(`etcd peer${skip ? " (skipped: etcd not on PATH; apt-get install etcd-server)" : ""}`, () => {
  it("forms a 3-member cluster, gets acknowledged Puts, and stop() leaves no process or port behind", { timeout: 90_000 }, async () => {
    expect(bin, "etcd must be installed in CI").not.toBeNull();
    const peer = await startEtcdPeer(bin as string, 1024);
    const ports = peer.clientPorts;
    try {
      expect(peer.pids).toHaveLength(3);
      expect(new Set(ports).size).toBe(3);
      await expectAcknowledgedWrites(peer);
    } finally {
      await peer.stop();
    }
    expect(peer.pids.filter(alive)).toEqual([]);
    expect(ports).toHaveLength(3);
    for (const port of ports) expect(await tryConnect(port)).toBe("ECONNREFUSED");
  });
});
