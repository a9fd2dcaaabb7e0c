// The eval grid: cells `method@budget` (`none@576`, `visionzip@64`, ...) or `method@<schedule file>` (`gsearch@s.json`)
// and the registry of methods a cell can name. A method turns a budget (visual tokens per image) into the values the
// forward takes: a pre-LLM Reducer, and for methods acting inside the LLM (FastV, TopV, P-Sigmoid, keep schedules
// from G-Search) an in-LLM reducer, with every patch entering the LLM.
import { ConfigError } from "../core/errors.js";
import { fastvReducer } from "../reduce/fastv.js";
import { PSIGMOID_TEXT_TOKENS, pSigmoidReducer, scheduleReducer, topvReducer, type InLlmReducer } from "../reduce/in_llm.js";
import { buildReducer, type Reducer } from "../reduce/reducer.js";
import { readSchedule } from "../reduce/schedule.js";

export interface GridCell {
  /** "visionzip@64": the key used in results, logs and reports. */
  key: string;
  method: string;
  /**
   * Visual tokens per image the method keeps; for an in-LLM method the tokens kept after its reduction layer
   * (P-Sigmoid: FLOPs-equivalent tokens); for a schedule file the mean over layers of its kept counts.
   */
  budget: number;
  /** The schedule file of a `method@<file>` cell. */
  file?: string;
}

/** What a method needs to know about the model before it builds. */
export interface MethodContext {
  /** Patch tokens of the vision tower (576 for CLIP ViT-L/14-336): the full budget. */
  patches: number;
  seed: number;
  /** LLM sizes (in-LLM methods check their layers against it; P-Sigmoid solves its FLOPs budget with them). */
  llm?: { layers: number; hidden: number; intermediate: number };
}

/** What a cell runs with. */
export interface MethodBuild {
  reducer: Reducer;
  /** Reduction inside the LLM (passed to the prefill forward with the splice's visual positions). */
  inLlm?: InLlmReducer;
}

export interface GridMethod {
  describe: string;
  /** Builds the cell's reducer; throws ConfigError naming the cell when the budget does not fit. */
  build(budget: number, ctx: MethodContext, key: string): MethodBuild;
  /** For `method@<file>` cells: builds from a keep-schedule file (reduce/schedule.ts). */
  buildFromFile?(file: string, ctx: MethodContext, key: string): MethodBuild;
}

const full = (key: string, budget: number, ctx: MethodContext) => {
  if (budget !== ctx.patches) {
    throw new ConfigError([`grid: "${key}": method "none" keeps every patch, so its budget must be ${ctx.patches} (the tower's patch count), got ${budget}`]);
  }
};
const fits = (key: string, budget: number, ctx: MethodContext) => {
  if (budget > ctx.patches) throw new ConfigError([`grid: "${key}": budget ${budget} exceeds the ${ctx.patches} patch tokens of the vision tower`]);
};

/** Every patch enters the LLM; `inLlm` is checked against the model now (so a bad cell fails before generation). */
const inLlmBuild = (key: string, ctx: MethodContext, make: () => InLlmReducer): MethodBuild => {
  let inLlm: InLlmReducer;
  try {
    inLlm = make();
    if (ctx.llm) inLlm.decisions(ctx.llm.layers, ctx.patches);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.problems.map((p) => `grid: "${key}": ${p}`));
    throw e;
  }
  return { reducer: buildReducer("none"), inLlm };
};
/** The paper's layer, or the deepest that fits an LLM of fewer layers (tiny test models): min(layer, L - below). */
const shallow = (layer: number, below: number, ctx: MethodContext) => (ctx.llm ? Math.max(0, Math.min(layer, ctx.llm.layers - below)) : layer);
const scheduleFile = (name: string) => (file: string, ctx: MethodContext, key: string) => inLlmBuild(key, ctx, () => scheduleReducer(readSchedule(file), name));

