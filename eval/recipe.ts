// `vzt eval`: setup -> for each grid cell {method, budget} -> for each benchmark -> batches of items -> generate ->
// score -> append to the completed-items log -> results.json + report.md + plots. Items already in the log are
// skipped, so an interrupted eval continues where it stopped and never scores an item twice. With `--shard i/N` a
// worker takes every N-th item; the worker that finishes last (or `vzt eval --merge`) writes the merged results.
import path from "node:path";
import type { EvalConfig } from "../configs/eval_schema.js";
import { info, Progress } from "../core/log.js";
import { tokenizeConversation } from "../data/conversation.js";
import { preprocessToFloat32 } from "../data/preprocess.js";
import { ownsPosition } from "../data/sampler.js";
import type { Reducer } from "../reduce/reducer.js";
import { prefillFlops } from "../train/dry_run.js";
import { flopsEquivalentTokens, scheduleFlops } from "../reduce/schedule.js";
import type { InLlmReducer } from "../reduce/in_llm.js";
import type { EvalResults } from "./aggregate.js";
import { generateBatch, type GenerateBatchResult, type GenerateRequest } from "./generate.js";
import { buildCell, type GridCell } from "./grid.js";
import { benchmarkItems, imageBytes, type BenchmarkData, type PositionedItem } from "./items.js";
import { mergeShards, writeEvalOutputs } from "./outputs.js";
import { COMPLETE_FILE, findShardFolders, writeJsonAtomic, type ItemRecord } from "./results.js";
import { cleanupEval, setupEval, type EvalRun, type SetupEvalOptions } from "./setup.js";

export interface EvalOptions extends SetupEvalOptions {
  /** Stop (as an interruption would) once this session has logged at least this many items. */
  stopAfterItems?: number;
  /** With --shard: merge and write the reports when every shard has finished (default true). */
  autoMerge?: boolean;
  /** The batch generator (default eval/generate.ts generateBatch); a seam for tests and other decoders. */
  generate?: typeof generateBatch;
}

export interface EvalSummary {
  outputDir: string;
  /** This worker's folder (output_dir, or output_dir/shards/<i>-of-<N>). */
  workDir: string;
  /** Items scored in this session / found already logged. */
  scored: number;
  resumed: number;
  failed: number;
  interrupted: boolean;
  /** Present once results were written (unsharded, or the merge ran). */
  results?: EvalResults;
  files: string[];
}

class Interrupted extends Error {}

/** Runs the eval described by `cfg` (see configs/eval_schema.ts). */
export async function runEval(cfg: EvalConfig, opts: EvalOptions = {}): Promise<EvalSummary> {
  const run = await setupEval(cfg, opts);
  const summary: EvalSummary = { outputDir: cfg.output_dir, workDir: run.workDir, scored: 0, resumed: 0, failed: 0, interrupted: false, files: [] };
  try {
    const patches = run.vlm.tower.config.numPositions - 1;
    for (const cell of run.cells) {
      const lmc = run.vlm.lm.config;
      const { reducer, inLlm } = buildCell(cell, { patches, seed: cfg.seed, llm: { layers: lmc.layers, hidden: lmc.hidden, intermediate: lmc.intermediate } });
      if (cfg.warmup && run.benchmarks.some((b) => hasWork(run, cell, b))) await warmUp(run, reducer, opts.generate ?? generateBatch, inLlm);
      for (const data of run.benchmarks) await evalBenchmark(run, cell, reducer, data, summary, opts, inLlm);
    }
  } catch (e) {
    if (!(e instanceof Interrupted)) throw e;
    summary.interrupted = true;
    return summary;
  } finally {
    cleanupEval(run);
  }
  if (!run.shard) {
    const out = writeEvalOutputs(cfg.output_dir, run.meta, run.log.records, { samples: cfg.samples });
    return { ...summary, results: out.results, files: out.files };
  }
  writeJsonAtomic(path.join(run.workDir, COMPLETE_FILE), { items: run.log.records.length, date: new Date().toISOString() });
  const shards = findShardFolders(cfg.output_dir).filter((s) => s.count === run.shard!.count);
  if ((opts.autoMerge ?? true) && shards.length === run.shard.count && shards.every((s) => s.complete)) {
    const out = mergeShards([cfg.output_dir], { samples: cfg.samples });
    return { ...summary, results: out.results, files: out.files };
  }
  if (!opts.quiet) info(`shard ${run.shard.index}/${run.shard.count} done; results are written once every shard has finished (or: vzt eval --merge ${cfg.output_dir})`);
  return summary;
}

