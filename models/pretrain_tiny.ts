// Pretraining of the tiny LLaVA that `vzt make-tiny` writes, so that its LLM is "pretrained" like a released one:
// the LLM (every weight) and the projector are trained together on synthetic shapes conversations (vicuna_v1),
// generated in memory from the seed, with the visual tokens computed once per image by the frozen CLIP tower and
// cached. The tokens the LLM sees are a mix of generic 64-token sets (pool@64 and random@64 patches), never
// VisionZip's: VisionZip's token set stays new to the "released" projector, as in the paper's story (LLaVA was
// trained on all 576 tokens; VisionZip compresses and projector tuning recovers).
// Afterwards it rewrites, in the make-tiny folder:
//   llm/model.safetensors      the pretrained LLM (HF names)
//   llava/model.safetensors    the same LLM and the pretrained projector (HF names), the tower unchanged
//   projector/                 the pretrained ("released") projector (LLaVA names)
//   projector_init/            the untrained projector make-tiny wrote (a copy of the old projector/)
//   pretrain.json              the recipe and the loss curve (no timings: the folder is byte-deterministic)
// Same seed and options -> byte-identical files on the same backend (wasm and cpu round differently).
import { copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tf, ensureBackend } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { createRng } from "../core/rng.js";
import { tokenizeConversation } from "../data/conversation.js";
import { loadPreprocessorConfig, preprocessRGB } from "../data/preprocess.js";
import { generateShapes, humanTurn, renderScene, type Scene } from "../data/shapes.js";
import { loadTokenizer, type Tokenizer } from "../data/tokenizer.js";
import { buildReducer, type Reducer } from "../reduce/reducer.js";
import { clipGradNorm } from "../train/clip.js";
import { maskedCrossEntropySum } from "../train/loss.js";
import { AdamW } from "../train/optimizer.js";
import { lrAt } from "../train/schedule.js";
import { loadVisionTower, type VisionTower } from "./clip_vision.js";
import { createLanguageModel, type LanguageModel } from "./llama.js";
import { loadLlmWeights, type DecoderLayerWeights, type Linear, type LlmWeights } from "./llama_weights.js";
import { readLlmConfig, type LlmConfig } from "./llm_config.js";
import { disposeVision, encodeImages, reduceFeatures, vlmForwardFromVisual, type Vlm } from "./llava.js";
import { loadProjector, projectorConfigJson, projectorTensors, type Projector } from "./projector.js";
import { readSafetensors, writeSafetensors } from "./safetensors.js";
import { openTensorSource } from "./weights.js";

export interface PretrainOptions {
  /** Seed of the data, the batch order and the random token sets. */
  seed: number;
  /** Optimizer updates. */
  steps: number;
  /** Conversations per update (default 16). */
  batchSize?: number;
  /** Peak learning rate (default 3e-3), cosine decay after `warmupSteps` (default 10% of steps). */
  lr?: number;
  warmupSteps?: number;
  /** Distinct pretraining scenes (default 256); two questions each. */
  images?: number;
  /** Reducers whose 64-token sets the LLM learns to read; sample i of an epoch uses one of them (default pool, random). */
  tokenSets?: readonly TokenSetSpec[];
  /** Add one caption conversation per scene (default true). */
  captions?: boolean;
  /** Offset of the shapes seed, so the pretraining scenes are not the demo's (default 1_000_000). */
  dataSeedOffset?: number;
  /** Images per CLIP forward while caching (default 8). */
  encodeBatch?: number;
  /** Called after every update with its loss (mean over answer tokens). */
  onStep?: (step: number, loss: number) => void;
  /** Do not write anything (measurement); default false. */
  dryRun?: boolean;
  /**
   * Train an already pretrained folder further (a second stage, e.g. at all 576 tokens as LLaVA's released models
   * are trained): its LLM and projector are the starting point, projector_init/ is kept, and pretrain.json gets
   * this stage appended under `stages`. Default false: a pretrained folder is refused.
   */
  continue?: boolean;
}

export interface TokenSetSpec {
  reducer: string;
  params: Record<string, number>;
}

/** The generic token sets of the default recipe: 8 x 8 pooled patches, and 64 random patches (raster order). */
export const PRETRAIN_TOKEN_SETS: readonly TokenSetSpec[] = [
  { reducer: "pool", params: { budget: 64 } },
  { reducer: "random", params: { budget: 64 } },
];

