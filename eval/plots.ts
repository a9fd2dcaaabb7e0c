// SVG plots written by hand (no plotting library), one per metric vs retained visual tokens (FLOPs-equivalent for
// methods inside the LLM), one line per method (eval/side_by_side.ts labels), the full-budget model drawn as a dashed
// reference line: accuracy (one panel per benchmark), LLM prefill time, prefill FLOPs and KV-cache memory.
// Plain SVG 1.1 that browsers, GitHub and sharp render.
import type { EvalResults } from "./aggregate.js";
import { methodLabel } from "./side_by_side.js";

export const ACCURACY_PLOT = "accuracy_vs_tokens.svg";
export const PREFILL_PLOT = "prefill_vs_tokens.svg";
export const FLOPS_PLOT = "flops_vs_tokens.svg";
export const KV_PLOT = "kv_cache_vs_tokens.svg";

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const FONT = `font-family="Helvetica, Arial, sans-serif"`;

export interface Series {
  name: string;
  points: [number, number][];
  /** A horizontal dashed reference line at points[0]'s y instead of a polyline. */
  reference?: boolean;
}

export interface PanelSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
}

/**
 * A point marker: shape `i` of circle, square, triangle, diamond, inverted triangle, cross (so series that land on
 * the same points stay distinguishable; squares and diamonds are hollow, so a point under them shows).
 */
function marker(i: number, x: number, y: number, c: string): string {
  const r = 4.5;
  const f = (v: number) => v.toFixed(1);
  const hollow = `fill="none" stroke="${c}" stroke-width="1.8"`;
  switch (i % 6) {
    case 0:
      return `<circle cx="${f(x)}" cy="${f(y)}" r="4" fill="${c}"/>`;
    case 1:
      return `<rect x="${f(x - r + 0.5)}" y="${f(y - r + 0.5)}" width="${2 * r - 1}" height="${2 * r - 1}" ${hollow}/>`;
    case 2:
      return `<polygon points="${f(x)},${f(y - r - 1)} ${f(x + r + 0.5)},${f(y + r - 1)} ${f(x - r - 0.5)},${f(y + r - 1)}" fill="${c}"/>`;
    case 3:
      return `<polygon points="${f(x)},${f(y - r - 1)} ${f(x + r + 1)},${f(y)} ${f(x)},${f(y + r + 1)} ${f(x - r - 1)},${f(y)}" ${hollow}/>`;
    case 4:
      return `<polygon points="${f(x)},${f(y + r + 1)} ${f(x + r + 0.5)},${f(y - r + 1)} ${f(x - r - 0.5)},${f(y - r + 1)}" fill="${c}"/>`;
    default:
      return `<path d="M${f(x - r)},${f(y - r)}L${f(x + r)},${f(y + r)}M${f(x - r)},${f(y + r)}L${f(x + r)},${f(y - r)}" stroke="${c}" stroke-width="2"/>`;
  }
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** About 5 round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, target = 5): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; ; v += step) {
    out.push(Number(v.toPrecision(12)));
    if (v >= hi - step * 1e-9) break;
  }
  return out;
}

const label = (v: number) => (Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v)) : v.toPrecision(3).replace(/\.?0+$/, ""));

