// A small typed schema DSL for YAML configs. A Field checks one value, fills its default and reports every problem
// with its key path; `Infer<typeof schema>` is the TypeScript type of a validated value. Objects reject unknown
// keys with the nearest valid name (edit distance, plus aliases such as HF TrainingArguments names).
import { nearest, unknownKeyMessage, type KeyIndex } from "./suggest.js";

/** Returned by `check` when the value is bad (the problem has been reported). */
export const INVALID: unique symbol = Symbol("invalid");
/** Placeholder of a derived field until its parent's `finish` (or the root's) fills it in. */
export const DERIVED: unique symbol = Symbol("derived");
export type Checked<T> = T | typeof INVALID;

export interface CheckContext {
  /** Records a problem at key path `key` (the context appends the file that set it). */
  report(key: string, message: string): void;
  /** Check path fields marked `mustExist` on disk. */
  checkPaths: boolean;
  /** Folder that relative paths resolve against (the working directory). */
  cwd: string;
  /** Every key path and alias of the root schema, for did-you-mean across sections. */
  keys: KeyIndex;
}

export interface Field<T> {
  readonly kind: "value" | "object" | "open";
  /** What a valid value is, for messages: "a positive number". */
  readonly expected: string;
  /** Value of an absent key; absent = required (objects fill their own defaults). */
  readonly fallback?: { readonly value: T };
  readonly doc?: string;
  /** Other spellings users may try (e.g. HF `learning_rate` for `lr`), for did-you-mean only. */
  readonly aliases?: readonly string[];
  check(v: unknown, key: string, ctx: CheckContext): Checked<T>;
}

export interface ObjectField<T> extends Field<T> {
  readonly kind: "object";
  readonly fields: Readonly<Record<string, Field<unknown>>>;
}

export type { KeyIndex };
export { editDistance, nearest } from "./suggest.js";

export type Infer<F> = F extends Field<infer T> ? T : never;
type Shape = Record<string, Field<unknown>>;
export type InferShape<S extends Shape> = { readonly [K in keyof S]: Infer<S[K]> };

export interface Common<T> {
  default?: T;
  doc?: string;
  aliases?: readonly string[];
}

/** A value field from its description, options and check (the builders below are all made this way). */
export function field<T>(expected: string, o: Common<T>, check: Field<T>["check"]): Field<T> {
  return {
    kind: "value",
    expected,
    ...(o.default !== undefined ? { fallback: { value: o.default } } : {}),
    ...(o.doc ? { doc: o.doc } : {}),
    ...(o.aliases ? { aliases: o.aliases } : {}),
    check,
  };
}

