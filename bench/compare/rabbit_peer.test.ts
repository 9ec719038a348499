import { describe, expect, it } from "vitest";
import { rabbitmqServerBin, startRabbitPeer, stillRunning, type RabbitPeer } from "./rabbit_peer.js";
import { expectAcknowledgedWrites, tryConnect } from "./peer_test_helpers.js";

// Real processes, no mocks. Where RabbitMQ is missing the test skips saying so, except in CI
// (.ci/run installs rabbitmq-server), where a missing server must fail rather than pass quietly.
const bin = rabbitmqServerBin();
const inCi = process.env["CI"] === "true";
const skip = bin === null && !inCi;

describe.skipIf(skip)(`RabbitMQ quorum-queue peer${skip ? " (skipped: rabbitmq-server not installed; apt-get install rabbitmq-server)" : ""}`, () => {
  it("forms a 3-node cluster, gets confirmed publishes, and stop() leaves no process or port behind", { timeout: 180_000 }, async () => {
    expect(bin, "rabbitmq-server must be installed in CI").not.toBeNull();
    const peer: RabbitPeer = await startRabbitPeer(bin as string, 1024);
    let started: ReturnType<RabbitPeer["processes"]> = [];
    try {
      started = peer.processes();
      expect(peer.pids).toHaveLength(3);
      // The launchers, the three beams and epmd at least.
      expect(started.length).toBeGreaterThanOrEqual(7);
      expect(started.filter((p) => p.comm.startsWith("beam")).map((p) => p.pid).sort()).toEqual([...peer.pids].sort());
      await expectAcknowledgedWrites(peer);
    } finally {
      await peer.stop();
    }
    expect(started.filter(stillRunning).map((p) => `${p.pid} ${p.comm}`)).toEqual([]);
    for (const port of peer.amqpPorts) expect(await tryConnect(port)).toBe("ECONNREFUSED");
  });
});
