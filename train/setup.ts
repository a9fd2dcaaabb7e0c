// Builds the parts of a projector-tuning run from a validated config, in dependency order. Components never read
// the config: each gets flat values here.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { RunConfig } from "../configs/schema.js";
import { configHash, writeResolvedConfig, HASH_EXCLUDED_KEYS } from "../configs/resolved.js";
import { setBackend, resolveBackendName, tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { info } from "../core/log.js";
import { openShards, type ShardSet } from "../data/arrow_shards.js";
import { padTokenIdOf } from "../data/batch.js";
import { createLoader, shardSetSource, type BatchLoader } from "../data/loader.js";
import { checkMapping, type ColumnMapping } from "../data/records.js";
import type { SamplerCursor } from "../data/sampler.js";
import { llavaEncoder, type LlavaEncoderOptions } from "../data/sample_encoder.js";
import { resolveModelDir } from "../models/hub.js";
import { loadVlm, type Vlm } from "../models/llava.js";
import { buildReducer, type Reducer } from "../reduce/reducer.js";
import { assignProjector, checkResumeConfig, cleanStaleCheckpoints, loadCheckpoint, type ReducerInfo, type TrainState } from "./checkpoint.js";
import { openFeatureCache, type FeatureCache } from "./feature_cache.js";
import { makeFeatureKey } from "./feature_key.js";
import { JsonlLogger, multiLogger, StdoutLogger, TensorBoardLogger, type MetricLogger } from "./metric_logger.js";
import { AdamW } from "./optimizer.js";
import type { ScheduleOptions } from "./schedule.js";

/** Everything a training run holds; `train()` advances `step` and `cursor`. */
export interface Run {
  cfg: RunConfig;
  backend: string;
  vlm: Vlm;
  reducer: Reducer;
  /** Visual tokens each image becomes after the reducer. */
  tokensPerImage: number;
  data: ShardSet;
  loader: BatchLoader<Record<string, unknown>>;
  evalData?: ShardSet;
  optimizer: AdamW;
  schedule: ScheduleOptions;
  totalSteps: number;
  step: number;
  epoch: number;
  cursor: SamplerCursor | undefined;
  cache?: FeatureCache;
  /** How rows become samples (shared by the training and held-out loaders). */
  encoderOptions: LlavaEncoderOptions;
  logger: MetricLogger;
  configHash: string;
  /** Last logged metrics (saved in checkpoints). */
  metrics: Record<string, number>;
}

export interface SetupOptions {
  /** "latest" or a checkpoint folder: continue exactly from there. */
  resume?: string;
  /** Resume even though the config changed (the differing keys are still printed). */
  force?: boolean;
  /** Build the parts but write nothing (no logs, checkpoints or resolved config). */
  dryRun?: boolean;
  /** Progress/log lines: "auto" follows the config. */
  quiet?: boolean;
}

export function reducerParams(r: RunConfig["reducer"]): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  if (r.name === "visionzip") {
    if (r.dominant !== null) p.dominant = r.dominant;
    if (r.contextual !== null) p.contextual = r.contextual;
    if (r.dominant === null && r.budget !== null) p.budget = r.budget;
    p.keepCls = r.keep_cls;
  } else if (r.name !== "none") {
    if (r.budget !== null) p.budget = r.budget;
    if (r.name === "random") p.seed = r.seed;
  }
  return p;
}

export function reducerInfo(r: RunConfig["reducer"], tokensPerImage: number): ReducerInfo {
  return { name: r.name, budget: tokensPerImage, dominant: r.dominant, contextual: r.contextual, keep_cls: r.keep_cls };
}

/** Visual tokens per image: the reducer run once on zeros of the tower's shapes (so no count is computed twice). */
export function countReducedTokens(vlm: Vlm, reducer: Reducer): number {
  const c = vlm.tower.config;
  const out = tf.tidy(() => {
    const n = c.numPositions;
    const r = reducer.reduce({
      hidden: tf.zeros([1, n, c.hidden]),
      clsAttention: tf.fill([1, c.heads, n], 1 / n),
      keysMean: tf.randomNormal([1, n, c.headDim], 0, 1, "float32", 1),
      gridSize: vlm.gridSize,
    });
    return r.tokens;
  });
  const t = out.shape[1];
  out.dispose();
  return t;
}

