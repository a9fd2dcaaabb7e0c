// The LLaVA multimodal projector: vision features [B, T, inDim] -> LLM embeddings [B, T, outDim].
// `mlp2x_gelu` = Linear(inDim, outDim) -> GELU (exact, erf) -> Linear(outDim, outDim); `linear` = Linear(inDim, outDim)
// (haotian-liu/LLaVA llava/model/multimodal_projector/builder.py; HF LlavaMultiModalProjector is the same mlp).
// Its weights are the only tf.Variables of a model: the projector is what training tunes.
// Variables hold Linear weights as `kernel` [in, out] (transposed once from PyTorch's [out, in]) for a plain matMul.
import { stat } from "node:fs/promises";
import path from "node:path";
import { tf } from "../core/backend.js";
import { ConfigError, WeightsError } from "../core/errors.js";
import { createRng } from "../core/rng.js";
import { readConfigJson, JsonReader, type Json } from "./config_json.js";
import { resolveModelDir } from "./hub.js";
import { readHeader, readTensors } from "./safetensors.js";
import { loadComponent, openTensorSource, type Component, type TensorSource, type WeightMap } from "./weights.js";

export type ProjectorType = "mlp2x_gelu" | "linear";
export const PROJECTOR_TYPES: readonly ProjectorType[] = ["mlp2x_gelu", "linear"];

/** Tensor naming on disk: original LLaVA (`model.mm_projector.0.weight`) or HF LLaVA (`multi_modal_projector.linear_1.weight`). */
export type ProjectorNaming = "llava" | "hf";

export interface ProjectorSpec {
  type: ProjectorType;
  inDim: number;
  outDim: number;
}

export interface Projector extends ProjectorSpec {
  /** Trainable variables by name: `linear_1.kernel` [in, out], `linear_1.bias` [out], (mlp2x_gelu) `linear_2.*`; `linear`: `linear.*`. */
  readonly variables: Readonly<Record<string, tf.Variable>>;
  /** [B, T, inDim] -> [B, T, outDim]. Differentiable with respect to `variables`. */
  apply(x: tf.Tensor3D): tf.Tensor3D;
  dispose(): void;
}

/** Exact GELU: 0.5 x (1 + erf(x / sqrt 2)) (PyTorch nn.GELU() default; not the tanh approximation). Has gradients. */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1))) as T;
}

// ---- names ----------------------------------------------------------------------------------------------------

/** Our variable names per type, in layer order, each with its [in, out] dims. */
function layerNames(spec: ProjectorSpec): { name: string; inDim: number; outDim: number }[] {
  return spec.type === "linear"
    ? [{ name: "linear", inDim: spec.inDim, outDim: spec.outDim }]
    : [
        { name: "linear_1", inDim: spec.inDim, outDim: spec.outDim },
        { name: "linear_2", inDim: spec.outDim, outDim: spec.outDim },
      ];
}

/** On-disk names relative to the prefix -> our layer name. */
const DISK_LAYERS: Record<ProjectorNaming, Record<ProjectorType, Record<string, string> | undefined>> = {
  llava: { mlp2x_gelu: { "0": "linear_1", "2": "linear_2" }, linear: { "": "linear" } },
  hf: { mlp2x_gelu: { linear_1: "linear_1", linear_2: "linear_2" }, linear: undefined },
};

/** Prefixes each naming is found under, most common first (`mm_projector.` alone: LLaVA adapters saved stripped). */
const PREFIXES: Record<ProjectorNaming, readonly string[]> = {
  llava: ["model.mm_projector.", "mm_projector."],
  hf: ["multi_modal_projector.", "model.multi_modal_projector."],
};

/** The weight map for one naming and type (HF-side keys relative to the prefix; values are our names, HF layout). */
export function projectorWeightMap(naming: ProjectorNaming, type: ProjectorType): WeightMap {
  const layers = DISK_LAYERS[naming][type];
  if (!layers) throw new WeightsError(`HF LLaVA naming has no "${type}" projector (LlavaMultiModalProjector is always linear_1 -> GELU -> linear_2)`);
  const entries: Record<string, string> = {};
  for (const [disk, ours] of Object.entries(layers)) {
    const d = disk === "" ? "" : `${disk}.`;
    entries[`${d}weight`] = `${ours}.weight`;
    entries[`${d}bias`] = `${ours}.bias`;
  }
  return { family: `projector (${naming}, ${type})`, entries, ignore: [] };
}

/** The Component (prefix + expected HF-layout shapes) for a spec, so names can be classified without loading. */
export function projectorComponent(spec: ProjectorSpec, naming: ProjectorNaming, prefix = PREFIXES[naming][0]!): Component {
  const shapes: Record<string, number[]> = {};
  for (const l of layerNames(spec)) {
    shapes[`${l.name}.weight`] = [l.outDim, l.inDim];
    shapes[`${l.name}.bias`] = [l.outDim];
  }
  return { map: projectorWeightMap(naming, spec.type), prefix, numLayers: 0, shapes };
}

// ---- build / apply ----------------------------------------------------------------------------------------------

