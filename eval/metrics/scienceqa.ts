// ScienceQA(-IMG) option-letter accuracy.
//
// "lmms-eval" (default): EvolvingLMMs-Lab/lmms-eval@75571cf lmms_eval/tasks/scienceqa/utils.py::sqa_process_results
// ("I know this is weird, but it's how llava parse it"). target = chr(ord("A") + answer); the prediction (stripped by
// the framework, lmms_eval/api/task.py) is right if it equals the target ("B"), or if it is at least 2 characters,
// its first is upper case and its second is "." and the first equals the target ("B. cat", "B."). Nothing else
// counts: "b", "(B)", "B cat", "The answer is B." are wrong.
// "llava": haotian-liu/LLaVA@c121f04 llava/eval/eval_science_qa.py: the text is an option letter (A-E), or starts
// with "<letter>. ", or contains exactly one match of `The answer is ([A-Z]).` (any character after the letter,
// not a newline); the letter must name one of the question's choices (get_pred_idx), else the prediction fails.
// The text arrives stripped from model_vqa_science.py; it is stripped here too.

import { DataError } from "../../core/errors.js";
import { codePoints, pyIsUpper, pyStrip } from "./pystr.js";

export type ScienceqaVariant = "lmms-eval" | "llava";

/** LLaVA's `--options` default. */
const LLAVA_OPTIONS = ["A", "B", "C", "D", "E"] as const;

/** The option letter of a 0-based answer index: chr(65 + answer). */
export function scienceqaLetter(answerIndex: number): string {
  if (!Number.isInteger(answerIndex) || answerIndex < 0) {
    throw new DataError(`scienceqa: answer index ${answerIndex} is not a non-negative integer`, { column: "answer" });
  }
  return String.fromCharCode(65 + answerIndex);
}

/**
 * LLaVA eval_science_qa.py: the predicted choice index (0-based) parsed from free text, or -1 when it fails or names
 * a letter beyond `numChoices`.
 */
export function parseScienceqaChoice(prediction: string, numChoices: number): number {
  const text = pyStrip(prediction);
  const options: readonly string[] = LLAVA_OPTIONS;
  let answer = "FAILED";
  const cps = codePoints(text);
  if (options.includes(text)) {
    answer = text;
  } else if (cps.length >= 3 && options.includes(cps[0]!) && cps[1] === "." && cps[2] === " ") {
    answer = cps[0]!;
  } else {
    // re.compile(r'The answer is ([A-Z]).').findall(text); Python's "." is any character but "\n"
    const found = [...text.matchAll(/The answer is ([A-Z])[^\n]/gu)];
    if (found.length === 1) answer = found[0]![1]!;
  }
  const idx = options.slice(0, numChoices).indexOf(answer);
  return idx;
}

/** Whether one ScienceQA prediction is right. `numChoices` is needed by the "llava" variant only. */
export function scienceqaCorrect(
  prediction: string,
  answerIndex: number,
  variant: ScienceqaVariant = "lmms-eval",
  numChoices: number = LLAVA_OPTIONS.length,
): boolean {
  const target = scienceqaLetter(answerIndex);
  if (variant === "llava") return parseScienceqaChoice(prediction, numChoices) === answerIndex;
  if (variant !== "lmms-eval") {
    throw new DataError(`scienceqaCorrect: unknown variant "${String(variant)}" (expected lmms-eval or llava)`);
  }
  const pred = pyStrip(prediction);
  if (pred === target) return true;
  const cps = codePoints(pred);
  if (cps.length >= 2 && pyIsUpper(cps[0]!) && cps[1] === ".") return cps[0] === target;
  return false;
}

export interface ScienceqaScore {
  /** correct / count, in [0, 1] (LLaVA prints it x100) */
  accuracy: number;
  correct: number;
  count: number;
}

/**
 * ScienceQA accuracy over aligned predictions and 0-based answer indices. `numChoices[i]` (the length of question
 * i's choice list) is used by the "llava" variant; without it every letter A-E is allowed.
 */
export function scienceqaAccuracy(
  predictions: readonly string[],
  answers: readonly number[],
  variant: ScienceqaVariant = "lmms-eval",
  numChoices?: readonly number[],
): ScienceqaScore {
  if (predictions.length !== answers.length) {
    throw new DataError(`scienceqaAccuracy: ${predictions.length} predictions but ${answers.length} answers`);
  }
  if (numChoices && numChoices.length !== answers.length) {
    throw new DataError(`scienceqaAccuracy: ${answers.length} answers but ${numChoices.length} choice counts`);
  }
  if (predictions.length === 0) throw new DataError("scienceqaAccuracy: no questions to score");
  let correct = 0;
  predictions.forEach((p, row) => {
    const n = numChoices?.[row];
    if (n !== undefined && !(answers[row]! < n)) {
      throw new DataError(`scienceqaAccuracy: answer index ${answers[row]} but only ${n} choices`, { row });
    }
    try {
      if (scienceqaCorrect(p, answers[row]!, variant, n)) correct++;
    } catch (e) {
      if (e instanceof DataError) throw new DataError(e.message, { row });
      throw e;
    }
  });
  return { accuracy: correct / predictions.length, correct, count: predictions.length };
}
