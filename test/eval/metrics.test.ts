// VQA metric tests: every case of ../shared/golden/vqa_metric_public.json for every variant it covers (1e-9), and
// hand-derived normalisation and leave-one-out cases for the quirks of the official Python code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { goldenDir } from "../helpers.js";
import { DataError } from "../../core/errors.js";
import {
  normalizeVqaAnswer,
  scoreVqaAnswer,
  vqaAccuracy,
  vqaDatasetAccuracy,
  type VqaVariant,
} from "../../eval/metrics/index.js";

const TOL = 1e-9;

/** Golden-file key suffix -> variant ("expected_accuracy" has none: vqav2). */
const SUFFIX_VARIANT: Record<string, VqaVariant> = { "": "vqav2", textvqa: "textvqa", official_vqaeval: "official" };

type GoldenCase = { id: string; prediction: string; answers: string[] } & Record<string, unknown>;

function variantOf(key: string, field: string): VqaVariant {
  const suffix = key.slice(field.length).replace(/^_/, "");
  const v = SUFFIX_VARIANT[suffix];
  if (!v) throw new Error(`golden key "${key}": unknown variant suffix "${suffix}"`);
  return v;
}

test("vqa_metric_public.json: every case, every variant, accuracy to 1e-9 and normalised strings exact", () => {
  const file = path.join(goldenDir(), "vqa_metric_public.json");
  const cases = JSON.parse(readFileSync(file, "utf8")) as GoldenCase[];
  assert.ok(Array.isArray(cases) && cases.length > 0, `${file}: expected a non-empty array`);
  const checked: Record<string, number> = {};
  for (const c of cases) {
    assert.equal(typeof c.prediction, "string", `${c.id}: prediction`);
    assert.ok(Array.isArray(c.answers), `${c.id}: answers`);
    for (const [key, expected] of Object.entries(c)) {
      if (key.startsWith("expected_accuracy")) {
        const v = variantOf(key, "expected_accuracy");
        const got = vqaAccuracy(c.prediction, c.answers, v);
        assert.ok(Math.abs(got - (expected as number)) <= TOL, `${c.id} ${v}: accuracy ${got} != ${expected}`);
      } else if (key.startsWith("expected_normalized_prediction")) {
        const v = variantOf(key, "expected_normalized_prediction");
        // the string actually compared (for "official" it depends on whether the answers are unanimous)
        assert.equal(scoreVqaAnswer(c.prediction, c.answers, v).prediction, expected, `${c.id} ${v}: compared prediction`);
        if (v !== "official") assert.equal(normalizeVqaAnswer(c.prediction, v), expected, `${c.id} ${v}: normalizeVqaAnswer`);
      } else if (key.startsWith("expected_normalized_answers")) {
        const v = variantOf(key, "expected_normalized_answers");
        assert.deepEqual(scoreVqaAnswer(c.prediction, c.answers, v).answers, expected, `${c.id} ${v}: compared answers`);
      } else {
        continue;
      }
      checked[key] = (checked[key] ?? 0) + 1;
    }
  }
  // the public file covers the three variants; make sure they were all exercised
  for (const key of ["expected_accuracy", "expected_accuracy_textvqa", "expected_accuracy_official_vqaeval"]) {
    assert.equal(checked[key], cases.length, `${key} checked on every case`);
  }
});

