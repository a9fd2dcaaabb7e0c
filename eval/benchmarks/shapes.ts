// The synthetic shapes eval splits (`vzt make-data shapes`): eval_vqav2 has lmms-lab/VQAv2's columns and is scored
// as VQAv2; eval_pope has lmms-lab/POPE's and is scored as POPE.
import { popeBenchmark } from "./pope.js";
import type { Benchmark } from "./types.js";
import { vqaBenchmark } from "./vqav2.js";

export const shapesVqav2: Benchmark = vqaBenchmark("shapes_vqav2", "shapes eval_vqav2 (synthetic, VQAv2 columns): VQA accuracy");
export const shapesPope: Benchmark = popeBenchmark("shapes_pope", "shapes eval_pope (synthetic, POPE columns): F1");
