// The demo's tiny models and shapes data, made the way `npm run demo` makes them (and in the same folders, so a
// demo run and a bench run share them), and the demo training recipe (configs/demo.yaml) pointed at them.
import { existsSync } from "node:fs";
import path from "node:path";
import { loadConfig } from "../configs/load.js";
import type { RunConfig } from "../configs/schema.js";
import { packageRoot } from "../core/paths.js";
import { makeShapesData } from "../data/make_data.js";
import { makeTiny } from "../models/make_tiny.js";
import { installPretrained } from "../models/pretrain_tiny.js";

export interface DemoAssets {
  root: string; // package root (configs/ and dist/ live here)
  tiny: string; // checkpoints/tiny
  shapes: string; // checkpoints/shapes
}

/** Writes checkpoints/tiny and checkpoints/shapes under the package root if missing (as demo.ts does). */
export async function ensureDemoAssets(progress: (line: string) => void): Promise<DemoAssets> {
  const root = packageRoot(import.meta.url);
  const tiny = path.join(root, "checkpoints", "tiny");
  const shapes = path.join(root, "checkpoints", "shapes");
  if (!existsSync(path.join(tiny, "pretrain.json"))) {
    progress(`writing the demo's tiny models to ${tiny}`);
    await makeTiny(tiny, { seed: 0 });
    await installPretrained(tiny);
  }
  if (!existsSync(path.join(shapes, "dataset_dict.json"))) {
    progress(`writing the shapes dataset to ${shapes}`);
    await makeShapesData({ out: shapes, seed: 0, progress: false });
  }
  return { root, tiny, shapes };
}

/**
 * `--set` overrides that point configs/demo.yaml at the assets, an output folder and a backend. The demo's
 * evaluations during training and its feature cache are off: the figures time training steps (a figure that wants
 * the cache sets train.feature_cache=true in `extra`, which comes last and wins).
 */
export function demoSets(a: DemoAssets, outputDir: string, backend: string, extra: readonly string[] = []): string[] {
  return [
    `output_dir=${outputDir}`,
    `model.llava=${path.join(a.tiny, "llava")}`,
    `model.projector=${path.join(a.tiny, "projector")}`,
    `data.train=${path.join(a.shapes, "train")}`,
    `runtime.backend=${backend}`,
    "logging.tensorboard=false",
    "data.eval=null",
    "train.eval_every_steps=null",
    "train.eval_on_start=false",
    "train.feature_cache=false",
    "eval.benchmarks=[]",
    ...extra,
  ];
}

/** configs/demo.yaml with demoSets applied. */
export function demoConfig(a: DemoAssets, outputDir: string, backend: string, extra: readonly string[] = []): RunConfig {
  return loadConfig(path.join(a.root, "configs", "demo.yaml"), { sets: demoSets(a, outputDir, backend, extra), purpose: "train", cwd: a.root });
}
