// The synthetic shapes dataset: determinism, answers recomputed from the scene description by this test's own
// parser, and the rendered PNGs checked pixel by pixel (colour by nearest named prototype, shape by probe points).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import sharp from "sharp";
import { generateShapes, scenePng, SHAPES_VOCAB, type Scene, type ShapeSpec } from "../../data/shapes.js";
import { VICUNA_V1_SYSTEM } from "../../data/prompt.js";

const OPTS = { seed: 7, train: 400, evalVqa: 120, evalPope: 90 };
const INSTRUCTION = "Answer the question using a single word or phrase.";
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Layout position names by (row, column) of the 112-px grid, written out independently of the module. */
const POS = [
  ["top left", "top", "top right"],
  ["left", "center", "right"],
  ["bottom left", "bottom", "bottom right"],
];
const positionOf = (s: ShapeSpec) => POS[Math.floor(s.cy / 112)]![Math.floor(s.cx / 112)]!;

/** The answer the question must have in this scene, from the question text alone; throws on an ambiguous referent. */
function expectedAnswer(scene: Scene, question: string): string {
  const sh = scene.shapes;
  let m: RegExpMatchArray | null;
  if ((m = question.match(/^What color is the (\w+)\?$/))) {
    const hits = sh.filter((s) => s.kind === m![1]);
    assert.equal(hits.length, 1, `${scene.image}: "${question}" must have exactly one referent`);
    return hits[0]!.color;
  }
  if ((m = question.match(/^What shape is the (\w+) object\?$/))) {
    const hits = sh.filter((s) => s.color === m![1]);
    assert.equal(hits.length, 1, `${scene.image}: "${question}" must have exactly one referent`);
    return hits[0]!.kind;
  }
  if (question === "How many shapes are there?") return String(sh.length);
  if ((m = question.match(/^How many (circle|square|triangle)s are there\?$/))) return String(sh.filter((s) => s.kind === m![1]).length);
  if ((m = question.match(/^Where is the (\w+) (\w+)\?$/))) {
    const hits = sh.filter((s) => s.color === m![1] && s.kind === m![2]);
    assert.equal(hits.length, 1, `${scene.image}: "${question}" must have exactly one referent`);
    return positionOf(hits[0]!);
  }
  if ((m = question.match(/^Is there (a|an) (\w+) (\w+)(?: in the image)?\?$/))) {
    assert.equal(m[1], /^[aeiou]/.test(m[2]!) ? "an" : "a", `article in "${question}"`);
    return sh.some((s) => s.color === m![2] && s.kind === m![3]) ? "yes" : "no";
  }
  throw new Error(`unrecognised question "${question}"`);
}

test("same seed gives the same dataset and image bytes; another seed differs", async () => {
  const a = generateShapes(OPTS);
  const b = generateShapes(OPTS);
  assert.deepEqual(a.train, b.train);
  assert.deepEqual(a.evalVqa, b.evalVqa);
  assert.deepEqual(a.evalPope, b.evalPope);
  assert.deepEqual([...a.scenes.entries()], [...b.scenes.entries()]);
  for (const name of ["train/000000.png", "train/000123.png", "vqa/000004.png", "pope/000002.png"]) {
    assert.equal(sha(await scenePng(a.scenes.get(name)!)), sha(await scenePng(b.scenes.get(name)!)), name);
  }
  // A scene depends only on (seed, split, index), not on how many items were asked for.
  const small = generateShapes({ seed: 7, train: 5, evalVqa: 0, evalPope: 0 });
  assert.deepEqual(small.train, a.train.slice(0, 5));

  const c = generateShapes({ ...OPTS, seed: 8 });
  const same = a.train.filter((s, i) => JSON.stringify(s) === JSON.stringify(c.train[i])).length;
  assert.ok(same < a.train.length / 4, `seed 8 repeats ${same}/${a.train.length} training samples of seed 7`);
  assert.notEqual(sha(await scenePng(a.scenes.get("train/000000.png")!)), sha(await scenePng(c.scenes.get("train/000000.png")!)));
});

test("counts, ids and LLaVA / VQAv2 / POPE record shapes", () => {
  const d = generateShapes(OPTS);
  assert.equal(d.train.length, OPTS.train);
  assert.equal(d.evalVqa.length, OPTS.evalVqa);
  assert.equal(d.evalPope.length, OPTS.evalPope);
  assert.equal(new Set(d.train.map((s) => s.id)).size, OPTS.train);
  assert.equal(new Set(d.evalVqa.map((q) => q.question_id)).size, OPTS.evalVqa);
  assert.equal(new Set(d.evalPope.map((q) => q.question_id)).size, OPTS.evalPope);
  // Splits use disjoint images, and every referenced image has a scene.
  const split = (img: string) => img.split("/")[0];
  for (const s of d.train) assert.equal(split(s.image), "train");
  for (const q of d.evalVqa) assert.equal(split(q.image), "vqa");
  for (const q of d.evalPope) assert.equal(split(q.image), "pope");
  for (const img of [...d.train, ...d.evalVqa, ...d.evalPope].map((x) => x.image)) assert.ok(d.scenes.has(img), img);
  for (const s of d.train) {
    assert.equal(s.conversations.length, 2);
    assert.equal(s.conversations[0]!.from, "human");
    assert.equal(s.conversations[1]!.from, "gpt");
    assert.ok(s.conversations[0]!.value.startsWith("<image>\n"), s.id);
  }
  for (const q of d.evalVqa) assert.equal(q.answers.length, 10, String(q.question_id));
  for (const scene of d.scenes.values()) {
    assert.ok(scene.shapes.length >= 1 && scene.shapes.length <= 3, scene.image);
    assert.equal(new Set(scene.shapes.map((s) => positionOf(s))).size, scene.shapes.length, `${scene.image}: one shape per cell`);
  }
});

