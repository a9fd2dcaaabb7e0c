// The benchmarks' calls into eval/metrics (the official formulas), shaped for per-item JSON score records and their
// aggregation. Accuracies come back as percentages.
import {
  gqaMatch, mmeScores, parseMmeAnswer, popeMetrics, popeMetricsByCategory, popeYesNo, scienceqaCorrect, vqaAccuracy, type PopeMetrics,
} from "../metrics/index.js";

/** VQA accuracy of one prediction in [0, 1] (lmms-eval VQAv2 or TextVQA processing). */
export function scoreVqa(prediction: string, answers: readonly string[], variant: "vqav2" | "textvqa"): number {
  return vqaAccuracy(prediction, answers, variant);
}

/** lmms-eval GQA exact match: 1 or 0. */
export function scoreGqa(prediction: string, answer: string): number {
  return gqaMatch(prediction, answer, "lmms-eval") ? 1 : 0;
}

/** LLaVA eval_pope.py's yes/no of a free-text prediction. */
export function popeAnswerOf(prediction: string): "yes" | "no" {
  return popeYesNo(prediction);
}

const popeNumbers = (m: PopeMetrics, prefix = ""): Record<string, number> => ({
  [`${prefix}accuracy`]: 100 * m.accuracy,
  [`${prefix}precision`]: 100 * m.precision,
  [`${prefix}recall`]: 100 * m.recall,
  [`${prefix}f1`]: 100 * m.f1,
  [`${prefix}yes_ratio`]: 100 * m.yesRatio,
});

/** POPE metrics (LLaVA variant) over all items and F1 per category. */
export function popeAggregate(items: readonly { pred: string; label: string; category: string }[]): Record<string, number> {
  if (items.length === 0) return {};
  const preds = items.map((i) => i.pred);
  const labels = items.map((i) => i.label);
  const out = popeNumbers(popeMetrics(preds, labels, "llava"));
  const byCat = popeMetricsByCategory(preds, labels, items.map((i) => i.category), "llava");
  for (const [c, m] of Object.entries(byCat)) out[`${c}_f1`] = 100 * m.f1;
  return out;
}

/** MME's parsed answer of a prediction ("yes" | "no" | "other"). */
export function mmeAnswerOf(prediction: string): string {
  return parseMmeAnswer(prediction);
}

/**
 * MME perception, cognition and total, and each category's score. Images with other than two scored questions (a
 * `limit` or shard cut through a pair) are left out and counted in `unpaired_images`.
 */
export function mmeAggregate(items: readonly { pred: string; answer: string; category: string; image: string }[]): Record<string, number> {
  const count = new Map<string, number>();
  for (const i of items) count.set(`${i.category}\t${i.image}`, (count.get(`${i.category}\t${i.image}`) ?? 0) + 1);
  const paired = items.filter((i) => count.get(`${i.category}\t${i.image}`) === 2);
  const unpaired = [...count.values()].filter((n) => n !== 2).length;
  if (paired.length === 0) return { total: 0, perception: 0, cognition: 0, unpaired_images: unpaired };
  const s = mmeScores(paired.map((i) => i.pred), paired.map((i) => ({ questionId: i.image, category: i.category, answer: i.answer })));
  const out: Record<string, number> = { total: s.perception + s.cognition, perception: s.perception, cognition: s.cognition, unpaired_images: unpaired };
  for (const [c, x] of Object.entries(s.categories)) out[`${c}_score`] = x.score;
  return out;
}

/** lmms-eval ScienceQA: the prediction is the target letter (or starts "X."). 1 or 0. */
export function sqaCorrect(prediction: string, letter: string): number {
  return scienceqaCorrect(prediction, letter.charCodeAt(0) - 65, "lmms-eval") ? 1 : 0;
}
