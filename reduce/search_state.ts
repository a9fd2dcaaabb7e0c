// Resumable state of an offline schedule search (G-Search, P-Sigmoid): the search settings, every schedule evaluated
// so far with its accuracy, and the driver's own progress, in one JSON file rewritten atomically after every
// evaluation. A rerun with the same settings reads it back and replays cached evaluations instead of running the model
// again, so an interrupted search continues where it stopped; a rerun with other settings is refused (naming the key).
import { existsSync, readFileSync } from "node:fs";
import { ConfigError } from "../core/errors.js";
import { Progress } from "../core/log.js";
import { writeJsonAtomic } from "../eval/results.js";
import type { KeepSchedule } from "./schedule.js";

/** Evaluates a schedule: accuracy on the search split (higher is better). */
export type ScheduleEvaluator = (schedule: KeepSchedule) => Promise<number>;

/** What a search reports progress to (core/log.ts Progress fits). */
export interface ProgressSink {
  update(done: number, extra?: string): void;
  finish(extra?: string): void;
}

/** `true` = a core/log.ts Progress bar on stderr; a sink = that sink; false/undefined = none. */
export function progressSink(p: boolean | ProgressSink | undefined, total: number, label: string): ProgressSink | undefined {
  if (p === true) return new Progress({ total, label });
  return p || undefined;
}

const FORMAT = "vzt-search-state";

/** Run-length key of a keep list, e.g. "576x2,300x4,120x26". */
export function scheduleKey(keep: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < keep.length; ) {
    let j = i;
    while (j < keep.length && keep[j] === keep[i]) j++;
    parts.push(`${keep[i]}x${j - i}`);
    i = j;
  }
  return parts.join(",");
}

export class SearchState<S> {
  private constructor(
    readonly file: string | undefined,
    readonly method: string,
    readonly settings: Record<string, unknown>,
    readonly evaluations: Map<string, number>,
    public state: S,
    /** True when a saved state was read back. */
    readonly resumed: boolean,
  ) {}

  /**
   * Opens `file` (or a memory-only state when undefined). An existing file must hold the same method and settings,
   * else a ConfigError names each differing setting and the file.
   */
  static open<S>(file: string | undefined, method: string, settings: Record<string, unknown>, initial: S): SearchState<S> {
    if (!file || !existsSync(file)) return new SearchState(file, method, settings, new Map(), initial, false);
    let raw: { format?: unknown; method?: unknown; settings?: Record<string, unknown>; evaluations?: Record<string, unknown>; state?: S };
    try {
      raw = JSON.parse(readFileSync(file, "utf8"));
    } catch (e) {
      throw new ConfigError([`cannot read search state: ${(e as Error).message} (delete it to start over)`], file);
    }
    if (raw?.format !== FORMAT || raw.method !== method || typeof raw.settings !== "object" || typeof raw.evaluations !== "object" || raw.state === undefined) {
      throw new ConfigError([`not a ${method} search state (format "${FORMAT}", method "${method}"); delete it or choose another state path`], file);
    }
    const problems = Object.keys({ ...settings, ...raw.settings })
      .filter((k) => JSON.stringify(settings[k]) !== JSON.stringify(raw.settings![k]))
      .map((k) => `${k}: the saved search used ${JSON.stringify(raw.settings![k])}, this run ${JSON.stringify(settings[k])} (delete the state file to start over with the new settings)`);
    if (problems.length) throw new ConfigError(problems, file);
    const evaluations = new Map<string, number>();
    for (const [k, v] of Object.entries(raw.evaluations!)) if (typeof v === "number" && Number.isFinite(v)) evaluations.set(k, v);
    return new SearchState(file, method, settings, evaluations, raw.state, true);
  }

  /** The schedule's accuracy: from the cache, else from `evaluate` (then cached and saved). */
  async evaluate(schedule: KeepSchedule, evaluate: ScheduleEvaluator): Promise<{ accuracy: number; cached: boolean }> {
    const key = scheduleKey(schedule.keep);
    const hit = this.evaluations.get(key);
    if (hit !== undefined) return { accuracy: hit, cached: true };
    const accuracy = await evaluate(schedule);
    if (typeof accuracy !== "number" || !Number.isFinite(accuracy)) throw new RangeError(`${this.method}: evaluate returned ${String(accuracy)} for schedule ${key}`);
    this.evaluations.set(key, accuracy);
    this.save();
    return { accuracy, cached: false };
  }

  /** Writes the state file (atomically); no-op without a file. */
  save(): void {
    if (!this.file) return;
    writeJsonAtomic(this.file, { format: FORMAT, version: 1, method: this.method, settings: this.settings, state: this.state, evaluations: Object.fromEntries(this.evaluations) });
  }
}
