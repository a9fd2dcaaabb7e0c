// `vzt gsearch` / `vzt psigmoid`: offline search of a per-layer keep schedule (arXiv 2412.00556) on the eval config's
// model and one benchmark's search split (the config's `search` section). The evaluator loads the model once,
// prepares the first `search.limit` items (image pixels + prompt ids) once, and scores any in-LLM reducer or keep
// schedule on them exactly as `vzt eval` scores a cell (same batching, greedy generation, the benchmark's primary
// metric, a failed item scored as an empty prediction). The drivers run reduce/gsearch.ts gSearch and
// reduce/psigmoid.ts pSigmoidSearch with a resumable state file and write the schedule JSON that `vzt eval` then runs
// as `gsearch@<file>` / `psigmoid@<file>`. The state file is tied to the search context (model, benchmark, split,
// limit, generation settings) by a `<state>.context.json` beside it: a rerun with another context is refused.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { EvalConfig } from "../configs/eval_schema.js";
import { ConfigError } from "../core/errors.js";
import { info } from "../core/log.js";
import { scheduleReducer, type InLlmReducer } from "../reduce/in_llm.js";
import { gSearch } from "../reduce/gsearch.js";
import { pSigmoidSearch, type PSigmoidTrial } from "../reduce/psigmoid.js";
import { flopsEquivalentTokens, validateSchedule, writeSchedule, type FlopsDims, type KeepSchedule } from "../reduce/schedule.js";
import { scheduleKey, type ProgressSink, type ScheduleEvaluator } from "../reduce/search_state.js";
import { buildReducer } from "../reduce/reducer.js";
import { writeJsonAtomic } from "./results.js";
import { openBenchmarkScorer, type BenchmarkScore, type ScorerOptions } from "./scorer.js";
import { loadEvalModel } from "./setup.js";

export interface SearchEvalOptions {
  /** No progress output. */
  quiet?: boolean;
  /** The batch generator (default eval/generate.ts generateBatch); a seam for tests. */
  generate?: ScorerOptions["generate"];
}

/** One scoring of the search split. */
export type SearchScore = BenchmarkScore;

export interface SearchEvaluator {
  benchmark: string;
  primary: string;
  /** Items scored per evaluation. */
  items: number;
  numLayers: number;
  /** Visual tokens per image entering the LLM (the tower's patches: searches run with every patch). */
  numVisual: number;
  /** Mean prompt text tokens (prompt ids minus the image placeholder) over the items. */
  textTokens: number;
  /** What the scores depend on (model, benchmark, split, limit, generation settings), for state files and meta. */
  context: Record<string, unknown>;
  /** Model evaluations run so far (each one pass over the items). */
  readonly evaluations: number;
  /** FLOPs dimensions of the LLM with `textTokens` (default the measured mean). */
  dims(textTokens?: number): FlopsDims;
  /** Scores the items with `inLlm` (undefined: no reduction). */
  score(inLlm?: InLlmReducer, label?: string): Promise<SearchScore>;
  /** The primary metric under a keep schedule (the unreduced schedule runs without any in-LLM reducer). */
  evaluate: ScheduleEvaluator;
  dispose(): void;
}

