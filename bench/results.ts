// The bench's output: table rows per figure, the results object written to bench/results/<date>-<backend>.json
// (top-level `ratios` with fixed keys that external checks read, `peak_gflops`, per-figure details, machine, date),
// and the markdown table printed to stdout.
import type { FigureName } from "./args.js";
import type { Summary } from "./timing.js";

/** The ratio keys of issue 7's results file, in figure order. */
export const RATIO_KEYS = [
  "vision_utilisation", // 2
  "prefill_utilisation", // 3
  "prefill_speedup", // 4
  "prefill_flop_ratio", // 4
  "visionzip_overhead", // 5
  "tower_extra_outputs", // 5
  "train_speedup", // 6
  "train_flop_ratio", // 6
  "cache_step_ratio", // 7
  "tower_share", // 7
  "data_vs_train", // 8
  "stream_rss_growth_mb", // 8
  "kv_bytes_ratio", // 9
  "tensor_growth", // 10
] as const;
export type RatioKey = (typeof RATIO_KEYS)[number];

/** One line of the table. */
export interface Row {
  /** e.g. "2 vision utilisation". */
  figure: string;
  value: number;
  /** Printed with the value, e.g. "GFLOP/s", "MB". */
  unit?: string;
  /** e.g. ">= 0.6"; "" for context rows. */
  target: string;
  /** undefined: a context row without a target. */
  pass?: boolean;
  /** Spread of the value over the paired rounds (or of the timing it comes from). */
  stats?: Summary;
  shapes: string;
}

export interface FigureResult {
  group: FigureName;
  rows: Row[];
  ratios: Partial<Record<RatioKey, number>>;
  /** Figure 1 only. */
  peakGflops?: number;
  /** Timings (median/min/max ms), shapes, FLOP counts, notes. */
  details: Record<string, unknown>;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  os: string;
  node: string;
  tfjs: string;
  backend: string;
  /** wasm threads in use, when the backend says. */
  threads?: number;
  /** os.loadavg() at the start: other processes' share of the cores. */
  loadavg: number[];
}

export interface BenchResults {
  date: string; // YYYY-MM-DD
  time: string; // ISO timestamp of the start
  backend: string;
  machine: MachineInfo;
  settings: Record<string, unknown>;
  peak_gflops: number | null;
  /** Every RATIO_KEYS key; null where its figure did not run or failed. */
  ratios: Record<RatioKey, number | null>;
  /** Every key of RATIO_KEYS has a number. */
  complete: boolean;
  failures: string[];
  errors: Record<string, string>;
  figures: Record<string, { rows: Row[]; details: Record<string, unknown> }>;
  seconds: number;
}

/** Local calendar date YYYY-MM-DD. */
export function isoDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export function resultsFileName(date: string, backend: string): string {
  return `${date}-${backend}.json`;
}

/** Assembles the results object; figures that threw are listed in `errors` and their ratios are null. */
export function buildResults(args: {
  start: Date;
  backend: string;
  machine: MachineInfo;
  settings: Record<string, unknown>;
  figures: FigureResult[];
  errors?: Record<string, string>;
  seconds: number;
}): BenchResults {
  const ratios = Object.fromEntries(RATIO_KEYS.map((k) => [k, null])) as Record<RatioKey, number | null>;
  let peak: number | null = null;
  const figures: BenchResults["figures"] = {};
  const failures: string[] = [];
  for (const f of args.figures) {
    for (const [k, v] of Object.entries(f.ratios)) {
      if (!(RATIO_KEYS as readonly string[]).includes(k)) throw new Error(`bench results: figure ${f.group} set unknown ratio "${k}"`);
      ratios[k as RatioKey] = typeof v === "number" && Number.isFinite(v) ? v : null;
    }
    if (f.peakGflops !== undefined) peak = f.peakGflops;
    figures[f.group] = { rows: f.rows, details: f.details };
    for (const r of f.rows) if (r.pass === false) failures.push(`${r.figure}: ${fmt(r.value)}${r.unit ? " " + r.unit : ""} (target ${r.target})`);
  }
  return {
    date: isoDate(args.start),
    time: args.start.toISOString(),
    backend: args.backend,
    machine: args.machine,
    settings: args.settings,
    peak_gflops: peak,
    ratios,
    complete: RATIO_KEYS.every((k) => ratios[k] !== null) && peak !== null,
    failures,
    errors: args.errors ?? {},
    figures,
    seconds: args.seconds,
  };
}

/** A number for the table: 3 significant digits, no exponent for everyday sizes. */
export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return String(x);
  if (x === 0) return "0";
  const a = Math.abs(x);
  if (a >= 1000) return x.toFixed(0);
  if (a >= 100) return x.toFixed(1);
  if (a >= 0.001) return x.toPrecision(3);
  return x.toExponential(2);
}

/** The markdown table of all rows (figure, value, target, pass/fail, median / min / max, shapes). */
export function markdownTable(rows: readonly Row[]): string {
  const lines = ["| figure | value | target | pass | median / min / max | shapes |", "| --- | --- | --- | --- | --- | --- |"];
  for (const r of rows) {
    const pass = r.pass === undefined ? "" : r.pass ? "pass" : "**FAIL**";
    const spread = r.stats ? `${fmt(r.stats.median)} / ${fmt(r.stats.min)} / ${fmt(r.stats.max)}` : "";
    lines.push(`| ${r.figure} | ${fmt(r.value)}${r.unit ? " " + r.unit : ""} | ${r.target} | ${pass} | ${spread} | ${r.shapes} |`);
  }
  return lines.join("\n");
}

/** The header lines above the table. */
export function describeMachine(m: MachineInfo): string {
  return `backend ${m.backend}${m.threads !== undefined ? ` (${m.threads} thread${m.threads === 1 ? "" : "s"})` : ""}, ${m.cores} x ${m.cpu}, ${m.os}, node ${m.node}, tfjs ${m.tfjs}, load average ${m.loadavg.map((x) => x.toFixed(2)).join(" ")}`;
}
