import { randomInt } from "node:crypto";
import { createServer } from "node:net";

/**
 * Loopback addresses for local groups, tests and benchmarks.
 *
 * A port that is free when picked can be taken before the replica binds it. Two things take
 * ports meanwhile: another process picking the same way (vitest runs test files in parallel),
 * and the kernel, which hands ports of net.ipv4.ip_local_port_range (32768–60999 here) to every
 * outgoing connection. Asking the kernel for port 0 returns exactly such a port, so under a busy
 * parallel test run a replica could fail with EADDRINUSE and its group run one member short (a
 * rare CI flake of the real-process tests). Hence: ports below the ephemeral range, and, where
 * the caller allows, a group of its own on a random 127.x.y.z address (all of 127.0.0.0/8 is
 * loopback on Linux), so a clash needs the same address and the same port.
 */
const portMin = 20_000;
const portMax = 32_767;
const picksMax = 200;

/** host:port pairs this process handed out, so two picks never return the same one. */
const handedOut = new Set<string>();

/** A random loopback address 127.a.b.c (a, b, c in 1..254), for one group's listeners. */
export function randomLoopbackHost(): string {
  return `127.${1 + randomInt(254)}.${1 + randomInt(254)}.${1 + randomInt(254)}`;
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

function kernelPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A port on `host` that nothing listens on now, below the ephemeral range, never handed out
 * before by this process. Bounded: after `picksMax` taken ports, the kernel's pick.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  for (let i = 0; i < picksMax; i++) {
    const port = portMin + randomInt(portMax - portMin + 1);
    const key = `${host}:${port}`;
    if (handedOut.has(key)) continue;
    if (await canBind(host, port)) {
      handedOut.add(key);
      return port;
    }
  }
  return kernelPort(host);
}