/** Loads the model and prepares the search split once; `dispose()` releases the model. */
export async function openSearchEvaluator(cfg: EvalConfig, opts: SearchEvalOptions = {}): Promise<SearchEvaluator> {
  const s = cfg.search;
  const name = s.benchmark ?? cfg.benchmarks[0]!.name;
  const bcfg = cfg.benchmarks.find((b) => b.name === name);
  if (!bcfg) throw new ConfigError([`search.benchmark: "${name}" is not one of benchmarks[].name (${cfg.benchmarks.map((b) => b.name).join(", ")})`]);
  const dataSpec = s.data ?? bcfg.data;
  const split = s.split ?? (s.data ? null : bcfg.split);
  const { vlm, preprocessMode } = await loadEvalModel(cfg);
  try {
    const scorer = await openBenchmarkScorer(vlm, { ...bcfg, data: dataSpec, split, limit: s.limit }, {
      template: cfg.model.template,
      batchSize: cfg.batch_size,
      maxNewTokens: cfg.max_new_tokens,
      stopOnNewline: cfg.stop_on_newline,
      preprocessMode,
      ...(cfg.model.vision_layer !== null ? { layer: cfg.model.vision_layer } : {}),
      ...(opts.quiet ? { quiet: true } : {}),
      ...(opts.generate ? { generate: opts.generate } : {}),
    });
    const lm = vlm.lm.config;
    const numVisual = vlm.tower.config.numPositions - 1;
    const none = buildReducer("none");
    const m = cfg.model;
    const context = {
      model: { llava: m.llava, vision_tower: m.vision_tower, llm: m.llm, projector: m.projector, tokenizer: m.tokenizer, template: m.template, vision_layer: m.vision_layer, image_aspect_ratio: m.image_aspect_ratio },
      benchmark: name,
      data: dataSpec,
      split,
      limit: s.limit,
      items: scorer.items,
      max_new_tokens: scorer.maxNewTokens,
      stop_on_newline: cfg.stop_on_newline,
    };
    let evaluations = 0;
    const score = async (inLlm?: InLlmReducer, label = inLlm?.name ?? "none"): Promise<SearchScore> => {
      const r = await scorer.score(none, inLlm, label);
      evaluations++;
      return r;
    };

    return {
      benchmark: name,
      primary: scorer.primary,
      items: scorer.items,
      numLayers: lm.layers,
      numVisual,
      textTokens: scorer.textTokens,
      context,
      get evaluations() {
        return evaluations;
      },
      dims: (t = scorer.textTokens) => ({ numLayers: lm.layers, numVisual, textTokens: t, hidden: lm.hidden, intermediate: lm.intermediate }),
      score,
      evaluate: async (schedule) => {
        const sc = validateSchedule(schedule);
        const full = sc.numLayers === lm.layers && sc.keep.every((k) => k === sc.numVisual);
        const key = scheduleKey(sc.keep);
        const r = await score(full ? undefined : scheduleReducer(sc, "schedule"), `schedule ${key.length > 48 ? `${key.slice(0, 45)}...` : key}`);
        return r.accuracy;
      },
      dispose: () => vlm.dispose(),
    };
  } catch (e) {
    vlm.dispose();
    throw e;
  }
}

// ---- drivers ------------------------------------------------------------------------------------------------------

/** Thrown by a driver run with `stopAfterEvaluations` (as an interruption would stop it). */
export class SearchInterrupted extends Error {
  constructor(readonly evaluations: number) {
    super(`search interrupted after ${evaluations} model evaluation(s); run the same command again to continue`);
    this.name = "SearchInterrupted";
  }
}

export interface SearchRunOptions extends SearchEvalOptions {
  /** Stop (throw SearchInterrupted) before the model evaluation after this many new ones: a test seam. */
  stopAfterEvaluations?: number;
}

export interface SearchRunResult {
  schedule: KeepSchedule;
  /** Where the schedule JSON and the state were written. */
  output: string;
  state: string;
  /** Model evaluations run by this call (cached ones from the state are not counted). */
  evaluated: number;
  /** The primary metric of the schedule on the search split. */
  accuracy: number;
  /** FLOPs-equivalent retained tokens of the schedule at the measured (or configured) text tokens. */
  equivalentTokens: number;
}

export interface GSearchRunResult extends SearchRunResult {
  /** The unreduced model's score. */
  baseline: number;
}

export interface PSigmoidRunResult extends SearchRunResult {
  budget: number;
  k: number;
  rMin: number;
  l0: number;
  trials: PSigmoidTrial[];
}

/** The state path and its context file: a saved state made under another context is refused, naming the keys. */
function checkStateContext(state: string, context: Record<string, unknown>): void {
  const file = `${state.replace(/\.json$/, "")}.context.json`;
  if (existsSync(state) && existsSync(file)) {
    let saved: Record<string, unknown>;
    try {
      saved = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError([`cannot read the search context: ${(e as Error).message} (delete it and ${state} to start over)`], file);
    }
    const keys = [...new Set([...Object.keys(context), ...Object.keys(saved)])].filter((k) => JSON.stringify(context[k]) !== JSON.stringify(saved[k]));
    if (keys.length) {
      throw new ConfigError(keys.map((k) => `${k}: the saved search state ${state} was made with ${JSON.stringify(saved[k])}, this run has ${JSON.stringify(context[k])} (delete the state to start over, or set search.state to another file)`), file);
    }
    return;
  }
  writeJsonAtomic(file, context);
}

/** Output and state paths: the config's, else <output_dir>/<stem>.json and <output>.state.json; folders created. */
function searchPaths(cfg: EvalConfig, stem: string): { output: string; state: string } {
  const output = cfg.search.output ?? path.join(cfg.output_dir, `${stem}.json`);
  const state = cfg.search.state ?? `${output.replace(/\.json$/, "")}.state.json`;
  for (const f of [output, state]) mkdirSync(path.dirname(path.resolve(f)), { recursive: true });
  return { output, state };
}

