// The methods of an eval side by side: grid cells grouped by method (one report column, one plot line each) and by
// retained visual tokens (one report row each). `method@B` cells sit at their budget B (for in-LLM methods, FLOPs-
// equivalent tokens); schedule-file cells (`gsearch@<file>`, `psigmoid@<file>`) at their measured FLOPs-equivalent
// tokens, rounded, under their own label ("gsearch", "psigmoid (fitted)"). Method none is the full-budget reference.
import type { EvalResults } from "./aggregate.js";

const BUDGET_CELL = /^[a-z][a-z0-9_]*@\d+$/;

/** The column / line a cell belongs to: its method, "(fitted)" for a schedule file of a method that also takes budgets. */
export function methodLabel(key: string, method: string): string {
  if (BUDGET_CELL.test(key) || method === "gsearch") return method;
  return `${method} (fitted)`;
}

/** Retained visual tokens a cell is reported at: the budget of `method@B`, else the measured (FLOPs-equivalent) count. */
export function retainedTokens(r: EvalResults, key: string): number {
  const c = r.cells[key]!;
  if (BUDGET_CELL.test(key) || c.visual_tokens === null) return c.budget;
  return Math.round(c.visual_tokens);
}

export interface SideBySide {
  /** The full-budget reference cell (method none), if any. */
  full: string | undefined;
  /** Column labels, in grid order of first appearance (none excluded). */
  methods: string[];
  /** Retained-token rows, descending. */
  rows: number[];
  /** The cell key at (method label, row), if the grid has one. */
  at(method: string, row: number): string | undefined;
}

/** Groups the grid's cells by method label and retained tokens (the first cell wins a repeated position). */
export function sideBySide(r: EvalResults): SideBySide {
  const cells = new Map<string, string>();
  const methods: string[] = [];
  const rows = new Set<number>();
  let full: string | undefined;
  for (const key of r.grid) {
    const c = r.cells[key];
    if (!c) continue;
    if (c.method === "none") {
      full ??= key;
      continue;
    }
    const m = methodLabel(key, c.method);
    const row = retainedTokens(r, key);
    if (!methods.includes(m)) methods.push(m);
    rows.add(row);
    const at = `${m}\t${row}`;
    if (!cells.has(at)) cells.set(at, key);
  }
  return { full, methods, rows: [...rows].sort((a, b) => b - a), at: (m, row) => cells.get(`${m}\t${row}`) };
}
