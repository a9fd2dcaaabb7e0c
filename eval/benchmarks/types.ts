// What a benchmark is: which columns it reads, how a row becomes a prompt + image + target, the lmms-eval
// generation length, how one prediction is scored (a plain JSON record, so a resumed run re-aggregates from its
// log) and how the records aggregate into the benchmark's metrics.
import { SHORT_ANSWER_PROMPT } from "../../data/prompt.js";
import { DataError } from "../../core/errors.js";
import type { RowWhere } from "../../data/arrow_shards.js";
import { sniffImageFormat, type ImageRef } from "../../data/records.js";

/** lmms-eval's default post-prompt for VQAv2, GQA, POPE, TextVQA and MME. */
export const SHORT_ANSWER_POST_PROMPT = `\n${SHORT_ANSWER_PROMPT}`;

export type ScoreValue = number | string | boolean | null;
/** One scored prediction: what aggregate() needs (e.g. `correct`, POPE's mapped answer, MME's category). */
export type ItemScore = Readonly<Record<string, ScoreValue>>;

export interface EvalItem {
  /** Question id as a string (for logs and samples). */
  id: string;
  /** The user turn after `<image>\n`: question + the benchmark's prompt. */
  prompt: string;
  image: ImageRef;
  /** What score() compares against (answers, label, letter). */
  target: string | readonly string[];
  /** Extra fields score() records (category, image key). */
  meta: Readonly<Record<string, string>>;
}

export interface Benchmark {
  name: string;
  describe: string;
  /** Columns every row must have. */
  columns: readonly string[];
  /** lmms-eval's max_new_tokens. */
  maxNewTokens: number;
  /** The metric reports and "% of full" use. */
  primary: string;
  /** True when `images` (a second dataset joined on a key) is required (GQA). */
  needsImages?: boolean;
  /**
   * Row -> item; throws BenchmarkDataError naming the benchmark, shard file and row on bad input.
   * `image` resolves a key in the joined images dataset (GQA).
   */
  toItem(row: Readonly<Record<string, unknown>>, at: ItemAt): EvalItem;
  score(prediction: string, item: EvalItem): ItemScore;
  /** Metrics of the scored items (percentages for accuracies). */
  aggregate(scores: readonly ItemScore[]): Record<string, number>;
}

export interface ItemAt {
  benchmark: string;
  where: RowWhere;
  /** GQA: the image of an imageId from the joined images dataset. */
  image?: (key: string) => ImageRef | undefined;
}

/** A bad row: the message names the benchmark, shard (file) and row. */
export class BenchmarkDataError extends DataError {
  constructor(at: ItemAt, message: string, column?: string) {
    super(`benchmark ${at.benchmark} (shard ${at.where.shard}): ${message}`, { file: at.where.file, batch: at.where.batch, row: at.where.row, column });
    this.name = "BenchmarkDataError";
  }
}

// ---- row readers shared by the benchmarks ----------------------------------------------------------------------

export function stringCol(row: Readonly<Record<string, unknown>>, col: string, at: ItemAt): string {
  const v = row[col];
  if (typeof v === "string") return v;
  if (v === null || v === undefined) throw new BenchmarkDataError(at, `missing value in column "${col}"`, col);
  throw new BenchmarkDataError(at, `column "${col}" must be a string, got ${typeof v}`, col);
}

export function idCol(row: Readonly<Record<string, unknown>>, col: string, at: ItemAt): string {
  const v = row[col];
  if (typeof v === "string" || typeof v === "number") return String(v);
  throw new BenchmarkDataError(at, `column "${col}" must be a string or integer id, got ${v === null ? "null" : typeof v}`, col);
}

/** The one image of a row (HF Image struct, binary or path); null / empty is a "missing image" error. */
export function imageCol(row: Readonly<Record<string, unknown>>, col: string, at: ItemAt): ImageRef {
  const v = row[col];
  if (v instanceof Uint8Array && v.length > 0) return { kind: "bytes", bytes: v, format: sniffImageFormat(v) ?? "png" };
  if (typeof v === "string" && v !== "") return { kind: "path", path: v };
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as { bytes?: unknown; path?: unknown };
    if (o.bytes instanceof Uint8Array && o.bytes.length > 0) return { kind: "bytes", bytes: o.bytes, format: sniffImageFormat(o.bytes) ?? "png", ...(typeof o.path === "string" ? { path: o.path } : {}) };
    if (typeof o.path === "string" && o.path !== "") return { kind: "path", path: o.path };
  }
  throw new BenchmarkDataError(at, `missing image in column "${col}"`, col);
}

/**
 * Ground-truth answers (list<string> or list<struct<answer>>): must be exactly `count` non-empty-list entries
 * (10 annotators for VQAv2 / TextVQA).
 */
export function answersCol(row: Readonly<Record<string, unknown>>, col: string, at: ItemAt, count: number): string[] {
  const v = row[col];
  if (!Array.isArray(v)) throw new BenchmarkDataError(at, `column "${col}" must be a list of answers, got ${v === null ? "null" : typeof v}`, col);
  if (v.length === 0) throw new BenchmarkDataError(at, `empty answers list in column "${col}"`, col);
  if (v.length !== count) throw new BenchmarkDataError(at, `column "${col}" holds ${v.length} answers, expected ${count} (one per annotator)`, col);
  return v.map((a, k) => {
    const s = typeof a === "string" ? a : a && typeof a === "object" ? (a as { answer?: unknown }).answer : undefined;
    if (typeof s !== "string") throw new BenchmarkDataError(at, `answer ${k} must be a string or {answer: string}`, `${col}[${k}]`);
    return s;
  });
}

/** Mean of a numeric score field over the records (0 when none). */
export function meanOf(scores: readonly ItemScore[], key: string): number {
  if (scores.length === 0) return 0;
  let s = 0;
  for (const x of scores) s += Number(x[key] ?? 0);
  return s / scores.length;
}
