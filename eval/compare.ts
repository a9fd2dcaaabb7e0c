// `vzt eval --compare A/results.json B/results.json`: for every cell and benchmark both hold, A's and B's primary
// score and B - A; then per cell the prefill time and the average % of full. Cells or benchmarks only one side has
// are listed, not dropped.
import { readFileSync } from "node:fs";
import { DataError } from "../core/errors.js";
import type { EvalResults } from "./aggregate.js";

export interface CompareRow {
  cell: string;
  benchmark: string;
  metric: string;
  a: number | null;
  b: number | null;
  /** b - a (null when either side is missing). */
  delta: number | null;
}

export interface Comparison {
  rows: CompareRow[];
  /** Per cell: [a, b] prefill ms and average % of full. */
  cells: { cell: string; prefill: [number | null, number | null]; relative: [number | null, number | null] }[];
  text: string;
}

/** Reads a results.json (DataError naming the file when it is not one). */
export function readResults(file: string): EvalResults {
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new DataError(`not a readable results.json: ${(e as Error).message}`, { file });
  }
  const r = j as Partial<EvalResults>;
  if (!r || typeof r !== "object" || !r.results || !r.cells || !Array.isArray(r.grid)) throw new DataError("not an eval results.json (no results / cells / grid)", { file });
  return r as EvalResults;
}

const fmt = (x: number | null, d = 2) => (x === null || !Number.isFinite(x) ? "–" : x.toFixed(d));
const signed = (x: number | null) => (x === null || !Number.isFinite(x) ? "–" : `${x >= 0 ? "+" : ""}${x.toFixed(2)}`);

/** The difference table of two results (B relative to A). Accepts objects or results.json paths. */
export function compareResults(aIn: EvalResults | string, bIn: EvalResults | string): Comparison {
  const a = typeof aIn === "string" ? readResults(aIn) : aIn;
  const b = typeof bIn === "string" ? readResults(bIn) : bIn;
  const cells = [...new Set([...a.grid, ...b.grid])];
  const benches = [...new Set([...(a.benchmarks ?? []), ...(b.benchmarks ?? [])])];
  const rows: CompareRow[] = [];
  for (const cell of cells) {
    for (const bench of benches) {
      const x = a.results[cell]?.[bench];
      const y = b.results[cell]?.[bench];
      if (!x && !y) continue;
      const av = x ? x.score : null;
      const bv = y ? y.score : null;
      rows.push({ cell, benchmark: bench, metric: (x ?? y)!.primary, a: av, b: bv, delta: av !== null && bv !== null ? bv - av : null });
    }
  }
  const cellRows = cells.map((cell) => ({
    cell,
    prefill: [a.cells[cell]?.prefill_ms ?? null, b.cells[cell]?.prefill_ms ?? null] as [number | null, number | null],
    relative: [a.cells[cell]?.average_relative ?? null, b.cells[cell]?.average_relative ?? null] as [number | null, number | null],
  }));
  const lines = [
    "| method@budget | benchmark | metric | A | B | B - A |",
    "| --- | --- | --- | ---: | ---: | ---: |",
    ...rows.map((r) => `| ${r.cell} | ${r.benchmark} | ${r.metric} | ${fmt(r.a)} | ${fmt(r.b)} | ${signed(r.delta)} |`),
    "",
    "| method@budget | prefill ms A | prefill ms B | avg % of full A | avg % of full B |",
    "| --- | ---: | ---: | ---: | ---: |",
    ...cellRows.map((c) => `| ${c.cell} | ${fmt(c.prefill[0])} | ${fmt(c.prefill[1])} | ${fmt(c.relative[0], 1)} | ${fmt(c.relative[1], 1)} |`),
  ];
  return { rows, cells: cellRows, text: lines.join("\n") + "\n" };
}
