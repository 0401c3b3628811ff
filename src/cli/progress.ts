// The training progress line: on a terminal one line redrawn in place (\r, erase to the end of the line)
// with a bar, step/total, loss, lr, tokens/s and the ETA; elsewhere (CI logs, pipes, files) one plain line
// per step, which a log keeps readable. Other output goes through `log`, which clears the bar first and
// draws it again after, so messages never land in the middle of it.
import type { StepEvent } from '../train/runner.js';

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

const fmt = (v: number, d = 4) => (Number.isFinite(v) ? v.toFixed(d) : String(v));

/** Seconds as 1h02m, 3m05s or 12s. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const t = Math.round(s);
  if (t >= 3600) return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
  if (t >= 60) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${t}s`;
}

export class ProgressLine {
  private readonly tty: boolean;
  private drawn = '';
  private t0: number | null = null;
  private firstStep = 0;

  constructor(
    private readonly out: ProgressStream,
    opts: { tty?: boolean; now?: () => number } = {},
  ) {
    this.tty = opts.tty ?? out.isTTY === true;
    this.now = opts.now ?? (() => performance.now() / 1000);
  }
  private readonly now: () => number;

  /** The text of a step: step/total, loss, lr, grad norm, tokens/s, ETA (from the mean time of this process's steps). */
  text(e: StepEvent): string {
    const t = this.now();
    if (this.t0 === null) {
      // the ETA is timed from the first step seen (the first one includes warm-up; a resumed run starts mid-way)
      this.t0 = t;
      this.firstStep = e.step;
    }
    const done = e.step - this.firstStep;
    const eta = e.step >= e.totalSteps ? 0 : done > 0 ? ((t - this.t0) / done) * (e.totalSteps - e.step) : NaN;
    return (
      `step ${e.step}/${e.totalSteps} loss ${fmt(e.loss)} lr ${e.lr.toExponential(2)} |g| ${fmt(e.gradNorm, 3)} ` +
      `${e.tokensPerSec.toFixed(0)} tok/s ETA ${formatDuration(eta)}${e.skipped ? ' (skipped: non-finite)' : ''}`
    );
  }

  step(e: StepEvent): void {
    const text = this.text(e);
    if (!this.tty) {
      this.out.write(text + '\n');
      return;
    }
    const width = Math.max(20, (this.out.columns || 100) - 1); // a pty without a size reports 0
    const barWidth = 20;
    const filled = Math.round((Math.min(e.step, e.totalSteps) / Math.max(1, e.totalSteps)) * barWidth);
    const line = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}] ${text}`.slice(0, width);
    this.out.write(`\r${line}\x1b[K`);
    this.drawn = line;
  }

  /** Writes a line of other output (to `to`, default this stream) without breaking the bar. */
  log(line: string, to: ProgressStream = this.out): void {
    if (this.tty && this.drawn) this.out.write('\r\x1b[K');
    to.write(line + '\n');
    if (this.tty && this.drawn) this.out.write(this.drawn);
  }

  /** Leaves the last drawn line in place and moves to a new line. */
  end(): void {
    if (this.tty && this.drawn) this.out.write('\n');
    this.drawn = '';
  }
}
