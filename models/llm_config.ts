// LLaMA-family LLM hyperparameters from a HF config.json: `llama`, `qwen2`, and `llava` (composite llava-hf repo with a
// nested `text_config`, or the original flat LLaVA config). Keys the file omits take HF's class defaults.
import path from "node:path";
import { ConfigError } from "../core/errors.js";
import { JsonReader, readConfigJson, type Json } from "./config_json.js";

export type LlmFamily = "llama" | "qwen2";

/** RoPE frequency scaling. Only `linear` is implemented (inv_freq / factor); others are refused by name. */
export interface RopeScaling {
  type: "linear";
  factor: number;
}

export interface LlmConfig {
  family: LlmFamily;
  /** The config's top-level model_type (`llama`, `qwen2`, `llava`). */
  modelType: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  vocab: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  eps: number;
  maxPositions: number;
  tieEmbeddings: boolean;
  /** q/k/v projections carry biases (qwen2 always; llama with `attention_bias`). */
  qkvBias: boolean;
  /** o_proj carries a bias (llama with `attention_bias`; never qwen2). */
  oBias: boolean;
  /** gate/up/down carry biases (llama `mlp_bias`). */
  mlpBias: boolean;
  bosTokenId: number | undefined;
  eosTokenIds: number[];
  padTokenId: number | undefined;
  /** Where the LLM's tensors sit in the checkpoint: "" (plain / original LLaVA) or "language_model." (llava-hf). */
  weightPrefix: string;
}

/** HF LlamaConfig / Qwen2Config defaults for keys a config.json may omit. */
const DEFAULTS: Record<LlmFamily, { vocab: number; hidden: number; intermediate: number; layers: number; heads: number; eps: number; theta: number; maxPos: number; bos?: number; eos?: number }> = {
  llama: { vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32, eps: 1e-6, theta: 10000, maxPos: 2048, bos: 1, eos: 2 },
  qwen2: { vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, eps: 1e-6, theta: 10000, maxPos: 32768 },
};

/** Reads `<dir>/config.json` as an LLM config. */
export async function readLlmConfig(dir: string): Promise<LlmConfig> {
  return parseLlmConfig(await readConfigJson(dir), path.join(dir, "config.json"));
}

/** Dispatches on `model_type`; every problem (bad key, unsupported feature) is listed in one ConfigError. */
export function parseLlmConfig(json: Json, file?: string): LlmConfig {
  const top = new JsonReader(json);
  const modelType = top.str("model_type", "");
  if (modelType === "llava") {
    const tc = json.text_config;
    if (tc === undefined || tc === null) {
      // Original LLaVA (liuhaotian/llava-v1.5-*): a flat llama config plus mm_* keys; LLM tensors at the top level.
      return parseFamily(json, "llama", "llava", "", "", file);
    }
    if (typeof tc !== "object" || Array.isArray(tc)) throw new ConfigError(["text_config: expected an object"], file);
    const inner = tc as Json;
    const innerType = typeof inner.model_type === "string" ? inner.model_type : "llama"; // LlavaConfig's default text model
    if (innerType !== "llama" && innerType !== "qwen2") {
      throw new ConfigError([`text_config.model_type: "${innerType}" is not supported (supported: llama, qwen2)`], file);
    }
    // A composite model keeps tie_word_embeddings and pad_token_id at the top level (llava-hf's config does).
    const merged: Json = { ...inner };
    for (const k of ["tie_word_embeddings", "pad_token_id"]) if (json[k] !== undefined && inner[k] === undefined) merged[k] = json[k];
    return parseFamily(merged, innerType, "llava", "language_model.", "text_config.", file);
  }
  if (modelType === "llama" || modelType === "qwen2") return parseFamily(json, modelType, modelType, "", "", file);
  throw new ConfigError([`model_type: ${modelType ? `"${modelType}"` : "missing"}; supported: llama, qwen2, llava`], file);
}

