// MME scores: per-category acc, acc+ and score, perception and cognition totals.
//
// Follows EvolvingLMMs-Lab/lmms-eval@75571cf lmms_eval/tasks/mme/utils.py (parse_pred_ans "brought from Otter Eval",
// mme_process_results, mme_aggregate_results), which reproduces MME's own eval_tool/calculation.py:
// - prediction: lower, strip, delete every "."; "yes"/"no" as is; a single char "y"/"n" -> yes/no (other single chars
//   -> other); else "yes" if "yes" occurs in the first 4 characters, elif "no" does ("not", "none", "nope"), else other.
// - reference: lower, strip, delete "."; must be yes/no.
// - per image (question_id, shared by its 2 questions): acc = mean(correct)*100, acc+ = 100 if both are right;
//   category score = mean over images of (acc + acc+) = acc*100 + acc+*100 with acc, acc+ as fractions.
// - perception = sum of the category scores of existence, count, position, color, posters, celebrity, scene,
//   landmark, artwork, OCR (max 2000); cognition = sum over every other category (lmms-eval routes any category not
//   in the perception list there), i.e. commonsense_reasoning, numerical_calculation, text_translation,
//   code_reasoning (max 800).
// An image without exactly 2 questions is an error (lmms-eval asserts "MME only supports pairwise evaluation").

import { DataError } from "../../core/errors.js";
import { codePoints, pyLower, pyStrip } from "./pystr.js";

export const MME_PERCEPTION_CATEGORIES: readonly string[] = [
  "existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR",
];
export const MME_COGNITION_CATEGORIES: readonly string[] = [
  "commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning",
];

/** lmms-eval parse_pred_ans: free text -> "yes" | "no" | "other". */
export function parseMmeAnswer(prediction: string): "yes" | "no" | "other" {
  const p = pyStrip(pyLower(prediction)).replaceAll(".", "");
  if (p === "yes" || p === "no") return p;
  const cps = codePoints(p);
  if (cps.length === 1) return p === "y" ? "yes" : p === "n" ? "no" : "other";
  const prefix = cps.slice(0, 4).join("");
  if (prefix.includes("yes")) return "yes";
  if (prefix.includes("no")) return "no";
  return "other";
}

/** One MME question's reference. */
export interface MmeReference {
  /** the image's id (lmms-lab/MME question_id, e.g. "code_reasoning/0020.png"), shared by its two questions */
  questionId: string;
  category: string;
  /** "Yes" / "No" */
  answer: string;
}

export interface MmeCategoryScore {
  /** mean question accuracy, 0..100 */
  acc: number;
  /** share of images with both questions right, 0..100 */
  accPlus: number;
  /** acc + acc+ (max 200) */
  score: number;
  images: number;
}

export interface MmeScores {
  /** per category, in first-seen order */
  categories: Record<string, MmeCategoryScore>;
  perception: number;
  cognition: number;
}

/** MME scores over aligned predictions and references. */
export function mmeScores(predictions: readonly string[], references: readonly MmeReference[]): MmeScores {
  if (predictions.length !== references.length) {
    throw new DataError(`mmeScores: ${predictions.length} predictions but ${references.length} references`);
  }
  if (predictions.length === 0) throw new DataError("mmeScores: no questions to score");
  // category -> question_id -> scores, in insertion order like the Python defaultdict(dict)
  const byCategory = new Map<string, Map<string, number[]>>();
  predictions.forEach((pred, row) => {
    const ref = references[row]!;
    const gt = pyStrip(pyLower(ref.answer)).replaceAll(".", "");
    if (gt !== "yes" && gt !== "no") {
      throw new DataError(`mmeScores: reference answer "${ref.answer}" is not yes/no`, { row, column: "answer" });
    }
    const score = parseMmeAnswer(pred) === gt ? 1 : 0;
    let images = byCategory.get(ref.category);
    if (!images) byCategory.set(ref.category, (images = new Map()));
    const scores = images.get(ref.questionId);
    if (scores) scores.push(score);
    else images.set(ref.questionId, [score]);
  });
  const categories: [string, MmeCategoryScore][] = [];
  let perception = 0;
  let cognition = 0;
  for (const [category, images] of byCategory) {
    let total = 0;
    let accSum = 0;
    let plusSum = 0;
    for (const [questionId, scores] of images) {
      if (scores.length !== 2) {
        throw new DataError(
          `mmeScores: image "${questionId}" (${category}) has ${scores.length} questions; MME scores pairs only`,
        );
      }
      const sum = scores[0]! + scores[1]!;
      const acc = (sum / 2) * 100.0;
      const accPlus = sum === 2 ? 100.0 : 0.0;
      total += accPlus + acc;
      accSum += acc;
      plusSum += accPlus;
    }
    const score = total / images.size;
    categories.push([category, { acc: accSum / images.size, accPlus: plusSum / images.size, score, images: images.size }]);
    if (MME_PERCEPTION_CATEGORIES.includes(category)) perception += score;
    else cognition += score;
  }
  return { categories: Object.fromEntries(categories), perception, cognition };
}
