// Shard rows -> typed records through a column mapping: LLaVA conversations ({id, image, conversations: [{from,
// value}]}, LLaVA-Pretrain / llava_v1_5_mix665k style) and VQA rows (question, answers, image, question_id; VQAv2,
// TextVQA, POPE style). Bad rows raise RowError (a DataError naming file, record batch, row and column) or, with
// onError "skip", are counted in a SkipReport. Image bytes are carried (copied), not decoded.
import path from "node:path";
import { DataType } from "apache-arrow";
import type { Schema } from "apache-arrow";
import { warn } from "../core/log.js";
import type { Cursor, RowWhere, ShardSet } from "./arrow_shards.js";
import type { OnError, SkipReason } from "./skip_report.js";
import { RowError, SkipReport } from "./skip_report.js";

/** Which column holds what. Leave `image` out for text-only data, `answers` out for unanswered questions. */
export interface ColumnMapping {
  id?: string;
  image?: string;
  conversations?: string;
  question?: string;
  answers?: string;
}

export const LLAVA_MAPPING = { id: "id", image: "image", conversations: "conversations" } as const satisfies ColumnMapping;
export const VQA_MAPPING = { id: "question_id", image: "image", question: "question", answers: "answers" } as const satisfies ColumnMapping;

export type ImageFormat = "jpeg" | "png" | "gif" | "webp" | "bmp" | "tiff";

/** An image as the data gives it: encoded bytes (HF Image struct or a binary column) or a path to resolve later. */
export type ImageRef =
  | { kind: "bytes"; bytes: Uint8Array; format: ImageFormat; path?: string }
  | { kind: "path"; path: string };

export interface Turn {
  /** As in the data: "human" | "gpt" (LLaVA), "user" | "assistant" | "system" (chat). */
  from: string;
  value: string;
}

export interface ConversationRecord {
  id: string;
  /** Zero (text-only), one (LLaVA-1.5) or more images, in column order. */
  images: ImageRef[];
  conversations: Turn[];
  where: RowWhere;
}

export interface VqaRecord {
  /** question_id as stored (string or number). */
  id: string | number;
  question: string;
  /** Ground-truth answers ([] when the mapping has no answers column or the value is null, e.g. a test split). */
  answers: string[];
  images: ImageRef[];
  where: RowWhere;
}

const IMAGE_TOKEN = "<image>";
const HUMAN = new Set(["human", "user"]);
const ASSISTANT = new Set(["gpt", "assistant"]);
const ROLES = new Set([...HUMAN, ...ASSISTANT, "system"]);

type Row = Record<string, unknown>;

/** A LLaVA conversation record from `row`, or RowError. */
export function toConversationRecord(row: Row, mapping: ColumnMapping, where: RowWhere): ConversationRecord {
  const convCol = mapping.conversations ?? "conversations";
  const raw = column(row, convCol, where);
  if (!Array.isArray(raw)) fail("wrong type", `expected a list of {from, value} turns, got ${kindOf(raw)}`, where, convCol);
  if (raw.length === 0) fail("empty conversation", "no turns", where, convCol);
  const conversations = raw.map((t, k) => toTurn(t, `${convCol}[${k}]`, where));
  if (!conversations.some((t) => ASSISTANT.has(t.from))) {
    fail("no assistant turn", `no "gpt"/"assistant" turn among ${conversations.length}`, where, convCol);
  }
  const images = mapping.image !== undefined ? toImages(column(row, mapping.image, where), mapping.image, where) : [];
  const tokens = conversations
    .filter((t) => HUMAN.has(t.from))
    .reduce((n, t) => n + t.value.split(IMAGE_TOKEN).length - 1, 0);
  if (images.length > 0 && tokens < images.length) {
    fail("missing <image>", `${images.length} image(s) but ${tokens} "<image>" in the human turns`, where, convCol);
  }
  if (tokens > images.length) {
    fail("<image> without image", `${tokens} "<image>" in the human turns but ${images.length} image(s)`, where, mapping.image ?? convCol);
  }
  return { id: toId(row, mapping.id, where, true) as string, images, conversations, where };
}

/** A VQA record (question, answers, image, question_id) from `row`, or RowError. */
export function toVqaRecord(row: Row, mapping: ColumnMapping, where: RowWhere): VqaRecord {
  const qCol = mapping.question ?? "question";
  const question = column(row, qCol, where);
  if (typeof question !== "string") fail("wrong type", `expected a string, got ${kindOf(question)}`, where, qCol);
  const answers = mapping.answers !== undefined ? toAnswers(column(row, mapping.answers, where), mapping.answers, where) : [];
  const images = mapping.image !== undefined ? toImages(column(row, mapping.image, where), mapping.image, where) : [];
  return { id: toId(row, mapping.id, where, false), question, answers, images, where };
}

