import { KvClient, type KvCallOutcome } from "../../broker/client/kv_client.js";
import type { KvAnswer, RegisterClient, RegisterClientFactory } from "./workload_register.js";

/**
 * The register workload's client over dledger.v1.Kv: KvClient's single-shot calls (one RPC to one
 * replica, never retried), so each history event is the outcome of exactly one request. Values
 * travel as decimal text; a stored value that is not one of ours comes back as its text, which the
 * checker then rejects (nothing wrote it).
 */
export const kvRegisterClientAvailable = true;

const decoder = new TextDecoder();

/** The register value a KV value holds: the integer we wrote, or the raw text if it is not one. */
export function registerValue(present: boolean, bytes: Uint8Array): number | string | null {
  if (!present) return null;
  const text = decoder.decode(bytes);
  return /^(0|[1-9][0-9]{0,14})$/.test(text) ? Number(text) : `foreign:${text.slice(0, 40)}`;
}

function refusal(r: Exclude<KvCallOutcome<unknown>, { status: "ok" }>): KvAnswer {
  return { outcome: r.status, reason: r.reason, message: r.message, leaderAddress: r.leaderAddress };
}

export const kvRegisterClientFactory: RegisterClientFactory = (endpoints: readonly string[]): RegisterClient => {
  const client = new KvClient({ endpoints });
  return {
    async read(endpoint, key, timeoutMs) {
      const r = await client.getOnce(endpoint, key, { timeoutMs });
      return r.status === "ok" ? { outcome: "ok", value: registerValue(r.value.present, r.value.value) } : refusal(r);
    },
    async write(endpoint, key, value, timeoutMs) {
      const r = await client.putOnce(endpoint, key, String(value), { timeoutMs });
      return r.status === "ok" ? { outcome: "ok", value } : refusal(r);
    },
    async cas(endpoint, key, expected, next, timeoutMs) {
      const r = await client.casOnce(endpoint, key, String(expected), String(next), { timeoutMs });
      if (r.status !== "ok") return refusal(r);
      if (r.value.succeeded) return { outcome: "ok", value: next };
      return { outcome: "cas_mismatch", actual: registerValue(r.value.currentPresent, r.value.currentValue) };
    },
    close: () => client.close(),
  };
};
