// POPE, MME, GQA and ScienceQA metric tests: hand-computed small cases (arithmetic in the comments), the yes/no and
// letter parsing edge cases, and POPE on 60 real llava-v1.5-13b answers checked against an independent count.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { goldenDir } from "../helpers.js";
import { DataError } from "../../core/errors.js";
import {
  gqaAccuracy,
  gqaMatch,
  mmeScores,
  parseMmeAnswer,
  parseScienceqaChoice,
  popeMetrics,
  popeMetricsByCategory,
  popeYesNo,
  scienceqaAccuracy,
  scienceqaCorrect,
  type MmeReference,
  type PopeMetrics,
} from "../../eval/metrics/index.js";

const TOL = 1e-12;
const close = (got: number, want: number, what: string) =>
  assert.ok(Math.abs(got - want) <= TOL, `${what}: ${got} != ${want}`);

test("POPE: LLaVA eval_pope.py yes/no mapping edge cases", () => {
  const cases: [string, "yes" | "no", string][] = [
    ["No, there is not.", "no", 'first sentence "No, there is not" -> "No there is not": has "No"'],
    ["Yes.", "yes", "no negative word"],
    ["There is a dog.", "yes", "free text without a negative word is yes"],
    ["not sure", "no", '"not" is a negative word'],
    ["Not sure", "yes", '"Not" (capital) is not in {No, not, no}'],
    ["NO", "yes", "only the exact words No/not/no count"],
    ["There is no dog. No.", "no", "first sentence has no"],
    ["Yes. There is no dog.", "yes", "only the text before the first . is read"],
    ["no,", "no", '"," is deleted, leaving "no"'],
    ["No\nthere is none", "yes", 'split on " " only: the word is "No\\nthere"'],
    ["I don't know", "yes", "don't is not a negative word"],
    ["nothing", "yes", "whole words only"],
    ["", "yes", "empty text"],
  ];
  for (const [text, want, why] of cases) assert.equal(popeYesNo(text), want, `${JSON.stringify(text)}: ${why}`);
});

test("POPE metrics by hand: llava mapping and lmms-eval exact matching", () => {
  const preds = ["Yes", "No", "Yes", "No", "Yes, there is.", "not sure", "Yes"];
  const labels = ["yes", "yes", "no", "no", "yes", "no", "no"];
  // llava: mapped -> yes, no, yes, no, yes, no, yes
  //   TP = #0,#4 = 2; FN = #1 = 1; FP = #2,#6 = 2; TN = #3,#5 = 2
  //   acc = 4/7; P = 2/4; R = 2/3; F1 = 2*(1/2)*(2/3)/(1/2+2/3) = (2/3)/(7/6) = 4/7; yes ratio = 4/7
  const l = popeMetrics(preds, labels);
  assert.deepEqual([l.tp, l.fp, l.tn, l.fn, l.other, l.count], [2, 2, 2, 1, 0, 7]);
  close(l.accuracy, 4 / 7, "acc");
  close(l.precision, 1 / 2, "precision");
  close(l.recall, 2 / 3, "recall");
  close(l.f1, 4 / 7, "f1");
  close(l.yesRatio, 4 / 7, "yes ratio");
  close(l.labelYesRatio, 3 / 7, "label yes ratio");
  // lmms-eval: lower/strip only -> yes, no, yes, no, "yes, there is.", "not sure", yes
  //   TP = #0 = 1; FN = #1 = 1; FP = #2,#6 = 2; TN = #3 = 1; other = #4,#5 = 2 (in no cell)
  //   acc = (#0,#3)/7 = 2/7; P = 1/3; R = 1/2; F1 = 2*(1/3)*(1/2)/(5/6) = 2/5; yes ratio (preds) = 3/7
  const m = popeMetrics(preds, labels, "lmms-eval");
  assert.deepEqual([m.tp, m.fp, m.tn, m.fn, m.other, m.count], [1, 2, 1, 1, 2, 7]);
  close(m.accuracy, 2 / 7, "acc");
  close(m.precision, 1 / 3, "precision");
  close(m.recall, 1 / 2, "recall");
  close(m.f1, 2 / 5, "f1");
  close(m.yesRatio, 3 / 7, "yes ratio");
  close(m.labelYesRatio, 3 / 7, "lmms-eval's pope_yes_ratio (labels)");
  // all "No": no positive prediction -> precision 0 and F1 0 (no division by zero)
  const z = popeMetrics(["No", "No"], ["yes", "no"]);
  assert.deepEqual([z.tp, z.fp, z.tn, z.fn, z.precision, z.recall, z.f1, z.accuracy], [0, 0, 1, 1, 0, 0, 0, 0.5]);
  // LLaVA's labels: only exactly "no" is negative, so "No" counts as a positive label
  assert.equal(popeMetrics(["Yes"], ["No"]).tp, 1);
  assert.throws(() => popeMetrics(["yes"], ["maybe"], "lmms-eval"), DataError);
  assert.throws(() => popeMetrics(["yes"], []), DataError);
  const byCat = popeMetricsByCategory(["Yes", "No", "No"], ["yes", "yes", "no"], ["random", "popular", "random"]);
  assert.deepEqual(Object.keys(byCat), ["random", "popular"]);
  assert.deepEqual([byCat.random!.tp, byCat.random!.tn, byCat.popular!.fn], [1, 1, 1]);
});

