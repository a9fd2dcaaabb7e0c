// CLIP / LLaVA-1.5 image preprocessing, bit-exact with HF `CLIPImageProcessor` (Pillow resize) and LLaVA's "pad".
//
// Steps (../shared/golden/preprocess/README.md): decode + convert("RGB") -> [pad: expand2square with the mean
// colour int(m*255)] -> resize the short side to `shortest_edge`, long side int(s*long/short) (truncated), with
// Pillow's separable resampler (horizontal pass, uint8 intermediate, vertical pass; 22-bit fixed point) ->
// center crop (floor offsets; zero padding when the image is smaller, as HF does) -> rescale + normalize through
// a [3, 256] float32 table -> channels first [3, H, W].
// Only the cropped window of the resized image is computed: each output pixel of Pillow's resampler depends on
// its own row/column coefficients only, so this gives the same values as resizing everything and cropping.
// HF quirk not reproduced: called without input_data_format, HF reads an (H, W, 3) image with H = 1 or 3 as
// channels-first; here every image is read channels-last (what the golden vectors specify).
import path from "node:path";
import { access } from "node:fs/promises";
import { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { readConfigJson, type Json } from "../models/config_json.js";
import { decodeImage, type RGBImage } from "./image.js";

// ---------------------------------------------------------------------------------------------------------------
// Configuration (preprocessor_config.json)

/** A validated CLIPImageProcessor configuration (HF defaults filled in for absent keys). */
export interface PreprocessorConfig {
  doResize: boolean;
  /** `shortestEdge`: short side to this, aspect kept; `height`/`width`: exact size. */
  size: { shortestEdge: number } | { height: number; width: number };
  /** PIL resample id: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming (0 nearest is not supported). */
  resample: number;
  doCenterCrop: boolean;
  cropSize: { height: number; width: number };
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

/** `openai/clip-vit-large-patch14-336` preprocessor_config.json (LLaVA-1.5's vision tower): the default. */
export const CLIP_VIT_L_336_PREPROCESSOR: Readonly<Json> = Object.freeze({
  crop_size: 336,
  do_center_crop: true,
  do_normalize: true,
  do_resize: true,
  feature_extractor_type: "CLIPFeatureExtractor",
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  resample: 3,
  size: 336,
});

const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** The image-processor part of a config: the object itself, or its `image_processor` (processor_config.json). */
function imageProcessorPart(json: object): Json {
  const nested = (json as Json).image_processor;
  return nested !== null && typeof nested === "object" && !Array.isArray(nested) ? (nested as Json) : (json as Json);
}

/**
 * Validates a preprocessor_config.json object (flat, or nested under `image_processor`) and fills in the
 * CLIPImageProcessor defaults. Throws one ConfigError listing every bad key.
 */
export function parsePreprocessorConfig(json: object, file?: string): PreprocessorConfig {
  const j = imageProcessorPart(json);
  const problems: string[] = [];
  const bool = (key: string, fallback: boolean): boolean => {
    const v = j[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") problems.push(`${key}: expected true or false, got ${JSON.stringify(v)}`);
    return v === true;
  };
  const posInt = (key: string, v: unknown): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
      problems.push(`${key}: expected a positive integer, got ${JSON.stringify(v)}`);
      return 1;
    }
    return v;
  };
  const triple = (key: string, fallback: [number, number, number]): [number, number, number] => {
    const v = j[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "number" && Number.isFinite(v)) return [v, v, v];
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "number" && Number.isFinite(x))) {
      return [v[0] as number, v[1] as number, v[2] as number];
    }
    problems.push(`${key}: expected a number or 3 numbers (RGB), got ${JSON.stringify(v)}`);
    return fallback;
  };

  // size: get_size_dict(default_to_square=False): int -> shortest edge; [h, w] or {height, width} -> exact.
  let size: PreprocessorConfig["size"] = { shortestEdge: 224 };
  const s = j.size;
  if (typeof s === "number") size = { shortestEdge: posInt("size", s) };
  else if (Array.isArray(s) && s.length === 2) size = { height: posInt("size[0]", s[0]), width: posInt("size[1]", s[1]) };
  else if (s !== null && typeof s === "object" && !Array.isArray(s)) {
    const o = s as Json;
    if (o.shortest_edge !== undefined) size = { shortestEdge: posInt("size.shortest_edge", o.shortest_edge) };
    else if (o.height !== undefined && o.width !== undefined) {
      size = { height: posInt("size.height", o.height), width: posInt("size.width", o.width) };
    } else problems.push(`size: expected "shortest_edge" or "height" and "width", got ${JSON.stringify(s)}`);
  } else if (s !== undefined && s !== null) problems.push(`size: expected an integer or an object, got ${JSON.stringify(s)}`);

  // crop_size: get_size_dict(default_to_square=True): int -> square.
  let cropSize = { height: 224, width: 224 };
  const c = j.crop_size;
  if (typeof c === "number") cropSize = { height: posInt("crop_size", c), width: posInt("crop_size", c) };
  else if (Array.isArray(c) && c.length === 2) cropSize = { height: posInt("crop_size[0]", c[0]), width: posInt("crop_size[1]", c[1]) };
  else if (c !== null && typeof c === "object" && !Array.isArray(c)) {
    const o = c as Json;
    cropSize = { height: posInt("crop_size.height", o.height), width: posInt("crop_size.width", o.width) };
  } else if (c !== undefined && c !== null) problems.push(`crop_size: expected an integer or {height, width}, got ${JSON.stringify(c)}`);

  let resample = 3;
  if (j.resample !== undefined && j.resample !== null) {
    if (typeof j.resample === "number" && FILTERS[j.resample]) resample = j.resample;
    else problems.push(`resample: expected a PIL filter id 1-5 (3 = bicubic), got ${JSON.stringify(j.resample)}${j.resample === 0 ? " (nearest is not supported)" : ""}`);
  }
  let rescaleFactor = 1 / 255;
  if (j.rescale_factor !== undefined && j.rescale_factor !== null) {
    if (typeof j.rescale_factor === "number" && Number.isFinite(j.rescale_factor)) rescaleFactor = j.rescale_factor;
    else problems.push(`rescale_factor: expected a number, got ${JSON.stringify(j.rescale_factor)}`);
  }
  const imageStd = triple("image_std", OPENAI_CLIP_STD);
  if (imageStd.some((v) => v === 0)) problems.push(`image_std: must not contain 0, got ${JSON.stringify(imageStd)}`);
  const cfg: PreprocessorConfig = {
    doResize: bool("do_resize", true),
    size,
    resample,
    doCenterCrop: bool("do_center_crop", true),
    cropSize,
    doRescale: bool("do_rescale", true),
    rescaleFactor,
    doNormalize: bool("do_normalize", true),
    imageMean: triple("image_mean", OPENAI_CLIP_MEAN),
    imageStd,
  };
  if (problems.length) throw new ConfigError(problems.map((p) => `preprocessor config: ${p}`), file);
  return cfg;
}