test("normalisation: punctuation rules, the period quirk, comma-between-digits, Python whitespace", () => {
  const cases: [string, VqaVariant, string, string][] = [
    // [input, variant, expected, why]
    ["yes, it is", "vqav2", "yes it is", '", " occurs, so every "," is deleted'],
    ["x,y", "vqav2", "x y", 'no ", "/" ," and no digit,digit: "," becomes a space'],
    ["x,y", "textvqa", "xy", 'word_tokenize deletes "," first'],
    ["x-y", "vqav2", "x y", '"-" not next to a space: replaced by a space'],
    ["x - y", "vqav2", "x y", '"- " occurs: "-" deleted -> "x  y" -> split/join'],
    ["1,000", "vqav2", "1000", "digit,digit: every listed mark is deleted"],
    ["1,,000", "vqav2", "1000", "lmms-eval COMMA_STRIP (?<=\\d)(,)+(?=\\d) allows a run of commas"],
    ["1,,000", "official", "1 000", "official (\\d)(,)(\\d) needs one comma: no match, each \",\" -> space"],
    ["3.5", "vqav2", "3.5", '"." followed by a digit stays'],
    ["5.", "vqav2", "5", "the (?!<=\\d) group is a lookahead typo: a digit BEFORE the period does not protect it"],
    ["x.y", "vqav2", "xy", '"." followed by a letter goes'],
    ["..5", "vqav2", ".5", "judged on the original text: the first . is followed by ., the second by 5"],
    [".".repeat(33) + "x", "vqav2", ".x", "re.UNICODE (32) passed as count: only the first 32 periods go"],
    [".".repeat(33) + "x", "official", ".x", "same quirk in vqaEval.py"],
    ["\u0663.\u0665", "vqav2", "\u0663.\u0665", "Python \\d is any Unicode decimal digit (Arabic-Indic 3.5)"],
    ["\u00a0yes\u0085", "vqav2", "yes", "Python strip/split remove U+00A0 and U+0085 (JS trim keeps U+0085)"],
    ["\ufeffyes", "vqav2", "\ufeffyes", "Python does not treat U+FEFF as whitespace (JS trim would drop it)"],
    ["yes\x1cno", "vqav2", "yes no", "U+001C is whitespace to Python's split()"],
    ["it's 50%!", "vqav2", "it's 50%", "' and % are not in the list; ! becomes a space and is stripped"],
    ["The two dogs", "vqav2", "2 dogs", "lower, number word, article dropped"],
    ["None", "vqav2", "0", "none -> 0"],
    ["A", "vqav2", "", "a lone letter A is the article a (LLaVA issue #618)"],
    ["Whats up", "vqav2", "what's up", "contraction map"],
    ["Im", "vqav2", "im", "capitalised key Im can never match a lower-cased word"],
    ["somebody'd", "vqav2", "somebodyd", "the table's own oddity, kept"],
    ["Hershey's", "vqav2", "hershey's", "no word_tokenize in VQAv2"],
    ["Hershey's", "textvqa", "hershey 's", "word_tokenize: 's -> \" 's\""],
    ["what?", "textvqa", "what", 'word_tokenize deletes "?"'],
    ["line\nbreak\ttab", "vqav2", "line break tab", "newlines and tabs become spaces"],
    ["Dog", "official", "dog", "normalizeVqaAnswer always normalises (the unanimity rule lives in the scorer)"],
  ];
  for (const [input, variant, expected, why] of cases) {
    assert.equal(normalizeVqaAnswer(input, variant), expected, `${JSON.stringify(input)} (${variant}): ${why}`);
  }
  assert.equal(normalizeVqaAnswer("Two"), "2", "default variant is vqav2");
});

