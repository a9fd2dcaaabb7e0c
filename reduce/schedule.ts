// Per-layer keep schedules for in-LLM visual-token reduction (G-Search / P-Sigmoid, arXiv 2412.00556): the type,
// its validation, JSON I/O and the prefill-FLOPs accounting used to compare schedules with uniform budgets.
//
// keep[l] = visual tokens entering decoder layer l (0-based). Layers 0 and 1 are never reduced (the paper finds the
// first layer's ranking unreliable; the 0-based indexing is our reading), so keep[0] = keep[1] = numVisual; at a
// layer l >= 2 with keep[l] < keep[l-1] the decoder keeps the top keep[l] survivors ranked by layer l-1's
// text-to-vision attention (reduce/in_llm.ts). keep is non-increasing: a dropped token never comes back.
//
// FLOPs: FastV's per-layer count with a SwiGLU MLP, F(n) = 4nd² + 2n²d + 3ndm (train/dry_run.ts prefillFlops with
// layers = 1), n = text tokens + keep[l]. A schedule's "FLOPs-equivalent retained tokens" B solves
// Σ_l F(text + keep[l]) = L · F(text + B) (reference/reduction_methods.md §4), in closed form (F is quadratic in n).
import { readFileSync } from "node:fs";
import { ConfigError } from "../core/errors.js";
import { writeJsonAtomic } from "../eval/results.js";
import { prefillFlops } from "../train/dry_run.js";

/** Layers at the bottom of the LLM that always see every visual token. */
export const FULL_LAYERS = 2;

export interface KeepSchedule {
  numLayers: number;
  /** Visual tokens per image entering the LLM (576 for LLaVA-1.5). */
  numVisual: number;
  /** keep[l] = visual tokens entering layer l; keep[0] = keep[1] = numVisual, non-increasing. */
  keep: number[];
  /** Provenance: method, parameters, search accuracy, FLOPs-equivalent tokens... (free-form JSON). */
  meta?: Record<string, unknown>;
}

/** The model dimensions the FLOPs accounting needs (LLaVA-1.5-7B: 32 layers, 576 visual, d 4096, m 11008). */
export interface FlopsDims {
  numLayers: number;
  numVisual: number;
  /** Non-visual prompt tokens (system + instruction + question), e.g. ~40 for VQA prompts. */
  textTokens: number;
  hidden: number;
  intermediate: number;
}

const FORMAT = "vzt-keep-schedule";

/** The unreduced schedule: every layer sees all numVisual tokens. */
export function fullSchedule(numLayers: number, numVisual: number): KeepSchedule {
  return { numLayers, numVisual, keep: Array.from({ length: numLayers }, () => numVisual) };
}

/**
 * Checks `s` is a KeepSchedule and returns it (as a fresh object); throws one ConfigError listing every problem,
 * each naming the key and layer (`keep[5] (layer 5): ...`), and the file when given.
 */
export function validateSchedule(s: unknown, file?: string): KeepSchedule {
  const problems: string[] = [];
  const fail = () => new ConfigError(problems, file);
  if (s === null || typeof s !== "object" || Array.isArray(s)) throw new ConfigError([`schedule: expected an object {numLayers, numVisual, keep}, got ${JSON.stringify(s)}`], file);
  const o = s as Record<string, unknown>;
  const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
  if (!isInt(o.numLayers) || o.numLayers < FULL_LAYERS + 1) problems.push(`numLayers: must be an integer >= ${FULL_LAYERS + 1}, got ${JSON.stringify(o.numLayers)}`);
  if (!isInt(o.numVisual) || o.numVisual < 1) problems.push(`numVisual: must be an integer >= 1, got ${JSON.stringify(o.numVisual)}`);
  if (!Array.isArray(o.keep)) problems.push(`keep: must be an array of per-layer token counts, got ${JSON.stringify(o.keep)}`);
  if (o.meta !== undefined && (o.meta === null || typeof o.meta !== "object" || Array.isArray(o.meta))) problems.push(`meta: must be an object when present`);
  if (problems.length) throw fail();
  const L = o.numLayers as number;
  const N = o.numVisual as number;
  const keep = o.keep as unknown[];
  if (keep.length !== L) problems.push(`keep: has ${keep.length} entries, numLayers is ${L} (one entry per layer)`);
  keep.forEach((k, l) => {
    const at = `keep[${l}] (layer ${l})`;
    if (!isInt(k) || k < 0 || k > N) {
      problems.push(`${at}: must be an integer in [0, ${N}], got ${JSON.stringify(k)}`);
      return;
    }
    if (l < FULL_LAYERS && k !== N) problems.push(`${at}: layers 0 and 1 are never reduced, so it must be ${N}, got ${k}`);
    const prev = keep[l - 1];
    if (l > 0 && isInt(prev) && k > prev) problems.push(`${at}: keeps ${k} tokens, more than layer ${l - 1}'s ${prev} (keep must be non-increasing)`);
  });
  if (problems.length) throw fail();
  const out: KeepSchedule = { numLayers: L, numVisual: N, keep: (keep as number[]).slice() };
  if (o.meta !== undefined) out.meta = { ...(o.meta as Record<string, unknown>) };
  return out;
}

