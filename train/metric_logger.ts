// Where training metrics go: a tiny MetricLogger interface and its sinks (metrics.jsonl, TensorBoard, the
// terminal), composable with multiLogger. Text log lines stay in core/log.ts; these carry numbers per step.
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import { Progress, formatDuration } from "../core/log.js";
import { EventFileWriter } from "./tensorboard.js";

/** A sink for per-step scalars. `step` is the number of optimizer updates done (1 after the first update). */
export interface MetricLogger {
  log(step: number, scalars: Record<string, number>): void;
  /** Free text worth keeping next to the numbers (resolved config, parameter count). Optional. */
  logText?(text: string): void;
  /** Flushes and releases files; later log calls are errors or no-ops, per sink. */
  close(): void;
}

/** One logger that forwards to all of `loggers`, in order. */
export function multiLogger(...loggers: MetricLogger[]): MetricLogger {
  return {
    log: (step, scalars) => loggers.forEach((l) => l.log(step, scalars)),
    logText: (text) => loggers.forEach((l) => l.logText?.(text)),
    close: () => loggers.forEach((l) => l.close()),
  };
}

/** Non-finite numbers have no JSON spelling: they are written as null. */
function jsonNumber(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

/**
 * Appends `{"step", "time", ...scalars}` per line to `<dir>/metrics.jsonl` (time: seconds since the epoch).
 * Each line is one synchronous write, so a crash loses nothing already logged; close() fsyncs.
 * logText lines are `{"step": null, "time", "text"}`.
 */
export class JsonlLogger implements MetricLogger {
  readonly path: string;
  private fd: number | undefined;
  private readonly now: () => number;

  constructor(dir: string, opts: { fileName?: string; now?: () => number } = {}) {
    mkdirSync(dir, { recursive: true });
    this.path = path.join(dir, opts.fileName ?? "metrics.jsonl");
    this.now = opts.now ?? (() => Date.now() / 1000);
    this.fd = openSync(this.path, "a");
  }

  log(step: number, scalars: Record<string, number>): void {
    const row: Record<string, number | null> = { step, time: this.now() };
    for (const [k, v] of Object.entries(scalars)) row[k] = jsonNumber(v);
    this.writeLine(JSON.stringify(row));
  }

  logText(text: string): void {
    this.writeLine(JSON.stringify({ step: null, time: this.now(), text }));
  }

  close(): void {
    if (this.fd === undefined) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = undefined;
  }

  private writeLine(line: string): void {
    if (this.fd === undefined) throw new Error(`${this.path}: log after close()`);
    writeSync(this.fd, line + "\n");
  }
}

/** Scalars into a TensorBoard event file in `logDir` (train/tensorboard.ts); logText is not recorded. */
export class TensorBoardLogger implements MetricLogger {
  private readonly writer: EventFileWriter;

  constructor(logDir: string, opts: { now?: () => number } = {}) {
    this.writer = new EventFileWriter(logDir, opts);
  }

  get path(): string {
    return this.writer.path;
  }

  log(step: number, scalars: Record<string, number>): void {
    this.writer.addScalars(step, scalars);
  }

  close(): void {
    this.writer.close();
  }
}

export interface StdoutLoggerOptions {
  /** Total optimizer updates of the run. */
  totalSteps: number;
  /** Step the run starts from (resume), so rate and ETA count only this session's steps. Default 0. */
  startStep?: number;
  /** Without a TTY: print a line every this many steps (and at the last step). Default 10. */
  every?: number;
  /** Scalars shown, in order, when present. */
  keys?: string[];
  stream?: NodeJS.WriteStream;
}

const DEFAULT_KEYS = ["loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s"];

/** Short fixed formats: lr in exponent form, rates with one decimal, the rest with 4 significant digits. */
function formatScalar(key: string, x: number): string {
  if (!Number.isFinite(x)) return `${key} ${x}`;
  if (key === "lr") return `lr ${x.toExponential(2)}`;
  if (key.endsWith("_per_s")) return `${key.replace("_per_s", "/s")} ${x.toFixed(1)}`;
  return `${key} ${Math.abs(x) >= 1e4 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(3) : x.toFixed(4)}`;
}

/**
 * The terminal view: on a TTY (and not CI) a redrawing core/log.ts Progress bar with `loss … lr …` after it;
 * otherwise a plain line `step 20/100 loss 2.3141 lr 1.00e-04 samples/s 3.1 ETA 1m20s` every `every` steps.
 * Writes to stdout unless `stream` says otherwise.
 */
export class StdoutLogger implements MetricLogger {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly progress: Progress | undefined;
  private readonly start = performance.now();
  private readonly startStep: number;
  private readonly keys: string[];

  constructor(private readonly opts: StdoutLoggerOptions) {
    this.stream = opts.stream ?? process.stdout;
    this.tty = Boolean(this.stream.isTTY) && !process.env.CI;
    this.startStep = opts.startStep ?? 0;
    this.keys = opts.keys ?? DEFAULT_KEYS;
    if (this.tty) {
      this.progress = new Progress({ total: Math.max(0, opts.totalSteps - this.startStep), label: "train", stream: this.stream });
    }
  }

  log(step: number, scalars: Record<string, number>): void {
    // Evaluations (eval_loss, eval_<benchmark>_<metric>) are rare and worth a line of their own.
    const evals = Object.keys(scalars).filter((k) => k.startsWith("eval_")).map((k) => formatScalar(k, scalars[k]!));
    if (evals.length) this.stream.write(`${this.tty ? "\r\x1b[K" : ""}eval at step ${step}/${this.opts.totalSteps}: ${evals.join(" ")}\n`);
    const shown = this.keys.filter((k) => k in scalars && !k.startsWith("eval_")).map((k) => formatScalar(k, scalars[k]!));
    if (shown.length === 0) return; // an evaluation alone (train.eval_on_start at step 0)
    if (this.progress) {
      this.progress.update(step - this.startStep, [`step ${step}/${this.opts.totalSteps}`, ...shown].join("  "));
      return;
    }
    const every = Math.max(1, Math.floor(this.opts.every ?? 10));
    if (step % every !== 0 && step !== this.opts.totalSteps) return;
    const secs = (performance.now() - this.start) / 1000;
    const done = step - this.startStep;
    const eta = done > 0 ? (secs / done) * (this.opts.totalSteps - step) : NaN;
    this.stream.write(`step ${step}/${this.opts.totalSteps} ${shown.join(" ")} ETA ${formatDuration(eta)}\n`);
  }

  logText(text: string): void {
    this.stream.write(this.tty ? `\r\x1b[K${text}\n` : `${text}\n`);
  }

  close(): void {
    this.progress?.finish();
  }
}
