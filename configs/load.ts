// Loads a run config: read YAML -> `extends:` chain -> `--set` overrides -> `${...}` references -> validate against
// configs/schema.ts (defaults filled, cross-field checks) -> deep-frozen, typed RunConfig. Every problem found on
// the way is reported at once in one ConfigError, each line with its key path and the file (or --set) to fix.
//
// Relative paths inside a config (data.train, model.llm, output_dir, ...) resolve against the working directory,
// as in torchtune, so `vzt train --config configs/demo.yaml` run from the repo root finds `checkpoints/tiny/...`.
// Only `extends:` is relative to the file that names it.
//
// Paths marked mustExist (model.llava / vision_tower / llm / projector / tokenizer, data.train, data.eval) are
// checked on disk unless `checkPaths: false` (`vzt validate --no-check-paths`): a model path may also be a Hub id
// `org/name` (unless its first folder exists locally), a shard path a glob that must match. The shipped recipes
// name data the user fills in, so test/configs/shipped.test.ts validates them with checkPaths: false.
import { ConfigError } from "../core/errors.js";
import { fieldAt, indexKeys, isDerived, isMapping, nearest, type CheckContext } from "./dsl.js";
import { displayPath, readLayers, sourceOf, type Raw } from "./layers.js";
import { applyOverrides } from "./load_schema.js";
import { resolveRefs } from "./refs.js";
import { RUN_CONFIG, type RunConfig } from "./schema.js";

export interface LoadOptions {
  /** `key.path=value` overrides, applied in order after `extends:` (values are YAML scalars or `[a, b]`). */
  sets?: readonly string[];
  /** Check that paths marked mustExist (model.*, data.train, data.eval) exist. Default true. */
  checkPaths?: boolean;
  /** Folder relative paths resolve against. Default process.cwd(). */
  cwd?: string;
  /** Variables for `${env:NAME}`. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** "train" also requires data.train. Default "any". */
  purpose?: "train" | "any";
}

const KEYS = indexKeys(RUN_CONFIG);

/**
 * Reads, merges, overrides, resolves and validates the config at `file`.
 * @returns the resolved config, deep-frozen.
 * @throws ConfigError listing every problem (`key: what is wrong (file)`).
 */
export function loadConfig(file: string, opts: LoadOptions = {}): RunConfig {
  const cwd = opts.cwd ?? process.cwd();
  const top = displayPath(file, cwd);
  const layers = readLayers(file, cwd);
  // A missing or unparsable file in the chain would only add noise ("missing required key") below: stop here.
  if (layers.problems.length) throw new ConfigError(layers.problems);
  applyOverrides(layers, opts.sets ?? []);
  return finishConfig(layers.raw, { ...opts, cwd, label: top, sources: layers.sources, problems: layers.problems });
}

/** `vzt validate --config FILE [--set k=v ...]`: the resolved config, or a ConfigError listing every problem. */
export function validateConfigFile(file: string, sets: readonly string[] = [], opts: Omit<LoadOptions, "sets"> = {}): RunConfig {
  return loadConfig(file, { ...opts, sets });
}

/** Validates a config given as a plain object (references resolved, defaults filled); `label` names it in problems. */
export function configFromObject(raw: unknown, opts: Omit<LoadOptions, "sets"> & { label?: string } = {}): RunConfig {
  if (!isMapping(raw)) throw new ConfigError([`(top level): expected a mapping of keys (${opts.label ?? "object"})`]);
  return finishConfig(structuredClone(raw), {
    ...opts,
    cwd: opts.cwd ?? process.cwd(),
    label: opts.label ?? "object",
    sources: new Map(),
    problems: [],
  });
}

interface FinishOptions extends Omit<LoadOptions, "sets"> {
  cwd: string;
  label: string;
  sources: ReadonlyMap<string, string>;
  problems: string[];
}

function finishConfig(raw: Raw, o: FinishOptions): RunConfig {
  const problems = [...o.problems];
  const where = (key: string) => sourceOf(o.sources, key, o.label);
  const refs = resolveRefs(raw, {
    env: o.env ?? process.env,
    defaultOf: (key) => {
      const f = fieldAt(RUN_CONFIG, key);
      return f?.fallback && !isDerived(f.fallback.value) ? { value: f.fallback.value } : undefined;
    },
    suggest: (key) => nearest(key, KEYS.paths),
    report: (key, msg) => problems.push(`${key}: ${msg} (${where(key)})`),
  });
  // A key whose reference failed is already reported; its type errors would only repeat it.
  const quiet = (key: string) => refs.failed.has(key);
  const ctx: CheckContext = {
    report: (key, msg) => {
      if (!quiet(key)) problems.push(`${key}: ${msg} (${where(key)})`);
    },
    checkPaths: o.checkPaths ?? true,
    cwd: o.cwd,
    keys: KEYS,
  };
  const cfg = RUN_CONFIG.check(refs.raw, "", ctx);
  const data = refs.raw.data;
  if (o.purpose === "train" && (!isMapping(data) || data.train === undefined || data.train === null)) {
    problems.push(`data.train: missing required key: training needs shards (a folder, glob or list) (${where("data.train")})`);
  }
  if (problems.length) throw new ConfigError([...new Set(problems)]);
  if (typeof cfg === "symbol") throw new ConfigError([`(top level): invalid config (${o.label})`]);
  return deepFreeze(cfg);
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === "object" && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
