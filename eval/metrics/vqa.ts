// VQA answer normalisation and accuracy (VQAv2, TextVQA, and the original GT-Vision-Lab scorer), step for step as
// the official Python code, Python regex and string semantics included.
//
// Sources:
// - processor: EvolvingLMMs-Lab/lmms-eval@75571cf lmms_eval/tasks/_task_utils/vqa_eval_metric.py
//   (EvalAIAnswerProcessor: word_tokenize, process_punctuation, process_digit_article, __call__)
// - "vqav2":   lmms-eval@75571cf lmms_eval/tasks/vqav2/utils.py::vqav2_process_results (after PRs #760 and #794:
//   prediction and every answer are `\n`/`\t`->space, strip, process_punctuation, process_digit_article, always)
// - "textvqa": lmms-eval@75571cf lmms_eval/tasks/textvqa/utils.py::textvqa_process_results = LLaVA
//   haotian-liu/LLaVA@c121f04 llava/eval/m4c_evaluator.py::TextVQAAccuracyEvaluator (full __call__ on both sides)
// - "official": GT-Vision-Lab/VQA@a013f00 PythonEvaluationTools/vqaEvaluation/vqaEval.py::VQAEval.evaluate
//
// Accuracy (all three): for each of the n reference answers i, count the OTHER answers equal to the prediction
// (exclusion by position: the real records are distinct dicts with their own answer_id, so only answer i itself is
// left out, even when its text repeats), acc_i = min(1, count/3); accuracy = mean over i. With 10 answers and the
// prediction equal to m of them: m=0 -> 0, 1 -> 0.3, 2 -> 0.6, 3 -> 0.9, >=4 -> 1.
// Answer lists that are not 10 long are scored the same way over their n leave-one-out subsets, as the official
// code does (lmms-eval and GT-Vision-Lab never check the length; LLaVA's TextVQA evaluator asserts 10). An empty
// list raises there (statistics.mean / ZeroDivisionError) and throws a DataError here.
// The mean is summed left to right then divided (exactly the official `float(sum(gtAcc))/len(gtAcc)`); lmms-eval's
// statistics.mean rounds once from the exact sum, which can differ by an ulp (~1e-16).

import { DataError } from "../../core/errors.js";
import { pyLower, pySplit, pyStrip } from "./pystr.js";
import { ARTICLES, CONTRACTIONS, NUMBER_MAP, PUNCTUATIONS } from "./vqa_tables.js";

/** Which official scorer to follow. */
export type VqaVariant = "vqav2" | "textvqa" | "official";

const VARIANTS: readonly VqaVariant[] = ["vqav2", "textvqa", "official"];

// Python `\d` on str is any Unicode decimal digit (category Nd); JS `\d` is ASCII only, hence \p{Nd} with /u.
/** lmms-eval COMMA_STRIP `(?<=\d)(\,)+(?=\d)`: digit, one or more commas, digit. */
const COMMA_STRIP_LMMS = /(?<=\p{Nd}),+(?=\p{Nd})/u;
/** GT-Vision-Lab commaStrip `(\d)(\,)(\d)`: digit, exactly one comma, digit. */
const COMMA_STRIP_OFFICIAL = /\p{Nd},\p{Nd}/u;
/**
 * PERIOD_STRIP `(?!<=\d)(\.)(?!\d)`, kept literally: the first group is a negative LOOKAHEAD for the text "<=" and
 * a digit (a typo for a lookbehind), always true in front of a ".", so a "." goes unless a digit follows it.
 */
const PERIOD_STRIP = /(?!<=\p{Nd})\.(?!\p{Nd})/gu;
/** `PERIOD_STRIP.sub("", text, re.UNICODE)`: re.UNICODE (= 32) lands in the `count` slot, so at most 32 go. */
const PERIOD_STRIP_COUNT = 32;

/** `s.replace("\n", " ").replace("\t", " ").strip()` (the first step on every side). */
function newlinesTabsStrip(s: string): string {
  return pyStrip(s.replaceAll("\n", " ").replaceAll("\t", " "));
}

/**
 * process_punctuation / processPunctuation. For each listed mark p: if `p + " "` or `" " + p` occurs in the INPUT
 * text, or the input matches the comma-between-digits pattern, every p is deleted; otherwise every p becomes a space.
 * Then the first 32 periods not followed by a digit are deleted.
 */
export function processPunctuation(inText: string, variant: VqaVariant = "vqav2"): string {
  const commaStrip = variant === "official" ? COMMA_STRIP_OFFICIAL : COMMA_STRIP_LMMS;
  const digitComma = commaStrip.test(inText);
  let outText = inText;
  for (const p of PUNCTUATIONS) {
    const remove = inText.includes(p + " ") || inText.includes(" " + p) || digitComma;
    outText = outText.replaceAll(p, remove ? "" : " ");
  }
  let removed = 0;
  return outText.replace(PERIOD_STRIP, (m) => (removed++ < PERIOD_STRIP_COUNT ? "" : m));
}

/**
 * process_digit_article / processDigitArticle: lower-case, split on whitespace, number words -> digits, drop
 * a/an/the, expand contractions word by word, join with single spaces.
 */
export function processDigitArticle(inText: string): string {
  const words: string[] = [];
  for (const raw of pySplit(pyLower(inText))) {
    const word = NUMBER_MAP.get(raw) ?? raw;
    if (!ARTICLES.has(word)) words.push(word);
  }
  return words.map((w) => CONTRACTIONS.get(w) ?? w).join(" ");
}

