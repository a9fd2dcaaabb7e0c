// A benchmark scorer for a model already in memory: the first `limit` items of one benchmark are prepared once (image
// pixels + prompt ids), then `score(reducer, inLlm)` runs them exactly as `vzt eval` scores a grid cell (same
// batching, greedy generation, the benchmark's primary metric, a failed item scored as an empty prediction).
// Used by the schedule searches (eval/search.ts) and by training (accuracy every train.eval_every_steps, with the
// projector being trained).
import type { EvalBenchmarkConfig } from "../configs/eval_schema.js";
import type { TEMPLATE_NAMES } from "../configs/schema.js";
import { ConfigError } from "../core/errors.js";
import { Progress } from "../core/log.js";
import { tokenizeConversation } from "../data/conversation.js";
import { preprocessToFloat32, type PreprocessMode } from "../data/preprocess.js";
import type { Vlm } from "../models/llava.js";
import type { InLlmReducer } from "../reduce/in_llm.js";
import type { Reducer } from "../reduce/reducer.js";
import type { ItemScore } from "./benchmarks/types.js";
import { getBenchmark } from "./benchmarks/registry.js";
import { generateBatch, type EvalGenerateOptions, type GenerateRequest } from "./generate.js";
import { benchmarkItems, imageBytes, openBenchmarkData, type PositionedItem } from "./items.js";

export interface ScorerOptions {
  template: (typeof TEMPLATE_NAMES)[number];
  /** First N items (null/undefined: all). */
  limit?: number | null;
  batchSize: number;
  /** Generation limit (default: the benchmark's lmms-eval default). */
  maxNewTokens?: number | null;
  stopOnNewline: boolean;
  preprocessMode: PreprocessMode;
  /** Vision hidden-state index (default vlm.visionLayer). */
  layer?: number;
  /** No progress output. */
  quiet?: boolean;
  /** The batch generator (default eval/generate.ts generateBatch); a seam for tests. */
  generate?: typeof generateBatch;
}

/** One scoring of the prepared items. */
export interface BenchmarkScore {
  /** The benchmark's primary metric. */
  accuracy: number;
  metrics: Record<string, number>;
  n: number;
  failed: number;
  /** Each item's decoded answer, in item order ("" for a failed item). */
  predictions: string[];
}

export interface BenchmarkScorer {
  benchmark: string;
  primary: string;
  /** Items scored per call. */
  items: number;
  /** Mean prompt text tokens (prompt ids minus the image placeholder). */
  textTokens: number;
  maxNewTokens: number;
  /** Scores every item with the visual `reducer` and, optionally, an in-LLM reduction. */
  score(reducer: Reducer, inLlm?: InLlmReducer, label?: string): Promise<BenchmarkScore>;
}

interface Prepared {
  p: PositionedItem;
  req?: GenerateRequest;
  failed?: string;
}