/** Whether this worker still has items of `data` to score in `cell`. */
function hasWork(run: EvalRun, cell: GridCell, data: BenchmarkData): boolean {
  for (let i = 0; i < data.items; i++) if (ownsPosition(i, run.shard) && !run.log.has(cell.key, data.benchmark.name, i)) return true;
  return false;
}

/** One untimed batch of blank images through the cell's pipeline (first-call allocations and kernel set-up). */
async function warmUp(run: EvalRun, reducer: Reducer, generate: typeof generateBatch, inLlm?: InLlmReducer): Promise<void> {
  const tok = run.vlm.tokenizer!;
  const [C, H, W] = run.imageShape;
  const ids = tokenizeConversation({ image: "image", messages: [{ from: "human", value: "<image>\nWhat is this?" }] }, tok, { template: run.cfg.model.template, forGeneration: true }).inputIds;
  const req: GenerateRequest = { inputIds: ids, pixels: new Float32Array(C * H * W) };
  await generate(run.vlm, reducer, Array.from({ length: run.cfg.batch_size }, () => req), { maxNewTokens: 2, eosTokenIds: [], tokenizer: tok, imageShape: run.imageShape, stopOnNewline: false, inLlm });
}

/** One benchmark in one cell: the items this worker owns and has not logged yet, in batches. */
async function evalBenchmark(run: EvalRun, cell: GridCell, reducer: Reducer, data: BenchmarkData, summary: EvalSummary, opts: EvalOptions, inLlm?: InLlmReducer): Promise<void> {
  const name = data.benchmark.name;
  let owned = 0;
  let done = 0;
  for (let i = 0; i < data.items; i++) {
    if (!ownsPosition(i, run.shard)) continue;
    owned++;
    if (run.log.has(cell.key, name, i)) done++;
  }
  summary.resumed += done;
  if (done === owned) return;
  const bar = opts.quiet ? undefined : new Progress({ total: owned, label: `${cell.key} ${name}` });
  if (done > 0) bar?.update(done);
  let batch: PositionedItem[] = [];
  const flush = async () => {
    const records = await evalBatch(run, cell, reducer, data, batch, opts.generate ?? generateBatch, inLlm);
    run.log.append(records);
    summary.scored += records.length;
    summary.failed += records.filter((r) => r.failed).length;
    batch = [];
    bar?.tick(records.length);
    if (opts.stopAfterItems !== undefined && summary.scored >= opts.stopAfterItems) throw new Interrupted();
  };
  for await (const item of benchmarkItems(data, run.shard, (i) => run.log.has(cell.key, name, i))) {
    batch.push(item);
    if (batch.length >= run.cfg.batch_size) await flush();
  }
  if (batch.length) await flush();
  bar?.finish();
}

interface Prepared {
  p: PositionedItem;
  req?: GenerateRequest;
  failed?: string;
}

/** Prepares, generates and scores one batch; an item that fails is recorded as failed, never dropped. */
async function evalBatch(run: EvalRun, cell: GridCell, reducer: Reducer, data: BenchmarkData, batch: readonly PositionedItem[], generate: typeof generateBatch, inLlm?: InLlmReducer): Promise<ItemRecord[]> {
  const { vlm, cfg } = run;
  const tok = vlm.tokenizer!;
  const bcfg = cfg.benchmarks.find((b) => b.name === data.benchmark.name);
  const maxNewTokens = bcfg?.max_new_tokens ?? cfg.max_new_tokens ?? data.benchmark.maxNewTokens;
  const [C, H, W] = run.imageShape;
  const prepared: Prepared[] = [];
  for (const p of batch) {
    const bytes = await imageBytes(p.item.image, p.at); // a missing image is a data error: it stops the run
    try {
      const px = await preprocessToFloat32(bytes, { mode: run.preprocessMode, config: vlm.preprocessor });
      if (px.data.length !== C * H * W) throw new Error(`preprocessed image is ${px.shape.join("x")}, the vision tower takes ${C}x${H}x${W}`);
      const ids = tokenizeConversation({ id: p.item.id, image: "image", messages: [{ from: "human", value: `<image>\n${p.item.prompt}` }] }, tok, { template: cfg.model.template, forGeneration: true }).inputIds;
      prepared.push({ p, req: { inputIds: ids, pixels: px.data } });
    } catch (e) {
      prepared.push({ p, failed: `prepare: ${(e as Error).message}` });
    }
  }
  const gen = { maxNewTokens, eosTokenIds: [...new Set([...vlm.lm.config.eosTokenIds, ...(tok.eosTokenId !== undefined ? [tok.eosTokenId] : [])])], stopOnNewline: cfg.stop_on_newline, tokenizer: tok, imageShape: run.imageShape, layer: cfg.model.vision_layer ?? undefined, ...(inLlm ? { inLlm } : {}) };
  const ready = prepared.filter((x) => x.req);
  const results = new Map<Prepared, { out: GenerateBatchResult; row: number }>();
  try {
    if (ready.length) {
      const out = await generate(vlm, reducer, ready.map((x) => x.req!), gen);
      ready.forEach((x, row) => results.set(x, { out, row }));
    }
  } catch {
    // One by one, so one bad item does not fail its neighbours.
    for (const x of ready) {
      try {
        results.set(x, { out: await generate(vlm, reducer, [x.req!], gen), row: 0 });
      } catch (e) {
        x.failed = `generate: ${(e as Error).message}`;
      }
    }
  }
  return prepared.map((x) => toRecord(run, cell, data, x, results.get(x)));
}