/** "none" | "pool@64,random@64" -> token sets (reducer@budget; "none" keeps every patch). */
export function parseTokenSets(text: string): TokenSetSpec[] {
  return text.split(",").map((part): TokenSetSpec => {
    const m = /^\s*([a-z_]+)\s*(?:@\s*(\d+))?\s*$/.exec(part);
    if (!m) throw new ConfigError([`token set ${JSON.stringify(part)}: expected reducer@budget (pool@64) or none`]);
    if (m[1] === "none") return { reducer: "none", params: {} };
    if (m[2] === undefined) throw new ConfigError([`token set ${JSON.stringify(part)}: ${m[1]} needs a budget (${m[1]}@64)`]);
    return { reducer: m[1]!, params: { budget: Number(m[2]) } };
  });
}

export const PRETRAIN_DEFAULTS = { batchSize: 16, lr: 3e-3, images: 256, dataSeedOffset: 1_000_000, encodeBatch: 8, weightDecay: 0, maxGradNorm: 1 } as const;

export interface PretrainResult {
  /** Loss of every update (mean cross-entropy over answer tokens). */
  losses: number[];
  /** Mean of the first and of the last min(10, steps) losses. */
  firstLoss: number;
  lastLoss: number;
  /** Conversations seen / distinct images. */
  samples: number;
  images: number;
  /** Wall time of the feature caching (render + preprocess + CLIP + reducers) and of the updates. */
  encodeSeconds: number;
  trainSeconds: number;
  secondsPerStep: number;
}

/** One pretraining conversation, tokenized. */
interface Sample {
  inputIds: number[];
  labels: number[];
  /** Row of the image in the feature cache. */
  image: number;
}

// ---- trainable LLM ----------------------------------------------------------------------------------------------

let trainRun = 0;

/** Wraps every LLM weight as a trainable Variable (the plain tensors are disposed). Keys are our names. */
export function trainableLlmWeights(w: LlmWeights): { weights: LlmWeights; vars: Record<string, tf.Variable> } {
  const vars: Record<string, tf.Variable> = {};
  const tag = `pretrain_tiny_${trainRun++}`;
  const v = <T extends tf.Tensor>(name: string, t: T): T => {
    const x = tf.variable(t, true, `${tag}/${name}`);
    t.dispose();
    vars[name] = x;
    return x as unknown as T;
  };
  const lin = (name: string, l: Linear): Linear => (l.b ? { w: v(`${name}.w`, l.w), b: v(`${name}.b`, l.b) } : { w: v(`${name}.w`, l.w) });
  const layers: DecoderLayerWeights[] = w.layers.map((l, i) => {
    const p = `layers.${i}.`;
    return {
      attnNorm: v(p + "attnNorm", l.attnNorm),
      qkv: lin(p + "qkv", l.qkv),
      o: lin(p + "o", l.o),
      mlpNorm: v(p + "mlpNorm", l.mlpNorm),
      gateUp: lin(p + "gateUp", l.gateUp),
      down: lin(p + "down", l.down),
    };
  });
  const weights: LlmWeights = { embed: v("embed", w.embed), layers, norm: v("norm", w.norm) };
  if (w.lmHead) weights.lmHead = lin("lmHead", w.lmHead);
  return { weights, vars };
}

/** The LLM with a token embedding that has a gradient on every backend (one-hot matmul; wasm lacks gather's). */
function withDifferentiableEmbed(lm: LanguageModel): LanguageModel {
  const { vocab } = lm.config;
  return {
    ...lm,
    embed: (ids) =>
      tf.tidy(() => {
        const [B, T] = ids.shape;
        const oneHot = tf.cast(tf.oneHot(tf.reshape(tf.cast(ids, "int32"), [B * T]), vocab), "float32"); // [B·T, V]
        return tf.reshape(tf.matMul(oneHot, lm.weights.embed), [B, T, lm.config.hidden]) as tf.Tensor3D; // [B, T, C]
      }),
  };
}