test("every answer follows from the scene description", () => {
  const d = generateShapes(OPTS);
  const kinds = new Map<string, number>();
  for (const s of d.train) {
    const [human, gpt] = s.conversations;
    const parts = human!.value.split("\n");
    assert.equal(parts.length, 3, s.id);
    assert.equal(parts[0], "<image>");
    assert.equal(parts[2], INSTRUCTION);
    assert.equal(gpt!.value, expectedAnswer(d.scenes.get(s.image)!, parts[1]!), `${s.id}: ${parts[1]}`);
    const kind = parts[1]!.split(" ").slice(0, 2).join(" ");
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  // All five question families occur.
  for (const k of ["What color", "What shape", "How many", "Where is", "Is there"]) assert.ok((kinds.get(k) ?? 0) > 20, `${k}: ${kinds.get(k)}`);

  const digit: Record<string, string> = { zero: "0", one: "1", two: "2", three: "3" };
  for (const q of d.evalVqa) {
    const want = expectedAnswer(d.scenes.get(q.image)!, q.question);
    assert.equal(q.multiple_choice_answer, want, `vqa ${q.question_id}: ${q.question}`);
    for (const a of q.answers) assert.equal(digit[a.answer] ?? a.answer, want, `vqa ${q.question_id} answer ${a.answer_id}`);
    assert.equal(q.answer_type, /^\d$/.test(want) ? "number" : want === "yes" || want === "no" ? "yes/no" : "other");
  }

  const byImage = new Map<string, string[]>();
  for (const q of d.evalPope) {
    const scene = d.scenes.get(q.image)!;
    assert.match(q.question, / in the image\?$/);
    assert.equal(q.answer, expectedAnswer(scene, q.question), `pope ${q.question_id}: ${q.question}`);
    byImage.set(q.image, [...(byImage.get(q.image) ?? []), q.answer]);
    if (q.answer === "no" && q.category === "adversarial") {
      const [, , color, kind] = q.question.match(/^Is there (a|an) (\w+) (\w+)/)!;
      assert.ok(scene.shapes.some((s) => s.color === color || s.kind === kind), `pope ${q.question_id}: adversarial negative shares nothing with the scene`);
    }
  }
  for (const [img, answers] of byImage) if (answers.length === 2) assert.deepEqual([...answers].sort(), ["no", "yes"], img);
  assert.deepEqual(new Set(d.evalPope.map((q) => q.category)), new Set(["random", "popular", "adversarial"]));
});

test("SHAPES_VOCAB covers every word of the questions, answers and the vicuna_v1 template", () => {
  const d = generateShapes(OPTS);
  const vocab = new Set(SHAPES_VOCAB);
  const texts = [VICUNA_V1_SYSTEM, "USER: ASSISTANT:", ...d.train.flatMap((s) => s.conversations.map((c) => c.value.replace("<image>", "")))];
  texts.push(...d.evalVqa.flatMap((q) => [q.question, ...q.answers.map((a) => a.answer)]), ...d.evalPope.flatMap((q) => [q.question, q.answer]));
  for (const t of texts) for (const w of t.match(/\w+/g) ?? []) assert.ok(vocab.has(w), `"${w}" (from "${t}") is not in SHAPES_VOCAB`);
});

/** Nearest of this test's own colour prototypes (plain RGB of the names). */
const PROTOTYPES: Record<string, [number, number, number]> = {
  red: [255, 0, 0],
  green: [0, 160, 0],
  blue: [0, 0, 255],
  yellow: [255, 255, 0],
  purple: [128, 0, 128],
  orange: [255, 165, 0],
  white: [255, 255, 255],
  gray: [100, 100, 100],
};
function colourName(rgb: number[]): string {
  let best = "";
  let bestD = Infinity;
  for (const [name, p] of Object.entries(PROTOTYPES)) {
    const d = (rgb[0]! - p[0]) ** 2 + (rgb[1]! - p[1]) ** 2 + (rgb[2]! - p[2]) ** 2;
    if (d < bestD) [best, bestD] = [name, d];
  }
  return best;
}

test("images decode to 336x336 RGB with each shape's colour at its centre and its outline at probe points", async () => {
  const d = generateShapes({ seed: 11, train: 24, evalVqa: 0, evalPope: 0 });
  for (const scene of d.scenes.values()) {
    const { data, info } = await sharp(await scenePng(scene)).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [336, 336, 3], scene.image);
    const at = (x: number, y: number) => [...data.subarray((Math.round(y) * 336 + Math.round(x)) * 3, (Math.round(y) * 336 + Math.round(x)) * 3 + 3)];
    assert.equal(colourName(at(2, 2)), "gray", `${scene.image}: background corner is ${at(2, 2)}`);
    for (const s of scene.shapes) {
      const centre = at(s.cx, s.cy);
      assert.equal(colourName(centre), s.color, `${scene.image}: ${s.color} ${s.kind} centre pixel is ${centre}`);
      const on = (dx: number, dy: number) => JSON.stringify(at(s.cx + dx * s.radius, s.cy + dy * s.radius)) === JSON.stringify(centre);
      // Probe points: top (0, -0.9r), left (-0.8r, 0), corner (-0.8r, -0.8r).
      const signature = [on(0, -0.9), on(-0.8, 0), on(-0.8, -0.8)];
      const want = { circle: [true, true, false], square: [false, true, true], triangle: [true, false, false] }[s.kind];
      assert.deepEqual(signature, want, `${scene.image}: ${s.kind} at (${s.cx}, ${s.cy}) r ${s.radius}`);
    }
  }
});
