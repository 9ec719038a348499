import { unreachable } from "../../raft/base/assert.js";
import type { Logger } from "../../raft/base/logger.js";
import type { Entry, Ready, Rpc } from "../../raft/core/types.js";

/**
 * Human-readable lines for a replay. Only built when a trace is being recorded (`--seed S`), so
 * batch runs pay nothing for them.
 */

/** "12.345ms" for a simulated time in µs, fixed width so columns line up. */
export function formatTime(timeUs: number): string {
  return `${(timeUs / 1000).toFixed(3).padStart(10)}ms`;
}

function range(entries: readonly Entry[]): string {
  const first = entries[0];
  const last = entries[entries.length - 1];
  if (first === undefined || last === undefined) return "[]";
  return first === last ? `[${first.index}@t${first.term}]` : `[${first.index}..${last.index}@t${first.term}..t${last.term}]`;
}

/** One RPC in one line: its type, route, term and the fields that matter for reading a trace. */
export function formatRpc(rpc: Rpc): string {
  const head = `${rpc.type} ${rpc.from}->${rpc.to} t${rpc.term}`;
  switch (rpc.type) {
    case "vote_request":
      return `${head}${rpc.preVote ? " pre" : ""}${rpc.transfer ? " transfer" : ""} last=(${rpc.lastIndex},t${rpc.lastTerm})`;
    case "vote_response":
      return `${head}${rpc.preVote ? " pre" : ""} ${rpc.granted ? "granted" : "rejected"}`;
    case "append_request":
      return `${head} prev=(${rpc.prevIndex},t${rpc.prevTerm}) ${range(rpc.entries)} commit=${rpc.commit}`;
    case "append_response":
      return `${head} ${rpc.success ? "ok" : "reject"} index=${rpc.index}${rpc.success ? "" : ` hint=(${rpc.hintIndex},t${rpc.hintTerm})`}`;
    case "heartbeat":
      return `${head} commit=${rpc.commit} readSeq=${rpc.readSeq}`;
    case "heartbeat_response":
      return `${head} readSeq=${rpc.readSeq}`;
    case "snapshot_chunk":
      return `${head} snap=(${rpc.meta.index},t${rpc.meta.term}) pos=${rpc.position} len=${rpc.data.byteLength}${rpc.done ? " done" : ""}`;
    case "snapshot_response":
      return `${head} snap=${rpc.snapshotIndex} pos=${rpc.position}${rpc.reject ? " reject" : ""}`;
    case "timeout_now":
      return head;
    default:
      return unreachable(rpc, "rpc type");
  }
}

/** A one-line summary of a Ready batch. */
export function formatReady(rd: Ready): string {
  const parts = [`ready ${rd.softState.role} t${rd.softState.term} leader=${rd.softState.leader ?? "-"}`];
  if (rd.hardState !== null) {
    parts.push(`hs(t${rd.hardState.term} vote=${rd.hardState.votedFor ?? "-"} commit=${rd.hardState.commit})`);
  }
  if (rd.snapshot !== null) parts.push(`snapshot=(${rd.snapshot.meta.index},t${rd.snapshot.meta.term})`);
  if (rd.entries.length > 0) parts.push(`write${range(rd.entries)}`);
  if (rd.committedEntries.length > 0) parts.push(`apply${range(rd.committedEntries)}`);
  if (rd.messages.length > 0) parts.push(`send=${rd.messages.length}`);
  if (rd.messagesAfterSync.length > 0) parts.push(`sendAfterSync=${rd.messagesAfterSync.length}`);
  if (rd.readStates.length > 0) parts.push(`readStates=${rd.readStates.length}`);
  return parts.join(" ");
}

/** A Logger that appends the core's events to a trace (replay mode only). */
export function traceLogger(lines: string[], now: () => number, bindings: Record<string, unknown> = {}): Logger {
  const write = (level: string) => (fields: Record<string, unknown>, event: string) => {
    const merged = { ...bindings, ...fields };
    lines.push(`${formatTime(now())}   core ${level} ${event} ${safeJson(merged)}`);
  };
  return {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    child: (more) => traceLogger(lines, now, { ...bindings, ...more }),
  };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
