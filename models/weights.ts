// Model folders as tensor sources, and per-family weight maps kept as data (HF name -> our name).
// Loading checks both directions: every expected tensor is present with the expected shape, and every tensor
// under the component's prefix is either mapped or a documented extra.
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { tf } from "../core/backend.js";
import { WeightsError } from "../core/errors.js";
import { readHeader, readTensors, refusePickle, type SafetensorsHeader, type TensorInfo } from "./safetensors.js";

/** All tensors of a model folder: one model.safetensors, several files, or shards listed by an index. */
export interface TensorSource {
  dir: string;
  /** Every tensor name (from the headers or the index). */
  names: string[];
  /** Dtype and shape, when the file holding the tensor is present (an index alone gives names only). */
  info(name: string): (TensorInfo & { file: string }) | undefined;
  /** Reads the named tensors (floats as float32). */
  read(names: Iterable<string>): Promise<Map<string, tf.Tensor>>;
}

const INDEX = "model.safetensors.index.json";

/** Opens the tensors of a model folder. Pickle checkpoints (`*.bin`, `*.pt`) are refused with a conversion hint. */
export async function openTensorSource(dir: string): Promise<TensorSource> {
  const entries = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
    throw new WeightsError(`${dir}: cannot list model folder (${e.code ?? e.message})`, dir);
  });
  let files: string[];
  let names: string[];
  let fileOf: Map<string, string>;
  if (entries.includes(INDEX)) {
    const indexPath = path.join(dir, INDEX);
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(await readFile(indexPath, "utf8")) as typeof index;
    } catch (e) {
      throw new WeightsError(`${indexPath}: not valid JSON (${(e as Error).message})`, indexPath);
    }
    if (!index.weight_map || typeof index.weight_map !== "object") throw new WeightsError(`${indexPath}: missing "weight_map"`, indexPath);
    fileOf = new Map(Object.entries(index.weight_map).map(([n, f]) => [n, path.join(dir, f)]));
    names = [...fileOf.keys()];
    files = [...new Set(fileOf.values())];
  } else {
    files = entries.filter((f) => f.endsWith(".safetensors")).sort().map((f) => path.join(dir, f));
    if (files.length === 0) {
      const pickle = entries.find((f) => /\.(bin|pt|pth|ckpt)$/i.test(f));
      if (pickle) refusePickle(path.join(dir, pickle));
      throw new WeightsError(`${dir}: no model.safetensors, *.safetensors or ${INDEX} found (folder has: ${entries.join(", ") || "nothing"})`, dir);
    }
    fileOf = new Map();
    names = [];
  }
  // Headers of the files that are present (no tensor data is read here).
  const headers = new Map<string, SafetensorsHeader>();
  for (const f of files) {
    if (await stat(f).then(() => true, () => false)) headers.set(f, await readHeader(f));
  }
  if (!entries.includes(INDEX)) {
    for (const [f, h] of headers) {
      for (const n of h.tensors.keys()) {
        if (fileOf.has(n)) throw new WeightsError(`${f}: tensor "${n}" is also in ${fileOf.get(n)}`, f, n);
        fileOf.set(n, f);
        names.push(n);
      }
    }
  }
  return {
    dir,
    names,
    info(name) {
      const f = fileOf.get(name);
      const t = f ? headers.get(f)?.tensors.get(name) : undefined;
      return t && f ? { ...t, file: f } : undefined;
    },
    async read(wanted) {
      const byFile = new Map<string, string[]>();
      for (const n of wanted) {
        const f = fileOf.get(n);
        if (!f) throw new WeightsError(`${dir}: tensor "${n}" not found`, dir, n);
        if (!headers.has(f)) throw new WeightsError(`${f}: shard listed in ${INDEX} for tensor "${n}" is missing`, f, n);
        byFile.set(f, [...(byFile.get(f) ?? []), n]);
      }
      const out = new Map<string, tf.Tensor>();
      try {
        for (const [f, ns] of byFile) for (const [n, t] of await readTensors(headers.get(f)!, ns)) out.set(n, t);
      } catch (e) {
        for (const t of out.values()) t.dispose();
        throw e;
      }
      return out;
    },
  };
}

