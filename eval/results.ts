// Eval results on disk:
//   items.jsonl    the append-only log of completed items (one JSON line each, after a header line with the config
//                  hash): an interrupted eval re-reads it and skips what is there, so no item is scored twice;
//                  a torn last line (a crash mid-write) is cut off.
//   results.json   per grid cell and benchmark: metrics, counts, "% of full", timings, KV bytes, FLOPs; with the
//                  config and versions (shaped after lmms-eval's results file: results / n-samples / config).
// A sharded run (`--shard i/N`) writes its log under shards/<i>-of-<N>/; mergeShards unions the shard logs
// (checking they belong to one config and that every shard finished) and builds the same results as one run.
import { writeFileAtomicSync } from "../core/atomic.js";
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import path from "node:path";
import { ConfigError, DataError } from "../core/errors.js";
import type { ItemScore } from "./benchmarks/types.js";

/** One completed (or failed) item of one grid cell. */
export interface ItemRecord {
  cell: string;
  benchmark: string;
  /** Position in the benchmark's item list (the log key with cell and benchmark). */
  index: number;
  id: string;
  /** The user turn after `<image>\n` and what the prediction was scored against. */
  prompt: string;
  target: string | readonly string[];
  prediction: string;
  score: ItemScore;
  /** Why generation failed (the item is scored as an empty prediction and counted in `failed`). */
  failed?: string;
  stop?: string;
  visual_tokens: number;
  prompt_tokens: number;
  new_tokens: number;
  /** Per-sample shares of the batch's stage times (ms). */
  tower_ms: number;
  reducer_ms: number;
  prefill_ms: number;
  /** Batch decode time / decode steps (null when the batch stopped after its first token). */
  decode_ms_per_token: number | null;
  /** KV cache of this sample at its longest (prompt + generated - 1 positions), fp32, all layers. */
  kv_cache_bytes: number;
  /** FastV-style LLM prefill FLOPs of this prompt. */
  prefill_flops: number;
}

export interface LogHeader {
  kind: "header";
  config_hash: string;
  shard: string | null;
}

export const ITEMS_FILE = "items.jsonl";
export const RESULTS_FILE = "results.json";
export const META_FILE = "meta.json";
export const COMPLETE_FILE = "complete.json";

export function itemKey(cell: string, benchmark: string, index: number): string {
  return `${cell}\t${benchmark}\t${index}`;
}

/** The append-only log of completed items. */
export class ItemLog {
  private constructor(readonly file: string, readonly records: ItemRecord[], private readonly keys: Set<string>) {}

  /**
   * Opens (or creates) the log at `file`. An existing log must carry the same config hash; a torn last line is cut.
   * @throws ConfigError when the log was written under another config.
   */
  static open(file: string, header: LogHeader): ItemLog {
    mkdirSync(path.dirname(file), { recursive: true });
    if (!existsSync(file)) {
      writeFileSync(file, JSON.stringify(header) + "\n");
      return new ItemLog(file, [], new Set());
    }
    const { header: found, records } = readItemLog(file, { repair: true });
    if (found.config_hash !== header.config_hash || found.shard !== header.shard) {
      throw new ConfigError([
        `${file}: written by another eval config (hash ${found.config_hash.slice(0, 12)}, shard ${found.shard ?? "none"}; now ${header.config_hash.slice(0, 12)}, shard ${header.shard ?? "none"}); use another output_dir or delete it to start over`,
      ]);
    }
    return new ItemLog(file, records, new Set(records.map((r) => itemKey(r.cell, r.benchmark, r.index))));
  }

  has(cell: string, benchmark: string, index: number): boolean {
    return this.keys.has(itemKey(cell, benchmark, index));
  }

  /** Appends records (flushed to disk before returning); a key already logged is refused. */
  append(records: readonly ItemRecord[]): void {
    for (const r of records) {
      const k = itemKey(r.cell, r.benchmark, r.index);
      if (this.keys.has(k)) throw new Error(`${this.file}: item ${r.cell} ${r.benchmark} #${r.index} is already logged`);
    }
    const fd = openSync(this.file, "a");
    try {
      writeSync(fd, records.map((r) => JSON.stringify({ kind: "item", ...r }) + "\n").join(""));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    for (const r of records) {
      this.keys.add(itemKey(r.cell, r.benchmark, r.index));
      this.records.push(r);
    }
  }
}

/** Reads a log: its header and records. `repair` cuts a torn last line off the file. */
export function readItemLog(file: string, opts: { repair?: boolean } = {}): { header: LogHeader; records: ItemRecord[] } {
  const text = readFileSync(file, "utf8");
  let complete = text;
  const lastNl = text.lastIndexOf("\n");
  if (lastNl !== text.length - 1) {
    complete = text.slice(0, lastNl + 1);
    if (opts.repair) truncateSync(file, Buffer.byteLength(complete));
  }
  const lines = complete.split("\n").filter((l) => l !== "");
  const parse = (l: string, i: number): Record<string, unknown> => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new DataError(`line ${i + 1} is not JSON`, { file });
    }
  };
  const head = lines.length ? parse(lines[0]!, 0) : undefined;
  if (!head || head.kind !== "header" || typeof head.config_hash !== "string") throw new DataError("no header line (an items.jsonl starts with {\"kind\":\"header\",...})", { file });
  const records = lines.slice(1).map((l, i) => {
    const { kind, ...rec } = parse(l, i + 1);
    if (kind !== "item") throw new DataError(`line ${i + 2}: expected an item record`, { file });
    return rec as unknown as ItemRecord;
  });
  return { header: { kind: "header", config_hash: head.config_hash, shard: (head.shard as string | null) ?? null }, records };
}

