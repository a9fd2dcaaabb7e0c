// `vzt inspect`: what a checkpoint is and how each of its tensor names maps, from config.json and the safetensors
// index or headers only (no tensor data is read), so it is cheap before a multi-GB download.
import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { WeightsError } from "../core/errors.js";
import { formatBytes } from "../core/log.js";
import { parseClipVisionConfig, clipVisionComponent, CLIP_VISION_OUTSIDE_IGNORE, type ClipVisionConfig } from "./clip_vision.js";
import { readConfigJson, type Json } from "./config_json.js";
import { parseRepoId, resolveModelDir } from "./hub.js";
import { llmComponent } from "./llama_weights.js";
import { parseLlmConfig, type LlmConfig } from "./llm_config.js";
import { projectorComponent, type ProjectorSpec, type ProjectorType } from "./projector.js";
import { readHeader, DTYPE_BITS } from "./safetensors.js";
import { classifyNames, expandMap, type Component } from "./weights.js";

export interface InspectedComponent {
  name: "vision_tower" | "projector" | "language_model";
  family: string;
  prefix: string;
  parameters: number;
  sizes: Record<string, number | string | boolean>;
}

export interface Inspection {
  source: string;
  dir: string;
  /** Model family: llava (HF composite), llava-original, clip_vision_model, clip, llama, qwen2. */
  family: string;
  modelType: string;
  dtype: string;
  components: InspectedComponent[];
  parameters: number;
  /** Where the names came from: the index, the safetensors headers, or (no weights listed) the config alone. */
  namesFrom: string;
  tensors: number;
  mapped: number;
  ignored: number;
  unknown: string[];
  /** Every tensor name -> mapped (component and our name), ignored (why) or unknown. */
  names: Record<string, string>;
  notes: string[];
}

interface Parts {
  family: string;
  components: { name: InspectedComponent["name"]; component: Component; sizes: InspectedComponent["sizes"] }[];
  notes: string[];
}

const clipSizes = (c: ClipVisionConfig) => ({ hidden: c.hidden, intermediate: c.intermediate, layers: c.layers, heads: c.heads, image_size: c.imageSize, patch_size: c.patchSize, tokens: c.numPositions, hidden_act: c.hiddenAct });
const llmSizes = (c: LlmConfig) => ({ family: c.family, hidden: c.hidden, intermediate: c.intermediate, layers: c.layers, heads: c.heads, kv_heads: c.kvHeads, head_dim: c.headDim, vocab: c.vocab, rope_theta: c.ropeTheta, tied_embeddings: c.tieEmbeddings });

/** Which components a config describes, dispatched on model_type. */
function partsOf(json: Json, file: string): Parts {
  const modelType = String(json.model_type ?? "");
  const notes: string[] = [];
  if (modelType === "llava" && json.text_config !== undefined) {
    const vision = parseClipVisionConfig(json, file);
    const llm = parseLlmConfig(json, file);
    const proj: ProjectorSpec = { type: "mlp2x_gelu", inDim: vision.hidden, outDim: llm.hidden };
    if (json.projector_hidden_act !== undefined && json.projector_hidden_act !== "gelu") notes.push(`projector_hidden_act "${String(json.projector_hidden_act)}" (only gelu is supported)`);
    return {
      family: "llava",
      components: [
        { name: "vision_tower", component: clipVisionComponent(vision), sizes: clipSizes(vision) },
        { name: "projector", component: projectorComponent(proj, "hf"), sizes: { type: proj.type, in: proj.inDim, out: proj.outDim } },
        { name: "language_model", component: llmComponent(llm), sizes: llmSizes(llm) },
      ],
      notes,
    };
  }
  if (modelType === "llava") {
    // Original LLaVA (liuhaotian/llava-v1.5-*): LLaMA at the top level plus model.mm_projector.*; the vision tower
    // is a separate repo named by mm_vision_tower.
    const llm = parseLlmConfig(json, file);
    const type = (json.mm_projector_type ?? "linear") as ProjectorType;
    const proj: ProjectorSpec = { type, inDim: Number(json.mm_hidden_size), outDim: llm.hidden };
    notes.push(`vision tower is not in this checkpoint: mm_vision_tower = ${JSON.stringify(json.mm_vision_tower)}`);
    return {
      family: "llava-original",
      components: [
        { name: "projector", component: projectorComponent(proj, "llava"), sizes: { type: proj.type, in: proj.inDim, out: proj.outDim } },
        { name: "language_model", component: llmComponent(llm), sizes: llmSizes(llm) },
      ],
      notes,
    };
  }
  if (modelType === "clip_vision_model" || modelType === "clip") {
    const vision = parseClipVisionConfig(json, file);
    return { family: modelType, components: [{ name: "vision_tower", component: clipVisionComponent(vision), sizes: clipSizes(vision) }], notes };
  }
  if (modelType === "llama" || modelType === "qwen2") {
    const llm = parseLlmConfig(json, file);
    return { family: modelType, components: [{ name: "language_model", component: llmComponent(llm), sizes: llmSizes(llm) }], notes };
  }
  throw new WeightsError(`${file}: model_type ${JSON.stringify(modelType)} is not supported (supported: llava, clip_vision_model, clip, llama, qwen2)`, file);
}

