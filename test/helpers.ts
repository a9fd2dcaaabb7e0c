// Shared test helpers: where the repo and ../shared/golden are, and golden JSON vectors as typed arrays.
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { packageRoot } from "../core/paths.js";
import path from "node:path";
import { gunzipSync } from "node:zlib";

/** The repository root (the folder holding package.json), found from this compiled file's location. */
export function repoRoot(): string {
  return packageRoot(import.meta.url);
}

/** ../shared/golden beside the repository (VZT_GOLDEN overrides). */
export function goldenDir(): string {
  return process.env.VZT_GOLDEN ?? path.resolve(repoRoot(), "../shared/golden");
}

export interface GoldenVector {
  shape: number[];
  dtype: "float32" | "int32";
  data: Float32Array | Int32Array;
}

/** Reads a golden `{shape, dtype, data}` JSON (optionally .gz) into a Float32Array / Int32Array. */
export function readGoldenVector(file: string): GoldenVector {
  const raw = readFileSync(file);
  const text = file.endsWith(".gz") ? gunzipSync(raw).toString("utf8") : raw.toString("utf8");
  const j = JSON.parse(text) as { shape: number[]; dtype: "float32" | "int32"; data: number[] };
  return { shape: j.shape, dtype: j.dtype, data: j.dtype === "int32" ? Int32Array.from(j.data) : Float32Array.from(j.data) };
}

/** Largest absolute difference between two equal-length arrays (throws on a length mismatch). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** sha256 of every file below `dir`, keyed by relative path (determinism checks). */
export async function fileHashes(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out.set(path.relative(dir, p), createHash("sha256").update(await readFile(p)).digest("hex"));
  }
  return out;
}