/**
 * Reads `<dir>/preprocessor_config.json`, or else the `image_processor` part of `<dir>/processor_config.json`,
 * validates it and returns the (flat) JSON object to pass as `config` to preprocessImage / preprocessToFloat32.
 */
export async function loadPreprocessorConfig(dir: string): Promise<Json> {
  for (const name of ["preprocessor_config.json", "processor_config.json"]) {
    const file = path.join(dir, name);
    if (!(await exists(file))) continue;
    const json = await readConfigJson(dir, name);
    const part = imageProcessorPart(json);
    if (name === "processor_config.json" && part === json) continue; // a processor config without image part
    parsePreprocessorConfig(part, file);
    return part;
  }
  throw new ConfigError(
    ["no image preprocessor config: expected preprocessor_config.json, or processor_config.json with \"image_processor\""],
    dir,
  );
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Pillow resampling (libImaging/Resample.c, Pillow 9.4): precomputed per-output coefficients, 22-bit fixed point.

interface Filter {
  support: number;
  fn: (x: number) => number;
}

const bicubic = (x: number): number => {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
};
const sinc = (x: number): number => {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
};
const FILTERS: Record<number, Filter> = {
  1: { support: 3, fn: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) }, // lanczos
  2: { support: 1, fn: (x) => { if (x < 0) x = -x; return x < 1 ? 1 - x : 0; } }, // bilinear
  3: { support: 2, fn: bicubic },
  4: { support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) }, // box
  5: { support: 1, fn: (x) => { // hamming
    if (x < 0) x = -x;
    if (x === 0) return 1;
    if (x >= 1) return 0;
    x *= Math.PI;
    return (Math.sin(x) / x) * (0.54 + 0.46 * Math.cos(x));
  } },
};

