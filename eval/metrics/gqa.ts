// GQA exact-match accuracy.
//
// "lmms-eval" (default): EvolvingLMMs-Lab/lmms-eval@75571cf lmms_eval/tasks/gqa/gqa.yaml has no process_results, so
// the registered `exact_match` metric runs (lmms_eval/api/metrics.py::exact_match_hf_evaluate, L188-233) with
// ignore_case and ignore_punctuation: both sides lower-cased (np.char.lower), every ASCII `string.punctuation`
// character deleted (np.char.translate), then compared as numpy unicode arrays (which drop trailing NUL characters).
// Nothing else: no whitespace collapsing, no article or number handling. The prediction was already stripped by the
// framework (lmms_eval/api/task.py ~L1586); the reference `answer` is not stripped.
// "llava": haotian-liu/LLaVA@c121f04 scripts/convert_gqa_for_eval.py: `text.rstrip('.').lower()` (the text comes
// stripped from model_vqa_loader.py), then the official GQA eval.py compares it with the answer as is.

import { DataError } from "../../core/errors.js";
import { pyLower, pyRstrip, pyStrip } from "./pystr.js";

export type GqaVariant = "lmms-eval" | "llava";

/** Python `string.punctuation`. */
const ASCII_PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

function numpyUnicode(s: string): string {
  return s.replace(/\0+$/, "");
}

/** lmms-eval exact_match with ignore_case + ignore_punctuation, applied to one string. */
function lmmsExactMatchForm(s: string): string {
  return numpyUnicode(pyLower(s).replace(ASCII_PUNCTUATION, ""));
}

/** The prediction in the form that is compared with the (transformed) reference. */
export function normalizeGqaPrediction(prediction: string, variant: GqaVariant = "lmms-eval"): string {
  if (variant === "lmms-eval") return lmmsExactMatchForm(pyStrip(prediction));
  if (variant === "llava") return pyLower(pyRstrip(pyStrip(prediction), "."));
  throw new DataError(`normalizeGqaPrediction: unknown variant "${String(variant)}" (expected lmms-eval or llava)`);
}

/** Whether one GQA prediction matches its reference answer. */
export function gqaMatch(prediction: string, answer: string, variant: GqaVariant = "lmms-eval"): boolean {
  const pred = normalizeGqaPrediction(prediction, variant);
  const ref = variant === "lmms-eval" ? lmmsExactMatchForm(answer) : answer;
  return pred === ref;
}

export interface GqaScore {
  /** correct / count, in [0, 1] */
  accuracy: number;
  correct: number;
  count: number;
}

/** GQA accuracy over aligned predictions and reference answers. */
export function gqaAccuracy(
  predictions: readonly string[],
  answers: readonly string[],
  variant: GqaVariant = "lmms-eval",
): GqaScore {
  if (predictions.length !== answers.length) {
    throw new DataError(`gqaAccuracy: ${predictions.length} predictions but ${answers.length} answers`);
  }
  if (predictions.length === 0) throw new DataError("gqaAccuracy: no questions to score");
  let correct = 0;
  predictions.forEach((p, i) => {
    if (gqaMatch(p, answers[i]!, variant)) correct++;
  });
  return { accuracy: correct / predictions.length, correct, count: predictions.length };
}