test("normalisation of real llava-v1.5-13b TextVQA answers (golden/real/eval/textvqa)", () => {
  const file = path.join(goldenDir(), "real/eval/textvqa/answers_llava-v1.5-13b.head30.jsonl");
  const texts = readFileSync(file, "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { text: string }).text);
  // hand-derived: [answer, textvqa form, vqav2 form]
  const expected: [string, string, string][] = [
    ["Dakota digital", "dakota digital", "dakota digital"],
    ["10 years", "10 years", "10 years"],
    ["12:15", "12:15", "12:15"], // ":" is not in the punctuation list
    ["Brian o'donnell", "brian o'donnell", "brian o'donnell"],
    ["Hershey's", "hershey 's", "hershey's"],
    ["$1.99", "$1.99", "$1.99"], // "$" kept, "." before a digit kept
    ["King's cross", "king 's cross", "king's cross"],
    ["Select your startup disk", "select your startup disk", "select your startup disk"],
  ];
  for (const [answer, tv, v2] of expected) {
    assert.ok(texts.includes(answer), `${answer} is in ${file}`);
    assert.equal(normalizeVqaAnswer(answer, "textvqa"), tv, `${answer} textvqa`);
    assert.equal(normalizeVqaAnswer(answer, "vqav2"), v2, `${answer} vqav2`);
  }
  // a model answer is matched by reference answers that differ only in case and the 's split
  assert.equal(vqaAccuracy("Hershey's", Array(10).fill("hershey's"), "textvqa"), 1);
});

test("leave-one-out accuracy: 10 answers, other lengths, exclusion by position", () => {
  const ten = (m: number, yes = "yes") => [...Array(m).fill(yes), ...Array(10 - m).fill("no")];
  // m matches among 10: matching subsets see m-1, the others m: (m*min(1,(m-1)/3) + (10-m)*min(1,m/3)) / 10
  const byHand = [0, 0.3, 0.6, 0.9, 1, 1, 1, 1, 1, 1, 1]; // m=1: 9*(1/3)/10; m=3: (3*(2/3)+7)/10; m=4: (4*1+6*1)/10
  for (let m = 0; m <= 10; m++) {
    for (const v of ["vqav2", "textvqa", "official"] as const) {
      const got = vqaAccuracy("yes", ten(m), v);
      assert.ok(Math.abs(got - byHand[m]!) <= TOL, `m=${m} ${v}: ${got}`);
    }
  }
  // 3 answers [cat, cat, dog], pred cat: subsets drop 0 -> 1 match, drop 1 -> 1, drop 2 -> 2: (1/3+1/3+2/3)/3 = 4/9
  assert.ok(Math.abs(vqaAccuracy("cat", ["cat", "cat", "dog"]) - 4 / 9) <= TOL);
  // one answer: the only subset is empty -> 0, even for an exact match (the official code does the same)
  assert.equal(vqaAccuracy("cat", ["cat"]), 0);
  // 11 answers, 3 match: 3 subsets with 2 matches (2/3) + 8 with 3 (1): (2 + 8)/11 = 10/11
  const eleven = [...Array(3).fill("cat"), ...Array(8).fill("dog")];
  assert.ok(Math.abs(vqaAccuracy("cat", eleven) - 10 / 11) <= TOL);
  // duplicates are distinct records: ten identical answers, only the left-out one is excluded -> 9 matches -> 1
  assert.equal(vqaAccuracy("yes", Array(10).fill("yes")), 1);
  assert.throws(() => vqaAccuracy("yes", []), DataError);
  assert.throws(() => vqaAccuracy("yes", ["yes"], "vqa" as VqaVariant), DataError);
});

test("official scorer: normalises only when the stripped answers are not unanimous", () => {
  const tenYes = Array(10).fill("yes");
  assert.equal(vqaAccuracy("Yes", tenYes, "official"), 0, "unanimous: only stripped, Yes != yes");
  assert.equal(vqaAccuracy("Yes", tenYes, "vqav2"), 1, "lmms-eval VQAv2 normalises always (PR #794)");
  const nineAndCap = [...Array(9).fill("yes"), "Yes"];
  // not unanimous: both sides normalised -> all ten "yes", pred "yes" -> 1
  assert.equal(vqaAccuracy("Yes", nineAndCap, "official"), 1);
  assert.deepEqual(scoreVqaAnswer("Yes", nineAndCap, "official").answers, tenYes);
  // unanimity is judged after strip: "yes " and "yes" are the same answer, so "yes." stays "yes." -> 0
  assert.equal(vqaAccuracy("yes.", [...Array(5).fill("yes "), ...Array(5).fill("yes")], "official"), 0);
  assert.equal(scoreVqaAnswer("  yes.\n", tenYes, "official").prediction, "yes.");
});

test("vqaDatasetAccuracy: mean of the per-question accuracies", () => {
  const r = vqaDatasetAccuracy(
    ["yes", "two", "cat"],
    [["yes", "yes", "no", "no", "no", "no", "no", "no", "no", "no"], Array(10).fill("2"), Array(10).fill("dog")],
  );
  // per question: 2 matches -> 0.6; "two" -> "2", 10 matches -> 1; 0 -> 0. Mean (0.6 + 1 + 0) / 3 = 1.6/3
  assert.equal(r.count, 3);
  assert.ok(Math.abs(r.perQuestion[0]! - 0.6) <= TOL && r.perQuestion[1] === 1 && r.perQuestion[2] === 0);
  assert.ok(Math.abs(r.accuracy - 1.6 / 3) <= TOL);
  assert.throws(() => vqaDatasetAccuracy(["a"], []), DataError);
  assert.throws(() => vqaDatasetAccuracy(["a", "b"], [["a"], []]), (e: unknown) => e instanceof DataError && /row 1/.test(e.message));
});
