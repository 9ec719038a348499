import type { ClientF, EventType, Json, Key } from "./history.js";

/**
 * The writing side of the history format (history.ts): the chaos runner and later workloads
 * (the broker's `queue`) record events through encodeEvent, so what they write is exactly what
 * parseHistory accepts. The caller appends events in real-time order: write an invoke before
 * sending the request and a completion after the reply, from one sequential recorder.
 */

export interface ClientEventInput {
  readonly process: number;
  readonly type: EventType;
  readonly f: ClientF;
  readonly key?: Key;
  readonly value?: Json;
  /** The log index an ok append was acknowledged at. */
  readonly index?: number;
  readonly error?: Json;
  /** Nanoseconds since the start of the run. */
  readonly timeNs?: number;
}

export interface NemesisEventInput {
  /** A name such as "nemesis": never an integer, so that checkers skip it. */
  readonly process: string;
  readonly type: EventType;
  /** "start" / "stop" (or "start-<fault>" / "stop-<fault>") for a fault interval. */
  readonly f: string;
  /** The fault's name, e.g. "isolate-leader", or an object with a `fault` field. */
  readonly value?: Json;
  readonly timeNs?: number;
}

/** One JSON line, without the newline; fields in a fixed order, absent ones left out. */
export function encodeEvent(e: ClientEventInput | NemesisEventInput): string {
  const out: Record<string, Json> = { process: e.process, type: e.type, f: e.f };
  if ("key" in e && e.key !== undefined) out["key"] = e.key;
  if (e.value !== undefined) out["value"] = e.value;
  if ("index" in e && e.index !== undefined) out["index"] = e.index;
  if ("error" in e && e.error !== undefined) out["error"] = e.error;
  if (e.timeNs !== undefined) out["time"] = e.timeNs;
  return JSON.stringify(out);
}
