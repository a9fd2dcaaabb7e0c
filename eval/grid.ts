// The eval grid: cells `method@budget` (`none@576`, `visionzip@64`, ...) and the registry of methods a cell can name.
// A method turns a budget (visual tokens per image) into the value the forward takes: today a pre-LLM Reducer.
// Methods that act inside the LLM (FastV, G-Search: issue 6) register here too, with their own build.
import { ConfigError } from "../core/errors.js";
import { buildReducer, type Reducer } from "../reduce/reducer.js";

export interface GridCell {
  /** "visionzip@64": the key used in results, logs and reports. */
  key: string;
  method: string;
  /** Visual tokens per image the method keeps. */
  budget: number;
}

/** What a method needs to know about the model before it builds. */
export interface MethodContext {
  /** Patch tokens of the vision tower (576 for CLIP ViT-L/14-336): the full budget. */
  patches: number;
  seed: number;
}

/** What a cell runs with. */
export interface MethodBuild {
  reducer: Reducer;
}

export interface GridMethod {
  describe: string;
  /** Builds the cell's reducer; throws ConfigError naming the cell when the budget does not fit. */
  build(budget: number, ctx: MethodContext, key: string): MethodBuild;
}

const full = (key: string, budget: number, ctx: MethodContext) => {
  if (budget !== ctx.patches) {
    throw new ConfigError([`grid: "${key}": method "none" keeps every patch, so its budget must be ${ctx.patches} (the tower's patch count), got ${budget}`]);
  }
};
const fits = (key: string, budget: number, ctx: MethodContext) => {
  if (budget > ctx.patches) throw new ConfigError([`grid: "${key}": budget ${budget} exceeds the ${ctx.patches} patch tokens of the vision tower`]);
};

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
});

const CELL = /^\s*([a-z][a-z0-9_]*)\s*@\s*(\d+)\s*$/;

/** Parses `method@budget`; an unknown method lists the valid ones. */
export function parseGridCell(spec: string): GridCell {
  const m = CELL.exec(spec);
  if (!m) throw new ConfigError([`grid: "${spec}" is not method@budget, e.g. visionzip@64 or none@576`]);
  const method = m[1]!;
  const budget = Number(m[2]);
  if (!Object.prototype.hasOwnProperty.call(GRID_METHODS, method)) {
    throw new ConfigError([`grid: "${spec}": unknown method "${method}"; valid: ${Object.keys(GRID_METHODS).join(", ")}`]);
  }
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
  return GRID_METHODS[cell.method]!.build(cell.budget, ctx, cell.key);
}

/** The full-budget baseline cell of a grid (method none), if any: the "% of full" reference. */
export function baselineCell(cells: readonly GridCell[]): GridCell | undefined {
  return cells.find((c) => c.method === "none");
}