/** Writes JSON through a temp file + rename (never a half-written file). */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomicSync(file, JSON.stringify(value, null, 2) + "\n");
}

// ---- shards ----------------------------------------------------------------------------------------------------

/** Folder of worker i of N under an output folder. */
export function shardDir(outputDir: string, shard: { index: number; count: number }): string {
  return path.join(outputDir, "shards", `${shard.index}-of-${shard.count}`);
}

export interface ShardFolder {
  dir: string;
  index: number;
  count: number;
  complete: boolean;
}

/** Shard folders found in `dir`: itself when it is one, else `dir/shards/*`. */
export function findShardFolders(dir: string): ShardFolder[] {
  const parse = (d: string): ShardFolder | undefined => {
    const m = /^(\d+)-of-(\d+)$/.exec(path.basename(d));
    if (!m || !existsSync(path.join(d, ITEMS_FILE))) return undefined;
    return { dir: d, index: Number(m[1]), count: Number(m[2]), complete: existsSync(path.join(d, COMPLETE_FILE)) };
  };
  const self = parse(dir);
  if (self) return [self];
  const root = path.join(dir, "shards");
  if (!existsSync(root)) return [];
  return readdirSync(root).map((n) => parse(path.join(root, n))).filter((s): s is ShardFolder => s !== undefined).sort((a, b) => a.index - b.index);
}

/**
 * The union of the shard logs in `dirs` (output folders or shard folders): every shard i of N must be there and
 * complete, all written under one config; a key logged twice must agree.
 * @returns the records and the meta.json of shard 0.
 * @throws DataError naming the missing or unfinished shard, or the conflicting item.
 */
export function collectShards(dirs: readonly string[]): { records: ItemRecord[]; meta: unknown; shards: ShardFolder[] } {
  const shards = dirs.flatMap(findShardFolders);
  if (shards.length === 0) throw new DataError(`no shard folders (shards/<i>-of-<N>/items.jsonl) in ${dirs.join(", ")}`);
  const count = shards[0]!.count;
  const bad = shards.find((s) => s.count !== count);
  if (bad) throw new DataError(`shard ${path.basename(bad.dir)} is of another split than ${path.basename(shards[0]!.dir)}`, { file: bad.dir });
  for (let i = 0; i < count; i++) {
    const s = shards.find((x) => x.index === i);
    if (!s) throw new DataError(`shard ${i}-of-${count} is missing (found ${shards.map((x) => path.basename(x.dir)).join(", ")})`);
    if (!s.complete) throw new DataError(`shard ${i}-of-${count} has not finished (no ${COMPLETE_FILE}); rerun it with --shard ${i}/${count}`, { file: s.dir });
  }
  let hash: string | undefined;
  const byKey = new Map<string, ItemRecord>();
  for (const s of shards) {
    const file = path.join(s.dir, ITEMS_FILE);
    const { header, records } = readItemLog(file);
    if (hash !== undefined && header.config_hash !== hash) throw new DataError(`written under another config (hash ${header.config_hash.slice(0, 12)} vs ${hash.slice(0, 12)})`, { file });
    hash = header.config_hash;
    for (const r of records) {
      const k = itemKey(r.cell, r.benchmark, r.index);
      const prev = byKey.get(k);
      if (prev && prev.prediction !== r.prediction) throw new DataError(`item ${r.cell} ${r.benchmark} #${r.index} has two different predictions`, { file });
      byKey.set(k, r);
    }
  }
  const s0 = shards.find((s) => s.index === 0)!;
  const meta = JSON.parse(readFileSync(path.join(s0.dir, META_FILE), "utf8")) as unknown;
  return { records: sortRecords([...byKey.values()]), meta, shards };
}

/** Records in grid, benchmark and item order (stable output whatever the order they were logged in). */
export function sortRecords(records: readonly ItemRecord[], cells?: readonly string[], benchmarks?: readonly string[]): ItemRecord[] {
  const ci = (c: string) => (cells ? cells.indexOf(c) : 0);
  const bi = (b: string) => (benchmarks ? benchmarks.indexOf(b) : 0);
  return [...records].sort((a, b) => ci(a.cell) - ci(b.cell) || a.cell.localeCompare(b.cell) || bi(a.benchmark) - bi(b.benchmark) || a.benchmark.localeCompare(b.benchmark) || a.index - b.index);
}
