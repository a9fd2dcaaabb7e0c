// Loads a YAML config against any object schema of configs/dsl.ts: the same steps as configs/load.ts (`extends:`
// chain -> `--set` overrides -> `${...}` references -> validation, every problem at once in one ConfigError), with the
// schema passed in. configs/load.ts keeps the RunConfig entry points; eval configs (configs/eval_schema.ts) use this.
import { ConfigError } from "../core/errors.js";
import { fieldAt, indexKeys, isDerived, isMapping, nearest, type CheckContext, type ObjectField } from "./dsl.js";
import { applySets, displayPath, parseSet, readLayers, sourceOf, type Layered, type Raw } from "./layers.js";
import { resolveRefs } from "./refs.js";

export interface SchemaLoadOptions {
  /** `key.path=value` overrides, applied in order after `extends:`. */
  sets?: readonly string[];
  /** Check paths marked mustExist. Default true. */
  checkPaths?: boolean;
  /** Folder relative paths resolve against. Default process.cwd(). */
  cwd?: string;
  /** Variables for `${env:NAME}`. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Reads `file` (with its `extends:` chain and `sets`), resolves references and validates it against `schema`.
 * @returns the validated config, deep-frozen.
 * @throws ConfigError listing every problem (`key: what is wrong (file)`).
 */
export function loadWithSchema<T>(schema: ObjectField<T>, file: string, opts: SchemaLoadOptions = {}): T {
  const cwd = opts.cwd ?? process.cwd();
  const layers = readLayers(file, cwd);
  if (layers.problems.length) throw new ConfigError(layers.problems);
  applyOverrides(layers, opts.sets ?? []);
  return finish(schema, layers.raw, { ...opts, cwd, label: displayPath(file, cwd), sources: layers.sources, problems: layers.problems });
}

/** `--set` overrides in order, list items included (`benchmarks.0.data=...` or `benchmarks[0].data=...`). */
export function applyOverrides(layers: Layered, sets: readonly string[]): void {
  for (const arg of sets) if (!setListItem(layers, arg)) applySets(layers, [arg]);
}

/** Validates a plain object against `schema` (references resolved, defaults filled); `label` names it in problems. */
export function objectWithSchema<T>(schema: ObjectField<T>, raw: unknown, opts: Omit<SchemaLoadOptions, "sets"> & { label?: string } = {}): T {
  if (!isMapping(raw)) throw new ConfigError([`(top level): expected a mapping of keys (${opts.label ?? "object"})`]);
  return finish(schema, structuredClone(raw), { ...opts, cwd: opts.cwd ?? process.cwd(), label: opts.label ?? "object", sources: new Map(), problems: [] });
}

interface FinishOptions extends Omit<SchemaLoadOptions, "sets"> {
  cwd: string;
  label: string;
  sources: ReadonlyMap<string, string>;
  problems: string[];
}

function finish<T>(schema: ObjectField<T>, raw: Raw, o: FinishOptions): T {
  const keys = indexKeys(schema as ObjectField<unknown>);
  const problems = [...o.problems];
  const where = (key: string) => sourceOf(o.sources, key, o.label);
  // A list of mappings (benchmarks: [{name, data}, ...]) is resolved as a mapping keyed "0", "1", ... and turned back
  // into a list afterwards, so eval configs may also reference list items as ${benchmarks.0.data}.
  const refs = resolveRefs(listsAsMappings(raw) as Raw, {
    env: o.env ?? process.env,
    defaultOf: (key) => {
      const f = fieldAt(schema as ObjectField<unknown>, key);
      return f?.fallback && !isDerived(f.fallback.value) ? { value: f.fallback.value } : undefined;
    },
    suggest: (key) => nearest(key, keys.paths),
    report: (key, msg) => problems.push(`${key}: ${msg} (${where(key)})`),
  });
  const ctx: CheckContext = {
    report: (key, msg) => {
      if (!refs.failed.has(key)) problems.push(`${key}: ${msg} (${where(key)})`);
    },
    checkPaths: o.checkPaths ?? true,
    cwd: o.cwd,
    keys,
  };
  const cfg = schema.check(mappingsAsLists(refs.raw), "", ctx);
  if (problems.length) throw new ConfigError([...new Set(problems)]);
  if (typeof cfg === "symbol") throw new ConfigError([`(top level): invalid config (${o.label})`]);
  return deepFreeze(cfg);
}

const LIST_ITEM_SET = /^\s*([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)(?:\[(\d+)\]|\.(\d+))\.([A-Za-z_][\w.-]*)\s*=/;

/**
 * `--set list.N.key=value` (or `list[N].key=value`) into the N-th mapping of a list (configs/layers.ts sets mapping
 * keys only). Returns false when `arg` names no list item, so the caller applies it the usual way.
 */
function setListItem(layers: Layered, arg: string): boolean {
  const m = LIST_ITEM_SET.exec(arg);
  if (!m) return false;
  const [listKey, index, rest] = [m[1]!, Number(m[2] ?? m[3]), m[4]!];
  const label = `--set ${arg}`;
  let node: unknown = layers.raw;
  for (const part of listKey.split(".")) node = isMapping(node) ? node[part] : undefined;
  const item = Array.isArray(node) ? node[index] : undefined;
  if (!isMapping(item)) {
    layers.problems.push(`${listKey}[${index}]: no such list item (${Array.isArray(node) ? `the list has ${node.length}` : `${listKey} is not a list`}) (${label})`);
    return true;
  }
  let value: unknown;
  try {
    value = parseSet(`x=${arg.slice(arg.indexOf("=") + 1)}`).value;
  } catch (e) {
    layers.problems.push(`${(e as Error).message} (${label})`);
    return true;
  }
  const parts = rest.split(".");
  let target: Record<string, unknown> = item;
  for (const p of parts.slice(0, -1)) {
    if (!isMapping(target[p])) target[p] = {};
    target = target[p] as Record<string, unknown>;
  }
  target[parts[parts.length - 1]!] = value;
  layers.sources.set(`${listKey}[${index}].${rest}`, label);
  return true;
}

const LIST_MARK = "__list__";

function listsAsMappings(v: unknown): unknown {
  if (Array.isArray(v)) {
    const items = v.map(listsAsMappings);
    if (!v.some(isMapping)) return items;
    return { [LIST_MARK]: true, ...Object.fromEntries(items.map((x, i) => [String(i), x])) };
  }
  if (isMapping(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, listsAsMappings(x)]));
  return v;
}

function mappingsAsLists(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(mappingsAsLists);
  if (!isMapping(v)) return v;
  if (v[LIST_MARK] === true) {
    return Object.keys(v).filter((k) => k !== LIST_MARK).sort((a, b) => Number(a) - Number(b)).map((k) => mappingsAsLists(v[k]));
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mappingsAsLists(x)]));
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