/** Reads and validates a schedule JSON file (errors name the file and the layer). */
export function readSchedule(file: string): KeepSchedule {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError([`cannot read keep schedule: ${(e as Error).message}`], file);
  }
  if (raw !== null && typeof raw === "object" && "format" in raw && (raw as { format: unknown }).format !== FORMAT) {
    throw new ConfigError([`format: expected "${FORMAT}", got ${JSON.stringify((raw as { format: unknown }).format)}`], file);
  }
  const { format: _f, version: _v, ...rest } = raw as Record<string, unknown>;
  return validateSchedule(rest, file);
}

/** Validates and writes `s` as JSON (atomically: a crash never leaves a torn file). */
export function writeSchedule(file: string, s: KeepSchedule): void {
  const v = validateSchedule(s, file);
  writeJsonAtomic(file, { format: FORMAT, version: 1, numLayers: v.numLayers, numVisual: v.numVisual, keep: v.keep, ...(v.meta ? { meta: v.meta } : {}) });
}

/** FLOPs of one layer with n tokens. */
const layerFlops = (n: number, dims: FlopsDims) => prefillFlops(n, dims.hidden, dims.intermediate, 1);

/** Prefill FLOPs of one prompt through the LLM under `s`: Σ_l F(textTokens + keep[l]). */
export function scheduleFlops(s: Pick<KeepSchedule, "keep">, dims: FlopsDims): number {
  if (s.keep.length !== dims.numLayers) throw new ConfigError([`keep: schedule has ${s.keep.length} layers, the model has ${dims.numLayers}`]);
  let total = 0;
  for (const k of s.keep) total += layerFlops(dims.textTokens + k, dims);
  return total;
}

/** Prefill FLOPs with `budget` visual tokens at every layer: L · F(textTokens + budget). */
export function uniformFlops(budget: number, dims: FlopsDims): number {
  return dims.numLayers * layerFlops(dims.textTokens + budget, dims);
}

/**
 * The visual-token count x (real, may be fractional or negative) with `layers` · F(textTokens + x) = `flops`:
 * the positive root of 2d·n² + (4d² + 3dm)·n - flops/layers = 0, n = textTokens + x (cancellation-free form).
 */
export function tokensForFlops(flops: number, layers: number, dims: FlopsDims): number {
  const d = dims.hidden;
  const a = 2 * d;
  const b = 4 * d * d + 3 * d * dims.intermediate;
  const c = flops / layers;
  const n = (2 * c) / (b + Math.sqrt(b * b + 4 * a * c));
  return n - dims.textTokens;
}

/** The uniform budget B (real) whose prefill FLOPs equal the schedule's: Σ_l F(text + keep[l]) = L · F(text + B). */
export function flopsEquivalentTokens(s: Pick<KeepSchedule, "keep">, dims: FlopsDims): number {
  return tokensForFlops(scheduleFlops(s, dims), dims.numLayers, dims);
}
