// What identifies a set of cached reduced visual features (issue 4 §3): the vision weights and layer, the reducer
// and its resolved params, the image preprocessing and the stored dtype. A FeatureKey is hashed (sha256 of its
// canonical JSON: keys sorted, undefined dropped) to the cache folder name, so changing any part of it selects
// another folder and can never hit an entry computed under the old key.
//
// Weights fingerprint (cheap, never a full hash of multi-GB files): sha256 over, per `*.safetensors` file in name
// order, its name, its size, its whole JSON header (every tensor's name, dtype, shape and offsets) and its data
// section: all of it when at most 1 MiB, else 16 windows of 64 KiB evenly spaced from the first byte to the last;
// plus config.json when present. Any retraining or fine-tune changes bytes in every window; an edit confined to
// bytes outside the windows of a large file would go unnoticed: pass `revision` (e.g. the Hub commit) to be sure.
import { createHash } from "node:crypto";
import { open, readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { ConfigError, WeightsError } from "../core/errors.js";
import { CLIP_VIT_L_336_PREPROCESSOR, parsePreprocessorConfig, type PreprocessMode } from "../data/preprocess.js";
import { resolveHiddenIndex } from "../models/clip_vision.js";
import { headerLength } from "../models/safetensors.js";

/** Bumped when the key's meaning or the shard layout changes: old folders are then never opened. */
export const FEATURE_CACHE_FORMAT = "vzt-feature-cache/1";

export interface FeatureKey {
  vision: {
    /** Hub id or folder the tower was loaded from (recorded as given: a moved folder gives a new key). */
    source: string;
    /** Hub commit or any version label; optional, the fingerprint already identifies the weights. */
    revision?: string;
    /** weightsFingerprint() of the folder holding the tower weights. */
    fingerprint: string;
    /** HF hidden_states index the features come from (makeFeatureKey resolves negatives with numLayers). */
    layer: number;
  };
  /** Reducer name and its resolved params (Reducer.params: budget split, keepCls, seed, ... with defaults). */
  reducer: { name: string; params: Readonly<Record<string, unknown>> };
  /** Image preprocessing: mode "clip" | "pad" with the parsed preprocessor config; "none" when pixel values are given. */
  preprocess: { mode: PreprocessMode | "none"; config: unknown };
  /** Stored element type of the tokens. */
  dtype: "float32";
}

/** JSON with object keys sorted at every level and undefined members dropped; throws on values JSON cannot hold. */
export function canonicalJson(value: unknown, at = "key"): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new ConfigError([`${at}: ${value} cannot be part of a cache key`]);
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map((v, i) => canonicalJson(v ?? null, `${at}[${i}]`)).join(",")}]`;
      if (ArrayBuffer.isView(value)) throw new ConfigError([`${at}: typed arrays cannot be part of a cache key`]);
      const o = value as Record<string, unknown>;
      const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k], `${at}.${k}`)}`).join(",")}}`;
    }
    default:
      throw new ConfigError([`${at}: a ${typeof value} cannot be part of a cache key`]);
  }
}

/** Every problem with `key`'s structure, each naming its key path; ConfigError when there is any. */
export function checkFeatureKey(key: FeatureKey): void {
  const p: string[] = [];
  const isObj = (v: unknown) => v !== null && typeof v === "object" && !Array.isArray(v);
  if (!isObj(key)) throw new ConfigError(["key: must be an object {vision, reducer, preprocess, dtype}"]);
  if (!isObj(key.vision)) p.push("key.vision: must be an object {source, fingerprint, layer}");
  else {
    if (typeof key.vision.source !== "string" || !key.vision.source) p.push("key.vision.source: must be a non-empty string");
    if (typeof key.vision.fingerprint !== "string" || !key.vision.fingerprint) {
      p.push("key.vision.fingerprint: must be a non-empty string (weightsFingerprint of the weights folder)");
    }
    if (key.vision.revision !== undefined && typeof key.vision.revision !== "string") p.push("key.vision.revision: must be a string");
    if (!Number.isInteger(key.vision.layer)) p.push(`key.vision.layer: must be an integer, got ${String(key.vision.layer)}`);
  }
  if (!isObj(key.reducer)) p.push("key.reducer: must be an object {name, params}");
  else {
    if (typeof key.reducer.name !== "string" || !key.reducer.name) p.push("key.reducer.name: must be a non-empty string");
    if (!isObj(key.reducer.params)) p.push("key.reducer.params: must be an object");
  }
  if (!isObj(key.preprocess)) p.push("key.preprocess: must be an object {mode, config}");
  else if (!["clip", "pad", "none"].includes(key.preprocess.mode)) {
    p.push(`key.preprocess.mode: must be "clip", "pad" or "none", got ${JSON.stringify(key.preprocess.mode)}`);
  }
  if (key.dtype !== "float32") p.push(`key.dtype: only "float32" is stored, got ${JSON.stringify(key.dtype)}`);
  if (p.length) throw new ConfigError(p);
  canonicalJson(key);
}

/** 32 hex chars (128 bits) of sha256(format + canonical key): the cache folder name. */
export function featureKeyHash(key: FeatureKey): string {
  checkFeatureKey(key);
  return createHash("sha256").update(`${FEATURE_CACHE_FORMAT}\n${canonicalJson(key)}`).digest("hex").slice(0, 32);
}

export { imageSha256 } from "../data/image.js";

const WINDOWS = 16;
const WINDOW_BYTES = 64 * 1024;

/** Content fingerprint of the safetensors weights in `dir` (see the file header for what it reads). */
export async function weightsFingerprint(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".safetensors")).sort();
  if (!names.length) throw new WeightsError(`${dir}: no *.safetensors files to fingerprint`, dir);
  const h = createHash("sha256").update("safetensors-sampled-v1\n");
  for (const name of names) {
    const file = path.join(dir, name);
    const size = (await stat(file)).size;
    const fh = await open(file, "r");
    try {
      const read = async (pos: number, len: number): Promise<Buffer> => {
        const buf = Buffer.alloc(len);
        let got = 0;
        while (got < len) {
          const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
          if (bytesRead === 0) throw new WeightsError(`${file}: file ended at byte ${pos + got} while fingerprinting`, file);
          got += bytesRead;
        }
        return buf;
      };
      const n = headerLength(await read(0, Math.min(8, size)), size, file);
      h.update(`${name}\0${size}\0`).update(await read(8, n));
      const start = 8 + n;
      const dataLen = size - start;
      if (dataLen <= WINDOWS * WINDOW_BYTES) h.update(await read(start, dataLen));
      else {
        for (let k = 0; k < WINDOWS; k++) {
          h.update(await read(start + Math.floor((k * (dataLen - WINDOW_BYTES)) / (WINDOWS - 1)), WINDOW_BYTES));
        }
      }
    } finally {
      await fh.close();
    }
  }
  const config = await readFile(path.join(dir, "config.json")).catch(() => undefined);
  if (config) h.update("config.json\0").update(config);
  return `st1:${h.digest("hex")}`;
}

export interface FeatureKeyOptions {
  /** Hub id or folder the tower is loaded from. */
  source: string;
  /** Folder holding the weights (resolveModelDir(source)); default `source`. */
  weightsDir?: string;
  revision?: string;
  /** HF hidden_states index (default -2). */
  layer?: number;
  /** Tower layer count (tower.config.layers): resolves `layer` to 1..L so -2 and L-1 give one key. */
  numLayers?: number;
  /** The reducer as built (its resolved params make budget 64 and dominant 54 + contextual 10 one key). */
  reducer: { name: string; params?: Readonly<Record<string, unknown>> };
  /** Preprocessing of the encoded images; "none" when the caller hands pixel values it made itself. */
  preprocess?: { mode?: PreprocessMode | "none"; config?: object };
}

/** A FeatureKey from the pieces a run has: fingerprints the weights and canonicalises layer and preprocessing. */
export async function makeFeatureKey(o: FeatureKeyOptions): Promise<FeatureKey> {
  const layer = o.layer ?? -2;
  const mode = o.preprocess?.mode ?? "clip";
  return {
    vision: {
      source: o.source,
      revision: o.revision,
      fingerprint: await weightsFingerprint(o.weightsDir ?? o.source),
      layer: o.numLayers !== undefined ? resolveHiddenIndex(layer, o.numLayers) : layer,
    },
    reducer: { name: o.reducer.name, params: { ...(o.reducer.params ?? {}) } },
    preprocess: {
      mode,
      config: mode === "none" ? null : parsePreprocessorConfig(o.preprocess?.config ?? CLIP_VIT_L_336_PREPROCESSOR),
    },
    dtype: "float32",
  };
}