/** Grid methods by name (an unknown name lists the valid ones). */
export const GRID_METHODS: Readonly<Record<string, GridMethod>> = Object.freeze({
  none: {
    describe: "all patch tokens (LLaVA default), the full-budget baseline",
    build: (budget, ctx, key) => (full(key, budget, ctx), { reducer: buildReducer("none") }),
  },
  visionzip: {
    describe: "VisionZip dominant + contextual tokens (official 54+10 / 108+20 / 162+30 splits)",
    build: (budget, ctx, key) => (fits(key, budget, ctx), { reducer: buildReducer("visionzip", { budget }) }),
  },
  uniform: {
    describe: "evenly spaced patches",
    build: (budget, ctx, key) => (fits(key, budget, ctx), { reducer: buildReducer("uniform", { budget }) }),
  },
  pool: {
    describe: "2-D average pooling of the patch grid",
    build: (budget, ctx, key) => (fits(key, budget, ctx), { reducer: buildReducer("pool", { budget }) }),
  },
  random: {
    describe: "random patches (seeded by the eval seed)",
    build: (budget, ctx, key) => (fits(key, budget, ctx), { reducer: buildReducer("random", { budget, seed: ctx.seed }) }),
  },
  fastv: {
    describe: "FastV inside the LLM: from layer K = 2 keep the `budget` visual tokens the last prompt token attends to most in layer K-1",
    build: (budget, ctx, key) => (fits(key, budget, ctx), inLlmBuild(key, ctx, () => fastvReducer({ layer: shallow(2, 1, ctx), budget }))),
  },
  topv: {
    describe: "TopV inside the LLM: at layer Li = 2 rank by optimal transport (Sinkhorn) of the layer's input vs post-attention norm, keep `budget` from Li + 1",
    build: (budget, ctx, key) => (fits(key, budget, ctx), inLlmBuild(key, ctx, () => topvReducer({ layer: shallow(2, 2, ctx), budget }))),
  },
  psigmoid: {
    describe: "P-Sigmoid keep schedule inside the LLM at `budget` FLOPs-equivalent tokens (default shape), or a fitted schedule file",
    build: (budget, ctx, key) => {
      fits(key, budget, ctx);
      if (!ctx.llm) throw new ConfigError([`grid: "${key}": P-Sigmoid needs the LLM's sizes to solve its FLOPs budget`]);
      if (ctx.llm.layers < 3) throw new ConfigError([`grid: "${key}": P-Sigmoid needs an LLM of at least 3 layers (layers 0 and 1 are never reduced), this one has ${ctx.llm.layers}`]);
      const dims = { numLayers: ctx.llm.layers, numVisual: ctx.patches, textTokens: PSIGMOID_TEXT_TOKENS, hidden: ctx.llm.hidden, intermediate: ctx.llm.intermediate };
      return inLlmBuild(key, ctx, () => pSigmoidReducer(budget, dims));
    },
    buildFromFile: scheduleFile("psigmoid"),
  },
  gsearch: {
    describe: "a G-Search keep schedule inside the LLM, from its JSON file (gsearch@path/to/schedule.json)",
    build: (_budget, _ctx, key) => {
      throw new ConfigError([`grid: "${key}": gsearch runs a searched schedule: write gsearch@<schedule file>`]);
    },
    buildFromFile: scheduleFile("gsearch"),
  },
});

const CELL = /^\s*([a-z][a-z0-9_]*)\s*@\s*(\d+)\s*$/;
const FILE_CELL = /^\s*([a-z][a-z0-9_]*)@(.+?)\s*$/;

/**
 * Parses `method@budget`, or `method@<schedule file>` for methods that run keep schedules (the file is read here:
 * the cell's budget is its mean kept count over layers); an unknown method lists the valid ones.
 */
export function parseGridCell(spec: string): GridCell {
  const m = CELL.exec(spec) ?? FILE_CELL.exec(spec);
  if (!m) throw new ConfigError([`grid: "${spec}" is not method@budget, e.g. visionzip@64 or none@576`]);
  const method = m[1]!;
  if (!Object.prototype.hasOwnProperty.call(GRID_METHODS, method)) {
    throw new ConfigError([`grid: "${spec}": unknown method "${method}"; valid: ${Object.keys(GRID_METHODS).join(", ")}`]);
  }
  if (!/^\d+$/.test(m[2]!.trim())) {
    if (!GRID_METHODS[method]!.buildFromFile) throw new ConfigError([`grid: "${spec}" is not method@budget, e.g. visionzip@64 or none@576`]);
    const file = m[2]!;
    const s = readSchedule(file);
    return { key: `${method}@${file}`, method, budget: Math.round(s.keep.reduce((a, k) => a + k, 0) / s.keep.length), file };
  }
  const budget = Number(m[2]);
  if (!Number.isSafeInteger(budget) || budget < 1) throw new ConfigError([`grid: "${spec}": budget must be a positive integer`]);
  return { key: `${method}@${budget}`, method, budget };
}

/** Parses every cell; duplicates are refused. */
export function parseGrid(specs: readonly string[]): GridCell[] {
  const cells = specs.map(parseGridCell);
  const seen = new Set<string>();
  for (const c of cells) {
    if (seen.has(c.key)) throw new ConfigError([`grid: "${c.key}" is listed twice`]);
    seen.add(c.key);
  }
  return cells;
}

/** Builds a cell's method. */
export function buildCell(cell: GridCell, ctx: MethodContext): MethodBuild {
  const m = GRID_METHODS[cell.method]!;
  if (cell.file !== undefined) return m.buildFromFile!(cell.file, ctx, cell.key);
  return m.build(cell.budget, ctx, cell.key);
}

/** The full-budget baseline cell of a grid (method none), if any: the "% of full" reference. */
export function baselineCell(cells: readonly GridCell[]): GridCell | undefined {
  return cells.find((c) => c.method === "none");
}