/** word_tokenize (TextVQA's __call__ only): lower, delete "," and "?", "'s" -> " 's", strip. */
export function wordTokenize(word: string): string {
  return pyStrip(pyLower(word).replaceAll(",", "").replaceAll("?", "").replaceAll("'s", " 's"));
}

function checkVariant(variant: string, what: string): asserts variant is VqaVariant {
  if (!(VARIANTS as readonly string[]).includes(variant)) {
    throw new DataError(`${what}: unknown variant "${variant}" (expected one of ${VARIANTS.join(", ")})`);
  }
}

/**
 * The full answer normalisation of a variant:
 * - "vqav2":   newlines/tabs -> space, strip, process_punctuation, process_digit_article (no word_tokenize).
 * - "textvqa": EvalAIAnswerProcessor.__call__: word_tokenize, newlines/tabs -> space, strip, process_punctuation,
 *              process_digit_article.
 * - "official": newlines/tabs -> space, strip, processPunctuation (one-comma digit rule), processDigitArticle.
 *   NOTE the official scorer applies the last two only when the reference answers are not all identical
 *   (see scoreVqaAnswer); this function always applies them.
 */
export function normalizeVqaAnswer(text: string, variant: VqaVariant = "vqav2"): string {
  checkVariant(variant, "normalizeVqaAnswer");
  if (variant === "textvqa") {
    return processDigitArticle(processPunctuation(newlinesTabsStrip(wordTokenize(text)), "textvqa"));
  }
  return processDigitArticle(processPunctuation(newlinesTabsStrip(text), variant));
}

/** One scored question: the accuracy and the strings that were compared. */
export interface VqaScore {
  accuracy: number;
  /** the prediction as compared */
  prediction: string;
  /** the reference answers as compared, in input order */
  answers: string[];
}

/**
 * Scores one prediction against its reference answers (usually 10) the way the chosen official scorer does, and
 * returns the compared strings too. For "official", both sides are only stripped when all (stripped) answers are
 * identical, and fully normalised otherwise (so "Yes" scores 0 against ten "yes").
 */
export function scoreVqaAnswer(prediction: string, answers: readonly string[], variant: VqaVariant = "vqav2"): VqaScore {
  checkVariant(variant, "scoreVqaAnswer");
  if (answers.length === 0) {
    throw new DataError(`vqa accuracy (${variant}): the reference answer list is empty (the official code raises too)`);
  }
  let pred: string;
  let gts: string[];
  if (variant === "official") {
    pred = newlinesTabsStrip(prediction);
    gts = answers.map(newlinesTabsStrip);
    if (new Set(gts).size > 1) {
      gts = gts.map((a) => processDigitArticle(processPunctuation(a, "official")));
      pred = processDigitArticle(processPunctuation(pred, "official"));
    }
  } else {
    pred = normalizeVqaAnswer(prediction, variant);
    gts = answers.map((a) => normalizeVqaAnswer(a, variant));
  }
  return { accuracy: leaveOneOutAccuracy(pred, gts), prediction: pred, answers: gts };
}

/** mean over i of min(1, #{j != i : answers[j] == prediction} / 3), summed left to right. */
function leaveOneOutAccuracy(prediction: string, answers: readonly string[]): number {
  let matches = 0;
  for (const a of answers) if (a === prediction) matches++;
  let sum = 0;
  for (const a of answers) {
    const others = matches - (a === prediction ? 1 : 0);
    sum += Math.min(1, others / 3);
  }
  return sum / answers.length;
}

/**
 * VQA accuracy of one prediction against its reference answers, in [0, 1]
 * (`vqav2`: lmms-eval exact_match; `textvqa`: lmms-eval / LLaVA TextVQA accuracy; `official`: GT-Vision-Lab VQAEval).
 */
export function vqaAccuracy(prediction: string, answers: readonly string[], variant: VqaVariant = "vqav2"): number {
  return scoreVqaAnswer(prediction, answers, variant).accuracy;
}

/** Accuracy over a set of questions. */
export interface VqaDatasetScore {
  /** mean of perQuestion, in [0, 1] (the official scorer reports round(100 * this, 2)) */
  accuracy: number;
  perQuestion: number[];
  count: number;
}

/** Mean VQA accuracy over aligned predictions and reference-answer lists (lmms-eval aggregation "mean"). */
export function vqaDatasetAccuracy(
  predictions: readonly string[],
  answers: readonly (readonly string[])[],
  variant: VqaVariant = "vqav2",
): VqaDatasetScore {
  if (predictions.length !== answers.length) {
    throw new DataError(`vqaDatasetAccuracy: ${predictions.length} predictions but ${answers.length} answer lists`);
  }
  if (predictions.length === 0) throw new DataError("vqaDatasetAccuracy: no questions to score");
  const perQuestion = predictions.map((p, row) => {
    try {
      return vqaAccuracy(p, answers[row]!, variant);
    } catch (e) {
      if (e instanceof DataError) throw new DataError(e.message, { row });
      throw e;
    }
  });
  let sum = 0;
  for (const a of perQuestion) sum += a;
  return { accuracy: sum / perQuestion.length, perQuestion, count: perQuestion.length };
}
