import type { Command } from "commander";
import type { KvCasResponse } from "../api/kv_messages.js";
import { KvClient, KvError, type KvWriteOutcome } from "../client/kv_client.js";

const out = (line: string): void => void process.stdout.write(`${line}\n`);
const err = (line: string): void => void process.stderr.write(`${line}\n`);
const show = (v: Uint8Array): string => JSON.stringify(new TextDecoder().decode(v));

/**
 * dledger kv get <key> | put <key> <value> | cas <key> <expected> <new> | cas --expect-absent <key> <new>
 * against the dledger.v1.Kv service of a group (--endpoints). Values are UTF-8 text. Exit codes:
 * 0 done, 1 refused or failed (a cas whose comparison failed included), 2 bad usage.
 */
export function registerKvCommands(program: Command, defaultEndpoints: string): void {
  const kv = program.command("kv").description("the replicated key-value map (dledger.v1.Kv): get, put, cas");
  const endpoints = ["--endpoints <list>", "comma-separated client addresses", defaultEndpoints] as const;
  kv.command("get")
    .description("linearizable read of a key (ReadIndex on the leader)")
    .argument("<key>")
    .option(...endpoints)
    .action(async (key: string, o: { endpoints: string }) => {
      await withKvClient(o.endpoints, async (c) => {
        const r = await c.get(key);
        out(r.present ? `${key} = ${show(r.value)} (read index ${r.readIndex})` : `${key} is absent (read index ${r.readIndex})`);
      });
    });
  kv.command("put")
    .description("set a key")
    .argument("<key>")
    .argument("<value>")
    .option(...endpoints)
    .action(async (key: string, value: string, o: { endpoints: string }) => {
      await withKvClient(o.endpoints, async (c) => {
        const r = await c.put(key, value);
        if (r.ok) out(`put ${key}: index ${r.value.index}, term ${r.value.term}${r.value.duplicate ? " (duplicate of an earlier attempt)" : ""}`);
        else writeFailed("put", r);
      });
    });
  kv.command("cas")
    .description("set a key only if it holds <expected> (or, with --expect-absent, only if it is absent)")
    .usage("<key> <expected> <new> | --expect-absent <key> <new>")
    .argument("<key>")
    .argument("<values...>")
    .option("--expect-absent", "succeed only if the key is absent; then give only <new>")
    .option(...endpoints)
    .action(async (key: string, values: string[], o: { endpoints: string; expectAbsent?: boolean }) => {
      const absent = o.expectAbsent === true;
      if (values.length !== (absent ? 1 : 2)) return usage(absent ? "cas --expect-absent takes <key> <new>" : "cas takes <key> <expected> <new>");
      const expected = absent ? null : (values[0] as string);
      const next = values[values.length - 1] as string;
      await withKvClient(o.endpoints, async (c) => printCas(key, await c.cas(key, expected, next)));
    });
}

function printCas(key: string, r: KvWriteOutcome<KvCasResponse>): void {
  if (!r.ok) return writeFailed("cas", r);
  const v = r.value;
  if (v.succeeded) return out(`cas ${key}: succeeded at index ${v.index}, term ${v.term}${v.duplicate ? " (duplicate of an earlier attempt)" : ""}`);
  const current = v.duplicate ? "current value not reported for a retry" : v.currentPresent ? `current value ${show(v.currentValue)}` : "the key is absent";
  err(`cas ${key}: comparison failed, nothing written (${current}; index ${v.index})`);
  process.exitCode = 1;
}

function writeFailed(what: string, r: Extract<KvWriteOutcome<unknown>, { ok: false }>): void {
  err(`${what} ${r.outcome === "unknown" ? "outcome UNKNOWN (it may have been applied)" : "failed"}: ${r.reason || `status ${r.code}`}: ${r.message}`);
  process.exitCode = 1;
}

function usage(message: string): void {
  err(`dledger kv: ${message}`);
  process.exitCode = 2;
}

/** Runs `fn` with a client; prints a KvError plainly and sets exit code 1. */
async function withKvClient(endpointsList: string, fn: (c: KvClient) => Promise<void>): Promise<void> {
  const endpoints = endpointsList.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (endpoints.length === 0) return usage("--endpoints must name at least one host:port");
  const client = new KvClient({ endpoints, attemptTimeoutMs: 1000, operationTimeoutMs: 5000 });
  try {
    await fn(client);
  } catch (e) {
    if (!(e instanceof KvError)) throw e;
    err(`dledger kv: ${e.reason || `status ${e.code}`}: ${e.message}${e.leaderId === null ? "" : ` (leader: ${e.leaderId})`}`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}