const shardSpec = (s: string | readonly string[]): string | string[] => (typeof s === "string" ? s : [...s]);

export function columnMapping(cfg: RunConfig): ColumnMapping {
  const c = cfg.data.columns;
  const m: ColumnMapping = {};
  if (c.id !== null) m.id = c.id;
  if (c.image !== null) m.image = c.image;
  if (c.conversations !== null) m.conversations = c.conversations;
  return m;
}

/** Builds the run: backend -> models -> reducer -> data -> optimizer -> resume state -> loggers. */
export async function setup(cfg: RunConfig, opts: SetupOptions = {}): Promise<Run> {
  const backend = await setBackend(resolveBackendName(cfg.runtime.backend));
  if (!opts.dryRun) {
    await mkdir(cfg.output_dir, { recursive: true });
    await cleanStaleCheckpoints(cfg.output_dir);
  }
  const m = cfg.model;
  const vlm = await loadVlm({
    model: m.llava ?? undefined,
    visionTower: m.vision_tower ?? undefined,
    languageModel: m.llm ?? undefined,
    projector: m.projector ?? undefined,
    tokenizer: m.tokenizer ?? undefined,
    projectorInit: m.projector === null ? { seed: cfg.seed, type: m.projector_type } : undefined,
  });
  try {
    if (!vlm.tokenizer) throw new ConfigError(["model.tokenizer: no tokenizer.json found with the model; set model.tokenizer"]);
    // The reducer needs the tower's token count: budgets that do not fit fail here, before step 1.
    const reducer = buildReducer(cfg.reducer.name, reducerParams(cfg.reducer));
    const tokensPerImage = countReducedTokens(vlm, reducer);

    const mapping = columnMapping(cfg);
    const data = await openShards(shardSpec(cfg.data.train!), { split: cfg.data.split ?? undefined, onError: cfg.data.on_error });
    checkMapping(data, mapping, "conversation");
    const evalData = cfg.data.eval ? await openShards(shardSpec(cfg.data.eval), { onError: cfg.data.on_error }) : undefined;
    const rows = data.totalRows ?? 0;
    const shardCount = cfg.data.shard ? Number(cfg.data.shard.split("/")[1]) : 1;
    const t = cfg.train;
    const stepsPerEpoch = Math.ceil(Math.ceil(rows / shardCount) / t.global_batch_size!);
    const totalSteps = t.max_steps ?? stepsPerEpoch * t.epochs!;
    if (totalSteps < 1) throw new ConfigError([`data.train: ${rows} rows give no optimizer step at train.global_batch_size ${t.global_batch_size}`]);

    // Optimizer after the projector: its state is keyed by the projector's variable names.
    const optimizer = new AdamW(vlm.projector.variables, { betas: [cfg.optimizer.betas[0]!, cfg.optimizer.betas[1]!], eps: cfg.optimizer.eps, weightDecay: cfg.optimizer.weight_decay });
    const schedule: ScheduleOptions = {
      baseLr: cfg.optimizer.lr,
      totalSteps,
      warmupSteps: cfg.schedule.warmup_steps ?? undefined,
      warmupRatio: cfg.schedule.warmup_ratio,
      name: cfg.schedule.name,
      minLrRatio: cfg.schedule.min_lr_ratio,
    };
    const hash = configHash(cfg);
    let step = 0;
    let epoch = 0;
    let cursor: SamplerCursor | undefined;
    let metrics: Record<string, number> = {};
    if (opts.resume) {
      const ck = await loadCheckpoint(opts.resume, cfg.output_dir);
      try {
        checkResumeConfig(ck.state.configHash, ck.state.config, JSON.parse(JSON.stringify(cfg)), {
          force: opts.force,
          currentHash: hash,
          ignore: HASH_EXCLUDED_KEYS,
        });
        assignProjector(vlm.projector, ck.projector);
        optimizer.loadState({ step: ck.optimizerStep, tensors: Object.fromEntries(ck.optimizer) });
      } finally {
        tf.dispose([...ck.projector.values(), ...ck.optimizer.values()]);
      }
      ({ step, epoch, metrics } = ck.state);
      cursor = ck.state.dataCursor as unknown as SamplerCursor;
      if (!opts.quiet) info(`resuming from ${ck.dir} (step ${step}/${totalSteps})`);
    }

    // The feature cache is keyed by everything that makes the reduced tokens (see train/feature_key.ts).
    let cache: FeatureCache | undefined;
    if (t.feature_cache !== false) {
      const root = t.feature_cache === true ? path.join(cfg.output_dir, "feature_cache") : t.feature_cache;
      const source = m.vision_tower ?? m.llava!;
      const key = await makeFeatureKey({
        source,
        weightsDir: await resolveModelDir(source),
        layer: m.vision_layer,
        numLayers: vlm.tower.config.layers,
        reducer: { name: reducer.name, params: reducer.params ?? reducerParams(cfg.reducer) },
        preprocess: { mode: cfg.data.image_aspect_ratio === "pad" ? "pad" : "clip", config: vlm.preprocessor },
      });
      cache = await openFeatureCache(root, key);
    }

    const encoderOptions: LlavaEncoderOptions = {
      tokenizer: vlm.tokenizer,
      tokenize: { template: m.template, maxLength: cfg.data.max_length, imageSeqLen: tokensPerImage },
      mapping,
      preprocess: { mode: cfg.data.image_aspect_ratio === "pad" ? "pad" : "clip", config: vlm.preprocessor },
      hashImages: cache !== undefined,
      isCached: cache ? (sha) => cache!.has(sha) : undefined,
    };
    const encode = llavaEncoder(encoderOptions);
    const loader = createLoader({
      source: shardSetSource(data),
      encode,
      batchSize: t.micro_batch_size,
      collate: { padId: padTokenIdOf(vlm.tokenizer) },
      seed: cfg.seed,
      epochs: Infinity, // the run is bounded by totalSteps (epochs are converted to steps above)
      shuffle: cfg.data.shuffle ? "auto" : "none",
      shard: cfg.data.shard ?? undefined,
      prefetch: cfg.data.prefetch,
      onError: cfg.data.on_error,
      report: data.report,
      resume: cursor,
    });

    const loggers: MetricLogger[] = [];
    if (!opts.quiet && cfg.logging.progress !== "off") loggers.push(new StdoutLogger({ totalSteps, startStep: step, every: cfg.logging.every_steps, keys: ["loss", "lr", "grad_norm", "samples_per_s"] }));
    if (!opts.dryRun) {
      loggers.push(new JsonlLogger(cfg.output_dir));
      if (cfg.logging.tensorboard) loggers.push(new TensorBoardLogger(path.join(cfg.output_dir, "tensorboard")));
      writeResolvedConfig(cfg, cfg.output_dir);
    }
    return {
      cfg, backend, vlm, reducer, tokensPerImage, data, loader, evalData, optimizer, schedule, totalSteps, step, epoch, cursor,
      cache, encoderOptions, logger: multiLogger(...loggers), configHash: hash, metrics,
    };
  } catch (e) {
    vlm.dispose();
    throw e;
  }
}

/** Releases the run's tensors, files and loggers. */
export async function cleanup(run: Run): Promise<void> {
  await run.loader.close();
  await run.cache?.close();
  run.logger.close();
  run.optimizer.dispose();
  run.vlm.dispose();
}

export function trainStateOf(run: Run): Omit<TrainState, "step" | "versions" | "time"> {
  const m = run.cfg.model;
  return {
    epoch: run.epoch,
    dataCursor: (run.cursor ?? null) as TrainState["dataCursor"],
    rng: {},
    configHash: run.configHash,
    config: JSON.parse(JSON.stringify(run.cfg)) as TrainState["config"],
    metrics: run.metrics,
    projector: { type: run.vlm.projector.type, inDim: run.vlm.projector.inDim, outDim: run.vlm.projector.outDim },
    reducer: reducerInfo(run.cfg.reducer, run.tokensPerImage),
    models: { llava: m.llava, visionTower: m.vision_tower, llm: m.llm, projector: m.projector },
  };
}

