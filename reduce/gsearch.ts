// G-Search (arXiv 2412.00556, Scenario I): greedy shallow-to-deep search of the fewest visual tokens to keep at each
// LLM layer such that accuracy on a search split stays within `tolerance` of the unreduced model.
// The paper gives the outline ("least number of vision tokens to keep at each layer from the shallow to the deep");
// the procedure below is our reading [I] (reference/reduction_methods.md §2.2):
//   keep[0] = keep[1] = N; base = evaluate(unreduced)
//   for l = 2 .. L-1: candidate x <= keep[l-1] is scored with the deeper layers tied to it
//     (keep[l..L-1] = x); keep[l] = the smallest candidate with accuracy >= base - tolerance.
// - tolerance is absolute, in the units `evaluate` returns (0 = "without degrading"); [I]
// - candidates: every token count keep[l-1] .. 0 (step 1/N), or round(rate · N) for the given descending `rates`;
//   keep[l-1] itself is known to pass (it is the schedule accepted at layer l-1), so it is never re-evaluated; [I]
// - strategy "binary" (default) assumes accuracy is monotone in x and bisects the candidate list, ~log2(N)
//   evaluations per layer; "linear" scans downwards and stops at the first failure; [I]
// - the state (settings, decided layers, every evaluation) is saved after each evaluation and each layer, so a rerun
//   with the same statePath continues where it stopped (reduce/search_state.ts).
import { ConfigError } from "../core/errors.js";
import { FULL_LAYERS, fullSchedule, validateSchedule, writeSchedule, type KeepSchedule } from "./schedule.js";
import { progressSink, scheduleKey, SearchState, type ProgressSink, type ScheduleEvaluator } from "./search_state.js";

export interface GSearchOptions {
  numLayers: number;
  numVisual: number;
  /** Accuracy of a schedule on the search split (higher is better). */
  evaluate: ScheduleEvaluator;
  /** Largest allowed drop below the unreduced accuracy (absolute, units of `evaluate`). */
  tolerance: number;
  /** Candidate keep rates (fractions of numVisual), descending; default every token count. */
  rates?: number[];
  /** "binary" (default): bisect the candidates, assuming accuracy is monotone in the kept count; "linear": scan down. */
  strategy?: "binary" | "linear";
  /** JSON file of the resumable search state. */
  statePath?: string;
  /** Write the resulting schedule here (JSON, reduce/schedule.ts writeSchedule). */
  outputPath?: string;
  /** true: a progress bar on stderr; or any sink (one step per searched layer). */
  progress?: boolean | ProgressSink;
}

interface GSearchState {
  baseline: number | null;
  /** Decided keep counts, layers 0 .. keep.length-1. */
  keep: number[];
}

/** The candidate token counts for a layer whose predecessor keeps `prev`, descending, starting with `prev`. */
export function gSearchCandidates(prev: number, numVisual: number, rates?: readonly number[]): number[] {
  if (!rates) return Array.from({ length: prev + 1 }, (_, i) => prev - i);
  const counts = rates.map((r) => Math.round(r * numVisual)).filter((k) => k < prev);
  return [prev, ...[...new Set(counts)].sort((a, b) => b - a)];
}

function checkOptions(o: GSearchOptions): void {
  const problems: string[] = [];
  if (!Number.isInteger(o.numLayers) || o.numLayers < FULL_LAYERS + 1) problems.push(`numLayers: must be an integer >= ${FULL_LAYERS + 1}, got ${o.numLayers}`);
  if (!Number.isInteger(o.numVisual) || o.numVisual < 1) problems.push(`numVisual: must be an integer >= 1, got ${o.numVisual}`);
  if (!(o.tolerance >= 0) || !Number.isFinite(o.tolerance)) problems.push(`tolerance: must be a finite number >= 0, got ${o.tolerance}`);
  o.rates?.forEach((r, i) => {
    if (!(r >= 0 && r <= 1)) problems.push(`rates[${i}]: must be in [0, 1], got ${r}`);
    else if (i > 0 && !(r < o.rates![i - 1]!)) problems.push(`rates[${i}]: rates must be strictly descending, got ${r} after ${o.rates![i - 1]}`);
  });
  if (o.strategy !== undefined && o.strategy !== "binary" && o.strategy !== "linear") problems.push(`strategy: must be "binary" or "linear", got ${JSON.stringify(o.strategy)}`);
  if (problems.length) throw new ConfigError(problems.map((p) => `gsearch.${p}`));
}

/** Runs (or resumes) G-Search and returns the schedule (meta: method, tolerance, baseline, accuracy, evaluations). */
export async function gSearch(opts: GSearchOptions): Promise<KeepSchedule> {
  checkOptions(opts);
  const { numLayers: L, numVisual: N, tolerance } = opts;
  const strategy = opts.strategy ?? "binary";
  const settings = { numLayers: L, numVisual: N, tolerance, rates: opts.rates ?? null, strategy };
  const st = SearchState.open<GSearchState>(opts.statePath, "gsearch", settings, { baseline: null, keep: [N, N] });
  const bar = progressSink(opts.progress, L - FULL_LAYERS, "gsearch");
  const tied = (l: number, x: number): KeepSchedule => ({ numLayers: L, numVisual: N, keep: [...st.state.keep.slice(0, l), ...Array.from({ length: L - l }, () => x)] });
  const score = async (s: KeepSchedule) => (await st.evaluate(s, opts.evaluate)).accuracy;

  const base = st.state.baseline ?? (await score(fullSchedule(L, N)));
  st.state.baseline = base;
  st.save();
  const passes = (acc: number) => acc >= base - tolerance - 1e-12;
  bar?.update(st.state.keep.length - FULL_LAYERS, `baseline ${base.toFixed(4)}`);

  for (let l = st.state.keep.length; l < L; l++) {
    const prev = st.state.keep[l - 1]!;
    const cands = gSearchCandidates(prev, N, opts.rates); // cands[0] = prev passes (accepted at layer l-1)
    let lo = 0; // index of the smallest candidate known to pass
    if (strategy === "binary") {
      let hi = cands.length; // first index known to fail (sentinel)
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (passes(await score(tied(l, cands[mid]!)))) lo = mid;
        else hi = mid;
      }
    } else {
      while (lo + 1 < cands.length && passes(await score(tied(l, cands[lo + 1]!)))) lo++;
    }
    st.state.keep.push(cands[lo]!);
    st.save();
    bar?.update(l - FULL_LAYERS + 1, `layer ${l}: keep ${cands[lo]}`);
  }

  const keep = st.state.keep;
  const accuracy = st.evaluations.get(scheduleKey(keep)) ?? base;
  bar?.finish(`accuracy ${accuracy.toFixed(4)} (baseline ${base.toFixed(4)})`);
  const schedule = validateSchedule({
    numLayers: L,
    numVisual: N,
    keep,
    meta: { method: "gsearch", tolerance, strategy, rates: opts.rates ?? null, baseline: base, accuracy, evaluations: st.evaluations.size },
  });
  if (opts.outputPath) writeSchedule(opts.outputPath, schedule);
  return schedule;
}