function toRecord(run: EvalRun, cell: GridCell, data: BenchmarkData, x: Prepared, r: { out: GenerateBatchResult; row: number } | undefined): ItemRecord {
  const lm = run.vlm.lm.config;
  const { item, index } = x.p;
  const base = { cell: cell.key, benchmark: data.benchmark.name, index, id: item.id, prompt: item.prompt, target: item.target };
  if (!r || x.failed) {
    const failed = x.failed ?? "generate: no output";
    return { ...base, prediction: "", score: data.benchmark.score("", item), failed, visual_tokens: 0, prompt_tokens: 0, new_tokens: 0, tower_ms: 0, reducer_ms: 0, prefill_ms: 0, decode_ms_per_token: null, kv_cache_bytes: 0, prefill_flops: 0 };
  }
  const { out, row } = r;
  const g = out.rows[row]!;
  const B = out.rows.length;
  const t = out.timings;
  const positions = g.promptTokens + Math.max(0, g.ids.length - 1);
  const inLlm = out.visualPerLayer ? inLlmCosts(out.visualPerLayer, g.promptTokens - out.visualTokens, Math.max(0, g.ids.length - 1), lm) : undefined;
  return {
    ...base,
    prediction: g.text,
    score: data.benchmark.score(g.text, item),
    stop: g.stop,
    // In-LLM methods: the FLOPs-equivalent retained tokens (the uniform budget with the same prefill FLOPs).
    visual_tokens: inLlm ? inLlm.equivalentTokens : out.visualTokens,
    prompt_tokens: g.promptTokens,
    new_tokens: g.ids.length,
    tower_ms: t.towerMs / B,
    reducer_ms: t.reducerMs / B,
    prefill_ms: t.prefillMs / B,
    decode_ms_per_token: t.decodeSteps > 0 ? t.decodeMs / t.decodeSteps : null,
    kv_cache_bytes: inLlm ? inLlm.kvBytes : 2 * lm.layers * lm.kvHeads * lm.headDim * 4 * positions,
    prefill_flops: inLlm ? inLlm.flops : prefillFlops(g.promptTokens, lm.hidden, lm.intermediate, lm.layers),
  };
}

/** Prefill FLOPs, FLOPs-equivalent retained tokens (1 decimal) and KV bytes of a prompt reduced inside the LLM. */
function inLlmCosts(visualPerLayer: number[], textTokens: number, generated: number, lm: EvalRun["vlm"]["lm"]["config"]): { flops: number; equivalentTokens: number; kvBytes: number } {
  const dims = { numLayers: lm.layers, numVisual: visualPerLayer[0] ?? 0, textTokens, hidden: lm.hidden, intermediate: lm.intermediate };
  const s = { keep: visualPerLayer };
  const perPosition = 2 * lm.kvHeads * lm.headDim * 4;
  return {
    flops: scheduleFlops(s, dims),
    equivalentTokens: Math.round(10 * flopsEquivalentTokens(s, dims)) / 10,
    kvBytes: visualPerLayer.reduce((sum, v) => sum + perPosition * (textTokens + v + generated), 0),
  };
}
