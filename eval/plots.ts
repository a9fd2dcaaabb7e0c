// SVG plots written by hand (no plotting library): accuracy vs retained visual tokens, one panel per benchmark with
// one line per method (the full-budget baseline drawn as a dashed reference line), and LLM prefill time vs retained
// tokens. Plain SVG 1.1 that browsers, GitHub and sharp render.
import type { EvalResults } from "./aggregate.js";

export const ACCURACY_PLOT = "accuracy_vs_tokens.svg";
export const PREFILL_PLOT = "prefill_vs_tokens.svg";

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

/** One panel at (x0, y0) of size w x h; `color` maps a series name to its colour. */
function panel(p: PanelSpec, x0: number, y0: number, w: number, h: number, color: (name: string) => string): string {
  const m = { l: 58, r: 14, t: 30, b: 44 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  const pts = p.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = pts.map(([x]) => x);
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
      out.push(`<circle cx="${X(good[0]![0])}" cy="${y}" r="4" fill="${c}"/>`);
      continue;
    }
    if (good.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${good.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ")}"/>`);
    for (const [x, y] of good) out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="4" fill="${c}"/>`);
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
  const legendH = 28;
  const width = perRow * w;
  const height = legendH + rows * h;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`, `<rect width="100%" height="100%" fill="white"/>`];
  let lx = 12;
  for (const n of names) {
    const ref = panels.some((p) => p.series.some((s) => s.name === n && s.reference));
    parts.push(ref ? `<line x1="${lx}" y1="15" x2="${lx + 22}" y2="15" stroke="${color(n)}" stroke-width="2" stroke-dasharray="6 4"/>` : `<line x1="${lx}" y1="15" x2="${lx + 22}" y2="15" stroke="${color(n)}" stroke-width="2"/><circle cx="${lx + 11}" cy="15" r="4" fill="${color(n)}"/>`);
    parts.push(`<text x="${lx + 28}" y="19" font-size="12" ${FONT}>${esc(n)}</text>`);
    lx += 40 + n.length * 7;
  }
  panels.forEach((p, i) => parts.push(panel(p, (i % perRow) * w, legendH + Math.floor(i / perRow) * h, w, h, color)));
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

/** Series per method of a per-cell value; the method none becomes a reference line ("full"). */
function methodSeries(r: EvalResults, value: (cell: string) => number | null | undefined): Series[] {
  const byMethod = new Map<string, [number, number][]>();
  for (const cell of r.grid) {
    const c = r.cells[cell]!;
    const v = value(cell);
    if (v === null || v === undefined || !Number.isFinite(v)) continue;
    const list = byMethod.get(c.method) ?? [];
    list.push([c.visual_tokens ?? c.budget, v]);
    byMethod.set(c.method, list);
  }
  return [...byMethod].map(([m, points]) => (m === "none" ? { name: `full (none@${points[0]?.[0]})`, points, reference: true } : { name: m, points }));
}

/** Accuracy (each benchmark's primary metric) vs retained visual tokens, one panel per benchmark. */
export function accuracyPlotSvg(r: EvalResults): string {
  const panels = r.benchmarks.map((b) => {
    const primary = Object.values(r.results).find((x) => x[b])?.[b]?.primary ?? "score";
    return { title: b, xLabel: "retained visual tokens", yLabel: primary, series: methodSeries(r, (cell) => r.results[cell]?.[b]?.score) };
  });
  return figureSvg(panels);
}

/** LLM prefill time per sample (median) vs retained visual tokens. */
export function prefillPlotSvg(r: EvalResults): string {
  return figureSvg([{ title: "prefill time vs retained tokens", xLabel: "retained visual tokens", yLabel: "prefill ms / sample (median)", series: methodSeries(r, (cell) => r.cells[cell]?.prefill_ms) }], { panelWidth: 480, panelHeight: 300 });
}