const PRECISION_BITS = 22;
const HALF = 1 << (PRECISION_BITS - 1);

/** Per output index i: source span [bounds[2i], +bounds[2i+1]) and fixed-point weights at weights[i * ksize]. */
interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [out, 2]
  weights: Int32Array; // [out, ksize]
}

const coeffCache = new Map<string, Coeffs>();

/** Pillow precompute_coeffs + normalize_coeffs_8bpc for one axis (box = whole input). */
function coeffs(inSize: number, outSize: number, resample: number): Coeffs {
  const key = `${inSize}:${outSize}:${resample}`;
  const hit = coeffCache.get(key);
  if (hit) return hit;
  const filter = FILTERS[resample];
  if (!filter) throw new Error(`resample ${resample}: unsupported filter`);
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  const c = { ksize, bounds, weights };
  if (coeffCache.size >= 256) coeffCache.clear();
  coeffCache.set(key, c);
  return c;
}

/** A window of an image: rows y0 .. y0+height-1, columns x0 .. x0+width-1 (may reach outside the image). */
interface Window {
  x0: number;
  y0: number;
  width: number;
  height: number;
}

/**
 * The window `win` of `img` resized to outW x outH with Pillow's resampler; pixels of the window that fall
 * outside the resized image are 0 (HF center_crop's padding). Horizontal pass first, uint8 in between.
 */