function parseFamily(json: Json, family: LlmFamily, modelType: string, weightPrefix: string, keyPrefix: string, file?: string): LlmConfig {
  const d = DEFAULTS[family];
  const r = new JsonReader(json, keyPrefix);
  const hidden = r.int("hidden_size", d.hidden);
  const heads = r.int("num_attention_heads", d.heads);
  const kvHeads = r.int("num_key_value_heads", heads);
  const headDim = r.int("head_dim", Number.isInteger(hidden / heads) ? hidden / heads : NaN);
  const cfg: LlmConfig = {
    family,
    modelType,
    hidden,
    layers: r.int("num_hidden_layers", d.layers),
    heads,
    kvHeads,
    headDim,
    intermediate: r.int("intermediate_size", d.intermediate),
    vocab: r.int("vocab_size", d.vocab),
    ropeTheta: r.num("rope_theta", d.theta),
    ropeScaling: null,
    eps: r.num("rms_norm_eps", d.eps),
    maxPositions: r.int("max_position_embeddings", d.maxPos),
    tieEmbeddings: r.bool("tie_word_embeddings", false),
    qkvBias: family === "qwen2" ? true : r.bool("attention_bias", false),
    oBias: family === "qwen2" ? false : r.bool("attention_bias", false),
    mlpBias: family === "qwen2" ? false : r.bool("mlp_bias", false),
    bosTokenId: optionalId(json, "bos_token_id", d.bos, keyPrefix, r.problems),
    eosTokenIds: idList(json, "eos_token_id", d.eos, keyPrefix, r.problems),
    padTokenId: optionalId(json, "pad_token_id", undefined, keyPrefix, r.problems),
    weightPrefix,
  };
  const act = r.str("hidden_act", "silu");
  if (act !== "silu") r.problems.push(`${keyPrefix}hidden_act: "${act}" is not supported (LLaMA-family MLPs use silu)`);
  if (Number.isFinite(heads) && Number.isFinite(kvHeads) && (kvHeads <= 0 || heads % kvHeads !== 0)) {
    r.problems.push(`${keyPrefix}num_key_value_heads: ${kvHeads} does not divide num_attention_heads ${heads}`);
  }
  if (!Number.isFinite(headDim)) r.problems.push(`${keyPrefix}head_dim: missing and hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  else if (headDim % 2 !== 0) r.problems.push(`${keyPrefix}head_dim: ${headDim} must be even for RoPE`);
  if (family === "qwen2" && r.bool("use_sliding_window", false)) {
    r.problems.push(`${keyPrefix}use_sliding_window: true is not supported (sliding-window attention is not implemented)`);
  }
  cfg.ropeScaling = ropeScaling(json.rope_scaling, keyPrefix, r.problems);
  r.done(file);
  return cfg;
}

function ropeScaling(v: unknown, keyPrefix: string, problems: string[]): RopeScaling | null {
  if (v === undefined || v === null) return null;
  const key = `${keyPrefix}rope_scaling`;
  if (typeof v !== "object" || Array.isArray(v)) {
    problems.push(`${key}: expected null or an object, got ${JSON.stringify(v)}`);
    return null;
  }
  const o = v as Json;
  const type = o.rope_type ?? o.type;
  if (type === "default") return null;
  if (type === "linear") {
    const factor = o.factor;
    if (typeof factor !== "number" || !(factor > 0)) {
      problems.push(`${key}.factor: expected a positive number, got ${JSON.stringify(factor)}`);
      return null;
    }
    return { type: "linear", factor };
  }
  problems.push(`${key}: type ${JSON.stringify(type)} is not supported (supported: null, "default", "linear"; "llama3", "dynamic", "yarn" are not implemented)`);
  return null;
}

function optionalId(json: Json, key: string, fallback: number | undefined, keyPrefix: string, problems: string[]): number | undefined {
  const v = json[key];
  if (v === undefined) return fallback;
  if (v === null) return undefined;
  if (typeof v === "number" && Number.isInteger(v)) return v;
  problems.push(`${keyPrefix}${key}: expected an integer or null, got ${JSON.stringify(v)}`);
  return undefined;
}

function idList(json: Json, key: string, fallback: number | undefined, keyPrefix: string, problems: string[]): number[] {
  const v = json[key];
  if (v === undefined) return fallback === undefined ? [] : [fallback];
  if (v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (list.every((x) => typeof x === "number" && Number.isInteger(x))) return list as number[];
  problems.push(`${keyPrefix}${key}: expected an integer or a list of integers, got ${JSON.stringify(v)}`);
  return [];
}