function checkSpec(spec: ProjectorSpec, where: string): void {
  const problems: string[] = [];
  if (!PROJECTOR_TYPES.includes(spec.type)) problems.push(`projector type "${spec.type}" is not supported (valid: ${PROJECTOR_TYPES.join(", ")})`);
  for (const k of ["inDim", "outDim"] as const) {
    if (!Number.isInteger(spec[k]) || spec[k] < 1) problems.push(`${k} must be a positive integer, got ${spec[k]}`);
  }
  if (problems.length) throw new ConfigError(problems, where);
}

/** Wraps kernels [in, out] and biases [out] (tensors are taken over: they become variables' initial values, then disposed). */
function makeProjector(spec: ProjectorSpec, init: Record<string, tf.Tensor>): Projector {
  const layers = layerNames(spec);
  const variables: Record<string, tf.Variable> = {};
  for (const l of layers) {
    for (const part of ["kernel", "bias"] as const) {
      const t = init[`${l.name}.${part}`]!;
      variables[`${l.name}.${part}`] = tf.variable(t, true);
      t.dispose();
    }
  }
  let disposed = false;
  return {
    ...spec,
    variables,
    apply(x) {
      if (disposed) throw new Error("projector: apply() after dispose()");
      if (x.rank !== 3 || x.shape[2] !== spec.inDim) {
        throw new RangeError(`projector.apply: expected input [B, T, ${spec.inDim}], got [${x.shape}]`);
      }
      const [B, T] = x.shape;
      return tf.tidy(() => {
        let h: tf.Tensor2D = tf.reshape(x, [B * T, spec.inDim]); // [B*T, in]
        layers.forEach((l, i) => {
          if (i > 0) h = gelu(h); // [B*T, out]
          h = tf.add(tf.matMul(h, variables[`${l.name}.kernel`]!), variables[`${l.name}.bias`]!); // [B*T, out]
        });
        return tf.reshape(h, [B, T, spec.outDim]);
      });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const v of Object.values(variables)) v.dispose();
    },
  };
}

/**
 * A freshly initialised projector, equal in distribution to PyTorch nn.Linear's default init (kaiming_uniform a=sqrt(5)):
 * weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Draws come from core/rng.ts in a fixed order (per layer:
 * weight in PyTorch [out, in] row-major order, then bias), so the same seed gives the same bytes everywhere.
 */
export function buildProjector(opts: ProjectorSpec & { seed: number }): Projector {
  const spec: ProjectorSpec = { type: opts.type, inDim: opts.inDim, outDim: opts.outDim };
  checkSpec(spec, "buildProjector");
  const rng = createRng(opts.seed);
  const init: Record<string, tf.Tensor> = {};
  for (const l of layerNames(spec)) {
    const bound = 1 / Math.sqrt(l.inDim);
    const w = new Float32Array(l.outDim * l.inDim);
    for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-bound, bound);
    const b = new Float32Array(l.outDim);
    for (let i = 0; i < b.length; i++) b[i] = rng.uniform(-bound, bound);
    init[`${l.name}.kernel`] = tf.tidy(() => tf.transpose(tf.tensor2d(w, [l.outDim, l.inDim]))); // [in, out]
    init[`${l.name}.bias`] = tf.tensor1d(b);
  }
  return makeProjector(spec, init);
}

// ---- save -------------------------------------------------------------------------------------------------------

/**
 * The projector's tensors under on-disk names in PyTorch layout (weight [out, in]), for writeSafetensors.
 * New tensors: the caller disposes them.
 */
export function projectorTensors(p: Projector, naming: ProjectorNaming): Record<string, tf.Tensor> {
  const map = projectorWeightMap(naming, p.type);
  const prefix = PREFIXES[naming][0]!;
  const out: Record<string, tf.Tensor> = {};
  for (const [disk, ours] of Object.entries(map.entries)) {
    const [layer, part] = ours.split(".") as [string, string];
    out[prefix + disk] = part === "weight" ? tf.transpose(p.variables[`${layer}.kernel`]!) : tf.clone(p.variables[`${layer}.bias`]!);
  }
  return out;
}

/** The LLaVA config.json keys that describe a projector (for a folder that loadProjector reads back). */
export function projectorConfigJson(p: ProjectorSpec): Json {
  return { mm_projector_type: p.type, mm_hidden_size: p.inDim, hidden_size: p.outDim };
}

// ---- load -------------------------------------------------------------------------------------------------------

/** Which naming, prefix and type a set of tensor names holds, or undefined when no projector tensors are there. */
export function detectProjectorLayout(names: Iterable<string>): { naming: ProjectorNaming; prefix: string; type: ProjectorType } | undefined {
  const set = new Set(names);
  for (const naming of ["llava", "hf"] as const) {
    for (const prefix of PREFIXES[naming]) {
      for (const type of PROJECTOR_TYPES) {
        const map = DISK_LAYERS[naming][type];
        if (!map) continue;
        const first = Object.keys(map)[0]!;
        if (set.has(`${prefix}${first === "" ? "" : first + "."}weight`)) return { naming, prefix, type };
      }
    }
  }
  return undefined;
}

