// A benchmark's data: open its shards, check the columns before any row is read, join GQA's images, and stream
// items in order with their position (the resume key), limited to the first `limit` rows and this worker's share.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { openShards, type ShardSet } from "../data/arrow_shards.js";
import type { ImageRef } from "../data/records.js";
import { ownsPosition, type ShardSpec } from "../data/sampler.js";
import { DataError } from "../core/errors.js";
import { BenchmarkDataError, idCol, imageCol, type Benchmark, type EvalItem, type ItemAt } from "./benchmarks/types.js";

export interface BenchmarkData {
  benchmark: Benchmark;
  set: ShardSet;
  /** Items this benchmark has (after the limit), all workers together. */
  items: number;
  limit: number | null;
  /** GQA: imageId -> image. */
  images?: Map<string, ImageRef>;
}

export interface OpenBenchmarkOptions {
  data: string | string[];
  split?: string;
  images?: string | string[];
  imagesSplit?: string;
  limit: number | null;
}

/** Opens a benchmark's shards and checks its columns (DataError naming the benchmark, file and missing column). */
export async function openBenchmarkData(benchmark: Benchmark, o: OpenBenchmarkOptions): Promise<BenchmarkData> {
  const set = await openShards(o.data, { split: o.split });
  const have = set.schema.columns.map((c) => c.name);
  const missing = benchmark.columns.filter((c) => !have.includes(c));
  if (missing.length) {
    throw new DataError(`benchmark ${benchmark.name}: missing column(s) ${missing.map((c) => `"${c}"`).join(", ")} (columns: ${have.join(", ")})`, { file: set.shards[0]?.file, column: missing[0] });
  }
  const total = set.totalRows ?? 0;
  const data: BenchmarkData = { benchmark, set, items: o.limit === null ? total : Math.min(total, o.limit), limit: o.limit };
  if (benchmark.needsImages) {
    if (!o.images) throw new DataError(`benchmark ${benchmark.name}: needs the images dataset (benchmarks[].images)`);
    data.images = await readImageIndex(benchmark.name, o.images, o.imagesSplit);
  }
  return data;
}

/** GQA's images dataset (`id`, `image`) as a map id -> image. */
async function readImageIndex(name: string, spec: string | string[], split: string | undefined): Promise<Map<string, ImageRef>> {
  const set = await openShards(spec, { split });
  const have = set.schema.columns.map((c) => c.name);
  for (const c of ["id", "image"]) {
    if (!have.includes(c)) throw new DataError(`benchmark ${name}: images dataset has no column "${c}" (columns: ${have.join(", ")})`, { file: set.shards[0]?.file, column: c });
  }
  const map = new Map<string, ImageRef>();
  for await (const { row, where } of set.rows()) {
    const at: ItemAt = { benchmark: `${name} images`, where };
    map.set(idCol(row, "id", at), imageCol(row, "image", at));
  }
  return map;
}

export interface PositionedItem {
  index: number;
  item: EvalItem;
  at: ItemAt;
}

/**
 * Items of the benchmark in order: positions 0..items-1, only those `shard` owns and `skip` does not reject.
 * Bad rows throw BenchmarkDataError (benchmark, shard file, row).
 */
export async function* benchmarkItems(data: BenchmarkData, shard: ShardSpec | undefined, skip: (index: number) => boolean): AsyncGenerator<PositionedItem> {
  let index = -1;
  const images = data.images;
  for await (const { row, where } of data.set.rows()) {
    index++;
    if (index >= data.items) break;
    if (!ownsPosition(index, shard) || skip(index)) continue;
    const at: ItemAt = { benchmark: data.benchmark.name, where, ...(images ? { image: (k: string) => images.get(k) } : {}) };
    yield { index, item: data.benchmark.toItem(row, at), at };
  }
}

/** The encoded bytes of an item's image (a path is read relative to its shard's folder). */
export async function imageBytes(ref: ImageRef, at: ItemAt): Promise<Uint8Array> {
  if (ref.kind === "bytes") return ref.bytes;
  const file = path.resolve(path.dirname(at.where.file), ref.path);
  try {
    return new Uint8Array(await readFile(file));
  } catch {
    throw new BenchmarkDataError(at, `missing image: no file ${file}`, "image");
  }
}
