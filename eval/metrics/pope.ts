// POPE accuracy, precision, recall, F1 and yes-ratio.
//
// "llava" (default): haotian-liu/LLaVA@c121f04 llava/eval/eval_pope.py::eval_pope. Free text is mapped to yes/no:
// keep the text before the first "." (if any), delete ",", split on " " (single spaces, not whitespace runs), and
// answer "no" if any word is exactly "No", "not" or "no" (so "NO", "Not sure", "No\nthere" are "yes"), else "yes".
// A label is negative only if it is exactly "no"; anything else counts as positive. yes_ratio is the share of
// predictions mapped to "yes". LLaVA reports these per POPE category (adversarial / popular / random).
// "lmms-eval": EvolvingLMMs-Lab/lmms-eval@75571cf lmms_eval/tasks/pope/utils.py. No free-text mapping: the
// prediction is `lower().strip()`ed and must equal the label ("yes." or "Yes, there is" count wrong and as neither
// yes nor no: a positive with such a prediction is neither TP nor FN). Labels must be yes/no after lower/strip.
// lmms-eval's own `pope_yes_ratio` is the share of "yes" LABELS (a bug, ~0.5); it is returned as `labelYesRatio`,
// while `yesRatio` is always the share of predictions that are "yes".
// Both: precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R); a zero denominator gives 0 (lmms-eval's
// convention; LLaVA raises ZeroDivisionError there).

import { DataError } from "../../core/errors.js";
import { pyLower, pyStrip } from "./pystr.js";

export type PopeVariant = "llava" | "lmms-eval";

/** LLaVA eval_pope.py's free-text to yes/no mapping. */
export function popeYesNo(text: string): "yes" | "no" {
  let t = text;
  const dot = t.indexOf(".");
  if (dot !== -1) t = t.slice(0, dot); // text.split('.')[0]
  const words = t.replaceAll(",", "").split(" ");
  return words.includes("No") || words.includes("not") || words.includes("no") ? "no" : "yes";
}

export interface PopeMetrics {
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  /** share of predictions that are "yes" (after the variant's mapping) */
  yesRatio: number;
  /** share of labels that are "yes": what lmms-eval reports as pope_yes_ratio */
  labelYesRatio: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** predictions that are neither "yes" nor "no" (lmms-eval variant only; always 0 for llava) */
  other: number;
  count: number;
}

const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);

/** POPE metrics over aligned predictions and labels ("yes"/"no"). */
export function popeMetrics(
  predictions: readonly string[],
  labels: readonly string[],
  variant: PopeVariant = "llava",
): PopeMetrics {
  if (variant !== "llava" && variant !== "lmms-eval") {
    throw new DataError(`popeMetrics: unknown variant "${String(variant)}" (expected llava or lmms-eval)`);
  }
  if (predictions.length !== labels.length) {
    throw new DataError(`popeMetrics: ${predictions.length} predictions but ${labels.length} labels`);
  }
  if (predictions.length === 0) throw new DataError("popeMetrics: no questions to score");
  let tp = 0, fp = 0, tn = 0, fn = 0, other = 0, predYes = 0, labelYes = 0, correct = 0;
  predictions.forEach((raw, row) => {
    let pred: string;
    let positive: boolean;
    if (variant === "llava") {
      pred = popeYesNo(raw);
      positive = labels[row] !== "no";
    } else {
      pred = pyStrip(pyLower(raw));
      const gt = pyStrip(pyLower(labels[row]!));
      if (gt !== "yes" && gt !== "no") {
        throw new DataError(`popeMetrics: label "${labels[row]}" is not yes/no`, { row, column: "answer" });
      }
      positive = gt === "yes";
    }
    if (positive) labelYes++;
    if (pred === "yes") predYes++;
    else if (pred !== "no") other++;
    if (pred === (positive ? "yes" : "no")) correct++;
    if (positive && pred === "yes") tp++;
    else if (!positive && pred === "yes") fp++;
    else if (!positive && pred === "no") tn++;
    else if (positive && pred === "no") fn++;
  });
  const n = predictions.length;
  const precision = ratio(tp, tp + fp);
  const recall = ratio(tp, tp + fn);
  return {
    accuracy: correct / n,
    precision,
    recall,
    f1: precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0,
    yesRatio: predYes / n,
    labelYesRatio: labelYes / n,
    tp, fp, tn, fn, other,
    count: n,
  };
}

/** POPE metrics per category (LLaVA reports adversarial / popular / random separately), in first-seen order. */
export function popeMetricsByCategory(
  predictions: readonly string[],
  labels: readonly string[],
  categories: readonly string[],
  variant: PopeVariant = "llava",
): Record<string, PopeMetrics> {
  if (categories.length !== predictions.length) {
    throw new DataError(`popeMetricsByCategory: ${predictions.length} predictions but ${categories.length} categories`);
  }
  if (labels.length !== predictions.length) {
    throw new DataError(`popeMetricsByCategory: ${predictions.length} predictions but ${labels.length} labels`);
  }
  const groups = new Map<string, number[]>();
  categories.forEach((c, i) => {
    const g = groups.get(c);
    if (g) g.push(i);
    else groups.set(c, [i]);
  });
  // fromEntries defines own properties, so a category named "__proto__" stays a plain key
  return Object.fromEntries(
    [...groups].map(([c, idx]) => [c, popeMetrics(idx.map((i) => predictions[i]!), idx.map((i) => labels[i]!), variant)]),
  );
}