function resizeWindow(img: RGBImage, outW: number, outH: number, resample: number, win: Window): RGBImage {
  const out = new Uint8Array(win.width * win.height * 3);
  // The part of the window inside the resized image.
  const cx0 = Math.max(win.x0, 0);
  const cx1 = Math.min(win.x0 + win.width, outW);
  const cy0 = Math.max(win.y0, 0);
  const cy1 = Math.min(win.y0 + win.height, outH);
  if (cx1 <= cx0 || cy1 <= cy0) return { data: out, width: win.width, height: win.height };
  const needH = outW !== img.width;
  const needV = outH !== img.height;
  const cv = needV ? coeffs(img.height, outH, resample) : undefined;
  // Source rows the vertical pass reads (all output rows of the window).
  const ry0 = cv ? cv.bounds[cy0 * 2]! : cy0;
  const ry1 = cv ? cv.bounds[(cy1 - 1) * 2]! + cv.bounds[(cy1 - 1) * 2 + 1]! : cy1;
  const ncols = cx1 - cx0;
  // Horizontal pass (or a column copy): rows ry0..ry1-1, columns cx0..cx1-1 -> tmp [ry1-ry0, ncols, 3].
  const tmp = needH
    ? horizontalPass(img, coeffs(img.width, outW, resample), ry0, ry1, cx0, cx1)
    : copyBlock(img, ry0, ry1, cx0, cx1);
  const rowLen = ncols * 3;
  const dstStride = win.width * 3;
  const dstX = (cx0 - win.x0) * 3;
  if (!cv) {
    for (let y = cy0; y < cy1; y++) {
      out.set(tmp.subarray((y - ry0) * rowLen, (y - ry0 + 1) * rowLen), (y - win.y0) * dstStride + dstX);
    }
    return { data: out, width: win.width, height: win.height };
  }
  // Vertical pass: accumulate whole rows (sequential memory access).
  const acc = new Int32Array(rowLen);
  const { bounds, weights, ksize } = cv;
  for (let y = cy0; y < cy1; y++) {
    const ymin = bounds[y * 2]! - ry0;
    const cnt = bounds[y * 2 + 1]!;
    acc.fill(HALF);
    for (let k = 0; k < cnt; k++) {
      const w = weights[y * ksize + k]!;
      const src = (ymin + k) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] = acc[i]! + tmp[src + i]! * w;
    }
    const dst = (y - win.y0) * dstStride + dstX;
    for (let i = 0; i < rowLen; i++) {
      const v = acc[i]! >> PRECISION_BITS;
      out[dst + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { data: out, width: win.width, height: win.height };
}

/** Pillow ImagingResampleHorizontal_8bpc on source rows y0..y1-1, output columns x0..x1-1. */
function horizontalPass(img: RGBImage, c: Coeffs, y0: number, y1: number, x0: number, x1: number): Uint8Array {
  const src = img.data;
  const { bounds, weights, ksize } = c;
  const ncols = x1 - x0;
  const out = new Uint8Array((y1 - y0) * ncols * 3);
  const srcStride = img.width * 3;
  let d = 0;
  for (let y = y0; y < y1; y++) {
    const row = y * srcStride;
    for (let xx = x0; xx < x1; xx++) {
      const xmin = bounds[xx * 2]!;
      const cnt = bounds[xx * 2 + 1]!;
      const kOff = xx * ksize;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      let p = row + xmin * 3;
      for (let k = 0; k < cnt; k++, p += 3) {
        const w = weights[kOff + k]!;
        s0 += src[p]! * w;
        s1 += src[p + 1]! * w;
        s2 += src[p + 2]! * w;
      }
      s0 >>= PRECISION_BITS;
      s1 >>= PRECISION_BITS;
      s2 >>= PRECISION_BITS;
      out[d++] = s0 < 0 ? 0 : s0 > 255 ? 255 : s0;
      out[d++] = s1 < 0 ? 0 : s1 > 255 ? 255 : s1;
      out[d++] = s2 < 0 ? 0 : s2 > 255 ? 255 : s2;
    }
  }
  return out;
}

function copyBlock(img: RGBImage, y0: number, y1: number, x0: number, x1: number): Uint8Array {
  const rowLen = (x1 - x0) * 3;
  const out = new Uint8Array((y1 - y0) * rowLen);
  for (let y = y0; y < y1; y++) {
    const s = (y * img.width + x0) * 3;
    out.set(img.data.subarray(s, s + rowLen), (y - y0) * rowLen);
  }
  return out;
}

/** Pillow `Image.resize((width, height), resample)` on an RGB image (default bicubic); same size = copy. */
export function pilResize(img: RGBImage, width: number, height: number, resample = 3): RGBImage {
  return resizeWindow(img, width, height, resample, { x0: 0, y0: 0, width, height });
}

// ---------------------------------------------------------------------------------------------------------------
// Geometry: LLaVA expand2square, HF output size and center crop

/** LLaVA `expand2square`: a square of side max(w, h) filled with `background`, the image pasted centered. */
export function expandToSquare(img: RGBImage, background: readonly [number, number, number]): RGBImage {
  const { width: w, height: h } = img;
  if (w === h) return img;
  const side = Math.max(w, h);
  const data = new Uint8Array(side * side * 3);
  for (let i = 0; i < side * side; i++) {
    data[i * 3] = background[0];
    data[i * 3 + 1] = background[1];
    data[i * 3 + 2] = background[2];
  }
  const px = w > h ? 0 : Math.floor((h - w) / 2);
  const py = w > h ? Math.floor((w - h) / 2) : 0;
  for (let y = 0; y < h; y++) data.set(img.data.subarray(y * w * 3, (y + 1) * w * 3), ((y + py) * side + px) * 3);
  return { data, width: side, height: side };
}

/** LLaVA's pad colour for a config: int(m * 255) per channel of image_mean. */
export function padColour(cfg: PreprocessorConfig): [number, number, number] {
  return [Math.trunc(cfg.imageMean[0] * 255), Math.trunc(cfg.imageMean[1] * 255), Math.trunc(cfg.imageMean[2] * 255)];
}

/** HF resize target (width, height): shortest edge -> s, long side int(s * long / short); or the exact size. */
export function resizeOutputSize(width: number, height: number, cfg: PreprocessorConfig): { width: number; height: number } {
  if (!cfg.doResize) return { width, height };
  if ("height" in cfg.size) return { width: cfg.size.width, height: cfg.size.height };
  const s = cfg.size.shortestEdge;
  if (width <= height) return { width: s, height: Math.trunc((s * height) / width) };
  return { width: Math.trunc((s * width) / height), height: s };
}

/** HF center_crop window on an image of size w x h: floor offsets; outside the image = zero padding. */
function cropWindow(w: number, h: number, cfg: PreprocessorConfig): Window {
  if (!cfg.doCenterCrop) return { x0: 0, y0: 0, width: w, height: h };
  const { height: ch, width: cw } = cfg.cropSize;
  return { x0: Math.floor((w - cw) / 2), y0: Math.floor((h - ch) / 2), width: cw, height: ch };
}

// ---------------------------------------------------------------------------------------------------------------
// Rescale + normalize table and the pipeline

/**
 * Float32 output for every uint8 input, per channel ([3, 256], index c * 256 + v):
 * v' = float32(v * rescale_factor) (double product), then float32((v' - float32(mean)) / float32(std)) in float32.
 */
export function normalizeTable(cfg: PreprocessorConfig): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(cfg.imageMean[c]!);
    const std = Math.fround(cfg.imageStd[c]!);
    for (let v = 0; v < 256; v++) {
      let x = cfg.doRescale ? Math.fround(v * cfg.rescaleFactor) : v;
      if (cfg.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
      lut[c * 256 + v] = x;
    }
  }
  return lut;
}

export type PreprocessMode = "clip" | "pad";

export interface PreprocessOptions {
  /** "clip": CLIPImageProcessor as is; "pad": LLaVA-1.5 `image_aspect_ratio: pad` first. Default "clip". */
  mode?: PreprocessMode;
  /** preprocessor_config.json object (flat or nested under image_processor); default CLIP ViT-L/14-336's. */
  config?: object;
}

export interface PixelValues {
  data: Float32Array; // [3, H, W]
  shape: [number, number, number];
}

interface Prepared {
  cfg: PreprocessorConfig;
  lut: Float32Array;
  pad: [number, number, number];
}

const prepared = new WeakMap<object, Prepared>();

function prepare(config: object = CLIP_VIT_L_336_PREPROCESSOR): Prepared {
  let p = prepared.get(config);
  if (!p) {
    const cfg = parsePreprocessorConfig(config);
    p = { cfg, lut: normalizeTable(cfg), pad: padColour(cfg) };
    prepared.set(config, p);
  }
  return p;
}

/** The preprocessing of an already decoded RGB image (steps 2-8): [3, H, W] float32. */
export function preprocessRGB(img: RGBImage, opts: PreprocessOptions = {}): PixelValues {
  const mode = opts.mode ?? "clip";
  if (mode !== "clip" && mode !== "pad") throw new Error(`preprocess mode "${String(mode)}": expected "clip" or "pad"`);
  const { cfg, lut, pad } = prepare(opts.config);
  const src = mode === "pad" ? expandToSquare(img, pad) : img;
  const size = resizeOutputSize(src.width, src.height, cfg);
  const win = cropWindow(size.width, size.height, cfg);
  const crop = resizeWindow(src, size.width, size.height, cfg.resample, win); // [h, w, 3] uint8
  const hw = crop.width * crop.height;
  const data = new Float32Array(3 * hw);
  const px = crop.data;
  for (let i = 0; i < hw; i++) {
    data[i] = lut[px[i * 3]!]!;
    data[hw + i] = lut[256 + px[i * 3 + 1]!]!;
    data[2 * hw + i] = lut[512 + px[i * 3 + 2]!]!;
  }
  return { data, shape: [3, crop.height, crop.width] };
}

/** Decodes and preprocesses one encoded image without tensors (for data workers and batching). */
export async function preprocessToFloat32(bytes: Uint8Array, opts: PreprocessOptions = {}): Promise<PixelValues> {
  prepare(opts.config); // config errors before decoding
  return preprocessRGB(await decodeImage(bytes), opts);
}

/** Decodes and preprocesses one encoded image: pixel_values [3, H, W] float32 (336 x 336 for CLIP-336). */
export async function preprocessImage(bytes: Uint8Array, opts: PreprocessOptions = {}): Promise<tf.Tensor3D> {
  const { data, shape } = await preprocessToFloat32(bytes, opts);
  return tf.tensor3d(data, shape, "float32");
}