export interface RecordStreamOptions {
  from?: Cursor;
  /** Default: the ShardSet's onError. */
  onError?: OnError;
  /** Default: the ShardSet's report. */
  report?: SkipReport;
}

/** Conversation records of every row of `set`; skipped rows are counted in the report and summarised at the end. */
export function conversationRecords(set: ShardSet, mapping: ColumnMapping, opts: RecordStreamOptions = {}): AsyncGenerator<ConversationRecord> {
  checkMapping(set, mapping, "conversation");
  return mapRows(set, (row, where) => toConversationRecord(row, mapping, where), opts);
}

/** VQA records of every row of `set`; skipped rows are counted in the report and summarised at the end. */
export function vqaRecords(set: ShardSet, mapping: ColumnMapping, opts: RecordStreamOptions = {}): AsyncGenerator<VqaRecord> {
  checkMapping(set, mapping, "vqa");
  return mapRows(set, (row, where) => toVqaRecord(row, mapping, where), opts);
}

async function* mapRows<R>(set: ShardSet, convert: (row: Row, where: RowWhere) => R, opts: RecordStreamOptions): AsyncGenerator<R> {
  const onError = opts.onError ?? set.onError;
  const report = opts.report ?? set.report;
  for await (const { row, where } of set.rows({ from: opts.from })) {
    let rec: R;
    try {
      rec = convert(row, where);
    } catch (e) {
      if (onError === "raise" || !(e instanceof RowError)) throw e;
      report.add(e, 1);
      continue;
    }
    yield rec;
  }
  if (!report.empty) warn(report.summary());
}

/**
 * Checks that the mapped columns exist with usable Arrow types before any row is read (RowError naming the first
 * shard's file and the column).
 */
export function checkMapping(set: ShardSet, mapping: ColumnMapping, kind: "conversation" | "vqa"): void {
  const file = set.shards[0]?.file;
  const schema: Schema = set.schema.arrow;
  const need: [string | undefined, (t: DataType) => boolean, string][] =
    kind === "conversation"
      ? [
          [mapping.conversations ?? "conversations", isTurnList, "list<struct<from: string, value: string>>"],
          [mapping.image, isImageType, "string path, binary, Image struct<bytes, path> or a list of these"],
          [mapping.id, isScalar, "string or integer"],
        ]
      : [
          [mapping.question ?? "question", isString, "string"],
          [mapping.answers, isAnswers, "string, list<string> or list<struct<answer: string>>"],
          [mapping.image, isImageType, "string path, binary, Image struct<bytes, path> or a list of these"],
          [mapping.id, isScalar, "string or integer"],
        ];
  for (const [col, ok, want] of need) {
    if (col === undefined) continue;
    const f = schema.fields.find((x) => x.name === col);
    if (!f) {
      const have = schema.fields.map((x) => x.name).join(", ");
      throw new RowError("missing column", `not in the schema (columns: ${have})`, { file, column: col });
    }
    if (!ok(f.type)) throw new RowError("wrong type", `Arrow type ${String(f.type)}, expected ${want}`, { file, column: col });
  }
}

// ---------------------------------------------------------------- value checks

function column(row: Row, col: string, where: RowWhere): unknown {
  if (!(col in row)) fail("missing column", `row has no column "${col}" (columns: ${Object.keys(row).join(", ")})`, where, col);
  return row[col];
}

function toTurn(t: unknown, col: string, where: RowWhere): Turn {
  if (!t || typeof t !== "object" || Array.isArray(t)) fail("wrong type", `expected a {from, value} turn, got ${kindOf(t)}`, where, col);
  const o = t as { from?: unknown; role?: unknown; value?: unknown; content?: unknown };
  const from = o.from ?? o.role;
  const value = o.value ?? o.content;
  if (typeof from !== "string") fail("wrong type", `"from" must be a string, got ${kindOf(from)}`, where, col);
  if (!ROLES.has(from)) fail("bad value", `unknown speaker "${from}" (human, gpt, user, assistant, system)`, where, col);
  if (typeof value !== "string") fail("wrong type", `"value" must be a string, got ${kindOf(value)}`, where, col);
  return { from, value };
}

function toImages(v: unknown, col: string, where: RowWhere): ImageRef[] {
  if (v === null || v === undefined) return [];
  if (Array.isArray(v)) return v.flatMap((x, k) => toImages(x, `${col}[${k}]`, where));
  if (typeof v === "string") {
    if (v === "") fail("bad value", "empty image path", where, col);
    return [{ kind: "path", path: v }];
  }
  if (v instanceof Uint8Array) return [bytesRef(v, undefined, col, where)];
  if (typeof v === "object") {
    const o = v as { bytes?: unknown; path?: unknown };
    if (!("bytes" in o) && !("path" in o)) fail("wrong type", `expected an Image {bytes, path}, got ${kindOf(v)}`, where, col);
    const p = typeof o.path === "string" && o.path !== "" ? o.path : undefined;
    if (o.bytes instanceof Uint8Array) return [bytesRef(o.bytes, p, col, where)];
    if (o.bytes !== null && o.bytes !== undefined) fail("wrong type", `image bytes must be binary, got ${kindOf(o.bytes)}`, where, col);
    if (p !== undefined) return [{ kind: "path", path: p }];
    return [];
  }
  return fail("wrong type", `expected an image (path, bytes or {bytes, path}), got ${kindOf(v)}`, where, col);
}

