// Text log lines (stderr) and a progress bar that redraws on a TTY and prints periodic plain lines otherwise.

export function info(line: string): void {
  process.stderr.write(line + "\n");
}

export function warn(line: string): void {
  process.stderr.write(`warning: ${line}\n`);
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}

export interface ProgressOptions {
  total: number;
  label: string;
  /** Format units as bytes (downloads). */
  bytes?: boolean;
  /** Seconds between plain lines when not on a TTY. */
  plainEvery?: number;
  stream?: NodeJS.WriteStream;
}

/** A progress bar: `label [#####.....] 12/40 30% 3.1/s ETA 9s  extra`. */
export class Progress {
  private done = 0;
  private readonly start = performance.now();
  private lastDraw = 0;
  private extra = "";
  private readonly tty: boolean;
  private readonly stream: NodeJS.WriteStream;

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY) && !process.env.CI;
  }

  update(done: number, extra?: string): void {
    this.done = done;
    if (extra !== undefined) this.extra = extra;
    const now = performance.now();
    const every = this.tty ? 100 : (this.opts.plainEvery ?? 10) * 1000;
    // Off a TTY the final line is finish()'s, so a completed bar is not printed twice.
    if (now - this.lastDraw >= every || (this.tty && done >= this.opts.total)) this.draw(now);
  }

  tick(n = 1, extra?: string): void {
    this.update(this.done + n, extra);
  }

  finish(extra?: string): void {
    if (extra !== undefined) this.extra = extra;
    this.draw(performance.now(), true);
  }

  private draw(now: number, final = false): void {
    this.lastDraw = now;
    const { total, label, bytes } = this.opts;
    const secs = (now - this.start) / 1000;
    const rate = secs > 0 ? this.done / secs : 0;
    const eta = rate > 0 ? (total - this.done) / rate : NaN;
    const frac = total > 0 ? Math.min(1, this.done / total) : 1;
    const fmt = (x: number) => (bytes ? formatBytes(x) : String(x));
    const width = 24;
    const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
    const rateText = bytes ? `${formatBytes(rate)}/s` : `${rate.toFixed(rate < 10 ? 2 : 1)}/s`;
    const timing = final ? `in ${formatDuration(secs)}` : `ETA ${formatDuration(eta)}`;
    const line = `${label} [${bar}] ${fmt(this.done)}/${fmt(total)} ${(frac * 100).toFixed(0)}% ${rateText} ${timing}${this.extra ? "  " + this.extra : ""}`;
    if (this.tty) this.stream.write(`\r\x1b[K${line}${final ? "\n" : ""}`);
    else this.stream.write(line + "\n");
  }
}
