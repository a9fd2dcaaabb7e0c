// Shared fixtures of the eval tests: the tiny models (makeTiny) and a small shapes DatasetDict (makeShapesData) in a
// temp folder, and eval configs over them.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { evalConfigFromObject, type EvalConfig } from "../../configs/eval_schema.js";
import { makeShapesData } from "../../data/make_data.js";
import { makeTiny } from "../../models/make_tiny.js";

export interface EvalFixture {
  root: string;
  tiny: string;
  shapes: string;
  /** An eval config over the fixture (`over` replaces top-level keys). */
  config(over?: Record<string, unknown>): EvalConfig;
}

export async function makeEvalFixture(): Promise<EvalFixture> {
  const root = mkdtempSync(path.join(tmpdir(), "vzt-eval-"));
  const tiny = path.join(root, "tiny");
  const shapes = path.join(root, "shapes");
  await makeTiny(tiny);
  await makeShapesData({ out: shapes, train: 1, evalVqa: 8, evalPope: 8 });
  return {
    root,
    tiny,
    shapes,
    config: (over = {}) =>
      evalConfigFromObject({
        output_dir: path.join(root, "out"),
        model: { llava: path.join(tiny, "llava") },
        benchmarks: [
          { name: "shapes_vqav2", data: path.join(shapes, "eval_vqav2") },
          { name: "shapes_pope", data: path.join(shapes, "eval_pope") },
        ],
        grid: ["none@576", "visionzip@64"],
        batch_size: 3,
        max_new_tokens: 3,
        limit: 5,
        warmup: false,
        runtime: { backend: "wasm" },
        ...over,
      }),
  };
}