function bytesRef(bytes: Uint8Array, p: string | undefined, col: string, where: RowWhere): ImageRef {
  const format = sniffImageFormat(bytes);
  if (!format) {
    const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join(" ");
    fail("unreadable image", `${bytes.length} bytes starting "${head}" are not JPEG, PNG, GIF, WebP, BMP or TIFF`, where, col);
  }
  return p !== undefined ? { kind: "bytes", bytes, format, path: p } : { kind: "bytes", bytes, format };
}

/** The encoded image format from its magic bytes, or undefined. */
export function sniffImageFormat(b: Uint8Array): ImageFormat | undefined {
  const at = (i: number, ...xs: number[]) => xs.every((x, k) => b[i + k] === x);
  if (b.length >= 3 && at(0, 0xff, 0xd8, 0xff)) return "jpeg";
  if (b.length >= 8 && at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return "png";
  if (b.length >= 6 && at(0, 0x47, 0x49, 0x46, 0x38)) return "gif";
  if (b.length >= 12 && at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return "webp";
  if (b.length >= 14 && at(0, 0x42, 0x4d)) return "bmp";
  if (b.length >= 8 && (at(0, 0x49, 0x49, 0x2a, 0x00) || at(0, 0x4d, 0x4d, 0x00, 0x2a))) return "tiff";
  return undefined;
}

function toAnswers(v: unknown, col: string, where: RowWhere): string[] {
  if (v === null || v === undefined) return [];
  if (typeof v === "string") return [v];
  if (typeof v === "number") return [String(v)];
  if (!Array.isArray(v)) fail("wrong type", `expected answers as a list, got ${kindOf(v)}`, where, col);
  return v.map((a, k) => {
    if (typeof a === "string") return a;
    const ans = a && typeof a === "object" ? (a as { answer?: unknown }).answer : undefined;
    if (typeof ans === "string") return ans;
    return fail("wrong type", `expected a string or {answer: string}, got ${kindOf(a)}`, where, `${col}[${k}]`);
  });
}

function toId(row: Row, col: string | undefined, where: RowWhere, asString: boolean): string | number {
  const fallback = `${path.basename(where.file)}:${where.row}`;
  if (col === undefined) return fallback;
  const v = column(row, col, where);
  if (v === null || v === undefined) return fallback;
  if (typeof v === "string") return v;
  if (typeof v === "number") return asString ? String(v) : v;
  return fail("wrong type", `id must be a string or integer, got ${kindOf(v)}`, where, col);
}

function fail(reason: SkipReason, detail: string, where: RowWhere, column: string): never {
  throw new RowError(reason, detail, { file: where.file, batch: where.batch, row: where.row, column });
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (v instanceof Uint8Array) return "binary";
  return typeof v === "object" ? "an object" : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

// ---------------------------------------------------------------- Arrow type predicates

function isString(t: DataType): boolean {
  return DataType.isUtf8(t) || DataType.isLargeUtf8(t) || DataType.isUtf8View(t) ||
    (DataType.isDictionary(t) && isString(t.dictionary));
}
function isBinary(t: DataType): boolean {
  return DataType.isBinary(t) || DataType.isLargeBinary(t) || DataType.isBinaryView(t);
}
function listItem(t: DataType): DataType | undefined {
  return DataType.isList(t) || DataType.isLargeList(t) || DataType.isFixedSizeList(t) ? (t.children[0]?.type as DataType) : undefined;
}
function isScalar(t: DataType): boolean {
  return isString(t) || DataType.isInt(t);
}
function isTurnList(t: DataType): boolean {
  const item = listItem(t);
  if (!item || !DataType.isStruct(item)) return false;
  const names = new Set(item.children.map((f) => f.name));
  return (names.has("from") || names.has("role")) && (names.has("value") || names.has("content"));
}
function isImageType(t: DataType): boolean {
  if (isString(t) || isBinary(t)) return true;
  if (DataType.isStruct(t)) return t.children.some((f) => f.name === "bytes" || f.name === "path");
  const item = listItem(t);
  return item !== undefined && isImageType(item);
}
function isAnswers(t: DataType): boolean {
  if (isString(t)) return true;
  const item = listItem(t);
  if (!item) return false;
  return isString(item) || (DataType.isStruct(item) && item.children.some((f) => f.name === "answer"));
}
