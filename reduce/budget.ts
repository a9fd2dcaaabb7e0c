// Token budgets for VisionZip: total -> (dominant, contextual) split, and the checks every budget must pass.
//
// `dominant` counts CLS, as the official code (`apply_info(..., dominant_num=dominant-1)`) and the golden files do.
// Official LLaVA-1.5 splits (paper Tables 8/9, README): 64 = 54 + 10, 128 = 108 + 20, 192 = 162 + 30.
// Other totals follow the same ratio (contextual = total / 6.4), which reproduces all three official splits and the
// per-sub-image LLaVA-NeXT ones (32 = 27 + 5, 160 = 135 + 25 in total):
//   contextual = max(1, round(total * 10 / 64))   (round half up),   dominant = total - contextual.
import { ConfigError } from "../core/errors.js";

export interface VisionZipSplit {
  dominant: number; // tokens kept by CLS attention, CLS included
  contextual: number; // merged slots
}

/** The official splits, by total retained tokens per image (LLaVA-1.5). */
export const VISIONZIP_SPLITS: Readonly<Record<number, VisionZipSplit>> = Object.freeze({
  64: { dominant: 54, contextual: 10 },
  128: { dominant: 108, contextual: 20 },
  192: { dominant: 162, contextual: 30 },
});

/** The dominant/contextual split for `total` retained tokens (official table, else the 6.4:1 rule above). */
export function visionZipSplit(total: number, key = "reducer.budget"): VisionZipSplit {
  if (!Number.isInteger(total) || total < 2) {
    throw new ConfigError([`${key}: must be an integer >= 2 (CLS + at least one contextual token), got ${String(total)}`]);
  }
  const official = VISIONZIP_SPLITS[total];
  if (official) return { ...official };
  const contextual = Math.max(1, Math.round((total * 10) / 64));
  return { dominant: total - contextual, contextual };
}

/**
 * Throws a ConfigError naming `reducer.dominant`, `reducer.contextual` or `reducer.budget` unless
 * dominant >= 1 and contextual >= 1 are integers and, when the token count N (CLS + patches) is known,
 * dominant + contextual <= N (the official code needs N - dominant >= contextual).
 */
export function checkVisionZipBudget(dominant: unknown, contextual: unknown, numTokens?: number): void {
  const problems: string[] = [];
  if (typeof dominant !== "number" || !Number.isInteger(dominant) || dominant < 1) {
    problems.push(`reducer.dominant: must be an integer >= 1 (it counts CLS), got ${String(dominant)}`);
  }
  if (typeof contextual !== "number" || !Number.isInteger(contextual) || contextual < 1) {
    problems.push(`reducer.contextual: must be an integer >= 1, got ${String(contextual)}`);
  }
  if (problems.length) throw new ConfigError(problems);
  if (numTokens !== undefined && (dominant as number) + (contextual as number) > numTokens) {
    throw new ConfigError([
      `reducer.budget: dominant + contextual = ${(dominant as number) + (contextual as number)} exceeds the ` +
        `${numTokens} tokens of the image (CLS + ${numTokens - 1} patches)`,
    ]);
  }
}
