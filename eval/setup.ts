// Builds an eval run from a validated EvalConfig, in dependency order: backend -> model (projector from a file,
// export, checkpoint step or training output_dir) -> grid (every cell's budget checked against the tower before any
// generation) -> benchmark data (columns checked) -> meta + the resume log. Components get flat values.
import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import type { EvalConfig } from "../configs/eval_schema.js";
import { canonicalJson } from "../configs/resolved.js";
import { resolveBackendName, setBackend } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import type { PreprocessMode } from "../data/preprocess.js";
import { parseShardSpec, type ShardSpec } from "../data/sampler.js";
import { loadVlm, type Vlm } from "../models/llava.js";
import { COMPLETE_FILE as CKPT_COMPLETE, PROJECTOR_FILE, resolveCheckpoint, runVersions } from "../train/checkpoint.js";
import type { EvalMeta } from "./aggregate.js";
import { getBenchmark } from "./benchmarks/registry.js";
import { buildCell, parseGrid, baselineCell, type GridCell } from "./grid.js";
import { openBenchmarkData, type BenchmarkData } from "./items.js";
import { ITEMS_FILE, ItemLog, META_FILE, shardDir, writeJsonAtomic } from "./results.js";

export interface EvalRun {
  cfg: EvalConfig;
  backend: string;
  vlm: Vlm;
  cells: GridCell[];
  benchmarks: BenchmarkData[];
  preprocessMode: PreprocessMode;
  imageShape: [number, number, number];
  shard: ShardSpec | undefined;
  /** Where this worker's log goes (output_dir, or output_dir/shards/<i>-of-<N>). */
  workDir: string;
  log: ItemLog;
  meta: EvalMeta;
}

/** sha256 of the config keys that change predictions (not where outputs go, batching, limits, grid or shard). */
export function evalConfigHash(cfg: EvalConfig): string {
  const keep = {
    seed: cfg.seed,
    model: cfg.model,
    max_new_tokens: cfg.max_new_tokens,
    stop_on_newline: cfg.stop_on_newline,
    benchmarks: cfg.benchmarks.map((b) => ({ ...b, limit: undefined })),
  };
  return createHash("sha256").update(canonicalJson(keep)).digest("hex");
}

/**
 * The projector file or folder to load: a training step folder -> its projector.safetensors; a training
 * output_dir -> its latest complete step's; anything else as given (file, LLaVA/HF folder, export folder).
 */
export async function resolveProjectorSource(p: string): Promise<string> {
  if (!existsSync(p) || !statSync(p).isDirectory()) return p;
  if (existsSync(path.join(p, PROJECTOR_FILE)) && existsSync(path.join(p, CKPT_COMPLETE))) return path.join(p, PROJECTOR_FILE);
  if (existsSync(path.join(p, "config.json")) || existsSync(path.join(p, "mm_projector.safetensors")) || existsSync(path.join(p, "model.safetensors"))) return p;
  const step = await resolveCheckpoint(p).catch(() => undefined);
  return step ? path.join(step, PROJECTOR_FILE) : p;
}

export interface SetupEvalOptions {
  /** "i/N": overrides cfg.shard. */
  shard?: string;
  quiet?: boolean;
}

/** The eval config's model (base models + optional projector), with its tokenizer and preprocessing mode. */
export async function loadEvalModel(cfg: EvalConfig): Promise<{ backend: string; vlm: Vlm; preprocessMode: PreprocessMode }> {
  const backend = await setBackend(resolveBackendName(cfg.runtime.backend));
  const m = cfg.model;
  const vlm = await loadVlm({
    model: m.llava ?? undefined,
    visionTower: m.vision_tower ?? undefined,
    languageModel: m.llm ?? undefined,
    projector: m.projector ? await resolveProjectorSource(m.projector) : undefined,
    tokenizer: m.tokenizer ?? undefined,
  });
  if (!vlm.tokenizer) {
    vlm.dispose();
    throw new ConfigError(["model.tokenizer: no tokenizer found with the model; set model.tokenizer"]);
  }
  const preprocessMode: PreprocessMode = m.image_aspect_ratio === "auto" ? vlm.preprocessMode : m.image_aspect_ratio === "pad" ? "pad" : "clip";
  return { backend, vlm, preprocessMode };
}

/** Builds the run. On error everything built so far is released. */
export async function setupEval(cfg: EvalConfig, opts: SetupEvalOptions = {}): Promise<EvalRun> {
  const { backend, vlm, preprocessMode } = await loadEvalModel(cfg);
  try {
    const patches = vlm.tower.config.numPositions - 1;
    // Every cell is built once here so a budget that does not fit fails before any generation.
    const cells = parseGrid(cfg.grid);
    const llm = { layers: vlm.lm.config.layers, hidden: vlm.lm.config.hidden, intermediate: vlm.lm.config.intermediate };
    for (const c of cells) buildCell(c, { patches, seed: cfg.seed, llm });
    const benchmarks: BenchmarkData[] = [];
    for (const b of cfg.benchmarks) {
      benchmarks.push(
        await openBenchmarkData(getBenchmark(b.name), {
          data: typeof b.data === "string" ? b.data : [...b.data],
          split: b.split ?? undefined,
          images: b.images === null ? undefined : typeof b.images === "string" ? b.images : [...b.images],
          imagesSplit: b.images_split ?? undefined,
          limit: b.limit ?? cfg.limit,
        }),
      );
    }
    const shardText = opts.shard ?? cfg.shard ?? undefined;
    const shard = shardText ? parseShardSpec(shardText) : undefined;
    const workDir = shard ? shardDir(cfg.output_dir, shard) : cfg.output_dir;
    const hash = evalConfigHash(cfg);
    const lm = vlm.lm.config;
    const versions = runVersions();
    const meta: EvalMeta = {
      config: JSON.parse(JSON.stringify(cfg)) as unknown,
      config_hash: hash,
      versions: { package: versions.package, tfjs: versions.tfjs, node: versions.node },
      backend,
      grid: cells.map((c) => ({ key: c.key, method: c.method, budget: c.budget })),
      baseline: baselineCell(cells)?.key ?? null,
      benchmarks: benchmarks.map((b) => ({ name: b.benchmark.name, primary: b.benchmark.primary, items: b.items })),
      model: {
        llava: cfg.model.llava, vision_tower: cfg.model.vision_tower, llm: cfg.model.llm, projector: cfg.model.projector, template: cfg.model.template,
        patches, llm_hidden: lm.hidden, llm_layers: lm.layers, llm_intermediate: lm.intermediate,
      },
    };
    const log = ItemLog.open(path.join(workDir, ITEMS_FILE), { kind: "header", config_hash: hash, shard: shard ? `${shard.index}/${shard.count}` : null });
    writeJsonAtomic(path.join(workDir, META_FILE), meta);
    const size = vlm.tower.config.imageSize;
    return { cfg, backend, vlm, cells, benchmarks, preprocessMode, imageShape: [3, size, size], shard, workDir, log, meta };
  } catch (e) {
    vlm.dispose();
    throw e;
  }
}

/** Releases the model's tensors. */
export function cleanupEval(run: EvalRun): void {
  run.vlm.dispose();
}
