// Raw config layers before validation: a YAML file and its `extends:` chain merged (child wins, mappings merge,
// lists and scalars replace), then `--set a.b=c` overrides. Tracks which file (or --set) gave each key, so every
// problem can name where to fix it.
import { readFileSync } from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { isMapping, show } from "./dsl.js";

export type Raw = Record<string, unknown>;

export interface Layered {
  raw: Raw;
  /** Key path -> where it was set ("configs/demo.yaml", "--set train.max_steps=5"). */
  sources: Map<string, string>;
  /** Problems found so far (syntax, extends, --set). */
  problems: string[];
}

/** Where `key` (or its nearest set parent) was set; `fallback` when nowhere. */
export function sourceOf(sources: ReadonlyMap<string, string>, key: string, fallback: string): string {
  for (let k = key; k; k = k.replace(/(\.[^.[]*|\[\d+\])$/, "")) {
    const s = sources.get(k);
    if (s !== undefined) return s;
    if (!/[.[]/.test(k)) break;
  }
  return fallback;
}

/** A path for messages: relative to the working directory when inside it. */
export function displayPath(file: string, cwd: string): string {
  const rel = path.relative(cwd, file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

/** Reads `file` and its `extends:` chain (paths relative to the file that names them); cycles are problems. */
export function readLayers(file: string, cwd: string): Layered {
  const out: Layered = { raw: {}, sources: new Map(), problems: [] };
  const raw = readChain(path.resolve(cwd, file), cwd, [], out);
  if (raw) out.raw = raw;
  return out;
}

function readChain(abs: string, cwd: string, stack: string[], out: Layered): Raw | undefined {
  const shown = displayPath(abs, cwd);
  if (stack.includes(abs)) {
    const cycle = [...stack.slice(stack.indexOf(abs)), abs].map((f) => displayPath(f, cwd)).join(" -> ");
    out.problems.push(`extends: cycle ${cycle} (${displayPath(stack[stack.length - 1]!, cwd)})`);
    return undefined;
  }
  const doc = parseYamlFile(abs, shown, stack.length ? displayPath(stack[stack.length - 1]!, cwd) : undefined, out);
  if (!doc) return undefined;
  const { extends: base, ...own } = doc;
  let merged: Raw = {};
  if (base !== undefined) {
    if (typeof base !== "string" || base === "") {
      out.problems.push(`extends: expected a path to a YAML file (relative to this file), got ${show(base)} (${shown})`);
    } else {
      merged = readChain(path.resolve(path.dirname(abs), base), cwd, [...stack, abs], out) ?? {};
    }
  }
  mergeInto(merged, own, "", shown, out.sources);
  return merged;
}

function parseYamlFile(abs: string, shown: string, from: string | undefined, out: Layered): Raw | undefined {
  let text: string;
  try {
    text = readFileSync(abs, "utf8");
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message;
    out.problems.push(from ? `extends: ${why} "${shown}" (${from})` : `${shown}: ${why}`);
    return undefined;
  }
  const doc = YAML.parseDocument(text, { prettyErrors: false, uniqueKeys: true, merge: true });
  if (doc.errors.length) {
    for (const err of doc.errors) {
      const at = err.linePos?.[0];
      out.problems.push(`${shown}${at ? `:${at.line}:${at.col}` : ""}: YAML error: ${err.message.split("\n")[0]}`);
    }
    return undefined;
  }
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (!isMapping(value)) {
    out.problems.push(`(top level): expected a mapping of keys, got ${show(value)} (${shown})`);
    return undefined;
  }
  return value;
}

/** Merges `src` into `dst` (mappings merge, anything else replaces) and records `label` for every key set. */
function mergeInto(dst: Raw, src: Raw, prefix: string, label: string, sources: Map<string, string>): void {
  for (const [k, v] of Object.entries(src)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isMapping(v) && isMapping(dst[k])) {
      sources.set(key, label);
      mergeInto(dst[k] as Raw, v, key, label, sources);
    } else {
      dst[k] = structuredClone(v);
      markAll(key, v, label, sources);
    }
  }
}

function markAll(key: string, v: unknown, label: string, sources: Map<string, string>): void {
  for (const k of [...sources.keys()]) if (k.startsWith(key + ".") || k.startsWith(key + "[")) sources.delete(k);
  sources.set(key, label);
  if (isMapping(v)) for (const [k, x] of Object.entries(v)) markAll(`${key}.${k}`, x, label, sources);
}

const KEY_PATH = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/;

/**
 * Parses `a.b=c`: the value is a YAML scalar or flow collection (`5`, `2e-5`, `true`, `null`, `[a, b]`,
 * `{x: 1}`); an empty value is null. Throws a one-line message on a malformed override.
 */
export function parseSet(arg: string): { key: string; value: unknown } {
  const eq = arg.indexOf("=");
  if (eq < 0) throw new Error(`expected key.path=value, got ${JSON.stringify(arg)}`);
  const key = arg.slice(0, eq).trim();
  if (!KEY_PATH.test(key)) throw new Error(`"${key}" is not a key path like train.max_steps`);
  const text = arg.slice(eq + 1);
  try {
    return { key, value: YAML.parse(text) as unknown };
  } catch (e) {
    throw new Error(`value ${JSON.stringify(text)} is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
}

/** Applies `--set` overrides in order; the key is created when absent (unknown keys are reported by the schema). */
export function applySets(layers: Layered, sets: readonly string[]): void {
  for (const arg of sets) {
    const label = `--set ${arg}`;
    let parsed;
    try {
      parsed = parseSet(arg);
    } catch (e) {
      layers.problems.push(`${(e as Error).message} (${label})`);
      continue;
    }
    const parts = parsed.key.split(".");
    let node: Raw = layers.raw;
    let ok = true;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i]!;
      const next = node[p];
      if (next === undefined || next === null) {
        node[p] = {};
        layers.sources.set(parts.slice(0, i + 1).join("."), label);
      } else if (!isMapping(next)) {
        layers.problems.push(`${parts.slice(0, i + 1).join(".")}: is ${show(next)}, not a mapping, so ${parsed.key} cannot be set (${label})`);
        ok = false;
        break;
      }
      node = node[p] as Raw;
    }
    if (!ok) continue;
    const last = parts[parts.length - 1]!;
    node[last] = parsed.value;
    markAll(parsed.key, parsed.value, label, layers.sources);
  }
}