/** A ScheduleEvaluator that stops before the (n+1)-th new evaluation. */
function stopping(ev: SearchEvaluator, n: number | undefined): ScheduleEvaluator {
  return async (s) => {
    if (n !== undefined && ev.evaluations >= n) throw new SearchInterrupted(ev.evaluations);
    return ev.evaluate(s);
  };
}

/** Layer / trial lines of the search itself (the per-evaluation item bars are the evaluator's). */
function logSink(label: string, total: number): ProgressSink {
  return {
    update: (done, extra) => info(`${label} ${done}/${total}${extra ? `: ${extra}` : ""}`),
    finish: (extra) => info(`${label} done${extra ? `: ${extra}` : ""}`),
  };
}

/**
 * `vzt gsearch`: G-Search of the fewest visual tokens per layer keeping the search split's primary metric within
 * `search.tolerance` of the unreduced model. Resumable (state file); writes the schedule JSON.
 */
export async function runGSearch(cfg: EvalConfig, opts: SearchRunOptions = {}): Promise<GSearchRunResult> {
  const { output, state } = searchPaths(cfg, "gsearch");
  const ev = await openSearchEvaluator(cfg, opts);
  try {
    const s = cfg.search;
    checkStateContext(state, { method: "gsearch", ...ev.context });
    const result = await gSearch({
      numLayers: ev.numLayers,
      numVisual: ev.numVisual,
      evaluate: stopping(ev, opts.stopAfterEvaluations),
      tolerance: s.tolerance,
      rates: s.rates ? [...s.rates] : undefined,
      strategy: s.strategy,
      statePath: state,
      progress: opts.quiet ? false : logSink("gsearch layers", ev.numLayers - 2),
    });
    const meta = result.meta as { baseline: number; accuracy: number };
    const equivalentTokens = flopsEquivalentTokens(result, ev.dims());
    const schedule: KeepSchedule = { ...result, meta: { ...result.meta, metric: ev.primary, flopsEquivalentTokens: equivalentTokens, textTokens: ev.textTokens, search: ev.context } };
    writeSchedule(output, schedule);
    return { schedule: validateSchedule(schedule), output, state, evaluated: ev.evaluations, accuracy: meta.accuracy, baseline: meta.baseline, equivalentTokens };
  } finally {
    ev.dispose();
  }
}

/**
 * `vzt psigmoid`: P-Sigmoid fitted to `budget` FLOPs-equivalent tokens (default `search.budget`) by Bayesian
 * optimisation of (k, r_min) on the search split. Resumable (state file); writes the schedule JSON.
 */
export async function runPSigmoid(cfg: EvalConfig, budget?: number, opts: SearchRunOptions = {}): Promise<PSigmoidRunResult> {
  const s = cfg.search;
  const B = budget ?? s.budget;
  if (B === null || B === undefined) throw new ConfigError(["search.budget: missing: give --budget B (FLOPs-equivalent retained tokens) or set search.budget"]);
  if (!(B > 0) || !Number.isFinite(B)) throw new ConfigError([`budget: must be a positive number of equivalent tokens, got ${B}`]);
  const { output, state } = searchPaths(cfg, `psigmoid-${B}`);
  const ev = await openSearchEvaluator(cfg, opts);
  try {
    const dims = ev.dims(s.text_tokens ?? ev.textTokens);
    checkStateContext(state, { method: "psigmoid", ...ev.context });
    const trials = s.random_trials + s.guided_trials;
    const r = await pSigmoidSearch({
      budget: B,
      dims,
      evaluate: stopping(ev, opts.stopAfterEvaluations),
      seed: s.seed ?? cfg.seed,
      randomTrials: s.random_trials,
      guidedTrials: s.guided_trials,
      bounds: { k: [...s.bounds.k], rMin: [...s.bounds.r_min] },
      statePath: state,
      progress: opts.quiet ? false : logSink(`psigmoid@${B} trials`, trials),
    });
    const equivalentTokens = flopsEquivalentTokens(r.schedule, dims);
    const schedule: KeepSchedule = { ...r.schedule, meta: { ...r.schedule.meta, metric: ev.primary, search: ev.context } };
    writeSchedule(output, schedule);
    return { schedule: validateSchedule(schedule), output, state, evaluated: ev.evaluations, accuracy: r.accuracy, equivalentTokens, budget: B, k: r.k, rMin: r.rMin, l0: r.l0, trials: r.trials };
  } finally {
    ev.dispose();
  }
}
