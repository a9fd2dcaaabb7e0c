// FastV (Chen et al., ECCV 2024; official pkunlp-icler/FastV, modeling_llama.py AGG_LAYER branch): entering layer K
// (default 2), rank the visual tokens by the attention they receive from the last prompt token in layer K-1,
// averaged over heads, and keep the top (1 - R) share (default R = 50 %) or an absolute budget; layers >= K see only
// the kept tokens (this decoder removes them, KV caches included, instead of the official attention-mask variant).
// The decoder computes only that one attention row per layer (q of the last token against all keys, softmax).
import { ConfigError } from "../core/errors.js";
import { keepTopScored, type InLlmReducer } from "./in_llm.js";

export interface FastVOptions {
  /** K: the first layer that sees the kept tokens (0-based, 1..L-1); ranked by layer K-1. Default 2. */
  layer?: number;
  /** R: the share of visual tokens dropped (default 0.5); ignored when `budget` is given. */
  ratio?: number;
  /** Visual tokens kept per image (absolute); overrides `ratio`. */
  budget?: number;
}

/** round(N · (1 - R)), or the budget. */
export function fastvKeep(visualTokens: number, opts: FastVOptions): number {
  return opts.budget ?? Math.round(visualTokens * (1 - (opts.ratio ?? 0.5)));
}

export function fastvReducer(opts: FastVOptions = {}): InLlmReducer {
  const layer = opts.layer ?? 2;
  const problems: string[] = [];
  if (!Number.isInteger(layer) || layer < 1) problems.push(`fastv.layer: must be an integer >= 1 (ranked by layer K-1), got ${String(layer)}`);
  if (opts.budget !== undefined && (!Number.isInteger(opts.budget) || opts.budget < 0)) problems.push(`fastv.budget: must be a non-negative integer, got ${String(opts.budget)}`);
  if (opts.ratio !== undefined && !(opts.ratio >= 0 && opts.ratio <= 1)) problems.push(`fastv.ratio: must be in [0, 1], got ${String(opts.ratio)}`);
  if (problems.length) throw new ConfigError(problems);
  return {
    name: "fastv",
    params: { layer, ...(opts.budget !== undefined ? { budget: opts.budget } : { ratio: opts.ratio ?? 0.5 }) },
    decisions(layers, visualTokens) {
      if (layer >= layers) throw new ConfigError([`fastv.layer: K = ${layer} must be below the LLM's ${layers} layers`]);
      const keep = fastvKeep(visualTokens, opts);
      if (keep > visualTokens) throw new ConfigError([`fastv.budget: ${keep} exceeds the ${visualTokens} visual tokens`]);
      return [{ layer, attention: "last" }];
    },
    decide: (d) => keepTopScored(d, fastvKeep(d.visualTokens, opts), "fastv"),
  };
}