/** A value for messages: strings quoted, long structures cut. */
export function show(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (v === null || typeof v !== "object") return String(v);
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function joinKey(parent: string, k: string): string {
  return parent ? `${parent}.${k}` : k;
}

// ---- scalars ---------------------------------------------------------------------------------------------------

export interface NumOptions extends Common<number> {
  int?: boolean;
  /** Inclusive bounds. */
  min?: number;
  max?: number;
  /** Exclusive bounds. */
  gt?: number;
  lt?: number;
}

function numberText(o: NumOptions): string {
  const noun = o.int ? "integer" : "number";
  const lo = o.gt !== undefined ? `(${o.gt}` : o.min !== undefined ? `[${o.min}` : undefined;
  const hi = o.lt !== undefined ? `${o.lt})` : o.max !== undefined ? `${o.max}]` : undefined;
  if (lo && hi) return `a ${noun} in ${lo}, ${hi}`;
  if (o.gt === 0) return `a positive ${noun}`;
  if (o.min === 0) return `a non-negative ${noun}`;
  if (o.gt !== undefined) return `a ${noun} > ${o.gt}`;
  if (o.min !== undefined) return `an ${o.int ? "integer" : "number"} >= ${o.min}`;
  if (hi) return `a ${noun} ${o.lt !== undefined ? "<" : "<="} ${o.lt ?? o.max}`;
  return o.int ? "an integer" : "a number";
}

/** A finite number (`int: true` for integers) within the given bounds. */
export function num(o: NumOptions = {}): Field<number> {
  const expected = numberText(o);
  return field(expected, o, (v, key, ctx) => {
    const ok =
      typeof v === "number" &&
      Number.isFinite(v) &&
      (!o.int || Number.isSafeInteger(v)) &&
      (o.min === undefined || v >= o.min) &&
      (o.max === undefined || v <= o.max) &&
      (o.gt === undefined || v > o.gt) &&
      (o.lt === undefined || v < o.lt);
    if (ok) return v;
    ctx.report(key, `expected ${expected}, got ${show(v)}`);
    return INVALID;
  });
}

export function int(o: Omit<NumOptions, "int"> = {}): Field<number> {
  return num({ ...o, int: true });
}

/** A string; `pattern` (with its description) restricts it. Empty strings are refused. */
export function str(o: Common<string> & { pattern?: RegExp; patternText?: string } = {}): Field<string> {
  const expected = o.patternText ?? "a non-empty string";
  return field(expected, o, (v, key, ctx) => {
    if (typeof v === "string" && v !== "" && (!o.pattern || o.pattern.test(v))) return v;
    ctx.report(key, `expected ${expected}, got ${show(v)}`);
    return INVALID;
  });
}

export function bool(o: Common<boolean> = {}): Field<boolean> {
  return field("true or false", o, (v, key, ctx) => {
    if (typeof v === "boolean") return v;
    ctx.report(key, `expected true or false, got ${show(v)}`);
    return INVALID;
  });
}

/** One of a fixed list of names; a bad value lists the valid ones. */
export function oneOf<const V extends readonly string[]>(values: V, o: Common<V[number]> = {}): Field<V[number]> {
  const expected = `one of ${values.join(" | ")}`;
  return field(expected, o, (v, key, ctx) => {
    if (typeof v === "string" && values.includes(v)) return v as V[number];
    const near = typeof v === "string" ? nearest(v, values) : undefined;
    ctx.report(key, `expected ${expected}, got ${show(v)}${near ? `; did you mean "${near}"?` : ""}`);
    return INVALID;
  });
}

// ---- combinators ---------------------------------------------------------------------------------------------

/** `item` or null; absent means `default` (null unless given). */
export function nullable<T>(item: Field<T>, o: Common<T | null> = {}): Field<T | null> {
  const expected = `${item.expected} or null`;
  // The item's own "expected X" becomes "expected X or null"; other problems (list items, paths) pass through.
  const own = `expected ${item.expected},`;
  return field(expected, { ...o, default: o.default === undefined ? null : o.default }, (v, key, ctx) => {
    if (v === null) return null;
    const report = (k: string, m: string) => ctx.report(k, k === key && m.startsWith(own) ? `expected ${expected},${m.slice(own.length)}` : m);
    return item.check(v, key, { ...ctx, report });
  });
}

/**
 * A field the parent's `finish` (or the root's) computes when it is absent or null; `rule` documents how.
 * Until then the value is the DERIVED placeholder (see isDerived).
 */
export function derived<T>(item: Field<T>, rule: string, o: Omit<Common<T>, "default"> = {}): Field<T> {
  return {
    kind: "value",
    expected: item.expected,
    fallback: { value: DERIVED as unknown as T },
    doc: [o.doc, `default: ${rule}`].filter(Boolean).join("; "),
    ...(o.aliases ? { aliases: o.aliases } : {}),
    check: (v, key, ctx) => (v === null ? (DERIVED as unknown as T) : item.check(v, key, ctx)),
  };
}

export function isDerived(v: unknown): boolean {
  return v === DERIVED;
}

/** A list of `item`s (optionally of an exact length); each bad item is reported as `key[i]`. */
export function list<T>(item: Field<T>, o: Common<readonly T[]> & { length?: number; minLength?: number } = {}): Field<readonly T[]> {
  const expected = `a list of ${o.length ?? (o.minLength ? `${o.minLength} or more` : "any number of")} items, each ${item.expected}`;
  return field(expected, o, (v, key, ctx) => {
    if (!Array.isArray(v) || (o.length !== undefined && v.length !== o.length) || v.length < (o.minLength ?? 0)) {
      ctx.report(key, `expected ${expected}, got ${show(v)}`);
      return INVALID;
    }
    const out = v.map((x, i) => item.check(x, `${key}[${i}]`, ctx));
    return out.includes(INVALID) ? INVALID : (out as T[]);
  });
}

/** One `item` or a non-empty list of them (shard specs: a folder, a glob or a list). */
export function oneOrMany<T>(item: Field<T>, o: Common<T | readonly T[]> = {}): Field<T | readonly T[]> {
  const many = list(item, { minLength: 1 });
  return field(`${item.expected} or a non-empty list of them`, o, (v, key, ctx) =>
    Array.isArray(v) ? many.check(v, key, ctx) : item.check(v, key, ctx),
  );
}

/** The first of `options` that accepts the value; otherwise one problem naming all of them. */
export function anyOf<T>(options: readonly Field<T>[], o: Common<T> = {}): Field<T> {
  const expected = options.map((f) => f.expected).join(" or ");
  return field(expected, o, (v, key, ctx) => {
    for (const f of options) {
      const quiet: CheckContext = { ...ctx, report: () => {} };
      if (f.check(v, key, quiet) !== INVALID) return f.check(v, key, ctx);
    }
    ctx.report(key, `expected ${expected}, got ${show(v)}`);
    return INVALID;
  });
}

/** JSON-like values of an open mapping. */
export type JsonValue = string | number | boolean | null | readonly JsonValue[] | { readonly [k: string]: JsonValue };

/** A mapping whose keys are not checked (placeholder sections); default {}. */
export function openMapping(o: { doc?: string } = {}): Field<Readonly<Record<string, JsonValue>>> {
  return {
    kind: "open",
    expected: "a mapping",
    fallback: { value: {} },
    ...(o.doc ? { doc: o.doc } : {}),
    check: (v, key, ctx) => {
      if (v === null || v === undefined) return {};
      if (isMapping(v)) return v as Record<string, JsonValue>;
      ctx.report(key, `expected a mapping, got ${show(v)}`);
      return INVALID;
    },
  };
}

// ---- objects -------------------------------------------------------------------------------------------------

export interface ObjOptions<T> {
  doc?: string;
  /** Cross-field checks and derived values, run when every field is valid; report problems through ctx. */
  finish?: (v: T, key: string, ctx: CheckContext) => Checked<T>;
}

/**
 * A mapping with known keys. Absent or null means {} (every field's default). Unknown keys are problems with the
 * nearest valid name; absent keys without a default are "missing required key" problems.
 */
export function obj<S extends Shape>(fields: S, o: ObjOptions<InferShape<S>> = {}): ObjectField<InferShape<S>> {
  return {
    kind: "object",
    expected: `a mapping with keys ${Object.keys(fields).join(", ")}`,
    fields,
    ...(o.doc ? { doc: o.doc } : {}),
    check(v, key, ctx) {
      const m = v === undefined || v === null ? {} : v;
      if (!isMapping(m)) {
        ctx.report(key || "(top level)", `expected a mapping with keys ${Object.keys(fields).join(", ")}, got ${show(v)}`);
        return INVALID;
      }
      let bad = false;
      for (const k of Object.keys(m)) {
        if (Object.prototype.hasOwnProperty.call(fields, k)) continue;
        ctx.report(joinKey(key, k), unknownKeyMessage(key, k, fields, ctx.keys));
        bad = true;
      }
      const out: Record<string, unknown> = {};
      for (const [k, f] of Object.entries(fields)) {
        const sub = joinKey(key, k);
        const x = m[k];
        if (x === undefined && f.kind === "value") {
          if (f.fallback) out[k] = f.fallback.value;
          else {
            ctx.report(sub, `missing required key (expected ${f.expected})`);
            bad = true;
          }
          continue;
        }
        const r = f.check(x, sub, ctx);
        if (r === INVALID) bad = true;
        else out[k] = r;
      }
      if (bad) return INVALID;
      const value = out as InferShape<S>;
      return o.finish ? o.finish(value, key, ctx) : value;
    },
  };
}

/** The field at dotted key path `key` of an object schema, if any. */
export function fieldAt(root: ObjectField<unknown>, key: string): Field<unknown> | undefined {
  let f: Field<unknown> | undefined = root;
  for (const part of key.split(".")) {
    if (!f || f.kind !== "object") return undefined;
    const fields: Readonly<Record<string, Field<unknown>>> = (f as ObjectField<unknown>).fields;
    f = Object.prototype.hasOwnProperty.call(fields, part) ? fields[part] : undefined;
  }
  return f;
}


/** The key paths and aliases of an object schema. */
export function indexKeys(root: ObjectField<unknown>): KeyIndex {
  const paths: string[] = [];
  const aliases = new Map<string, string>();
  const walk = (o: ObjectField<unknown>, prefix: string) => {
    for (const [k, f] of Object.entries(o.fields)) {
      const p = joinKey(prefix, k);
      paths.push(p);
      for (const a of f.aliases ?? []) aliases.set(a.toLowerCase(), p);
      if (f.kind === "object") walk(f as ObjectField<unknown>, p);
    }
  };
  walk(root, "");
  return { paths, aliases };
}

/** One line per key of an object schema: `key: expected (default: value) - doc`, for docs and `--help`. */
export function describeFields(root: ObjectField<unknown>, prefix = ""): string[] {
  const out: string[] = [];
  for (const [k, f] of Object.entries(root.fields)) {
    const key = joinKey(prefix, k);
    if (f.kind === "object") {
      out.push(...describeFields(f as ObjectField<unknown>, key));
      continue;
    }
    const def = !f.fallback ? "required" : isDerived(f.fallback.value) ? undefined : `default: ${JSON.stringify(f.fallback.value)}`;
    out.push(`${key}: ${f.expected}${def ? ` (${def})` : ""}${f.doc ? ` - ${f.doc}` : ""}`);
  }
  return out;
}
