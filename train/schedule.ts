// Learning-rate schedules as pure functions of the step, equal to HF transformers' schedulers:
// get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup, get_constant_schedule_with_warmup and
// (with minLrRatio) get_cosine_with_min_lr_schedule_with_warmup (min_lr_rate).
//
// `step` is 0-based: the number of optimizer updates already applied, i.e. the index of the update about to be
// applied. HF builds a LambdaLR (which evaluates lr_lambda(0) at construction) and calls scheduler.step() after each
// optimizer.step(), so update k (0-based) uses lr_lambda(k): with warmup > 0 the very first update uses lr 0, and
// HF's logged "learning_rate" after update k is lrAt(k + 1). We reproduce this exactly.

export const SCHEDULE_NAMES = ["cosine", "linear", "constant"] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

export interface ScheduleOptions {
  baseLr: number;
  /** Number of optimizer updates in the run (HF num_training_steps). */
  totalSteps: number;
  /** Warmup updates; when > 0 it wins over warmupRatio (HF TrainingArguments.get_warmup_steps). */
  warmupSteps?: number;
  /** Fraction of totalSteps to warm up for: warmup = ceil(totalSteps * warmupRatio). */
  warmupRatio?: number;
  name: ScheduleName;
  /** Floor of the decay as a fraction of baseLr (HF min_lr_rate); 0 when absent. Cosine and linear only. */
  minLrRatio?: number;
}

/** HF's `warmup_steps if warmup_steps > 0 else math.ceil(num_training_steps * warmup_ratio)`. */
export function warmupStepsFor(opts: Pick<ScheduleOptions, "totalSteps" | "warmupSteps" | "warmupRatio">): number {
  if (opts.warmupSteps !== undefined && opts.warmupSteps > 0) return opts.warmupSteps;
  return Math.ceil(opts.totalSteps * (opts.warmupRatio ?? 0));
}

/**
 * The learning rate for 0-based update `step` (see the file header). Steps past totalSteps keep the final value
 * (HF's cosine would rise again there; a run never gets that far).
 * @throws Error naming the option when an option is out of range or the name is unknown.
 */
export function lrAt(step: number, opts: ScheduleOptions): number {
  checkOptions(step, opts);
  const warmup = warmupStepsFor(opts);
  return opts.baseLr * lrLambda(Math.min(step, opts.totalSteps), opts.totalSteps, warmup, opts.name, opts.minLrRatio ?? 0);
}

/** The multiplier of baseLr (HF's lr_lambda). */
function lrLambda(step: number, total: number, warmup: number, name: ScheduleName, minRatio: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  if (name === "constant") return 1;
  if (name === "linear") {
    const factor = Math.max(0, (total - step) / Math.max(1, total - warmup));
    return minRatio > 0 ? factor * (1 - minRatio) + minRatio : factor;
  }
  const progress = (step - warmup) / Math.max(1, total - warmup);
  const factor = 0.5 * (1 + Math.cos(Math.PI * progress));
  return Math.max(0, minRatio > 0 ? factor * (1 - minRatio) + minRatio : factor);
}

function checkOptions(step: number, o: ScheduleOptions): void {
  const bad: string[] = [];
  if (!Number.isInteger(step) || step < 0) bad.push(`step: expected an integer >= 0, got ${step}`);
  if (!(Number.isFinite(o.baseLr) && o.baseLr >= 0)) bad.push(`baseLr: expected a number >= 0, got ${o.baseLr}`);
  if (!(Number.isInteger(o.totalSteps) && o.totalSteps >= 1)) bad.push(`totalSteps: expected an integer >= 1, got ${o.totalSteps}`);
  if (o.warmupSteps !== undefined && !(Number.isInteger(o.warmupSteps) && o.warmupSteps >= 0)) {
    bad.push(`warmupSteps: expected an integer >= 0, got ${o.warmupSteps}`);
  }
  if (o.warmupRatio !== undefined && !(o.warmupRatio >= 0 && o.warmupRatio <= 1)) {
    bad.push(`warmupRatio: expected a number in [0, 1], got ${o.warmupRatio}`);
  }
  if (o.minLrRatio !== undefined && !(o.minLrRatio >= 0 && o.minLrRatio <= 1)) {
    bad.push(`minLrRatio: expected a number in [0, 1], got ${o.minLrRatio}`);
  }
  if (!(SCHEDULE_NAMES as readonly string[]).includes(o.name)) {
    bad.push(`name: unknown schedule "${o.name}"; valid: ${SCHEDULE_NAMES.join(", ")}`);
  }
  if (bad.length) throw new Error(`lrAt: ${bad.join("; ")}`);
}
