// Arrow values -> plain JS values that outlive their record batch: binary copied out of the batch buffer, Int64 as a
// number (an error when not exactly representable), struct -> object, list -> array, map -> object, null -> null.
import { DataType, Type } from "apache-arrow";
import type { Field, RecordBatch } from "apache-arrow";
import { DataError } from "../core/errors.js";

export interface ValueWhere {
  file: string;
  batch: number;
  /** Row within the file. */
  row: number;
}

/** Row `i` of `batch` as a plain object keyed by column name. */
export function batchRowToPlain(batch: RecordBatch, i: number, where: ValueWhere): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = batch.schema.fields;
  for (let j = 0; j < fields.length; j++) {
    const f = fields[j]!;
    const col = batch.getChildAt(j);
    out[f.name] = toPlain(col ? col.get(i) : null, f.type, f.name, where);
  }
  return out;
}

/** Converts one Arrow value of type `type`; `column` is the column path used in errors ("answers[2].answer_id"). */
export function toPlain(value: unknown, type: DataType, column: string, where: ValueWhere): unknown {
  if (value === null || value === undefined) return null;
  switch (type.typeId) {
    case Type.Struct:
      return structToPlain(value as Record<string, unknown>, type.children, column, where);
    case Type.List:
    case Type.LargeList:
    case Type.FixedSizeList:
      return listToPlain(value as Iterable<unknown> & { length: number; get(i: number): unknown }, type, column, where);
    case Type.Binary:
    case Type.LargeBinary:
    case Type.FixedSizeBinary:
    case Type.BinaryView:
      return new Uint8Array(value as Uint8Array); // copy: the value is a view into the batch buffer
    case Type.Dictionary:
      return toPlain(value, (type as unknown as { dictionary: DataType }).dictionary, column, where);
    case Type.Map: {
      const obj: Record<string, unknown> = {};
      const valueType = (type.children[0]?.type as DataType | undefined)?.children[1]?.type as DataType | undefined;
      for (const [k, v] of value as Iterable<[unknown, unknown]>) {
        obj[String(k)] = valueType ? toPlain(v, valueType, `${column}[${String(k)}]`, where) : generic(v, column, where);
      }
      return obj;
    }
    default:
      return generic(value, column, where);
  }
}

function structToPlain(v: Record<string, unknown>, fields: Field[], column: string, where: ValueWhere) {
  const obj: Record<string, unknown> = {};
  for (const f of fields) obj[f.name] = toPlain(v[f.name], f.type, `${column}.${f.name}`, where);
  return obj;
}

function listToPlain(
  v: Iterable<unknown> & { length: number; get(i: number): unknown },
  type: DataType,
  column: string,
  where: ValueWhere,
): unknown[] {
  const child = type.children[0]?.type as DataType | undefined;
  const out: unknown[] = new Array(v.length);
  if (child && (DataType.isUtf8(child) || DataType.isLargeUtf8(child) || DataType.isBool(child) || DataType.isFloat(child) ||
    (DataType.isInt(child) && child.bitWidth < 64))) {
    let k = 0;
    for (const x of v) out[k++] = x ?? null;
    return out;
  }
  for (let k = 0; k < v.length; k++) out[k] = child ? toPlain(v.get(k), child, `${column}[${k}]`, where) : generic(v.get(k), column, where);
  return out;
}

const typedArraySlice = (Object.getPrototypeOf(Uint8Array.prototype) as { slice: (this: unknown) => unknown }).slice;

/** Scalars: bigint -> number when exact, typed arrays copied, everything else as Arrow gives it. */
function generic(value: unknown, column: string, where: ValueWhere): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === "bigint") return bigintToNumber(value, column, where);
  if (ArrayBuffer.isView(value)) return typedArraySlice.call(value); // copy (Buffer#slice would be a view)
  return value;
}

/** A BigInt as a JS number, or DataError when it is not a safe integer. */
export function bigintToNumber(value: bigint, column: string, where: ValueWhere): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new DataError(`64-bit integer ${value} does not fit a JS number exactly`, { ...where, column });
  }
  return Number(value);
}

/**
 * Checks the offsets of every variable-width column (strings, binary, lists, nested) in `batch`: non-decreasing and
 * inside their data. Arrow bodies carry no checksum; this catches damaged offsets before they turn into wrong values.
 */
export function validateBatch(batch: RecordBatch, where: { file: string; batch: number; row?: number }): void {
  const fields = batch.schema.fields;
  for (let j = 0; j < fields.length; j++) {
    for (const d of batch.getChildAt(j)?.data ?? []) validateData(d as DataLike, fields[j]!.name, where);
  }
}

interface DataLike {
  type: DataType;
  length: number;
  offset: number;
  valueOffsets?: Int32Array | BigInt64Array;
  values?: ArrayLike<unknown>;
  children: DataLike[];
  dictionary?: { data: DataLike[] };
}

function validateData(d: DataLike, column: string, where: { file: string; batch: number; row?: number }): void {
  const t = d.type;
  const variable = DataType.isUtf8(t) || DataType.isBinary(t) || DataType.isLargeUtf8(t) || DataType.isLargeBinary(t);
  const list = DataType.isList(t) || DataType.isLargeList(t) || DataType.isMap(t);
  if ((variable || list) && d.length > 0) {
    const offs = d.valueOffsets;
    const limit = variable ? (d.values?.length ?? 0) : (d.children[0]?.length ?? 0);
    const bad = (msg: string) => new DataError(`corrupt shard: ${msg}`, { ...where, column });
    if (!offs || offs.length < d.offset + d.length + 1) throw bad(`offsets buffer too short for ${d.length} values`);
    let prev = Number(offs[d.offset]!);
    if (prev < 0) throw bad(`negative offset ${prev}`);
    for (let i = d.offset + 1; i <= d.offset + d.length; i++) {
      const o = Number(offs[i]!);
      if (o < prev) throw bad(`offsets decrease at value ${i - 1} (${prev} -> ${o})`);
      prev = o;
    }
    if (prev > limit) throw bad(`offsets reach ${prev}, past the ${limit} ${variable ? "bytes" : "child values"} of data`);
  }
  const names = t.children?.map((f: Field) => f.name) ?? [];
  d.children.forEach((c, k) => validateData(c, names[k] ? `${column}.${names[k]}` : column, where));
  for (const dd of d.dictionary?.data ?? []) validateData(dd, column, where);
}