/** Tensor names and (when headers are present) shapes and dtypes, without reading tensor data. */
async function listTensors(dir: string, notes: string[]): Promise<{ names: string[]; shapes: Map<string, number[]>; dtypes: Map<string, string>; from: string }> {
  const entries = await readdir(dir);
  const shapes = new Map<string, number[]>();
  const dtypes = new Map<string, string>();
  const readHeaders = async (files: string[]) => {
    for (const f of files) {
      const h = await readHeader(path.join(dir, f));
      for (const [n, t] of h.tensors) {
        shapes.set(n, t.shape);
        dtypes.set(n, t.dtype);
      }
    }
  };
  for (const index of ["model.safetensors.index.json", "pytorch_model.bin.index.json"]) {
    if (!entries.includes(index)) continue;
    const weightMap = (JSON.parse(await readFile(path.join(dir, index), "utf8")) as { weight_map?: Record<string, string> }).weight_map ?? {};
    const shards = [...new Set(Object.values(weightMap))];
    if (index.startsWith("pytorch")) {
      notes.push(`weights are PyTorch pickles (${shards.length} shards): convert them to safetensors before loading (vzt refuses pickles)`);
    } else {
      await readHeaders(shards.filter((s) => entries.includes(s)));
      if (shards.some((s) => !entries.includes(s))) notes.push(`shards not present locally: shapes and dtypes from config.json (names from ${index})`);
    }
    return { names: Object.keys(weightMap), shapes, dtypes, from: index };
  }
  const files = entries.filter((f) => f.endsWith(".safetensors")).sort();
  if (files.length) {
    await readHeaders(files);
    return { names: [...shapes.keys()], shapes, dtypes, from: files.join(", ") };
  }
  notes.push("no safetensors files or index: tensor names below are the ones the config implies");
  return { names: [], shapes, dtypes, from: "config.json" };
}

/** Inspects a model folder or Hub repo (only config.json and the index are fetched for a repo id). */
export async function inspectModel(source: string): Promise<Inspection> {
  const isRepo = parseRepoId(source) !== undefined && !(await stat(source).then(() => true, () => false));
  const dir = isRepo ? await resolveModelDir(source, { files: ["config.json", "model.safetensors.index.json"] }) : await resolveModelDir(source);
  const json = await readConfigJson(dir);
  const parts = partsOf(json, path.join(dir, "config.json"));
  const { names: listed, shapes, dtypes, from } = await listTensors(dir, parts.notes);
  const comps = parts.components.map((p) => p.component);
  // Names implied by the config stand in when the folder lists none.
  const implied = new Map<string, number[]>();
  for (const c of comps) {
    for (const [hf, ours] of expandMap(c)) implied.set(hf, [...(c.shapes?.[ours] ?? [])]);
  }
  const names = listed.length ? listed : [...implied.keys()];
  const status = classifyNames(names, comps, CLIP_VISION_OUTSIDE_IGNORE.filter(() => parts.family === "clip"));
  const out: Record<string, string> = {};
  const unknown: string[] = [];
  let mapped = 0;
  let ignored = 0;
  const params = new Map<string, number>();
  for (const [n, s] of status) {
    if (s.status === "mapped") {
      mapped++;
      out[n] = `mapped: ${s.component} ${s.ours}`;
      const shape = shapes.get(n) ?? implied.get(n) ?? [];
      params.set(s.component, (params.get(s.component) ?? 0) + shape.reduce((a, d) => a * d, 1));
    } else if (s.status === "ignored") {
      ignored++;
      out[n] = `ignored: ${s.why}`;
    } else {
      unknown.push(n);
      out[n] = "unknown";
    }
  }
  const components = parts.components.map((p) => ({
    name: p.name,
    family: p.component.map.family,
    prefix: p.component.prefix,
    parameters: params.get(p.component.map.family) ?? 0,
    sizes: p.sizes,
  }));
  const dtypeSet = [...new Set(dtypes.values())].filter((d) => d in DTYPE_BITS);
  const dtype = dtypeSet.length ? dtypeSet.join(", ") : typeof json.torch_dtype === "string" ? `${json.torch_dtype} (config torch_dtype)` : "unknown";
  return {
    source,
    dir,
    family: parts.family,
    modelType: String(json.model_type),
    dtype,
    components,
    parameters: components.reduce((a, c) => a + c.parameters, 0),
    namesFrom: from,
    tensors: names.length,
    mapped,
    ignored,
    unknown,
    names: out,
    notes: parts.notes,
  };
}

function human(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
}

/** A human-readable report. */
export function formatInspection(r: Inspection): string {
  const lines = [
    `model: ${r.source}${r.dir !== r.source ? `  (${r.dir})` : ""}`,
    `family: ${r.family} (model_type ${r.modelType}), dtype ${r.dtype}`,
    `parameters: ${human(r.parameters)} (${r.parameters.toLocaleString("en-US")}), ~${formatBytes(r.parameters * 2)} in 16-bit, ~${formatBytes(r.parameters * 4)} as float32`,
    "",
  ];
  for (const c of r.components) {
    lines.push(`${c.name} [${c.family}] prefix "${c.prefix}": ${human(c.parameters)} parameters`);
    lines.push("  " + Object.entries(c.sizes).map(([k, v]) => `${k} ${v}`).join(", "));
  }
  lines.push("", `tensors (${r.namesFrom}): ${r.tensors} total, ${r.mapped} mapped, ${r.ignored} ignored, ${r.unknown.length} unknown`);
  const ignoredWhy = new Map<string, number>();
  for (const s of Object.values(r.names)) if (s.startsWith("ignored")) ignoredWhy.set(s, (ignoredWhy.get(s) ?? 0) + 1);
  for (const [why, n] of ignoredWhy) lines.push(`  ${n} x ${why}`);
  for (const u of r.unknown.slice(0, 50)) lines.push(`  unknown: ${u}`);
  if (r.unknown.length > 50) lines.push(`  ... and ${r.unknown.length - 50} more unknown`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join("\n");
}
