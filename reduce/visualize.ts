// `vzt visualize`: what a token reducer kept, drawn over the image the vision tower saw (after the CLIP resize +
// center crop, or LLaVA's pad-to-square). Dominant (kept) patches keep their pixels and get a yellow outline; each
// contextual (merged) group is tinted in its own colour with its target patch marked by a ringed dot; dropped patches
// are dimmed to dark grey. A legend strip below gives the counts. Pixels are composed as raw RGBA here; sharp
// renders the legend (SVG) and encodes the PNG.
import { readFile } from "node:fs/promises";
import sharp from "sharp";
import { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { parsePreprocessorConfig, preprocessToFloat32, type PreprocessMode } from "../data/preprocess.js";
import { loadVisionTower } from "../models/clip_vision.js";
import { readConfigJson, type Json } from "../models/config_json.js";
import { resolveModelDir } from "../models/hub.js";
import { preprocessorFor, resolveVlmSettings, type VlmSources } from "../models/llava.js";
import { buildReducer, type ReduceResult } from "./reducer.js";

// ---- layout: which patch plays which role ---------------------------------------------------------------------

export interface ReductionLayout {
  gridSize: number;
  /** Per patch (row-major): -2 dominant (kept as is), -1 dropped, g >= 0 member of contextual group g. */
  role: Int32Array;
  /** Target patch of each contextual group (its first provenance entry). */
  targets: number[];
  /** Patches per contextual group (target included). */
  groupSizes: number[];
  dominant: number;
  dropped: number;
  /** An output token covers no patch (VisionZip's kept CLS). */
  cls: boolean;
}

/**
 * Classifies patches from one image's reduction: a token covering exactly one patch listed in keptIndices (or, with
 * no keptIndices, any single-patch token) is dominant; any other token is a contextual group whose first patch is
 * its target (VisionZip's provenance order); patches no token covers are dropped.
 */
export function reductionLayout(result: { provenance: number[][]; keptIndices?: number[] }, gridSize: number): ReductionLayout {
  const P = gridSize * gridSize;
  const role = new Int32Array(P).fill(-1);
  const kept = result.keptIndices ? new Set(result.keptIndices) : undefined;
  const targets: number[] = [];
  const groupSizes: number[] = [];
  let cls = false;
  const check = (p: number, t: number) => {
    if (!Number.isInteger(p) || p < 0 || p >= P) throw new RangeError(`visualize: token ${t} covers patch ${p}, outside the ${gridSize}x${gridSize} grid`);
  };
  result.provenance.forEach((patches, t) => {
    patches.forEach((p) => check(p, t));
    if (patches.length === 0) cls = true;
    else if (patches.length === 1 && (kept ? kept.has(patches[0]!) : true)) role[patches[0]!] = -2;
    else {
      const g = targets.length;
      targets.push(patches[0]!);
      groupSizes.push(patches.length);
      for (const p of patches) if (role[p] !== -2) role[p] = g;
    }
  });
  let dominant = 0;
  let dropped = 0;
  for (const r of role) {
    if (r === -2) dominant++;
    else if (r === -1) dropped++;
  }
  return { gridSize, role, targets, groupSizes, dominant, dropped, cls };
}

// ---- colours ---------------------------------------------------------------------------------------------------

type RGB = [number, number, number];
const DOMINANT: RGB = [255, 214, 0];
/** Opacity of a group's colour over its (greyscale) patches. */
const TINT = 0.45;
/** Distinct group colours (no yellow: that is the dominant outline); golden-angle hues after these. */
const PALETTE: RGB[] = [
  [31, 119, 255], [255, 127, 14], [44, 200, 44], [230, 40, 40], [160, 100, 230],
  [0, 210, 220], [240, 90, 200], [150, 95, 60], [120, 200, 140], [90, 90, 200],
];

function hslToRgb(h: number, s: number, l: number): RGB {
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

export function groupColour(g: number): RGB {
  return PALETTE[g] ?? hslToRgb((g * 137.508) % 360, 0.75, 0.55);
}

const hex = (c: RGB) => "#" + c.map((v) => v.toString(16).padStart(2, "0")).join("");

// ---- the preprocessed image ------------------------------------------------------------------------------------

/** The RGB pixels the tower saw ([H, W, 3] uint8), by inverting the normalisation of preprocessToFloat32. */
export async function preprocessedRGB(imageBytes: Uint8Array, mode: PreprocessMode, preprocessor?: object): Promise<{ data: Uint8Array; width: number; height: number }> {
  const px = await preprocessToFloat32(imageBytes, { mode, config: preprocessor });
  const cfg = parsePreprocessorConfig(preprocessor ?? {});
  const [, H, W] = px.shape;
  const out = new Uint8Array(H * W * 3);
  for (let c = 0; c < 3; c++) {
    const mean = cfg.doNormalize ? cfg.imageMean[c]! : 0;
    const std = cfg.doNormalize ? cfg.imageStd[c]! : 1;
    const scale = cfg.doRescale ? cfg.rescaleFactor : 1;
    for (let i = 0; i < H * W; i++) out[i * 3 + c] = Math.min(255, Math.max(0, Math.round((px.data[c * H * W + i]! * std + mean) / scale)));
  }
  return { data: out, width: W, height: H };
}

// ---- drawing ---------------------------------------------------------------------------------------------------

export interface VisualizeOptions {
  gridSize: number;
  mode: PreprocessMode;
  /** preprocessor_config.json object (default CLIP ViT-L/14-336's). */
  preprocessor?: object;
  /** Output .png path. */
  out: string;
  /** Output pixels per input pixel (default: the smallest integer giving at least 672 px). */
  scale?: number;
  /** Second legend line, e.g. the reducer and its params. */
  title?: string;
  /**
   * Mark each group's first patch as its target (VisionZip: the slot's target). Default: when the result has
   * keptIndices (a keep-and-merge reducer); pooling groups have no target.
   */
  markTargets?: boolean;
}

export interface VisualizeResult {
  out: string;
  width: number;
  /** Image height + legend height. */
  height: number;
  /** Height of the image part (the legend strip is below it). */
  imageHeight: number;
  scale: number;
  layout: ReductionLayout;
}

export const LEGEND_HEIGHT = 64;

function patchRect(p: number, grid: number, patchPx: number): { x0: number; y0: number } {
  return { x0: (p % grid) * patchPx, y0: Math.floor(p / grid) * patchPx };
}

/** The overlay on the upscaled image, as RGBA [H, W, 4]. */
function drawOverlay(img: { data: Uint8Array; width: number; height: number }, layout: ReductionLayout, scale: number, markTargets: boolean): Buffer {
  const W = img.width * scale;
  const H = img.height * scale;
  const G = layout.gridSize;
  const patchIn = img.width / G; // input pixels per patch (14 for CLIP /14)
  const out = Buffer.alloc(W * H * 4);
  for (let y = 0; y < H; y++) {
    const sy = Math.floor(y / scale);
    const py = Math.min(G - 1, Math.floor(sy / patchIn));
    for (let x = 0; x < W; x++) {
      const sx = Math.floor(x / scale);
      const p = py * G + Math.min(G - 1, Math.floor(sx / patchIn));
      const si = (sy * img.width + sx) * 3;
      const r = img.data[si]!, g = img.data[si + 1]!, b = img.data[si + 2]!;
      const role = layout.role[p]!;
      const o = (y * W + x) * 4;
      const grey = 0.299 * r + 0.587 * g + 0.114 * b;
      if (role === -2) {
        out[o] = r; out[o + 1] = g; out[o + 2] = b;
      } else if (role === -1) {
        const v = Math.round(0.22 * grey + 12);
        out[o] = v; out[o + 1] = v; out[o + 2] = v;
      } else {
        // Greyscale image under a translucent group colour: the group reads as one colour, the image shows through.
        const c = groupColour(role);
        const base = 0.8 * grey;
        out[o] = Math.round(base * (1 - TINT) + c[0] * TINT);
        out[o + 1] = Math.round(base * (1 - TINT) + c[1] * TINT);
        out[o + 2] = Math.round(base * (1 - TINT) + c[2] * TINT);
      }
      out[o + 3] = 255;
    }
  }
  const patchPx = patchIn * scale;
  const line = Math.max(1, Math.round(scale));
  const setPx = (x: number, y: number, c: RGB) => {
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    const o = (y * W + x) * 4;
    out[o] = c[0]; out[o + 1] = c[1]; out[o + 2] = c[2];
  };
  // Dominant patches: an outline on each side that does not touch another dominant patch (outlines the kept regions).
  const dominant = (p: number) => p >= 0 && p < G * G && layout.role[p] === -2;
  for (let p = 0; p < G * G; p++) {
    if (!dominant(p)) continue;
    const { x0, y0 } = patchRect(p, G, patchPx);
    const col = p % G;
    const sides = {
      top: !dominant(p - G), bottom: !dominant(p + G),
      left: col === 0 || !dominant(p - 1), right: col === G - 1 || !dominant(p + 1),
    };
    for (let i = 0; i < patchPx; i++) {
      for (let k = 0; k < line; k++) {
        if (sides.top) setPx(x0 + i, y0 + k, DOMINANT);
        if (sides.bottom) setPx(x0 + i, y0 + patchPx - 1 - k, DOMINANT);
        if (sides.left) setPx(x0 + k, y0 + i, DOMINANT);
        if (sides.right) setPx(x0 + patchPx - 1 - k, y0 + i, DOMINANT);
      }
    }
  }
  // Targets: a dot in the group's colour with a white ring and a dark edge.
  const radius = Math.max(2, patchPx * 0.32);
  if (markTargets) layout.targets.forEach((t, g) => {
    const { x0, y0 } = patchRect(t, G, patchPx);
    const cx = x0 + patchPx / 2 - 0.5;
    const cy = y0 + patchPx / 2 - 0.5;
    const c = groupColour(g);
    for (let y = Math.floor(cy - radius - 2); y <= Math.ceil(cy + radius + 2); y++) {
      for (let x = Math.floor(cx - radius - 2); x <= Math.ceil(cx + radius + 2); x++) {
        const d = Math.hypot(x - cx, y - cy);
        if (d <= radius - line) setPx(x, y, c);
        else if (d <= radius) setPx(x, y, [255, 255, 255]);
        else if (d <= radius + 1) setPx(x, y, [20, 20, 20]);
      }
    }
  });
  return out;
}

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (ch) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[ch]!);

/** The legend strip: swatches and counts, and an optional title line. */
function legendSvg(width: number, layout: ReductionLayout, title?: string): string {
  const groups = layout.targets.length;
  const merged = layout.groupSizes.reduce((a, b) => a + b, 0);
  const font = `font-family="DejaVu Sans, Verdana, sans-serif" font-size="14" fill="#eeeeee"`;
  const parts: string[] = [];
  let x = 10;
  const y = 24;
  const text = (s: string) => {
    parts.push(`<text x="${x}" y="${y}" ${font}>${escapeXml(s)}</text>`);
    x += s.length * 8.2 + 18;
  };
  parts.push(`<rect x="${x}" y="${y - 12}" width="14" height="14" fill="none" stroke="${hex(DOMINANT)}" stroke-width="3"/>`);
  x += 20;
  text(`${groups || layout.cls ? "dominant" : "kept"} ${layout.dominant}${layout.cls ? " + CLS" : ""}`);
  for (let g = 0; g < Math.min(groups, 5); g++) parts.push(`<rect x="${x + g * 8}" y="${y - 12}" width="8" height="14" fill="${hex(groupColour(g))}"/>`);
  x += Math.min(groups, 5) * 8 + 6;
  text(`contextual ${groups} group${groups === 1 ? "" : "s"} (${merged} patches)`);
  parts.push(`<rect x="${x}" y="${y - 12}" width="14" height="14" fill="#333333" stroke="#777777"/>`);
  x += 20;
  text(`dropped ${layout.dropped}`);
  if (title) parts.push(`<text x="10" y="${y + 26}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="13" fill="#aaaaaa">${escapeXml(title)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${LEGEND_HEIGHT}"><rect width="100%" height="100%" fill="#1b1b1b"/>${parts.join("")}</svg>`;
}

/**
 * Draws one image's reduction over its preprocessed pixels and writes a PNG of
 * (side·scale) x (side·scale + LEGEND_HEIGHT) pixels.
 */
export async function visualizeReduction(
  imageBytes: Uint8Array,
  result: { provenance: number[][]; keptIndices?: number[] },
  opts: VisualizeOptions,
): Promise<VisualizeResult> {
  const img = await preprocessedRGB(imageBytes, opts.mode, opts.preprocessor);
  if (img.width !== img.height || img.width % opts.gridSize !== 0) {
    throw new RangeError(`visualize: the preprocessed image is ${img.width}x${img.height}, which a ${opts.gridSize}x${opts.gridSize} patch grid does not tile`);
  }
  const scale = opts.scale ?? Math.max(1, Math.ceil(672 / img.width));
  if (!Number.isInteger(scale) || scale < 1) throw new RangeError(`visualize: scale must be a positive integer, got ${scale}`);
  const layout = reductionLayout(result, opts.gridSize);
  const W = img.width * scale;
  const H = img.height * scale;
  const overlay = drawOverlay(img, layout, scale, opts.markTargets ?? result.keptIndices !== undefined);
  await sharp({ create: { width: W, height: H + LEGEND_HEIGHT, channels: 4, background: { r: 27, g: 27, b: 27, alpha: 1 } } })
    .composite([
      { input: overlay, raw: { width: W, height: H, channels: 4 }, top: 0, left: 0 },
      { input: Buffer.from(legendSvg(W, layout, opts.title)), top: H, left: 0 },
    ])
    .png()
    .toFile(opts.out);
  return { out: opts.out, width: W, height: H + LEGEND_HEIGHT, imageHeight: H, scale, layout };
}

// ---- the command -------------------------------------------------------------------------------------------------

export interface VisualizeCommandOptions {
  /** A LLaVA composite, a CLIP vision folder / repo, or parts (only the vision tower is loaded). */
  model: string | VlmSources;
  image: string;
  reducer: { name: string } & Record<string, unknown>;
  out: string;
  /** Default: the model's (`image_aspect_ratio: pad` -> pad), else clip. */
  mode?: PreprocessMode;
  /** Vision hidden-state index (default: the config's, else -2). */
  layer?: number;
  scale?: number;
}

/** Loads the vision tower, preprocesses the image, runs tower + reducer and draws the result. */
export async function visualizeCommand(opts: VisualizeCommandOptions): Promise<VisualizeResult> {
  let src: VlmSources;
  if (typeof opts.model === "string") {
    const json: Json = await readConfigJson(await resolveModelDir(opts.model));
    src = json.model_type === "llava" ? { model: opts.model } : { visionTower: opts.model };
  } else src = opts.model;
  const settings = await resolveVlmSettings(src);
  const { name, ...params } = opts.reducer;
  const reducer = buildReducer(name, params);
  const bytes = new Uint8Array(await readFile(opts.image));
  const tower = await loadVisionTower(settings.towerSource);
  try {
    const preprocessor = preprocessorFor(settings.preprocessor, tower.config.imageSize);
    const mode = opts.mode ?? settings.preprocessMode;
    const px = await preprocessToFloat32(bytes, { mode, config: preprocessor });
    const gridSize = tower.config.imageSize / tower.config.patchSize;
    const layer = opts.layer ?? settings.visionLayer;
    const input = tf.tensor4d(px.data, [1, ...px.shape]); // [1, 3, H, W]
    const v = tower.forward(input, { layer });
    let reduced: ReduceResult;
    try {
      reduced = reducer.reduce({ hidden: v.hidden, clsAttention: v.clsAttention, keysMean: v.keysMean, gridSize });
    } finally {
      tf.dispose([input, v.hidden, v.clsAttention, v.keys, v.keysMean]);
    }
    reduced.tokens.dispose();
    const shown = Object.entries(reducer.params ?? params).map(([k, v]) => `${k}=${String(v)}`).join(" ");
    const T = reduced.provenance[0]!.length;
    return await visualizeReduction(
      bytes,
      { provenance: reduced.provenance[0]!, keptIndices: reduced.keptIndices?.[0] },
      { gridSize, mode, preprocessor, out: opts.out, scale: opts.scale, title: `${reducer.name} ${shown} · ${T} tokens from ${gridSize * gridSize} patches · layer ${layer} · ${mode}` },
    );
  } finally {
    tower.dispose();
  }
}

/** parseArgs options of `vzt visualize` (until --config exists: model and reducer from flags). */
export const VISUALIZE_FLAGS = {
  config: { type: "string" },
  model: { type: "string" },
  "vision-tower": { type: "string" },
  image: { type: "string" },
  out: { type: "string" },
  reducer: { type: "string" },
  budget: { type: "string" },
  dominant: { type: "string" },
  contextual: { type: "string" },
  seed: { type: "string" },
  mode: { type: "string" },
  layer: { type: "string" },
  scale: { type: "string" },
} as const;

/** `vzt visualize --model DIR --image FILE --out FILE.png [--reducer visionzip] [--budget N | --dominant N --contextual N] ...` */
export function visualizeOptionsFromFlags(v: Record<string, unknown>): VisualizeCommandOptions {
  const str = (k: string) => (typeof v[k] === "string" ? (v[k] as string) : undefined);
  const int = (k: string): number | undefined => {
    const s = str(k);
    if (s === undefined) return undefined;
    const n = Number(s);
    if (!Number.isInteger(n)) throw new ConfigError([`--${k}: expected an integer, got "${s}"`]);
    return n;
  };
  const problems: string[] = [];
  if (str("config")) problems.push("--config: not supported yet by this function; the CLI resolves the config into --model / --reducer options");
  const model = str("model");
  const tower = str("vision-tower");
  if (!model && !tower) problems.push("--model DIR (LLaVA composite or CLIP folder) or --vision-tower DIR is required");
  if (!str("image")) problems.push("--image FILE is required");
  const out = str("out");
  if (!out) problems.push("--out FILE.png is required");
  else if (!out.toLowerCase().endsWith(".png")) problems.push(`--out: "${out}" must end in .png`);
  const mode = str("mode");
  if (mode !== undefined && mode !== "clip" && mode !== "pad") problems.push(`--mode: expected clip or pad, got "${mode}"`);
  if (problems.length) throw new ConfigError(problems);
  const reducer: { name: string } & Record<string, unknown> = { name: str("reducer") ?? "visionzip" };
  for (const k of ["budget", "dominant", "contextual", "seed"]) {
    const n = int(k);
    if (n !== undefined) reducer[k] = n;
  }
  return {
    model: tower ? { model, visionTower: tower } : model!,
    image: str("image")!,
    out: out!,
    reducer,
    mode: mode as PreprocessMode | undefined,
    layer: int("layer"),
    scale: int("scale"),
  };
}
