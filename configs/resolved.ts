// The resolved config of a run: written next to its outputs (`<output_dir>/config.yaml`), hashed so resume can
// refuse a changed config, and diffed to say which keys changed.
//
// configHash covers every key that can change the trained weights or the data order. It leaves out
// HASH_EXCLUDED_KEYS: where outputs go and how often they are written (output_dir, checkpoint.*, logging.*),
// the tfjs backend (runtime.*: backends agree to float tolerance and a run may resume on another machine), and
// what only affects evaluation or speed (data.eval, data.prefetch, train.eval_every_steps, train.eval_on_start, train.eval_batches,
// train.feature_cache: cached features are the same numbers, eval.*).
import { writeFileAtomicSync } from "../core/atomic.js";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { isMapping } from "./dsl.js";
import { escapeRefs } from "./refs.js";

export const HASH_EXCLUDED_KEYS: readonly string[] = Object.freeze([
  "output_dir",
  "checkpoint",
  "logging",
  "runtime",
  "eval",
  "data.eval",
  "data.prefetch",
  "train.eval_every_steps",
  "train.eval_on_start",
  "train.eval_batches",
  "train.feature_cache",
]);

type ConfigLike = Readonly<Record<string, unknown>>;

/** JSON with keys sorted at every level (lists keep their order): the same config always gives the same text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (isMapping(v)) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** `cfg` without the keys of `excluded` (dotted paths). */
function without(v: unknown, excluded: readonly string[], prefix = ""): unknown {
  if (!isMapping(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (!excluded.includes(key)) out[k] = without(x, excluded, key);
  }
  return out;
}

/** sha256 (hex) of the canonical JSON of the resolved config minus HASH_EXCLUDED_KEYS. */
export function configHash(cfg: ConfigLike): string {
  return createHash("sha256").update(canonicalJson(without(cfg, HASH_EXCLUDED_KEYS))).digest("hex");
}

/**
 * Keys whose values differ, one line each: `optimizer.lr: 0.001 -> 0.0002` (`(absent)` for a missing key).
 * Leaves are compared; lists as whole values. `hashedOnly` skips HASH_EXCLUDED_KEYS (what resume cares about).
 */
export function diffConfigs(a: ConfigLike, b: ConfigLike, opts: { hashedOnly?: boolean } = {}): string[] {
  const out: string[] = [];
  const show = (v: unknown) => (v === undefined ? "(absent)" : canonicalJson(v));
  const walk = (x: unknown, y: unknown, prefix: string) => {
    if (opts.hashedOnly && HASH_EXCLUDED_KEYS.includes(prefix)) return;
    if (isMapping(x) && isMapping(y)) {
      const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort();
      for (const k of keys) walk(x[k], y[k], prefix ? `${prefix}.${k}` : k);
    } else if (canonicalJson(x) !== canonicalJson(y) || (x === undefined) !== (y === undefined)) {
      out.push(`${prefix}: ${show(x)} -> ${show(y)}`);
    }
  };
  walk(a, b, "");
  return out;
}

/** Strings with `${` escaped, so the file loads back to the same values. */
function escaped(v: unknown): unknown {
  if (typeof v === "string") return escapeRefs(v);
  if (Array.isArray(v)) return v.map(escaped);
  if (isMapping(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, escaped(x)]));
  return v;
}

/** The resolved config as YAML text with a header holding its hash (what writeResolvedConfig writes). */
export function resolvedConfigYaml(cfg: ConfigLike): string {
  return [
    "# Resolved config written by visionzip-tune: extends, --set overrides and ${...} references applied,",
    "# defaults filled. It loads back to the same config: vzt train --config <this file>",
    `# config_hash: ${configHash(cfg)}`,
    YAML.stringify(escaped(cfg), { lineWidth: 0 }),
  ].join("\n");
}

/**
 * Writes the resolved config to `<dir>/config.yaml` (temp file + rename); loading that file again gives the same
 * config and the same hash.
 * @returns the file written.
 */
export function writeResolvedConfig(cfg: ConfigLike, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "config.yaml");
  writeFileAtomicSync(file, resolvedConfigYaml(cfg));
  return file;
}