/** A TensorSource over one safetensors file (loadComponent works on sources). */
async function fileSource(file: string): Promise<TensorSource> {
  const header = await readHeader(file);
  return {
    dir: file,
    names: [...header.tensors.keys()],
    info: (n) => {
      const t = header.tensors.get(n);
      return t ? { ...t, file } : undefined;
    },
    read: (names) => readTensors(header, names),
  };
}

/** The spec a config.json gives, when it gives one (LLaVA keys, or an HF `llava` composite); dims may be undefined. */
function specFromConfig(json: Json, file: string): Partial<ProjectorSpec> | undefined {
  if (json.mm_projector_type !== undefined || json.mm_hidden_size !== undefined) {
    const r = new JsonReader(json);
    const type = r.str("mm_projector_type", "linear"); // LLaVA's builder default
    const inDim = r.int("mm_hidden_size");
    const outDim = r.int("hidden_size");
    r.done(file);
    if (!PROJECTOR_TYPES.includes(type as ProjectorType)) {
      throw new ConfigError([`mm_projector_type: "${type}" is not supported (valid: ${PROJECTOR_TYPES.join(", ")})`], file);
    }
    return { type: type as ProjectorType, inDim, outDim };
  }
  if (json.model_type === "llava" && typeof json.vision_config === "object" && json.vision_config !== null) {
    const act = json.projector_hidden_act ?? "gelu";
    if (act !== "gelu") throw new ConfigError([`projector_hidden_act: "${String(act)}" is not supported (only "gelu", exact erf)`], file);
    const vc = json.vision_config as Json;
    const tc = (json.text_config ?? {}) as Json;
    return {
      type: "mlp2x_gelu",
      inDim: typeof vc.hidden_size === "number" ? vc.hidden_size : undefined,
      outDim: typeof tc.hidden_size === "number" ? tc.hidden_size : undefined,
    };
  }
  return undefined;
}

/**
 * Loads a projector from: a folder with config.json holding LLaVA keys (mm_projector_type, mm_hidden_size,
 * hidden_size); an HF LLaVA composite folder (model_type llava: multi_modal_projector.*); a single .safetensors
 * file (type and dims from tensor names and shapes); or a folder holding mm_projector.safetensors.
 * Missing, unexpected and mis-shaped tensors are reported by name with both shapes.
 */
export async function loadProjector(source: string): Promise<Projector> {
  const st = await stat(source).catch(() => undefined);
  let src: TensorSource;
  let fromConfig: Partial<ProjectorSpec> | undefined;
  let configFile: string | undefined;
  if (st?.isFile()) {
    if (!source.endsWith(".safetensors")) throw new WeightsError(`${source}: a projector file must be .safetensors`, source);
    src = await fileSource(source);
  } else {
    const dir = await resolveModelDir(source);
    configFile = path.join(dir, "config.json");
    const json = await stat(configFile).then(() => readConfigJson(dir), () => undefined);
    fromConfig = json ? specFromConfig(json, configFile) : undefined;
    const adapter = path.join(dir, "mm_projector.safetensors");
    src = await stat(adapter).then(() => fileSource(adapter), () => openTensorSource(dir));
  }
  const layout = detectProjectorLayout(src.names);
  if (!layout) {
    throw new WeightsError(
      `${src.dir}: no projector tensors found (looked for ${Object.values(PREFIXES).flat().map((p) => `${p}*`).join(", ")})`,
      src.dir,
    );
  }
  const type = fromConfig?.type ?? layout.type;
  if (type !== layout.type) {
    throw new WeightsError(`${src.dir}: ${configFile} says mm_projector_type "${type}" but the tensors hold a "${layout.type}" projector (${layout.prefix}*)`, src.dir);
  }
  // Dims: from the config where it gives them (then shapes are checked against it), else from the tensor shapes.
  const firstWeight = Object.keys(projectorWeightMap(layout.naming, type).entries)[0]!;
  const shape = src.info(layout.prefix + firstWeight)?.shape;
  if (!shape || shape.length !== 2) throw new WeightsError(`${src.dir}: tensor "${layout.prefix + firstWeight}" must be 2-D, got [${shape ?? "?"}]`, src.dir, layout.prefix + firstWeight);
  const spec: ProjectorSpec = { type, inDim: fromConfig?.inDim ?? shape[1]!, outDim: fromConfig?.outDim ?? shape[0]! };
  checkSpec(spec, configFile ?? src.dir);
  const hf = await loadComponent(src, projectorComponent(spec, layout.naming, layout.prefix));
  const init: Record<string, tf.Tensor> = {};
  for (const l of layerNames(spec)) {
    const w = hf.get(`${l.name}.weight`)!;
    init[`${l.name}.kernel`] = tf.transpose(w); // [out, in] -> [in, out]
    w.dispose();
    init[`${l.name}.bias`] = hf.get(`${l.name}.bias`)!;
  }
  return makeProjector(spec, init);
}
