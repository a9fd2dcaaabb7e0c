// Timing helpers: summary statistics and the paired loop every ratio comes from (A and B alternate in one loop,
// in ABBA order so neither always runs first, after untimed warm-up runs).
import { tf } from "../core/backend.js";

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(xs: readonly number[]): Summary {
  if (xs.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

export const median = (xs: readonly number[]): number => summarize(xs).median;

/** Forces a tensor's computation (lazy backends) by reading one value; cheap on every backend. */
export function sync(t: tf.Tensor): void {
  const one = tf.tidy(() => tf.slice(tf.reshape(t, [-1]), 0, 1));
  one.dataSync();
  one.dispose();
}

/** Milliseconds of one call of `fn` (awaited). */
export async function timeOnce(fn: () => unknown): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface PairedTimes {
  /** ms per run of each case, in run order. */
  times: Record<string, number[]>;
}

/**
 * Runs every case `warmup` times untimed, then `repeats` rounds; each round runs all cases, forward order on even
 * rounds and reversed on odd ones (ABBA). `onRound` gets the round index (progress lines).
 */
export async function pairedRuns(
  cases: Record<string, () => unknown>,
  opts: { repeats: number; warmup: number; onRound?: (round: number) => void },
): Promise<PairedTimes> {
  const names = Object.keys(cases);
  for (let w = 0; w < opts.warmup; w++) for (const n of names) await cases[n]!();
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < opts.repeats; r++) {
    const order = r % 2 === 0 ? names : [...names].reverse();
    for (const n of order) times[n]!.push(await timeOnce(cases[n]!));
    opts.onRound?.(r);
  }
  return { times };
}

/** Per-round ratios a[i] / b[i] of two paired series. */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  return a.map((x, i) => x / b[i]!);
}
