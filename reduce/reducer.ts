// One interface for pre-LLM token reducers (run between the vision tower and the projector), and the registry
// that builds them by name from config params.
import type { tf } from "../core/backend.js";
import { ConfigError } from "../core/errors.js";
import { noneReducer, poolReducer, randomReducer, uniformReducer } from "./baselines.js";
import type { ReducerParams } from "./params.js";
import { visionZipReducer } from "./visionzip.js";

/** Layer -2 features of the vision tower for one batch of images. */
export interface ReduceFeatures {
  hidden: tf.Tensor3D; // [B, N, C] hidden states, CLS at 0, patches 1..N-1 row-major on the grid
  clsAttention: tf.Tensor3D; // [B, H, N] softmax attention row of the CLS query (key 0 = CLS included)
  keysMean: tf.Tensor3D; // [B, N, Ck] keys averaged over heads
  gridSize: number; // patches per side: N = 1 + gridSize²
}

export interface ReduceResult {
  tokens: tf.Tensor3D; // [B, T, C] the tokens to project, in order
  /**
   * [b][t] = the original patch indices (0-based over the N-1 patches, row-major on the grid) that output token t
   * covers. A CLS output token covers no patch: [].
   */
  provenance: number[][][];
  /** [b][k] = patch indices (0-based) copied unchanged into the output, ascending; absent where none are. */
  keptIndices?: number[][];
}

export interface Reducer {
  name: string;
  /** The resolved params (defaults filled in), for reports. */
  params?: Readonly<Record<string, unknown>>;
  /** Returns new tensors only (`tokens`); never disposes the inputs. */
  reduce(f: ReduceFeatures): ReduceResult;
}

export interface ReducerEntry {
  params: readonly string[]; // accepted param keys
  describe: string;
  build(params: ReducerParams): Reducer;
}

/** Pre-LLM reducers by name. */
export const REDUCERS: Readonly<Record<string, ReducerEntry>> = Object.freeze({
  visionzip: {
    params: ["budget", "dominant", "contextual", "keepCls"],
    describe: "VisionZip: CLS-attention dominant tokens (CLS included) + key-similarity contextual merges",
    build: visionZipReducer,
  },
  none: {
    params: [],
    describe: "all patch tokens, CLS dropped (LLaVA default `patch` features)",
    build: noneReducer,
  },
  uniform: {
    params: ["budget"],
    describe: "`budget` patches evenly spaced in raster order",
    build: uniformReducer,
  },
  pool: {
    params: ["budget"],
    describe: "2-D adaptive average pooling of the patch grid to rows x cols = budget",
    build: poolReducer,
  },
  random: {
    params: ["budget", "seed"],
    describe: "`budget` patches drawn at random (seeded), raster order",
    build: randomReducer,
  },
});

/** Builds the reducer `name` with `params`; an unknown name lists the valid ones, a bad param names its key. */
export function buildReducer(name: string, params: ReducerParams = {}): Reducer {
  const entry = Object.prototype.hasOwnProperty.call(REDUCERS, name) ? REDUCERS[name] : undefined;
  if (!entry) {
    throw new ConfigError([`reducer.name: unknown reducer "${name}"; valid: ${Object.keys(REDUCERS).join(", ")}`]);
  }
  return entry.build(params);
}
