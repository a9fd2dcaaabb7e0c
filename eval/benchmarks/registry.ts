// Benchmarks by name; an unknown name lists the valid ones.
import { ConfigError } from "../../core/errors.js";
import { gqa } from "./gqa.js";
import { mme } from "./mme.js";
import { pope } from "./pope.js";
import { scienceqa } from "./scienceqa.js";
import { shapesPope, shapesVqav2 } from "./shapes.js";
import { textvqa } from "./textvqa.js";
import type { Benchmark } from "./types.js";
import { vqav2 } from "./vqav2.js";

export const BENCHMARKS: Readonly<Record<string, Benchmark>> = Object.freeze({
  vqav2,
  gqa,
  pope,
  textvqa,
  mme,
  scienceqa,
  shapes_vqav2: shapesVqav2,
  shapes_pope: shapesPope,
});

/** The benchmark `name`, or a ConfigError listing the valid names. */
export function getBenchmark(name: string): Benchmark {
  const b = Object.prototype.hasOwnProperty.call(BENCHMARKS, name) ? BENCHMARKS[name] : undefined;
  if (!b) throw new ConfigError([`benchmarks: unknown benchmark "${name}"; valid: ${Object.keys(BENCHMARKS).join(", ")}`]);
  return b;
}
