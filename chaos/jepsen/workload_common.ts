import type { Json } from "../checkers/history.js";
import type { WorkloadContext } from "./contracts.js";

/**
 * What every workload shares: Jepsen's client-process bookkeeping. A worker (a loop issuing one
 * operation at a time) acts as a client process with an integer id; when an operation ends `info`
 * (its effect unknown: it may still be in flight) the id is retired and the worker continues under
 * a fresh one, so the history never shows two operations of one process overlapping.
 */

/** How an attempt ended, in Jepsen's terms, with what the completion event carries. */
export type Completion =
  | { readonly type: "ok"; readonly value?: Json; readonly index?: number }
  | { readonly type: "fail"; readonly error: Json }
  | { readonly type: "info"; readonly error: Json };

export interface Invocation {
  readonly f: string;
  readonly key?: string | number;
  readonly value?: Json;
}

/** Hands out process ids, dense from `first`, never twice. */
export class ProcessIds {
  private next: number;
  constructor(first = 0) {
    this.next = first;
  }
  take(): number {
    return this.next++;
  }
  /** Ids handed out so far. */
  get used(): number {
    return this.next;
  }
}

/** One client process: records invoke and completion around each attempt, retires itself on info. */
export class ClientProcess {
  private id: number;
  constructor(
    private readonly ctx: WorkloadContext,
    private readonly ids: ProcessIds,
  ) {
    this.id = ids.take();
  }

  get process(): number {
    return this.id;
  }

  /**
   * Records the invoke, runs `attempt` (which must resolve, never reject: an unexpected exception
   * is recorded as `info`, because nobody knows whether the request left), records the completion.
   */
  async run(inv: Invocation, attempt: () => Promise<Completion>): Promise<Completion> {
    const process = this.id;
    const base = { process, f: inv.f, ...(inv.key === undefined ? {} : { key: inv.key }) };
    this.ctx.recorder.client({ ...base, type: "invoke", ...(inv.value === undefined ? {} : { value: inv.value }) });
    let done: Completion;
    try {
      done = await attempt();
    } catch (err) {
      done = { type: "info", error: `client exception: ${err instanceof Error ? err.message : String(err)}` };
    }
    switch (done.type) {
      case "ok": {
        // A read's null (an absent key) is a value: only an absent field falls back to the invoke's.
        const value = done.value !== undefined ? done.value : inv.value;
        this.ctx.recorder.client({ ...base, type: "ok", ...(value === undefined ? {} : { value }), ...(done.index === undefined ? {} : { index: done.index }) });
        break;
      }
      case "fail":
        this.ctx.recorder.client({ ...base, type: "fail", ...(inv.value === undefined ? {} : { value: inv.value }), error: done.error });
        break;
      case "info":
        this.ctx.recorder.client({ ...base, type: "info", ...(inv.value === undefined ? {} : { value: inv.value }), error: done.error });
        this.id = this.ids.take();
        break;
    }
    return done;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

/** A uniform integer in [lo, hi) from the workload's seeded stream. */
export function pick(random: () => number, lo: number, hi: number): number {
  return lo + Math.floor(random() * (hi - lo));
}

/** Short text for a history `error` field. */
export function errorText(reason: string, message: string): string {
  const clipped = message.length > 160 ? `${message.slice(0, 160)}…` : message;
  return reason === "" ? clipped : `${reason}: ${clipped}`;
}
