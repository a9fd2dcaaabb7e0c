// Completed-item records -> results.json: per cell and benchmark the benchmark's metrics (failed items scored as
// empty predictions and counted), the primary score and its % of the full-budget baseline; per cell the medians of
// the per-sample stage times, mean KV-cache bytes and prefill FLOPs, the prefill speedup and the reducer overhead.
import { getBenchmark } from "./benchmarks/registry.js";
import type { ItemRecord } from "./results.js";

/** What a run knows before any item: written to meta.json, copied into results.json. */
export interface EvalMeta {
  config: unknown;
  config_hash: string;
  versions: Record<string, string>;
  backend: string;
  /** Grid cells in config order. */
  grid: { key: string; method: string; budget: number }[];
  /** The % of full reference cell (method none), or null. */
  baseline: string | null;
  benchmarks: { name: string; primary: string; items: number }[];
  model: Record<string, unknown>;
}

export interface BenchmarkResult {
  metrics: Record<string, number>;
  primary: string;
  score: number;
  /** score / baseline score x 100 (null without a baseline or for the baseline's 0). */
  relative: number | null;
  n: number;
  failed: number;
}

export interface CellSummary {
  method: string;
  budget: number;
  visual_tokens: number | null;
  n: number;
  failed: number;
  /** Mean of `relative` over the benchmarks that have one (null when none has). */
  average_relative: number | null;
  /** Medians over samples (ms). */
  tower_ms: number | null;
  reducer_ms: number | null;
  prefill_ms: number | null;
  decode_ms_per_token: number | null;
  /** reducer_ms / tower_ms. */
  reducer_overhead: number | null;
  /** baseline prefill_ms / this cell's. */
  prefill_speedup: number | null;
  /** Means over samples. */
  kv_cache_bytes: number | null;
  prefill_flops: number | null;
  prompt_tokens: number | null;
}

export interface EvalResults {
  results: Record<string, Record<string, BenchmarkResult>>;
  cells: Record<string, CellSummary>;
  "n-samples": Record<string, { original: number; effective: Record<string, number> }>;
  baseline: string | null;
  grid: string[];
  benchmarks: string[];
  config: unknown;
  config_hash: string;
  versions: Record<string, string>;
  backend: string;
  model: Record<string, unknown>;
  date: string;
}

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function mean(xs: readonly number[]): number | null {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b !== 0 ? a / b : null);

/** results.json content from the meta and every record (any order; duplicates must already be removed). */
export function buildResults(meta: EvalMeta, records: readonly ItemRecord[], date = new Date().toISOString()): EvalResults {
  const by = new Map<string, ItemRecord[]>();
  for (const r of records) {
    const k = `${r.cell}\t${r.benchmark}`;
    const list = by.get(k) ?? [];
    list.push(r);
    by.set(k, list);
  }
  const results: EvalResults["results"] = {};
  const nSamples: EvalResults["n-samples"] = {};
  for (const b of meta.benchmarks) nSamples[b.name] = { original: b.items, effective: {} };
  for (const cell of meta.grid) {
    results[cell.key] = {};
    for (const b of meta.benchmarks) {
      const recs = (by.get(`${cell.key}\t${b.name}`) ?? []).slice().sort((x, y) => x.index - y.index);
      if (recs.length === 0) continue;
      const metrics = getBenchmark(b.name).aggregate(recs.map((r) => r.score));
      results[cell.key]![b.name] = { metrics, primary: b.primary, score: metrics[b.primary] ?? NaN, relative: null, n: recs.length, failed: recs.filter((r) => r.failed).length };
      nSamples[b.name]!.effective[cell.key] = recs.length;
    }
  }
  const base = meta.baseline ? results[meta.baseline] : undefined;
  for (const cell of meta.grid) {
    for (const [name, r] of Object.entries(results[cell.key]!)) {
      const ref = base?.[name]?.score;
      r.relative = ref !== undefined && ref !== 0 && Number.isFinite(ref) ? (100 * r.score) / ref : null;
    }
  }
  const cells: EvalResults["cells"] = {};
  for (const cell of meta.grid) {
    const recs = records.filter((r) => r.cell === cell.key);
    const ok = recs.filter((r) => !r.failed);
    const rel = meta.benchmarks.map((b) => results[cell.key]![b.name]?.relative ?? null);
    const tower = median(ok.map((r) => r.tower_ms));
    const reducer = median(ok.map((r) => r.reducer_ms));
    cells[cell.key] = {
      method: cell.method,
      budget: cell.budget,
      visual_tokens: ok[0]?.visual_tokens ?? null,
      n: recs.length,
      failed: recs.length - ok.length,
      average_relative: mean(rel.filter((x): x is number => x !== null)),
      tower_ms: tower,
      reducer_ms: reducer,
      prefill_ms: median(ok.map((r) => r.prefill_ms)),
      decode_ms_per_token: median(ok.map((r) => r.decode_ms_per_token).filter((x): x is number => x !== null)),
      reducer_overhead: ratio(reducer, tower),
      prefill_speedup: null,
      kv_cache_bytes: mean(ok.map((r) => r.kv_cache_bytes)),
      prefill_flops: mean(ok.map((r) => r.prefill_flops)),
      prompt_tokens: mean(ok.map((r) => r.prompt_tokens)),
    };
  }
  const basePrefill = meta.baseline ? cells[meta.baseline]?.prefill_ms ?? null : null;
  for (const c of Object.values(cells)) c.prefill_speedup = ratio(basePrefill, c.prefill_ms);
  return {
    results,
    cells,
    "n-samples": nSamples,
    baseline: meta.baseline,
    grid: meta.grid.map((c) => c.key),
    benchmarks: meta.benchmarks.map((b) => b.name),
    config: meta.config,
    config_hash: meta.config_hash,
    versions: meta.versions,
    backend: meta.backend,
    model: meta.model,
    date,
  };
}