/** Opens the benchmark's data and prepares its first items for `vlm` (which stays the caller's). */
export async function openBenchmarkScorer(vlm: Vlm, bcfg: EvalBenchmarkConfig, o: ScorerOptions): Promise<BenchmarkScorer> {
  const benchmark = getBenchmark(bcfg.name);
  const tok = vlm.tokenizer;
  if (!tok) throw new ConfigError([`${bcfg.name}: the model has no tokenizer to build prompts with`]);
  const data = await openBenchmarkData(benchmark, {
    data: typeof bcfg.data === "string" ? bcfg.data : [...bcfg.data],
    split: bcfg.split ?? undefined,
    images: bcfg.images === null ? undefined : typeof bcfg.images === "string" ? bcfg.images : [...bcfg.images],
    imagesSplit: bcfg.images_split ?? undefined,
    limit: bcfg.limit ?? o.limit ?? null,
  });
  if (data.items === 0) throw new ConfigError([`${bcfg.name}: no items in ${JSON.stringify(bcfg.data)}${bcfg.split ? ` (split ${bcfg.split})` : ""}`]);
  const size = vlm.tower.config.imageSize;
  const imageShape: [number, number, number] = [3, size, size];
  const maxNewTokens = bcfg.max_new_tokens ?? o.maxNewTokens ?? benchmark.maxNewTokens;

  // Items and images, once (a bad image or prompt is scored as a failed item in every scoring, as in vzt eval).
  const prepared: Prepared[] = [];
  const bar = o.quiet ? undefined : new Progress({ total: data.items, label: `preparing ${bcfg.name}` });
  for await (const p of benchmarkItems(data, undefined, () => false)) {
    try {
      const bytes = await imageBytes(p.item.image, p.at);
      const px = await preprocessToFloat32(bytes, { mode: o.preprocessMode, config: vlm.preprocessor });
      if (px.data.length !== 3 * size * size) throw new Error(`preprocessed image is ${px.shape.join("x")}, the vision tower takes 3x${size}x${size}`);
      const ids = tokenizeConversation({ id: p.item.id, image: "image", messages: [{ from: "human", value: `<image>\n${p.item.prompt}` }] }, tok, { template: o.template, forGeneration: true }).inputIds;
      prepared.push({ p, req: { inputIds: ids, pixels: px.data } });
    } catch (e) {
      prepared.push({ p, failed: `prepare: ${(e as Error).message}` });
    }
    bar?.tick();
  }
  bar?.finish();
  const lengths = prepared.filter((x) => x.req).map((x) => x.req!.inputIds.length - 1);
  const textTokens = lengths.length ? Math.round(lengths.reduce((a, b) => a + b, 0) / lengths.length) : 0;

  const gen: EvalGenerateOptions = {
    maxNewTokens,
    eosTokenIds: [...new Set([...vlm.lm.config.eosTokenIds, ...(tok.eosTokenId !== undefined ? [tok.eosTokenId] : [])])],
    stopOnNewline: o.stopOnNewline,
    tokenizer: tok,
    imageShape,
    ...(o.layer !== undefined ? { layer: o.layer } : {}),
  };
  const generate = o.generate ?? generateBatch;

  /** One batch -> one score per item (batch failure: item by item; an item that still fails scores ""). */
  const scoreBatch = async (batch: Prepared[], reducer: Reducer, inLlm: InLlmReducer | undefined) => {
    const opts = { ...gen, ...(inLlm ? { inLlm } : {}) };
    const ready = batch.filter((x) => x.req);
    const texts = new Map<Prepared, string>();
    try {
      if (ready.length) (await generate(vlm, reducer, ready.map((x) => x.req!), opts)).rows.forEach((r, i) => texts.set(ready[i]!, r.text));
    } catch {
      for (const x of ready) {
        try {
          texts.set(x, (await generate(vlm, reducer, [x.req!], opts)).rows[0]!.text);
        } catch {
          // scored as an empty prediction below
        }
      }
    }
    return batch.map((x) => {
      const text = texts.get(x);
      return { score: benchmark.score(text ?? "", x.p.item), text: text ?? "", failed: text === undefined };
    });
  };

  return {
    benchmark: bcfg.name,
    primary: benchmark.primary,
    items: prepared.length,
    textTokens,
    maxNewTokens,
    async score(reducer, inLlm, label = inLlm?.name ?? reducer.name) {
      const b = o.quiet ? undefined : new Progress({ total: prepared.length, label });
      const scores: ItemScore[] = [];
      const predictions: string[] = [];
      let failed = 0;
      for (let i = 0; i < prepared.length; i += o.batchSize) {
        for (const r of await scoreBatch(prepared.slice(i, i + o.batchSize), reducer, inLlm)) {
          scores.push(r.score);
          predictions.push(r.text);
          if (r.failed) failed++;
        }
        b?.update(scores.length);
      }
      const metrics = benchmark.aggregate(scores);
      const accuracy = metrics[benchmark.primary] ?? NaN;
      b?.finish(`${benchmark.primary} ${accuracy.toFixed(2)}${failed ? ` (${failed} failed)` : ""}`);
      return { accuracy, metrics, n: scores.length, failed, predictions };
    },
  };
}
