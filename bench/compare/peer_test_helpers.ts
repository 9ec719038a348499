import { connect } from "node:net";
import { expect } from "vitest";
import { peerClosedLoop, type PeerSystem } from "./peer_loop.js";

/** Test helpers of the peer tests (etcd, NATS, RabbitMQ): real sockets and PIDs, no mocks. */

/** Resolves with the connect error's code (ECONNREFUSED once a server is gone), "connected" or "timeout". */
export function tryConnect(port: number): Promise<string> {
  return new Promise((done) => {
    const s = connect(port, "127.0.0.1");
    s.setTimeout(2000, () => {
      s.destroy();
      done("timeout");
    });
    s.once("connect", () => {
      s.destroy();
      done("connected");
    });
    s.once("error", (e: NodeJS.ErrnoException) => done(e.code ?? String(e)));
  });
}

/** Signal 0 probes a PID without touching it: ESRCH means no such process. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** Four writes in flight for a second (after 0.3 s of warm-up): every one acknowledged. */
export async function expectAcknowledgedWrites(peer: PeerSystem): Promise<void> {
  const level = await peerClosedLoop(peer, 4, 300, 1000);
  expect(level.errors, JSON.stringify(level.errorSamples)).toBe(0);
  expect(level.appendsPerSec).toBeGreaterThan(0);
}
