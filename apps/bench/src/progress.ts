/**
 * A progress bar on stderr for `npm run bench`: on a terminal one line redrawn twice a second
 * (bar, steps done, elapsed time, the step running); without a terminal (CI, a log file) one line
 * per step. Tables printed while it runs go through `log`, which clears the bar first.
 */
export class Progress {
  private done = 0;
  private label = '';
  private readonly t0 = performance.now();
  private stepT0 = performance.now();
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly tty: boolean;

  constructor(
    private total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = !!stream.isTTY && process.env.CI === undefined;
    if (this.tty) {
      this.timer = setInterval(() => this.draw(), 500);
      this.timer.unref();
    }
  }

  /** Starts the next step (the previous one counts as done). */
  step(label: string): void {
    if (this.label) this.done++;
    this.label = label;
    this.stepT0 = performance.now();
    if (this.done >= this.total) this.total = this.done + 1;
    if (this.tty) this.draw();
    else this.stream.write(`» [${this.done + 1}/${this.total}] ${fmtTime(performance.now() - this.t0)} ${label}\n`);
  }

  /** Prints text above the bar. */
  log(text: string, to: NodeJS.WriteStream = process.stdout): void {
    if (this.tty) this.stream.write('\r\x1b[K');
    to.write(text.endsWith('\n') ? text : `${text}\n`);
    if (this.tty) this.draw();
  }

  finish(): void {
    if (this.label) this.done++;
    this.label = '';
    if (this.timer) clearInterval(this.timer);
    if (this.tty) this.stream.write('\r\x1b[K');
    this.stream.write(`» ${this.done} steps in ${fmtTime(performance.now() - this.t0)}\n`);
  }

  private draw(): void {
    const width = 28;
    const frac = Math.min(1, this.done / Math.max(1, this.total));
    const full = Math.round(frac * width);
    const bar = '█'.repeat(full) + '░'.repeat(width - full);
    const cols = this.stream.columns ?? 120;
    const line =
      `${bar} ${this.done}/${this.total} ` +
      `${fmtTime(performance.now() - this.t0)}  ${this.label} (${fmtTime(performance.now() - this.stepT0)})`;
    this.stream.write(`\r\x1b[K${line.slice(0, cols - 1)}`);
  }
}

function fmtTime(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