/** HF LlamaForCausalLM tensors ([out, in] Linear weights, q/k/v and gate/up unfused). New tensors. */
export function llmHfTensors(cfg: LlmConfig, w: LlmWeights, prefix = ""): Record<string, tf.Tensor> {
  const { heads: H, kvHeads: KV, headDim: D, intermediate: I } = cfg;
  const out: Record<string, tf.Tensor> = {};
  const put = (name: string, t: tf.Tensor) => (out[prefix + name] = t);
  const cols = (x: tf.Tensor2D, start: number, size: number) => tf.tidy(() => tf.transpose(tf.slice(x, [0, start], [x.shape[0], size])));
  const bias = (b: tf.Tensor1D | undefined, start: number, size: number) => (b ? tf.slice(b, [start], [size]) : undefined);
  put("model.embed_tokens.weight", tf.clone(w.embed));
  put("model.norm.weight", tf.clone(w.norm));
  if (w.lmHead) put("lm_head.weight", tf.transpose(w.lmHead.w));
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}.`;
    const parts: [string, Linear, number, number][] = [
      ["self_attn.q_proj", l.qkv, 0, H * D],
      ["self_attn.k_proj", l.qkv, H * D, KV * D],
      ["self_attn.v_proj", l.qkv, (H + KV) * D, KV * D],
      ["self_attn.o_proj", l.o, 0, l.o.w.shape[1]],
      ["mlp.gate_proj", l.gateUp, 0, I],
      ["mlp.up_proj", l.gateUp, I, I],
      ["mlp.down_proj", l.down, 0, l.down.w.shape[1]],
    ];
    for (const [name, lin, start, size] of parts) {
      put(`${p}${name}.weight`, cols(lin.w, start, size));
      const b = bias(lin.b, start, size);
      if (b) put(`${p}${name}.bias`, b);
    }
    put(`${p}input_layernorm.weight`, tf.clone(l.attnNorm));
    put(`${p}post_attention_layernorm.weight`, tf.clone(l.mlpNorm));
  });
  return out;
}

// ---- data and feature cache ---------------------------------------------------------------------------------------

/** The caption question of the pretraining set (every word is in the tiny vocabulary). */
export const CAPTION_QUESTION = "What shapes are in the image?";

/** A dense caption of a scene in tiny-vocabulary words, shapes in cell order: "red circle top left , blue square center". */
export function sceneCaption(scene: Scene): string {
  return scene.shapes.map((s) => `${s.color} ${s.kind} ${s.position}`).join(" , ");
}

/**
 * The pretraining conversations: the shapes "vqa" split of seed + offset (two questions per scene) and, with
 * `captions`, one caption conversation per scene (LLaVA's stage-1 idea: dense supervision of every shape's colour,
 * kind and position, so the LLM learns to read visual tokens faster than from one-word answers).
 */
export function pretrainingData(seed: number, images: number, offset: number = PRETRAIN_DEFAULTS.dataSeedOffset, captions = true): { scenes: Scene[]; items: { image: number; question: string; answer: string }[] } {
  const ds = generateShapes({ seed: seed + offset, train: 0, evalVqa: 2 * images, evalPope: 0 });
  const order = new Map<string, number>();
  const scenes: Scene[] = [];
  const items = ds.evalVqa.map((q) => {
    let i = order.get(q.image);
    if (i === undefined) {
      i = scenes.length;
      order.set(q.image, i);
      scenes.push(ds.scenes.get(q.image)!);
    }
    return { image: i, question: q.question, answer: q.multiple_choice_answer };
  });
  if (captions) scenes.forEach((sc, i) => items.push({ image: i, question: CAPTION_QUESTION, answer: sceneCaption(sc) }));
  return { scenes, items };
}

/**
 * Visual tokens of every scene for every reducer: [sets · scenes, T, C] (row s · scenes + i), from hidden state
 * `layer` of the frozen tower. Images are rendered and preprocessed in memory (no PNG round trip: same pixels).
 */
export async function cacheVisualTokens(tower: VisionTower, scenes: readonly Scene[], reducers: readonly Reducer[], opts: { preprocessor: object; layer: number; batch: number }): Promise<tf.Tensor3D> {
  const perSet: tf.Tensor3D[][] = reducers.map(() => []);
  try {
    for (let s = 0; s < scenes.length; s += opts.batch) {
      const chunk = scenes.slice(s, s + opts.batch);
      const pix = chunk.map((sc) => preprocessRGB({ data: renderScene(sc), width: sc.width, height: sc.height }, { config: opts.preprocessor }));
      const [c, h, w] = pix[0]!.shape;
      const flat = new Float32Array(chunk.length * c * h * w);
      pix.forEach((p, i) => flat.set(p.data, i * c * h * w));
      const pixelValues = tf.tensor4d(flat, [chunk.length, c, h, w]);
      const vision = encodeImages(tower, pixelValues, opts.layer);
      pixelValues.dispose();
      try {
        reducers.forEach((r, k) => perSet[k]!.push(reduceFeatures(r, vision).tokens));
      } finally {
        disposeVision(vision);
      }
    }
    return tf.tidy(() => tf.concat(perSet.map((parts) => tf.concat(parts, 0)), 0) as tf.Tensor3D);
  } finally {
    for (const parts of perSet) tf.dispose(parts);
  }
}

// ---- the run -------------------------------------------------------------------------------------------------------

function checkOptions(o: PretrainOptions): void {
  const bad: string[] = [];
  const posInt = (k: string, v: number | undefined, min = 1) => {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) bad.push(`${k}: expected an integer >= ${min}, got ${v}`);
  };
  posInt("seed", o.seed, 0);
  posInt("steps", o.steps);
  posInt("batchSize", o.batchSize);
  posInt("images", o.images);
  posInt("encodeBatch", o.encodeBatch);
  posInt("warmupSteps", o.warmupSteps, 0);
  posInt("dataSeedOffset", o.dataSeedOffset, 0);
  if (o.lr !== undefined && !(o.lr > 0 && Number.isFinite(o.lr))) bad.push(`lr: expected a number > 0, got ${o.lr}`);
  if (o.tokenSets !== undefined && o.tokenSets.length === 0) bad.push("tokenSets: at least one");
  if (bad.length) throw new ConfigError(bad, "pretrainTiny options");
}

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => undefined)) !== undefined;
}

/**
 * Pretrains the LLM and projector of a `makeTiny` folder in place (see the file header). Throws ConfigError when the
 * folder was already pretrained (pretrain.json present): run make-tiny again first. Leaves the tensor count unchanged.
 */
export async function pretrainTiny(dir: string, opts: PretrainOptions): Promise<PretrainResult> {
  checkOptions(opts);
  await ensureBackend();
  await tf.ready();
  const marker = path.join(dir, "pretrain.json");
  const pretrained = await exists(marker);
  if (!opts.dryRun && pretrained && !opts.continue) throw new ConfigError([`${marker} exists: this folder is already pretrained; run make-tiny again first (or continue it: --continue)`], marker);
  if (opts.continue && !pretrained) throw new ConfigError([`${marker}: no such file: only a pretrained folder can be continued (make-tiny --pretrain-steps first, or installPretrained)`], marker);
  const batchSize = opts.batchSize ?? PRETRAIN_DEFAULTS.batchSize;
  const baseLr = opts.lr ?? PRETRAIN_DEFAULTS.lr;
  const images = opts.images ?? PRETRAIN_DEFAULTS.images;
  const sets = opts.tokenSets ?? PRETRAIN_TOKEN_SETS;
  const warmupSteps = opts.warmupSteps ?? Math.ceil(opts.steps / 10);
  const offset = opts.dataSeedOffset ?? PRETRAIN_DEFAULTS.dataSeedOffset;

  const llavaCfg = JSON.parse(await readFile(path.join(dir, "llava", "config.json"), "utf8")) as { vision_feature_layer?: number };
  const layer = llavaCfg.vision_feature_layer ?? -2;
  const tok: Tokenizer = await loadTokenizer(path.join(dir, "llm"));
  const preprocessor = await loadPreprocessorConfig(path.join(dir, "clip"));
  const captions = opts.captions ?? true;
  const { scenes, items } = pretrainingData(opts.seed, images, offset, captions);
  const samples: Sample[] = items.map((it, k) => {
    const t = tokenizeConversation(
      { id: k, image: String(it.image), messages: [{ from: "human", value: humanTurn(it.question) }, { from: "gpt", value: it.answer }] },
      tok,
      { template: "vicuna_v1" },
    );
    return { inputIds: t.inputIds, labels: t.labels, image: it.image };
  });

  const owned: { dispose(): void }[] = [];
  try {
    // 1. visual tokens of every scene, once.
    const t0 = performance.now();
    const tower = await loadVisionTower(path.join(dir, "clip"));
    owned.push(tower);
    const reducers = sets.map((s, k) => buildReducer(s.reducer, s.reducer === "random" ? { seed: opts.seed * 16 + k, ...s.params } : s.params));
    const cache = await cacheVisualTokens(tower, scenes, reducers, { preprocessor, layer, batch: opts.encodeBatch ?? PRETRAIN_DEFAULTS.encodeBatch });
    owned.push(cache);
    tower.dispose();
    owned.splice(owned.indexOf(tower), 1);
    const encodeSeconds = (performance.now() - t0) / 1000;

    // 2. trainable LLM + projector.
    const llmDir = path.join(dir, "llm");
    const cfg = await readLlmConfig(llmDir);
    const { weights, vars: llmVars } = trainableLlmWeights(await loadLlmWeights(await openTensorSource(llmDir), cfg));
    const lm = createLanguageModel(cfg, weights);
    owned.push(lm);
    const projector: Projector = await loadProjector(path.join(dir, "projector"));
    owned.push(projector);
    const vars: Record<string, tf.Variable> = { ...llmVars };
    for (const [k, v] of Object.entries(projector.variables)) vars[`projector.${k}`] = v;
    const keys = Object.keys(vars);
    const varList = keys.map((k) => vars[k]!);
    const optimizer = new AdamW(vars, { weightDecay: PRETRAIN_DEFAULTS.weightDecay });
    owned.push(optimizer);
    const model = { lm: withDifferentiableEmbed(lm), projector } as unknown as Vlm;

    // 3. updates: epochs of a seeded permutation; sample j of the run reads token set j mod sets.
    const rng = createRng(opts.seed);
    let perm: number[] = [];
    let at = 0;
    const nextIndex = (): number => {
      if (at === perm.length) {
        perm = Array.from({ length: samples.length }, (_, i) => i);
        for (let i = perm.length - 1; i > 0; i--) {
          const j = rng.nextInt(i + 1);
          [perm[i], perm[j]] = [perm[j]!, perm[i]!];
        }
        at = 0;
      }
      return perm[at++]!;
    };
    const losses: number[] = [];
    let seen = 0;
    const t1 = performance.now();
    for (let step = 0; step < opts.steps; step++) {
      const batch = Array.from({ length: batchSize }, () => samples[nextIndex()]!);
      const rows = batch.map((s) => ((seen++ % sets.length) * scenes.length + s.image));
      const lr = lrAt(step, { baseLr, totalSteps: opts.steps, warmupSteps, name: "cosine" });
      const loss = trainStep(model, cache, rows, batch, varList, keys, optimizer, lr);
      losses.push(loss);
      opts.onStep?.(step, loss);
    }
    const trainSeconds = (performance.now() - t1) / 1000;

    // 4. write back.
    if (!opts.dryRun) {
      const stage = { seed: opts.seed, steps: opts.steps, batchSize, lr: baseLr, warmupSteps, images, captions, dataSeedOffset: offset, tokenSets: sets, losses };
      if (opts.continue) {
        // pretrain.json keeps the first stage's fields at the top (what installPretrained and older readers expect).
        const first = JSON.parse(await readFile(marker, "utf8")) as Record<string, unknown> & { losses: number[]; stages?: unknown[] };
        const { stages = [], ...top } = first;
        await writeBack(dir, lm, projector, { ...top, stages: [...stages, { ...stage, losses: stage.losses.map((x) => Number(x.toFixed(6))) }] }, { keepInit: true });
      } else await writeBack(dir, lm, projector, stage);
    }
    const head = losses.slice(0, Math.min(10, losses.length));
    const tail = losses.slice(-Math.min(10, losses.length));
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return {
      losses,
      firstLoss: mean(head),
      lastLoss: mean(tail),
      samples: seen,
      images: scenes.length,
      encodeSeconds,
      trainSeconds,
      secondsPerStep: trainSeconds / opts.steps,
    };
  } finally {
    for (const o of owned.reverse()) o.dispose();
  }
}

/** One update of every variable on one batch; returns the loss. */
function trainStep(model: Vlm, cache: tf.Tensor3D, rows: number[], batch: Sample[], varList: tf.Variable[], keys: string[], optimizer: AdamW, lr: number): number {
  const visual = tf.tidy(() => tf.gather(cache, tf.tensor1d(rows, "int32")) as tf.Tensor3D); // [B, T, C]
  const imageRows = batch.map((_, i) => i);
  try {
    const { value, grads } = tf.variableGrads(() => {
      const out = vlmForwardFromVisual(model, visual, { inputIds: batch.map((s) => s.inputIds), labels: batch.map((s) => s.labels), imageRows });
      const L = out.logits.shape[1];
      const labels = tf.tensor2d(out.labels!.flat(), [batch.length, L], "int32");
      const { sum, count } = maskedCrossEntropySum(out.logits, labels);
      return tf.div(sum, Math.max(1, count)) as tf.Scalar;
    }, varList);
    const named: Record<string, tf.Tensor> = {};
    varList.forEach((v, i) => (named[keys[i]!] = grads[v.name]!));
    const clipped = clipGradNorm(named, PRETRAIN_DEFAULTS.maxGradNorm);
    const loss = value.dataSync()[0]!;
    if (Number.isFinite(clipped.norm)) optimizer.step(clipped.grads, lr);
    tf.dispose([value, ...Object.values(grads), ...Object.values(clipped.grads)]);
    return loss;
  } finally {
    visual.dispose();
  }
}

/** Writes the pretrained LLM into llm/ and llava/, the projector into projector/ (old one to projector_init/). */
async function writeBack(dir: string, lm: LanguageModel, projector: Projector, recipe: Record<string, unknown> & { losses: number[] }, o: { keepInit?: boolean } = {}): Promise<void> {
  const llm = llmHfTensors(lm.config, lm.weights);
  try {
    const { losses, ...rest } = recipe;
    await writePretrained(dir, llm, projector, { ...rest, losses: losses.map((x) => Number(x.toFixed(6))) }, o);
  } finally {
    tf.dispose(Object.values(llm));
  }
}

/**
 * Writes a pretrained LLM (HF tensor names, no prefix) and projector into a make-tiny folder: projector_init/ keeps
 * the untrained projector, llm/ and projector/ get the new weights, llava/ keeps its tower and gets both.
 */
async function writePretrained(dir: string, llm: Record<string, tf.Tensor>, projector: Projector, recipe: Record<string, unknown>, o: { keepInit?: boolean } = {}): Promise<void> {
  // projector_init/: the untrained projector make-tiny wrote (a continued folder already has it).
  if (!o.keepInit) {
    const initDir = path.join(dir, "projector_init");
    await mkdir(initDir, { recursive: true });
    for (const f of ["config.json", "model.safetensors"]) await copyFile(path.join(dir, "projector", f), path.join(initDir, f));
  }
  await writeSafetensors(path.join(dir, "llm", "model.safetensors"), llm);

  const proj = projectorTensors(projector, "llava");
  try {
    await writeFile(path.join(dir, "projector", "config.json"), JSON.stringify({ ...projectorConfigJson(projector), mm_vision_select_layer: -2, mm_vision_select_feature: "patch" }, null, 2) + "\n");
    await writeSafetensors(path.join(dir, "projector", "model.safetensors"), proj);
  } finally {
    tf.dispose(Object.values(proj));
  }

  // llava/: keep the tower's tensors, replace the LLM's and the projector's.
  const file = path.join(dir, "llava", "model.safetensors");
  const old = await readSafetensors(file);
  const hfProj = projectorTensors(projector, "hf");
  const fresh: Record<string, tf.Tensor> = { ...Object.fromEntries(Object.entries(llm).map(([k, t]) => ["language_model." + k, t])), ...hfProj };
  try {
    const all: Record<string, tf.Tensor> = {};
    for (const [k, t] of old) if (k.startsWith("vision_tower.")) all[k] = t;
    Object.assign(all, fresh);
    for (const k of old.keys()) if (!(k in all)) throw new ConfigError([`${file}: unexpected tensor "${k}" (not vision_tower., language_model. nor multi_modal_projector.)`], file);
    await writeSafetensors(file, all);
  } finally {
    tf.dispose([...old.values()]);
    tf.dispose(Object.values(hfProj));
  }
  await writeFile(path.join(dir, "pretrain.json"), JSON.stringify(recipe, null, 2) + "\n");
}

/** The pretrained tiny weights shipped with the package (made by `vzt make-tiny --pretrain-steps`; see its README). */
export const SHIPPED_PRETRAINED_DIR = fileURLToPath(new URL("../../models/tiny_pretrained/", import.meta.url));

/**
 * Installs shipped pretrained weights (llm.safetensors, projector.safetensors, pretrain.json) into a make-tiny folder
 * made with the same seed, as pretrainTiny would have written them.
 */
export async function installPretrained(dir: string, from = SHIPPED_PRETRAINED_DIR): Promise<void> {
  const recipe = JSON.parse(await readFile(path.join(from, "pretrain.json"), "utf8")) as Record<string, unknown>;
  if (await exists(path.join(dir, "pretrain.json"))) throw new ConfigError([`${dir}: already pretrained (pretrain.json exists)`]);
  const llm = await readSafetensors(path.join(from, "llm.safetensors"));
  const projector = await loadProjector(path.join(from, "projector.safetensors"));
  try {
    await writePretrained(dir, Object.fromEntries(llm), projector, recipe);
  } finally {
    tf.dispose([...llm.values()]);
    projector.dispose();
  }
}
