import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { assert } from "../../raft/base/assert.js";
import { encodeEvent } from "../checkers/history_writer.js";
import type { ClientF, Json } from "../checkers/history.js";
import type { HistoryRecorder, NemesisNote, NodeId, ReportOperation } from "./contracts.js";

/**
 * The history recorder of a chaos run: every event goes, in the order the calls arrive, to
 * `history.jsonl` as one JSON line (history_writer.ts encodeEvent, so parseHistory reads back
 * exactly what was written), stamped with a monotonic nanosecond clock started at open().
 *
 * Real-time order: callers record an invoke just before sending a request and the completion just
 * after its answer, on Node's single thread, so the order of calls here is the order of events.
 *
 * Lines are buffered and written with one synchronous write per batch (every
 * `flushBytesMax` bytes, every `flushIntervalMs`, on flush()/close(), and from a process 'exit'
 * hook so a crash path still leaves the history on disk up to the last event).
 *
 * For the report it also keeps, in memory and bounded: the counts by outcome, the completed
 * operations (down-sampled evenly once `operationsMax` is reached) and the nemesis notes.
 */

export interface RecorderOptions {
  /** Buffered bytes that trigger a write. */
  readonly flushBytesMax?: number;
  readonly flushIntervalMs?: number;
  /** Operations kept for the charts; above it, every other one is dropped and the stride doubles. */
  readonly operationsMax?: number;
  /** Nemesis notes kept (a bound; a run injects far fewer). */
  readonly notesMax?: number;
  /** Monotonic clock in ns (tests inject one); process.hrtime.bigint by default. */
  readonly clockNs?: () => bigint;
}

export const recorderDefaults = { flushBytesMax: 64 * 1024, flushIntervalMs: 200, operationsMax: 100_000, notesMax: 100_000 } as const;

export interface RecorderCounts {
  invoked: number;
  ok: number;
  fail: number;
  info: number;
}

interface PendingInvoke {
  readonly f: string;
  readonly key: string | number | undefined;
  readonly invokeNs: number;
}

export class JsonlHistoryRecorder implements HistoryRecorder {
  readonly counts: RecorderCounts = { invoked: 0, ok: 0, fail: 0, info: 0 };
  /** Events written (client and nemesis). */
  events = 0;
  private readonly opts: Required<Omit<RecorderOptions, "clockNs">>;
  private readonly clockNs: () => bigint;
  private readonly startNs: bigint;
  private lastNs = 0;
  private fd: number | null;
  private buffer: string[] = [];
  private bufferBytes = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly onExit = (): void => this.flush();
  private readonly pending = new Map<number, PendingInvoke>();
  private ops: ReportOperation[] = [];
  private opsStride = 1;
  private opsSeen = 0;
  private readonly noteList: NemesisNote[] = [];
  private notesDropped = 0;

  private constructor(
    readonly path: string,
    options: RecorderOptions,
  ) {
    this.opts = { ...recorderDefaults, ...definedOnly(options) };
    assert(this.opts.operationsMax >= 2, "operationsMax must be >= 2");
    this.clockNs = options.clockNs ?? (() => process.hrtime.bigint());
    this.startNs = this.clockNs();
    this.fd = openSync(path, "w");
    this.timer = setInterval(() => this.flush(), this.opts.flushIntervalMs);
    this.timer.unref();
    process.on("exit", this.onExit);
  }

  /** Creates (truncates) `path` and starts the clock. */
  static open(path: string, options: RecorderOptions = {}): JsonlHistoryRecorder {
    return new JsonlHistoryRecorder(path, options);
  }

  nowNs(): number {
    // hrtime is monotonic already; the max() guards an injected clock and keeps `time` sorted.
    const t = Number(this.clockNs() - this.startNs);
    this.lastNs = Math.max(this.lastNs, t);
    return this.lastNs;
  }

  client(e: Parameters<HistoryRecorder["client"]>[0]): void {
    const timeNs = this.nowNs();
    this.write(
      encodeEvent({
        process: e.process,
        type: e.type,
        f: e.f as ClientF,
        ...(e.key === undefined ? {} : { key: e.key }),
        ...(e.value === undefined ? {} : { value: e.value }),
        ...(e.index === undefined ? {} : { index: e.index }),
        ...(e.error === undefined ? {} : { error: e.error }),
        timeNs,
      }),
    );
    this.track(e.process, e.type, e.f, e.key, timeNs);
  }

  nemesis(note: Omit<NemesisNote, "timeNs">): void {
    const timeNs = this.nowNs();
    const value: { [k: string]: Json } = { fault: note.value.fault, nodes: [...note.value.nodes] };
    if (note.value.detail !== undefined) value["detail"] = note.value.detail;
    this.write(encodeEvent({ process: "nemesis", type: "info", f: note.f, value, timeNs }));
    if (this.noteList.length < this.opts.notesMax) this.noteList.push({ ...note, timeNs });
    else this.notesDropped++;
  }

  /** Completed operations for the charts: all of them, or an even sample of them. */
  operations(): readonly ReportOperation[] {
    return this.ops;
  }

  notes(): readonly NemesisNote[] {
    return this.noteList;
  }

  /** The faults injected so far: one per "start" note. */
  faultsStarted(): number {
    return this.noteList.filter((n) => n.f === "start").length;
  }

  /** The fault in place right now (the latest start without a stop), for the progress line. */
  currentFault(): { readonly fault: string; readonly nodes: readonly NodeId[] } | null {
    const open: NemesisNote[] = [];
    for (const n of this.noteList) {
      if (n.f === "start") open.push(n);
      else {
        const i = open.map((o) => o.value.fault).lastIndexOf(n.value.fault);
        if (i >= 0) open.splice(i, 1);
        else open.pop();
      }
    }
    const last = open.at(-1);
    return last === undefined ? null : { fault: last.value.fault, nodes: last.value.nodes };
  }

  /** Writes the buffered lines now (synchronously). Safe to call at any time, also after close(). */
  flush(): void {
    if (this.fd === null || this.buffer.length === 0) return;
    const text = this.buffer.join("");
    this.buffer = [];
    this.bufferBytes = 0;
    writeSync(this.fd, text);
  }

  /** Flushes, fsyncs and closes the file. Idempotent. */
  close(): void {
    if (this.fd === null) return;
    this.flush();
    clearInterval(this.timer);
    process.off("exit", this.onExit);
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }

  private write(line: string): void {
    assert(this.fd !== null, `history recorder for ${this.path} is closed`);
    this.buffer.push(line, "\n");
    this.bufferBytes += line.length + 1;
    this.events++;
    if (this.bufferBytes >= this.opts.flushBytesMax) this.flush();
  }

  private track(process: number, type: "invoke" | "ok" | "fail" | "info", f: string, key: string | number | undefined, timeNs: number): void {
    if (type === "invoke") {
      this.counts.invoked++;
      this.pending.set(process, { f, key, invokeNs: timeNs });
      return;
    }
    this.counts[type]++;
    const inv = this.pending.get(process);
    if (inv === undefined) return; // parseHistory names this; the recorder only keeps statistics
    this.pending.delete(process);
    this.opsSeen++;
    if (this.opsSeen % this.opsStride !== 0) return;
    this.ops.push({ process, f: inv.f, ...(inv.key === undefined ? {} : { key: inv.key }), outcome: type, invokeNs: inv.invokeNs, completeNs: timeNs });
    if (this.ops.length >= this.opts.operationsMax) {
      // Keep an even sample over the whole run: drop every other operation, take half as many.
      this.ops = this.ops.filter((_, i) => i % 2 === 1);
      this.opsStride *= 2;
    }
  }
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