test("POPE on 60 real llava-v1.5-13b answers vs coco_pope_random labels (joined by question_id)", () => {
  const dir = path.join(goldenDir(), "real/eval/pope");
  const jsonl = (f: string) =>
    readFileSync(path.join(dir, f), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
  const answers = jsonl("answers_llava-v1.5-13b.head60.jsonl");
  const questions = jsonl("llava_pope_test.head60.jsonl");
  const labelById = new Map(jsonl("coco_pope_random.json").map((r) => [r.question_id as number, r.label as string]));
  // The answers are to the adversarial questions while the labels are the random split's: the ids line up but the
  // questions do not, so this checks the arithmetic on real text, not the model's quality.
  const preds: string[] = [];
  const labels: string[] = [];
  for (const a of answers) {
    const label = labelById.get(a.question_id as number);
    if (label === undefined) continue;
    preds.push(a.text as string);
    labels.push(label);
  }
  assert.equal(preds.length, 60);
  // independent count: these answers are exactly "Yes" or "No"
  let tp = 0, fp = 0, tn = 0, fn = 0;
  for (let i = 0; i < preds.length; i++) {
    assert.ok(preds[i] === "Yes" || preds[i] === "No", `answer ${i} is ${preds[i]}`);
    const p = preds[i] === "Yes";
    const y = labels[i] === "yes";
    if (p && y) tp++;
    else if (p && !y) fp++;
    else if (!p && !y) tn++;
    else fn++;
  }
  const check = (m: PopeMetrics, what: string) => {
    assert.deepEqual([m.tp, m.fp, m.tn, m.fn, m.count], [tp, fp, tn, fn, 60], what);
    close(m.accuracy, (tp + tn) / 60, `${what} acc`);
    close(m.precision, tp / (tp + fp), `${what} precision`);
    close(m.recall, tp / (tp + fn), `${what} recall`);
    const p = tp / (tp + fp), r = tp / (tp + fn);
    close(m.f1, (2 * p * r) / (p + r), `${what} f1`);
    close(m.yesRatio, (tp + fp) / 60, `${what} yes ratio`);
  };
  check(popeMetrics(preds, labels), "llava");
  check(popeMetrics(preds, labels, "lmms-eval"), "lmms-eval (answers are clean words, so the same)");
  const cats = answers.map((a) => questions.find((q) => q.question_id === a.question_id)!.category as string);
  const byCat = popeMetricsByCategory(preds, labels, cats);
  assert.deepEqual(Object.keys(byCat), ["adversarial"]);
  check(byCat.adversarial!, "per category");
  assert.equal(tp + fp, 31, "31 of the 60 answers are Yes");
});

test("MME: answer parsing (lmms-eval parse_pred_ans)", () => {
  const cases: [string, "yes" | "no" | "other", string][] = [
    ["Yes", "yes", "exact after lower"],
    ["No.", "no", '"." deleted'],
    ["y", "yes", "single char y"],
    ["N", "no", "single char n after lower"],
    ["x", "other", "any other single char"],
    ["y.", "yes", '"." deleted before the length test'],
    ["Yes, there is", "yes", 'first 4 chars "yes," contain yes'],
    ["Not really", "no", 'first 4 chars "not " contain no'],
    ["none", "no", "contains no"],
    ["know", "no", '"know" contains "no" in its first 4 chars'],
    ["I think yes", "other", 'first 4 chars "i th"'],
    [" yes . ", "yes", 'lower, strip -> "yes .", delete "." -> "yes ", prefix contains yes'],
    ["", "other", "empty"],
  ];
  for (const [text, want, why] of cases) assert.equal(parseMmeAnswer(text), want, `${JSON.stringify(text)}: ${why}`);
});

test("MME: per-category acc / acc+ and perception / cognition totals by hand", () => {
  const refs: MmeReference[] = [
    { questionId: "existence/1.jpg", category: "existence", answer: "Yes" },
    { questionId: "existence/1.jpg", category: "existence", answer: "No" },
    { questionId: "existence/2.jpg", category: "existence", answer: "Yes" },
    { questionId: "existence/2.jpg", category: "existence", answer: "No" },
    { questionId: "count/3.jpg", category: "count", answer: "Yes" },
    { questionId: "count/3.jpg", category: "count", answer: "No" },
    { questionId: "code_reasoning/4.png", category: "code_reasoning", answer: "Yes" },
    { questionId: "code_reasoning/4.png", category: "code_reasoning", answer: "No." },
  ];
  const preds = ["Yes", "No", "Yes", "Yes", "No", "Yes", "yes", "no"];
  // existence: image 1 both right (acc 100, acc+ 100), image 2 one right (50, 0)
  //   acc = (100+50)/2 = 75, acc+ = (100+0)/2 = 50, score = 125
  // count: image 3 both wrong -> 0, 0, score 0
  // code_reasoning: image 4 both right ("No." reference -> "no") -> 100, 100, score 200
  // perception = existence + count = 125; cognition = code_reasoning = 200
  const s = mmeScores(preds, refs);
  assert.deepEqual(Object.keys(s.categories), ["existence", "count", "code_reasoning"]);
  assert.deepEqual(s.categories.existence, { acc: 75, accPlus: 50, score: 125, images: 2 });
  assert.deepEqual(s.categories.count, { acc: 0, accPlus: 0, score: 0, images: 1 });
  assert.deepEqual(s.categories.code_reasoning, { acc: 100, accPlus: 100, score: 200, images: 1 });
  assert.equal(s.perception, 125);
  assert.equal(s.cognition, 200);
  // an image with three questions, and a reference that is not yes/no, are errors
  const three = [...refs.slice(0, 2), { ...refs[0]! }];
  assert.throws(() => mmeScores(["Yes", "No", "Yes"], three), DataError);
  assert.throws(() => mmeScores(["Yes", "No"], [refs[0]!, { ...refs[1]!, answer: "maybe" }]), DataError);
});

test("GQA exact match: lmms-eval (lower, ASCII punctuation removed) and LLaVA (rstrip '.', lower)", () => {
  const cases: [string, string, boolean, boolean, string][] = [
    // [prediction, answer, lmms-eval, llava, why]
    ["Yes.", "yes", true, true, "case and a final period"],
    ["yes!", "yes", true, false, "lmms removes every punctuation mark; LLaVA only trailing periods"],
    ["Left...", "left", true, true, "rstrip('.') removes all trailing periods"],
    ["the cat", "cat", false, false, "no article handling in GQA"],
    ["t-shirt", "t-shirt", true, true, "lmms removes '-' on both sides"],
    [" yes \n", "yes", true, true, "the generation output is stripped first"],
    ["yes  no", "yes no", false, false, "no whitespace collapsing"],
    ["café", "cafe", false, false, "non-ASCII letters kept"],
    ["yes\0", "yes", true, false, "numpy unicode arrays drop trailing NULs (lmms only)"],
  ];
  for (const [pred, answer, lmms, llava, why] of cases) {
    assert.equal(gqaMatch(pred, answer), lmms, `lmms-eval ${JSON.stringify(pred)}: ${why}`);
    assert.equal(gqaMatch(pred, answer, "llava"), llava, `llava ${JSON.stringify(pred)}: ${why}`);
  }
  // ["Yes.", "the cat", "yes!"] vs ["yes", "cat", "yes"]: lmms 1,0,1 -> 2/3; llava 1,0,0 -> 1/3
  const p = ["Yes.", "the cat", "yes!"], a = ["yes", "cat", "yes"];
  assert.deepEqual(gqaAccuracy(p, a), { accuracy: 2 / 3, correct: 2, count: 3 });
  assert.deepEqual(gqaAccuracy(p, a, "llava"), { accuracy: 1 / 3, correct: 1, count: 3 });
  assert.throws(() => gqaAccuracy(["a"], []), DataError);
});

test("ScienceQA letter parsing: lmms-eval sqa_process_results and LLaVA eval_science_qa.py", () => {
  // answer index 1 -> target "B"
  const lmms: [string, boolean, string][] = [
    ["B", true, "equals the target"],
    ["B.", true, "upper-case letter then '.'"],
    ["B. cat", true, "^[A-Z]\\. pattern"],
    [" B \n", true, "stripped by the framework"],
    ["b", false, "lower case is not the target"],
    ["(B)", false, "no parentheses rule"],
    ["B cat", false, "second char must be '.'"],
    ["The answer is B.", false, "no 'The answer is' rule in lmms-eval"],
    ["A. B", false, "the first letter decides"],
    ["C", false, "other letter"],
  ];
  for (const [pred, want, why] of lmms) assert.equal(scienceqaCorrect(pred, 1), want, `lmms ${JSON.stringify(pred)}: ${why}`);
  // LLaVA, 3 choices (A-C)
  const llava: [string, number, string][] = [
    ["B", 1, "an option letter"],
    ["B. cat", 1, "letter + '. '"],
    ["B.", -1, "too short for the '. ' rule and no 'The answer is'"],
    ["The answer is B.", 1, "one match of 'The answer is ([A-Z]).'"],
    ["Because ... The answer is C, clearly", 2, "any character after the letter"],
    ["The answer is B", -1, "the pattern needs a character after the letter"],
    ["The answer is B. The answer is C.", -1, "two matches: FAILED"],
    ["The answer is b.", -1, "[A-Z] is upper case only"],
    ["E", -1, "E is an option but beyond the 3 choices"],
    ["D. dog", -1, "D is beyond the 3 choices"],
  ];
  for (const [pred, want, why] of llava) assert.equal(parseScienceqaChoice(pred, 3), want, `llava ${JSON.stringify(pred)}: ${why}`);
  // accuracy: ["B", "The answer is A.", "C. x", "b"] vs answers [1, 0, 2, 1]
  //   lmms-eval: right, wrong, right, wrong -> 2/4; llava (3 choices): right, right, right, wrong -> 3/4
  const preds = ["B", "The answer is A.", "C. x", "b"];
  const answers = [1, 0, 2, 1];
  assert.deepEqual(scienceqaAccuracy(preds, answers), { accuracy: 0.5, correct: 2, count: 4 });
  assert.deepEqual(scienceqaAccuracy(preds, answers, "llava", [3, 3, 3, 3]), { accuracy: 0.75, correct: 3, count: 4 });
  assert.throws(() => scienceqaAccuracy(["A"], [3], "lmms-eval", [3]), DataError, "answer index beyond the choices");
  assert.throws(() => scienceqaCorrect("A", -1), DataError);
});
