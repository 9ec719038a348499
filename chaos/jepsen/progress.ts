/**
 * The progress display of `dledger chaos` on stderr: on a terminal, one line redrawn in place
 * (a bar of elapsed/limit, ok/fail/info counts, the fault in place); otherwise (a CI log, a pipe)
 * a plain line every `plainIntervalMs`, so logs stay readable.
 */

export interface ProgressState {
  readonly phase: string;
  readonly elapsedMs: number;
  readonly limitMs: number;
  readonly ok: number;
  readonly fail: number;
  readonly info: number;
  readonly faults: number;
  /** The fault in place, e.g. "kill n2", or null. */
  readonly fault: string | null;
}

export interface ProgressSink {
  readonly isTTY: boolean;
  readonly columns?: number;
  write(text: string): void;
}

export const progressDefaults = { ttyIntervalMs: 250, plainIntervalMs: 10_000, barWidth: 24 } as const;

/** Formats one progress line (without a newline). */
export function progressLine(s: ProgressState, barWidth: number = progressDefaults.barWidth): string {
  const frac = s.limitMs <= 0 ? 1 : Math.min(1, Math.max(0, s.elapsedMs / s.limitMs));
  const filled = Math.round(frac * barWidth);
  const bar = `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]`;
  const t = `${(s.elapsedMs / 1000).toFixed(0)}/${(s.limitMs / 1000).toFixed(0)} s`;
  const fault = s.fault === null ? "none" : s.fault;
  return `${s.phase} ${bar} ${t}  ok ${s.ok} fail ${s.fail} info ${s.info}  faults ${s.faults}  now: ${fault}`;
}

export class Progress {
  private timer: NodeJS.Timeout | null = null;
  private drawn = false;

  constructor(
    private readonly sink: ProgressSink,
    private readonly state: () => ProgressState,
  ) {}

  start(): void {
    if (this.timer !== null) return;
    const every = this.sink.isTTY ? progressDefaults.ttyIntervalMs : progressDefaults.plainIntervalMs;
    this.timer = setInterval(() => this.draw(), every);
    this.timer.unref();
  }

  /** Draws the final state and ends the line. Idempotent. */
  stop(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
    this.draw();
    if (this.sink.isTTY && this.drawn) this.sink.write("\n");
  }

  /** Prints a line above the bar without garbling it. */
  note(line: string): void {
    if (this.sink.isTTY && this.drawn) this.sink.write("\r\x1b[2K");
    this.sink.write(`${line}\n`);
    if (this.sink.isTTY && this.timer !== null) this.draw();
  }

  private draw(): void {
    const line = progressLine(this.state());
    if (this.sink.isTTY) {
      const width = Math.max(20, (this.sink.columns ?? 100) - 1);
      this.sink.write(`\r\x1b[2K${line.slice(0, width)}`);
      this.drawn = true;
    } else {
      this.sink.write(`${line}\n`);
    }
  }
}