/** One panel at (x0, y0) of size w x h; `color` and `shape` map a series name to its colour and marker. */
function panel(p: PanelSpec, x0: number, y0: number, w: number, h: number, color: (name: string) => string, shape: (name: string) => number): string {
  const m = { l: 58, r: 14, t: 30, b: 44 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  const finite = (pt: [number, number]) => Number.isFinite(pt[0]) && Number.isFinite(pt[1]);
  const pts = p.series.flatMap((s) => s.points).filter(finite);
  // x spans the methods' points (the full-budget reference is a horizontal line, so 576 need not squeeze them left).
  const linePts = p.series.filter((s) => !s.reference).flatMap((s) => s.points).filter(finite);
  const xs = (linePts.length ? linePts : pts).map(([x]) => x);
  const ys = pts.map(([, y]) => y);
  const xTicks = niceTicks(0, Math.max(1, ...xs));
  const yLo = ys.length ? Math.min(...ys) : 0;
  const yHi = ys.length ? Math.max(...ys) : 1;
  const pad = (yHi - yLo) * 0.1 || Math.max(1, Math.abs(yHi) * 0.1);
  const yTicks = niceTicks(Math.max(0, yLo - pad), yHi + pad);
  const [xMin, xMax] = [xTicks[0]!, xTicks[xTicks.length - 1]!];
  const [yMin, yMax] = [yTicks[0]!, yTicks[yTicks.length - 1]!];
  const X = (x: number) => x0 + m.l + ((x - xMin) / (xMax - xMin || 1)) * pw;
  const Y = (y: number) => y0 + m.t + ph - ((y - yMin) / (yMax - yMin || 1)) * ph;
  const out: string[] = [];
  out.push(`<text x="${x0 + m.l + pw / 2}" y="${y0 + 18}" text-anchor="middle" font-size="14" font-weight="bold" ${FONT}>${esc(p.title)}</text>`);
  for (const t of yTicks) {
    out.push(`<line x1="${X(xMin)}" y1="${Y(t)}" x2="${X(xMax)}" y2="${Y(t)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${X(xMin) - 6}" y="${Y(t) + 4}" text-anchor="end" font-size="11" ${FONT}>${label(t)}</text>`);
  }
  for (const t of xTicks) {
    out.push(`<line x1="${X(t)}" y1="${Y(yMin)}" x2="${X(t)}" y2="${Y(yMin) + 4}" stroke="#333"/>`);
    out.push(`<text x="${X(t)}" y="${Y(yMin) + 17}" text-anchor="middle" font-size="11" ${FONT}>${label(t)}</text>`);
  }
  out.push(`<rect x="${X(xMin)}" y="${Y(yMax)}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${X(xMin) + pw / 2}" y="${y0 + h - 8}" text-anchor="middle" font-size="12" ${FONT}>${esc(p.xLabel)}</text>`);
  const yl = x0 + 14;
  const ym = y0 + m.t + ph / 2;
  out.push(`<text x="${yl}" y="${ym}" text-anchor="middle" font-size="12" transform="rotate(-90 ${yl} ${ym})" ${FONT}>${esc(p.yLabel)}</text>`);
  for (const s of p.series) {
    const c = color(s.name);
    const good = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).sort((a, b) => a[0] - b[0]);
    if (good.length === 0) continue;
    if (s.reference) {
      const y = Y(good[0]![1]);
      out.push(`<line x1="${X(xMin)}" y1="${y}" x2="${X(xMax)}" y2="${y}" stroke="${c}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
      const rx = good[0]![0];
      if (rx >= xMin && rx <= xMax) out.push(`<circle cx="${X(rx)}" cy="${y}" r="4" fill="${c}"/>`);
      continue;
    }
    if (good.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${good.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ")}"/>`);
    for (const [x, y] of good) out.push(marker(shape(s.name), X(x), Y(y), c));
  }
  return out.join("\n");
}

/** A figure of panels side by side (up to 3 per row) with one legend on top. */
export function figureSvg(panels: readonly PanelSpec[], opts: { panelWidth?: number; panelHeight?: number } = {}): string {
  const w = opts.panelWidth ?? 340;
  const h = opts.panelHeight ?? 260;
  const perRow = Math.min(3, Math.max(1, panels.length));
  const rows = Math.ceil(panels.length / perRow);
  const names = [...new Set(panels.flatMap((p) => p.series.map((s) => s.name)))];
  const color = (n: string) => COLORS[names.indexOf(n) % COLORS.length]!;
  const lineNames = names.filter((n) => !panels.some((p) => p.series.some((s) => s.name === n && s.reference)));
  const shape = (n: string) => Math.max(0, lineNames.indexOf(n));
  const width = perRow * w;
  // Legend entries left to right, wrapped onto more lines when they do not fit the figure's width.
  const entries: { n: string; x: number; line: number }[] = [];
  let lx = 12;
  let line = 0;
  for (const n of names) {
    const ew = 40 + n.length * 7;
    if (lx > 12 && lx + ew > width - 8) {
      lx = 12;
      line++;
    }
    entries.push({ n, x: lx, line });
    lx += ew;
  }
  const legendH = 10 + 20 * (line + 1);
  const height = legendH + rows * h;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`, `<rect width="100%" height="100%" fill="white"/>`];
  for (const { n, x, line: ln } of entries) {
    const y = 15 + 20 * ln;
    const ref = panels.some((p) => p.series.some((s) => s.name === n && s.reference));
    parts.push(ref ? `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${color(n)}" stroke-width="2" stroke-dasharray="6 4"/>` : `<line x1="${x}" y1="${y}" x2="${x + 22}" y2="${y}" stroke="${color(n)}" stroke-width="2"/>${marker(shape(n), x + 11, y, color(n))}`);
    parts.push(`<text x="${x + 28}" y="${y + 4}" font-size="12" ${FONT}>${esc(n)}</text>`);
  }
  panels.forEach((p, i) => parts.push(panel(p, (i % perRow) * w, legendH + Math.floor(i / perRow) * h, w, h, color, shape)));
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/** Series per method label of a per-cell value at its retained tokens; the method none becomes a reference line ("full"). */
export function methodSeries(r: EvalResults, value: (cell: string) => number | null | undefined): Series[] {
  const byMethod = new Map<string, [number, number][]>();
  for (const cell of r.grid) {
    const c = r.cells[cell]!;
    const v = value(cell);
    if (v === null || v === undefined || !Number.isFinite(v)) continue;
    const label = c.method === "none" ? "none" : methodLabel(cell, c.method);
    const list = byMethod.get(label) ?? [];
    list.push([c.visual_tokens ?? c.budget, v]);
    byMethod.set(label, list);
  }
  return [...byMethod].map(([m, points]) => (m === "none" ? { name: `full (none@${points[0]?.[0]})`, points, reference: true } : { name: m, points }));
}

/** Accuracy (each benchmark's primary metric) vs retained visual tokens, one panel per benchmark. */
export function accuracyPlotSvg(r: EvalResults): string {
  const panels = r.benchmarks.map((b) => {
    const primary = Object.values(r.results).find((x) => x[b])?.[b]?.primary ?? "score";
    return { title: b, xLabel: X_LABEL, yLabel: primary, series: methodSeries(r, (cell) => r.results[cell]?.[b]?.score) };
  });
  return figureSvg(panels);
}

const X_LABEL = "retained visual tokens (FLOPs-equivalent)";
const ONE_PANEL = { panelWidth: 520, panelHeight: 320 };

/** LLM prefill time per sample (median) vs retained visual tokens. */
export function prefillPlotSvg(r: EvalResults): string {
  return figureSvg([{ title: "LLM prefill time vs retained tokens", xLabel: X_LABEL, yLabel: "prefill ms / sample (median)", series: methodSeries(r, (cell) => r.cells[cell]?.prefill_ms) }], ONE_PANEL);
}

/** The largest power-of-`base` unit at or below `max` (e.g. GFLOPs for 3e9), as [divisor, prefix]. */
function unitFor(max: number, base: number, prefixes: readonly string[]): [number, string] {
  let i = 0;
  while (i < prefixes.length - 1 && max >= base ** (i + 1)) i++;
  return [base ** i, prefixes[i]!];
}

/** Prefill FLOPs per sample (mean, FastV's per-layer count) vs retained visual tokens. */
export function flopsPlotSvg(r: EvalResults): string {
  const max = Math.max(0, ...r.grid.map((cell) => r.cells[cell]?.prefill_flops ?? 0));
  const [div, prefix] = unitFor(max, 1000, ["", "K", "M", "G", "T", "P"]);
  const series = methodSeries(r, (cell) => { const f = r.cells[cell]?.prefill_flops; return f === null || f === undefined ? null : f / div; });
  return figureSvg([{ title: "prefill FLOPs vs retained tokens", xLabel: X_LABEL, yLabel: `prefill ${prefix}FLOPs / sample`, series }], ONE_PANEL);
}

/** KV-cache memory per sample (mean, fp32 keys + values of every layer) vs retained visual tokens. */
export function kvPlotSvg(r: EvalResults): string {
  const max = Math.max(0, ...r.grid.map((cell) => r.cells[cell]?.kv_cache_bytes ?? 0));
  const [div, unit] = unitFor(max, 1024, ["B", "KiB", "MiB", "GiB", "TiB"]);
  const series = methodSeries(r, (cell) => { const b = r.cells[cell]?.kv_cache_bytes; return b === null || b === undefined ? null : b / div; });
  return figureSvg([{ title: "KV-cache memory vs retained tokens", xLabel: X_LABEL, yLabel: `KV cache ${unit} / sample`, series }], ONE_PANEL);
}

/** Every plot of an eval, file name -> SVG text (what writeEvalOutputs writes and report.md embeds). */
export function evalPlots(r: EvalResults): Record<string, string> {
  return { [ACCURACY_PLOT]: accuracyPlotSvg(r), [PREFILL_PLOT]: prefillPlotSvg(r), [FLOPS_PLOT]: flopsPlotSvg(r), [KV_PLOT]: kvPlotSvg(r) };
}
