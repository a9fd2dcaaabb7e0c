// Shared checks for pre-LLM reducers: reading a reducer's params (errors name `reducer.<key>`) and the shapes of
// the vision-tower features a reducer is handed.
import { ConfigError } from "../core/errors.js";
import type { tf } from "../core/backend.js";

export type ReducerParams = Readonly<Record<string, unknown>>;

/** Throws a ConfigError naming every key of `params` that `reducer` does not take. */
export function checkParamKeys(reducer: string, params: ReducerParams, valid: readonly string[]): void {
  const unknown = Object.keys(params).filter((k) => !valid.includes(k));
  if (unknown.length) {
    throw new ConfigError(
      unknown.map(
        (k) => `reducer.${k}: unknown parameter for reducer "${reducer}"; valid: ${valid.length ? valid.join(", ") : "(none)"}`,
      ),
    );
  }
}

/** An integer param >= min, or `fallback` when absent. */
export function intParam(params: ReducerParams, key: string, fallback: number | undefined, min = 1): number {
  const v = params[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new ConfigError([`reducer.${key}: must be an integer >= ${min}, got ${String(v)}`]);
  }
  return v;
}

/** A boolean param, or `fallback` when absent. */
export function boolParam(params: ReducerParams, key: string, fallback: boolean): boolean {
  const v = params[key] ?? fallback;
  if (typeof v !== "boolean") throw new ConfigError([`reducer.${key}: must be true or false, got ${String(v)}`]);
  return v;
}

export interface FeatureShape {
  B: number; // images
  N: number; // tokens: CLS + patches
  P: number; // patches = N - 1 = gridSize²
  C: number; // hidden width
}

/**
 * Checks hidden [B, N, C], clsAttention [B, H, N], keysMean [B, N, Ck] and N = 1 + gridSize², and returns the sizes.
 * `who` names the reducer in the message.
 */
export function checkFeatures(
  who: string,
  f: { hidden: tf.Tensor3D; clsAttention: tf.Tensor3D; keysMean: tf.Tensor3D; gridSize: number },
): FeatureShape {
  const [B, N, C] = f.hidden.shape;
  const fail = (msg: string): never => {
    throw new Error(`${who}: ${msg}`);
  };
  if (f.hidden.rank !== 3) fail(`hidden must be [B, N, C], got shape [${f.hidden.shape.join(", ")}]`);
  if (f.clsAttention.rank !== 3 || f.clsAttention.shape[0] !== B || f.clsAttention.shape[2] !== N) {
    fail(`clsAttention must be [B, H, N] = [${B}, H, ${N}], got [${f.clsAttention.shape.join(", ")}]`);
  }
  if (f.keysMean.rank !== 3 || f.keysMean.shape[0] !== B || f.keysMean.shape[1] !== N) {
    fail(`keysMean must be [B, N, Ck] = [${B}, ${N}, Ck], got [${f.keysMean.shape.join(", ")}]`);
  }
  if (!Number.isInteger(f.gridSize) || f.gridSize < 1 || f.gridSize * f.gridSize + 1 !== N) {
    fail(`gridSize ${f.gridSize} does not fit hidden with N = ${N} tokens (expected N = 1 + gridSize²)`);
  }
  return { B, N, P: N - 1, C };
}
