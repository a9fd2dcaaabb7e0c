// Hugging Face `datasets` save_to_disk folders: a Dataset (state.json + dataset_info.json + data-XXXXX-of-YYYYY.arrow
// in IPC stream format) or a DatasetDict (dataset_dict.json + one Dataset folder per split).
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { DataError } from "../core/errors.js";

/** HF features JSON (dataset_info.json "features", or the `huggingface` schema metadata "info.features"). */
export type HfFeatures = Record<string, unknown>;

export interface HfDatasetFolder {
  dir: string;
  /** Shard files in `_data_files` order (absolute paths). */
  files: string[];
  features?: HfFeatures;
  /** Split name, for a DatasetDict split. */
  split?: string;
  /** Rows in the split, when dataset_info.json records it. */
  numRows?: number;
  fingerprint?: string;
}

export const STATE_JSON = "state.json";
export const DATASET_INFO_JSON = "dataset_info.json";
export const DATASET_DICT_JSON = "dataset_dict.json";

export function isDatasetFolder(dir: string): boolean {
  return isDir(dir) && existsSync(path.join(dir, STATE_JSON));
}

export function isDatasetDict(dir: string): boolean {
  return isDir(dir) && existsSync(path.join(dir, DATASET_DICT_JSON));
}

/** Split names of a DatasetDict folder, as dataset_dict.json lists them. */
export async function readDatasetDictSplits(dir: string): Promise<string[]> {
  const file = path.join(dir, DATASET_DICT_JSON);
  const j = await readJson(file);
  const splits = (j as { splits?: unknown }).splits;
  if (!Array.isArray(splits) || !splits.every((s) => typeof s === "string")) {
    throw new DataError(`"splits" must be a list of split names`, { file, column: "splits" });
  }
  return splits as string[];
}

/**
 * Opens a save_to_disk folder. A DatasetDict needs `split` (an error lists the splits); a single Dataset ignores it
 * unless it names a different split than state.json records.
 */
export async function readHfFolder(dir: string, split?: string): Promise<HfDatasetFolder> {
  if (isDatasetDict(dir)) {
    const splits = await readDatasetDictSplits(dir);
    if (split === undefined) {
      throw new DataError(`DatasetDict with splits [${splits.join(", ")}]: choose one with the split option`, {
        file: path.join(dir, DATASET_DICT_JSON),
      });
    }
    if (!splits.includes(split)) {
      throw new DataError(`no split "${split}" (splits: ${splits.join(", ")})`, { file: path.join(dir, DATASET_DICT_JSON) });
    }
    const folder = await readDatasetFolder(path.join(dir, split));
    return { ...folder, split };
  }
  if (!isDatasetFolder(dir)) {
    throw new DataError(`not a datasets save_to_disk folder (no ${STATE_JSON} or ${DATASET_DICT_JSON})`, { file: dir });
  }
  return readDatasetFolder(dir);
}

async function readDatasetFolder(dir: string): Promise<HfDatasetFolder> {
  const stateFile = path.join(dir, STATE_JSON);
  const state = (await readJson(stateFile)) as { _data_files?: unknown; _fingerprint?: unknown; _split?: unknown };
  const entries = state._data_files;
  if (!Array.isArray(entries) || entries.length === 0) {
    throw new DataError(`"_data_files" must be a non-empty list of {filename}`, { file: stateFile, column: "_data_files" });
  }
  const files = entries.map((e: unknown, i) => {
    const name = (e as { filename?: unknown } | null)?.filename;
    if (typeof name !== "string" || name.includes("..") || path.isAbsolute(name)) {
      throw new DataError(`bad filename in "_data_files"[${i}]`, { file: stateFile, column: "_data_files" });
    }
    const p = path.join(dir, name);
    if (!existsSync(p)) throw new DataError(`shard listed in state.json is missing: ${name}`, { file: p });
    return p;
  });
  const split = typeof state._split === "string" ? state._split : undefined;
  let features: HfFeatures | undefined;
  let numRows: number | undefined;
  const infoFile = path.join(dir, DATASET_INFO_JSON);
  if (existsSync(infoFile)) {
    const info = (await readJson(infoFile)) as { features?: unknown; splits?: Record<string, { num_examples?: unknown }> };
    if (info.features && typeof info.features === "object") features = info.features as HfFeatures;
    const n = split !== undefined ? info.splits?.[split]?.num_examples : undefined;
    if (typeof n === "number") numRows = n;
  }
  return {
    dir,
    files,
    features,
    split,
    numRows,
    fingerprint: typeof state._fingerprint === "string" ? state._fingerprint : undefined,
  };
}

/** Features from a schema's `huggingface` metadata value ({"info": {"features": ...}}), if any. */
export function featuresFromMetadata(value: string | undefined, file: string): HfFeatures | undefined {
  if (value === undefined) return undefined;
  try {
    const f = (JSON.parse(value) as { info?: { features?: unknown } }).info?.features;
    return f && typeof f === "object" ? (f as HfFeatures) : undefined;
  } catch (e) {
    throw new DataError(`bad "huggingface" schema metadata: ${(e as Error).message}`, { file });
  }
}

/** Top-level columns whose HF feature is `Image` (struct<bytes: binary, path: string>). */
export function imageColumns(features: HfFeatures | undefined): string[] {
  if (!features) return [];
  return Object.entries(features)
    .filter(([, f]) => (f as { _type?: unknown } | null)?._type === "Image")
    .map(([name]) => name);
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new DataError(`cannot read: ${(e as Error).message}`, { file });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new DataError(`invalid JSON: ${(e as Error).message}`, { file });
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