/**
 * A family's weight map, as data. Keys are HF names relative to the component prefix, with `{}` standing for
 * the layer index; values are our names with the same placeholder.
 */
export interface WeightMap {
  family: string;
  entries: Readonly<Record<string, string>>;
  /** Known extras under the prefix that are skipped (e.g. `position_ids` buffers), with a reason. */
  ignore: readonly { pattern: RegExp; why: string }[];
}

/** A component inside a checkpoint: which map applies under which prefix, for how many layers. */
export interface Component {
  map: WeightMap;
  prefix: string;
  numLayers: number;
  /** Our name -> expected shape. */
  shapes?: Readonly<Record<string, readonly number[]>>;
}

/** HF name (with prefix) -> our name, for every layer. */
export function expandMap(c: Component): Map<string, string> {
  const out = new Map<string, string>();
  for (const [hf, ours] of Object.entries(c.map.entries)) {
    if (hf.includes("{}")) {
      for (let l = 0; l < c.numLayers; l++) out.set(c.prefix + hf.replaceAll("{}", String(l)), ours.replaceAll("{}", String(l)));
    } else out.set(c.prefix + hf, ours);
  }
  return out;
}

export type NameStatus = { status: "mapped"; component: string; ours: string } | { status: "ignored"; why: string } | { status: "unknown" };

/** Classifies every tensor name of a checkpoint against the components that load from it. */
export function classifyNames(names: Iterable<string>, components: Component[], extraIgnore: readonly { pattern: RegExp; why: string }[] = []): Map<string, NameStatus> {
  const maps = components.map((c) => ({ c, m: expandMap(c) }));
  const out = new Map<string, NameStatus>();
  for (const n of names) {
    let s: NameStatus = { status: "unknown" };
    for (const { c, m } of maps) {
      const ours = m.get(n);
      if (ours) {
        s = { status: "mapped", component: c.map.family, ours };
        break;
      }
      if (n.startsWith(c.prefix)) {
        const rel = n.slice(c.prefix.length);
        const ig = c.map.ignore.find((i) => i.pattern.test(rel));
        if (ig) {
          s = { status: "ignored", why: ig.why };
          break;
        }
      }
    }
    if (s.status === "unknown") {
      const ig = extraIgnore.find((i) => i.pattern.test(n));
      if (ig) s = { status: "ignored", why: ig.why };
    }
    out.set(n, s);
  }
  return out;
}

/**
 * Loads one component: checks missing keys, unexpected keys under the prefix and shapes (before reading any data),
 * then reads the tensors. Returns our name -> tensor (HF layout; the model file re-lays them out).
 */
export async function loadComponent(source: TensorSource, c: Component): Promise<Map<string, tf.Tensor>> {
  const m = expandMap(c);
  const problems: string[] = [];
  const have = new Set(source.names);
  for (const hf of m.keys()) if (!have.has(hf)) problems.push(`missing tensor "${hf}"`);
  for (const n of source.names) {
    if (!n.startsWith(c.prefix) || m.has(n)) continue;
    const rel = n.slice(c.prefix.length);
    if (!c.map.ignore.some((i) => i.pattern.test(rel))) problems.push(`unexpected tensor "${n}" (not in the ${c.map.family} weight map)`);
  }
  if (c.shapes) {
    for (const [hf, ours] of m) {
      const want = c.shapes[ours];
      const info = source.info(hf);
      if (want && info && !sameShape(want, info.shape)) {
        problems.push(`tensor "${hf}" in ${info.file} has shape [${info.shape}] but the config implies [${want}]`);
      }
    }
  }
  if (problems.length) {
    throw new WeightsError(`${source.dir}: ${c.map.family} weights do not match (${problems.length} problem${problems.length > 1 ? "s" : ""}):\n  - ${problems.slice(0, 40).join("\n  - ")}${problems.length > 40 ? `\n  ... and ${problems.length - 40} more` : ""}`, source.dir);
  }
  const read = await source.read(m.keys());
  return new Map([...read].map(([hf, t]) => [m.get(hf)!, t]));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
