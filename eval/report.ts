// report.md: one row per grid cell (method@budget), one column per benchmark (primary score, % of full), then the
// average % of full, prefill time and speedup and KV-cache memory; the methods side by side (one small table per
// metric: rows = retained tokens, columns = methods); a timing table (tower vs reducer) and every metric of every
// benchmark below.
import { formatBytes } from "../core/log.js";
import type { EvalResults } from "./aggregate.js";
import { sideBySide } from "./side_by_side.js";

export const REPORT_FILE = "report.md";

const num = (x: number | null | undefined, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(digits));
const flops = (x: number | null) => (x === null ? "–" : x >= 1e12 ? `${(x / 1e12).toFixed(2)} T` : x >= 1e9 ? `${(x / 1e9).toFixed(2)} G` : `${(x / 1e6).toFixed(2)} M`);

function table(head: string[], rows: string[][]): string[] {
  return [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i === 0 ? " --- " : " ---: ")).join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)];
}

/**
 * "Methods side by side": per metric (each benchmark's primary score, avg % of full, FLOPs-equivalent tokens,
 * prefill ms, prefill FLOPs, KV cache) a table with one row per retained-token budget and one column per method.
 * Empty when the grid has fewer than two methods besides the full reference.
 */
export function sideBySideSection(r: EvalResults): string[] {
  const g = sideBySide(r);
  if (g.methods.length < 2) return [];
  const primary = (b: string) => Object.values(r.results).find((x) => x[b])?.[b]?.primary ?? "score";
  const metrics: { title: string; value: (cell: string) => string }[] = [
    ...r.benchmarks.map((b) => ({ title: `${b}: ${primary(b)}`, value: (cell: string) => num(r.results[cell]?.[b]?.score) })),
    ...(r.baseline ? [{ title: "average % of full", value: (cell: string) => num(r.cells[cell]?.average_relative) }] : []),
    { title: "retained visual tokens (FLOPs-equivalent for methods inside the LLM)", value: (cell) => num(r.cells[cell]?.visual_tokens) },
    { title: "LLM prefill ms / sample (median)", value: (cell) => num(r.cells[cell]?.prefill_ms, 2) },
    { title: "prefill FLOPs / sample", value: (cell) => flops(r.cells[cell]?.prefill_flops ?? null) },
    { title: "KV cache / sample", value: (cell) => { const b = r.cells[cell]?.kv_cache_bytes; return b === null || b === undefined ? "–" : formatBytes(b); } },
  ];
  const lines = [
    "## Methods side by side",
    "",
    "Rows: the budget B of each `method@B` cell (a schedule file at its FLOPs-equivalent tokens); columns: methods." +
      (g.full ? ` Each heading gives the full model's value (\`${g.full}\`).` : "") +
      " FastV and TopV keep B tokens after their reduction layer, so they cost more than B FLOPs-equivalent tokens; P-Sigmoid's B is FLOPs-equivalent.",
    "",
  ];
  for (const m of metrics) {
    const ref = g.full ? ` (full: ${m.value(g.full)})` : "";
    lines.push(`### ${m.title}${ref}`, "", ...table(["budget", ...g.methods], g.rows.map((row) => [String(row), ...g.methods.map((meth) => { const c = g.at(meth, row); return c ? m.value(c) : "–"; })])), "");
  }
  return lines;
}

/** The markdown report of a results.json object. `plots` are file names to embed. */
export function renderReport(r: EvalResults, plots: readonly string[] = []): string {
  const lines: string[] = [
    "# Eval report",
    "",
    `Date ${r.date}; backend ${r.backend}; config hash \`${r.config_hash.slice(0, 12)}\`.`,
    `Model: ${Object.entries(r.model).filter(([, v]) => v !== null && v !== undefined && typeof v !== "object").map(([k, v]) => `${k} ${String(v)}`).join(", ")}.`,
    "",
    "## Accuracy by retained visual tokens",
    "",
    r.baseline ? `Scores are each benchmark's primary metric; in brackets the % of \`${r.baseline}\` (the full-budget reference).` : "Scores are each benchmark's primary metric (no none@<patches> cell, so no % of full).",
    "",
  ];
  const primaries = r.benchmarks.map((b) => `${b} (${Object.values(r.results).find((x) => x[b])?.[b]?.primary ?? "?"})`);
  lines.push(
    ...table(
      ["method@budget", "visual tokens", ...primaries, "avg % of full", "prefill ms", "prefill speedup", "KV cache / sample", "prefill FLOPs"],
      r.grid.map((cell) => {
        const c = r.cells[cell]!;
        const scores = r.benchmarks.map((b) => {
          const x = r.results[cell]?.[b];
          if (!x) return "–";
          return `${num(x.score)}${x.relative !== null ? ` (${num(x.relative)}%)` : ""}${x.failed ? ` [${x.failed} failed]` : ""}`;
        });
        return [cell, String(c.visual_tokens ?? "–"), ...scores, num(c.average_relative), num(c.prefill_ms, 2), c.prefill_speedup === null ? "–" : `${num(c.prefill_speedup, 2)}x`, c.kv_cache_bytes === null ? "–" : formatBytes(c.kv_cache_bytes), flops(c.prefill_flops)];
      }),
    ),
    "",
    ...sideBySideSection(r),
    "## Timings (median per sample)",
    "",
    ...table(
      ["method@budget", "vision tower ms", "reducer ms", "reducer / tower", "LLM prefill ms", "ms / output token", "prompt tokens", "items", "failed"],
      r.grid.map((cell) => {
        const c = r.cells[cell]!;
        return [cell, num(c.tower_ms, 2), num(c.reducer_ms, 3), c.reducer_overhead === null ? "–" : `${num(100 * c.reducer_overhead, 1)}%`, num(c.prefill_ms, 2), num(c.decode_ms_per_token, 2), num(c.prompt_tokens, 0), String(c.n), String(c.failed)];
      }),
    ),
    "",
    "Prefill covers projector + splice + LLM prefill to the first token; the tower and reducer are timed apart. KV cache: fp32 keys + values of all layers at the longest point of each sample (mean). FLOPs: FastV's 4nd² + 2n²d + 3ndm per layer.",
    "",
    "## All metrics",
    "",
  );
  for (const b of r.benchmarks) {
    const keys = [...new Set(r.grid.flatMap((cell) => Object.keys(r.results[cell]?.[b]?.metrics ?? {})))];
    if (keys.length === 0) continue;
    lines.push(`### ${b}`, "", ...table(["method@budget", ...keys, "n"], r.grid.filter((cell) => r.results[cell]?.[b]).map((cell) => {
      const x = r.results[cell]![b]!;
      return [cell, ...keys.map((k) => num(x.metrics[k], 2)), String(x.n)];
    })), "");
  }
  if (plots.length) lines.push("## Plots", "", ...plots.map((p) => `![${p}](${p})`), "");
  return lines.join("\n");
}
