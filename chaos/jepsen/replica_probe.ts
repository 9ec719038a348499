/**
 * How the cluster asks replicas for their Metadata (leader lookups, "is the client port up").
 * In process-only mode, and in netns mode when this process runs inside the coordinator's
 * namespace (the chaos run's inner process), it dials directly. A process outside that namespace
 * (a test driving a netns cluster) cannot reach the replicas' addresses without touching the root
 * namespace, so it runs a small agent inside the coordinator's namespace and talks to it over
 * stdin/stdout (probe_agent.ts): the same calls, one hop further.
 */
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import { ledgerService, type MetadataResponse } from "../../broker/api/ledger_messages.js";

/** Metadata of the replica at `address`, or a string saying why there is none (timeout, refused...). */
export interface ReplicaProbe {
  metadata(address: string, timeoutMs: number): Promise<MetadataResponse | string>;
  close(): void;
}

/**
 * Short reconnect backoff: grpc-js backs off up to 120 s between connection attempts by default,
 * so a channel to a replica that was down for a while would keep failing long after it is back.
 */
export const probeChannelOptions = { "grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 500 } as const;

export class DirectProbe implements ReplicaProbe {
  readonly #clients = new Map<string, grpc.Client>();

  metadata(address: string, timeoutMs: number): Promise<MetadataResponse | string> {
    let client = this.#clients.get(address);
    if (client === undefined) {
      client = new grpc.Client(address, grpc.credentials.createInsecure(), probeChannelOptions);
      this.#clients.set(address, client);
    }
    const m = ledgerService.Metadata;
    const deadline = new Date(Date.now() + Math.max(1, timeoutMs));
    return new Promise((resolve) => {
      client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, {}, new grpc.Metadata(), { deadline }, (err, value) => {
        if (err !== null || value === undefined) resolve(err?.details ?? err?.message ?? "no answer");
        else resolve(value);
      });
    });
  }

  close(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }
}

/** The agent's protocol: one JSON object per line each way. */
export interface AgentRequest {
  readonly id: number;
  readonly address: string;
  readonly timeoutMs: number;
}
export interface AgentResponse {
  readonly id: number;
  readonly value: MetadataResponse | string;
}

/** Talks to a probe_agent.js child (already spawned inside the coordinator's namespace). */
export class AgentProbe implements ReplicaProbe {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, { resolve: (v: MetadataResponse | string) => void; timer: NodeJS.Timeout }>();
  #nextId = 1;
  #gone: string | null = null;

  constructor(child: ChildProcess) {
    this.#child = child;
    if (child.stdout === null || child.stdin === null) throw new Error("the probe agent needs piped stdin and stdout");
    createInterface({ input: child.stdout }).on("line", (line) => {
      let r: AgentResponse;
      try {
        r = JSON.parse(line) as AgentResponse;
      } catch {
        return; // Not a response (the agent prints nothing else; ignore stray output).
      }
      const w = this.#waiting.get(r.id);
      if (w === undefined) return;
      clearTimeout(w.timer);
      this.#waiting.delete(r.id);
      w.resolve(r.value);
    });
    child.once("exit", (code, signal) => {
      this.#gone = `probe agent exited (code ${String(code)}, signal ${String(signal)})`;
      for (const w of this.#waiting.values()) {
        clearTimeout(w.timer);
        w.resolve(this.#gone);
      }
      this.#waiting.clear();
    });
  }

  metadata(address: string, timeoutMs: number): Promise<MetadataResponse | string> {
    if (this.#gone !== null) return Promise.resolve(this.#gone);
    const id = this.#nextId++;
    return new Promise((resolve) => {
      // The agent applies the deadline; this bound also covers an agent that stopped answering.
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        resolve(`probe agent did not answer within ${timeoutMs + 1000} ms`);
      }, timeoutMs + 1000);
      this.#waiting.set(id, { resolve, timer });
      const req: AgentRequest = { id, address, timeoutMs };
      this.#child.stdin?.write(`${JSON.stringify(req)}\n`);
    });
  }

  close(): void {
    this.#child.stdin?.end();
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill("SIGKILL");
  }
}
