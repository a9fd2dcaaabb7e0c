// The synthetic "shapes" dataset: deterministic scenes of 1-3 coloured shapes on a 3x3 layout, LLaVA-format
// training conversations and held-out VQAv2-style and POPE-style eval items about them.
// Everything derives from (seed, split, index), so scene i of a split is the same whatever the other counts are,
// and images are rendered lazily (renderScene / scenePng) instead of being held in memory.
import { SHORT_ANSWER_PROMPT, VICUNA_V1_SYSTEM } from "./prompt.js";
export { SHORT_ANSWER_PROMPT };
import sharp from "sharp";
import { createRng, type Rng } from "../core/rng.js";

export const IMAGE_SIZE = 336;
export const GRID = 3;

/** Shape colours (flat RGB fills; none is close to a background colour). */
export const COLORS = {
  red: [220, 40, 40],
  green: [40, 170, 60],
  blue: [40, 80, 220],
  yellow: [245, 220, 35],
  purple: [140, 60, 170],
  orange: [245, 140, 30],
  white: [245, 245, 245],
} as const satisfies Record<string, readonly [number, number, number]>;
export type ColorName = keyof typeof COLORS;
export const COLOR_NAMES = Object.keys(COLORS) as ColorName[];

export const SHAPE_KINDS = ["circle", "square", "triangle"] as const;
export type ShapeKind = (typeof SHAPE_KINDS)[number];

/** Cell c of the 3x3 layout (row-major: row = floor(c/3), column = c%3) is called POSITIONS[c]. */
export const POSITIONS = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"] as const;
export type PositionName = (typeof POSITIONS)[number];

/** Dark/neutral backgrounds, far from every shape colour. */
export const BACKGROUNDS: readonly (readonly [number, number, number])[] = [
  [90, 90, 90],
  [55, 60, 70],
  [120, 110, 100],
  [30, 40, 50],
  [70, 95, 105],
];


export interface ShapeSpec {
  kind: ShapeKind;
  color: ColorName;
  /** Layout cell 0..8 (row-major). */
  cell: number;
  position: PositionName;
  /** Centre pixel (x right, y down) and half-size in pixels. */
  cx: number;
  cy: number;
  radius: number;
}

export interface Scene {
  /** Relative image path, as in LLaVA JSON ("train/000012.png"). */
  image: string;
  imageId: number;
  width: number;
  height: number;
  background: readonly [number, number, number];
  /** 0 plain, 1 blocky noise (8x8-pixel blocks, +-6 levels), 2 soft diagonal stripes. */
  texture: 0 | 1 | 2;
  /** Per-scene texture seed. */
  textureSeed: number;
  shapes: ShapeSpec[];
}

export interface LlavaTurn {
  from: "human" | "gpt";
  value: string;
}
export interface LlavaSample {
  id: string;
  image: string;
  conversations: LlavaTurn[];
}

export interface VqaAnswer {
  answer: string;
  answer_confidence: "yes" | "maybe" | "no";
  answer_id: number;
}
/** lmms-lab/VQAv2 columns (image given as the scene's relative path). */
export interface VqaItem {
  question_id: number;
  question: string;
  question_type: string;
  answers: VqaAnswer[];
  multiple_choice_answer: string;
  answer_type: "yes/no" | "number" | "other";
  image_id: number;
  image: string;
}

export type PopeCategory = "random" | "popular" | "adversarial";
/** lmms-lab/POPE columns (the label is `answer`, "yes"/"no"; image given as the scene's relative path). */
export interface PopeItem {
  id: string;
  question_id: number;
  question: string;
  answer: "yes" | "no";
  image_source: string;
  image: string;
  category: PopeCategory;
}

export interface ShapesOptions {
  seed: number;
  train: number;
  evalVqa: number;
  evalPope: number;
}

export interface ShapesDataset {
  /** Every scene referenced by an item, by its `image` path. */
  scenes: Map<string, Scene>;
  train: LlavaSample[];
  evalVqa: VqaItem[];
  evalPope: PopeItem[];
}

// ---------------------------------------------------------------------------------------------------------------
// Seeded streams: core/rng.ts seeded with FNV-1a of "seed/stream", so every (seed, split, index) has its own
// independent generator and a scene does not depend on how many others were generated before it.

function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

class Stream {
  private readonly rng: Rng;
  constructor(seed: number, stream: string) {
    this.rng = createRng(hash32(`${seed}/${stream}`));
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.rng.nextFloat();
  }
  int(n: number): number {
    return this.rng.nextInt(n);
  }
  pick<T>(xs: readonly T[]): T {
    const x = xs[this.int(xs.length)];
    if (x === undefined) throw new Error("pick from an empty list");
    return x;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scenes

const CELL = IMAGE_SIZE / GRID; // 112

function makeScene(seed: number, split: string, index: number): Scene {
  const r = new Stream(seed, `${split}/scene/${index}`);
  const count = 1 + r.int(3);
  const cells = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const shapes: ShapeSpec[] = [];
  const used = new Set<string>();
  while (shapes.length < count) {
    const cell = cells.splice(r.int(cells.length), 1)[0]!;
    let kind: ShapeKind;
    let color: ColorName;
    do {
      kind = r.pick(SHAPE_KINDS);
      color = r.pick(COLOR_NAMES);
    } while (used.has(`${color} ${kind}`)); // (colour, shape) pairs are unique within a scene
    used.add(`${color} ${kind}`);
    const radius = 26 + r.int(17); // 26..42: fits the 112-px cell with the jitter below
    const cx = Math.round((cell % GRID) * CELL + CELL / 2 + (r.int(13) - 6));
    const cy = Math.round(Math.floor(cell / GRID) * CELL + CELL / 2 + (r.int(13) - 6));
    shapes.push({ kind, color, cell, position: POSITIONS[cell]!, cx, cy, radius });
  }
  shapes.sort((a, b) => a.cell - b.cell);
  return {
    image: `${split}/${String(index).padStart(6, "0")}.png`,
    imageId: index,
    width: IMAGE_SIZE,
    height: IMAGE_SIZE,
    background: r.pick(BACKGROUNDS),
    texture: r.pick([0, 1, 2] as const),
    textureSeed: Math.floor(r.next() * 0xffffffff),
    shapes,
  };
}

/** Whether pixel (x, y) lies inside the shape. The centre pixel is always inside. */
export function insideShape(s: ShapeSpec, x: number, y: number): boolean {
  const dx = x - s.cx;
  const dy = y - s.cy;
  switch (s.kind) {
    case "circle":
      return dx * dx + dy * dy <= s.radius * s.radius;
    case "square": {
      const h = Math.round(s.radius * 0.85);
      return Math.abs(dx) <= h && Math.abs(dy) <= h;
    }
    case "triangle": {
      // Apex up at cy - r, base at cy + r; half-width grows linearly from 0 to r.
      if (dy < -s.radius || dy > s.radius) return false;
      return Math.abs(dx) <= (dy + s.radius) / 2;
    }
  }
}

/** Renders a scene to raw RGB, [H, W, 3] row-major (HWC) bytes. */
export function renderScene(scene: Scene): Uint8Array {
  const { width: W, height: H, background: bg, texture, textureSeed } = scene;
  const px = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let d = 0;
      if (texture === 1) d = (hashPixel(textureSeed, x >> 3, y >> 3) % 13) - 6; // 8x8 blocks: compresses well
      else if (texture === 2) d = Math.round(6 * Math.sin((x + y) / 9 + (textureSeed % 7)));
      const o = (y * W + x) * 3;
      px[o] = bg[0] + d;
      px[o + 1] = bg[1] + d;
      px[o + 2] = bg[2] + d;
    }
  }
  for (const s of scene.shapes) {
    const rgb = COLORS[s.color];
    for (let y = Math.max(0, s.cy - s.radius); y <= Math.min(H - 1, s.cy + s.radius); y++) {
      for (let x = Math.max(0, s.cx - s.radius); x <= Math.min(W - 1, s.cx + s.radius); x++) {
        if (!insideShape(s, x, y)) continue;
        const o = (y * W + x) * 3;
        px[o] = rgb[0];
        px[o + 1] = rgb[1];
        px[o + 2] = rgb[2];
      }
    }
  }
  return px;
}

function hashPixel(seed: number, x: number, y: number): number {
  let h = (seed ^ Math.imul(x, 0x9e3779b1) ^ Math.imul(y, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Encodes raw RGB (HWC) bytes as PNG. */
export async function encodePng(raw: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  const buf = await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** The scene's image as PNG bytes. */
export function scenePng(scene: Scene): Promise<Uint8Array> {
  return encodePng(renderScene(scene), scene.width, scene.height);
}

// ---------------------------------------------------------------------------------------------------------------
// Questions

export type QuestionKind = "color" | "shape" | "count" | "position" | "exist";
const QUESTION_KINDS: readonly QuestionKind[] = ["color", "shape", "count", "position", "exist"];

interface Qa {
  kind: QuestionKind;
  question: string;
  answer: string;
  questionType: string;
  answerType: VqaItem["answer_type"];
}

const NUMBER_WORDS = ["zero", "one", "two", "three"] as const;

/** "an orange square", "a red circle". */
export function article(word: string): "a" | "an" {
  return /^[aeiou]/.test(word) ? "an" : "a";
}

function absentPairs(scene: Scene): { color: ColorName; kind: ShapeKind }[] {
  const present = new Set(scene.shapes.map((s) => `${s.color} ${s.kind}`));
  const out: { color: ColorName; kind: ShapeKind }[] = [];
  for (const color of COLOR_NAMES) for (const kind of SHAPE_KINDS) if (!present.has(`${color} ${kind}`)) out.push({ color, kind });
  return out;
}

/** One question of the given kind about the scene, or undefined when the scene has no unambiguous referent. */
function askQuestion(scene: Scene, kind: QuestionKind, r: Stream): Qa | undefined {
  const shapes = scene.shapes;
  switch (kind) {
    case "color": {
      const unique = SHAPE_KINDS.filter((k) => shapes.filter((s) => s.kind === k).length === 1);
      if (unique.length === 0) return undefined;
      const k = r.pick(unique);
      const s = shapes.find((x) => x.kind === k)!;
      return { kind, question: `What color is the ${k}?`, answer: s.color, questionType: "what color is the", answerType: "other" };
    }
    case "shape": {
      const unique = COLOR_NAMES.filter((c) => shapes.filter((s) => s.color === c).length === 1);
      if (unique.length === 0) return undefined;
      const c = r.pick(unique);
      const s = shapes.find((x) => x.color === c)!;
      return { kind, question: `What shape is the ${c} object?`, answer: s.kind, questionType: "what shape is the", answerType: "other" };
    }
    case "count": {
      if (r.next() < 0.5) return { kind, question: "How many shapes are there?", answer: String(shapes.length), questionType: "how many", answerType: "number" };
      const k = r.pick(SHAPE_KINDS);
      const n = shapes.filter((s) => s.kind === k).length;
      return { kind, question: `How many ${k}s are there?`, answer: String(n), questionType: "how many", answerType: "number" };
    }
    case "position": {
      const s = r.pick(shapes);
      return { kind, question: `Where is the ${s.color} ${s.kind}?`, answer: s.position, questionType: "where is the", answerType: "other" };
    }
    case "exist": {
      const yes = r.next() < 0.5;
      const t = yes ? r.pick(shapes) : r.pick(absentPairs(scene));
      return { kind, question: `Is there ${article(t.color)} ${t.color} ${t.kind}?`, answer: yes ? "yes" : "no", questionType: "is there a", answerType: "yes/no" };
    }
  }
}

/** n questions of distinct kinds (as far as possible), in a seeded order. */
function askQuestions(scene: Scene, n: number, r: Stream): Qa[] {
  const order = [...QUESTION_KINDS];
  for (let i = order.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const out: Qa[] = [];
  for (const kind of order) {
    if (out.length === n) break;
    const qa = askQuestion(scene, kind, r);
    if (qa) out.push(qa);
  }
  return out; // position, count and exist always have an answer, so out.length === min(n, 5) >= 3
}

/** The human turn of a training sample: LLaVA's `<image>\n{question}` plus the short-answer instruction. */
export function humanTurn(question: string): string {
  return `<image>\n${question}\n${SHORT_ANSWER_PROMPT}`;
}

/** Ten VQAv2-style annotator answers: counts get a few number words ("two"), which the VQA normaliser maps back. */
function vqaAnswers(qa: Qa): VqaAnswer[] {
  return Array.from({ length: 10 }, (_, i) => {
    const n = Number(qa.answer);
    const answer = qa.answerType === "number" && i % 4 === 3 ? NUMBER_WORDS[n]! : qa.answer;
    return { answer, answer_confidence: "yes", answer_id: i + 1 };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// POPE negatives

/** POPE-style absent object for a category: random; the most frequent absent pair in the training scenes
 * (popular); an absent pair sharing a colour or shape with a present one (adversarial: confusable). */
function popeNegative(scene: Scene, category: PopeCategory, frequency: Map<string, number>, r: Stream): { color: ColorName; kind: ShapeKind } {
  const absent = absentPairs(scene);
  if (category === "random") return r.pick(absent);
  if (category === "popular") {
    let best = absent[0]!;
    for (const p of absent) if ((frequency.get(`${p.color} ${p.kind}`) ?? 0) > (frequency.get(`${best.color} ${best.kind}`) ?? 0)) best = p;
    return best;
  }
  const confusable = absent.filter((p) => scene.shapes.some((s) => s.color === p.color || s.kind === p.kind));
  return r.pick(confusable.length > 0 ? confusable : absent);
}

// ---------------------------------------------------------------------------------------------------------------

const POPE_CATEGORIES: readonly PopeCategory[] = ["random", "popular", "adversarial"];

/**
 * Generates the dataset description (images are rendered on demand with `scenePng(scenes.get(item.image))`).
 * train: one scene and one question per sample; evalVqa: two questions per scene; evalPope: one "yes" and one
 * "no" question per scene, categories cycling random/popular/adversarial by scene. Splits use disjoint scenes.
 */
export function generateShapes(opts: ShapesOptions): ShapesDataset {
  const { seed } = opts;
  for (const k of ["train", "evalVqa", "evalPope"] as const) {
    if (!Number.isInteger(opts[k]) || opts[k] < 0) throw new Error(`generateShapes: ${k} must be a non-negative integer, got ${opts[k]}`);
  }
  if (!Number.isInteger(seed)) throw new Error(`generateShapes: seed must be an integer, got ${seed}`);
  const scenes = new Map<string, Scene>();

  const train: LlavaSample[] = [];
  const frequency = new Map<string, number>();
  for (let i = 0; i < opts.train; i++) {
    const scene = makeScene(seed, "train", i);
    scenes.set(scene.image, scene);
    for (const s of scene.shapes) frequency.set(`${s.color} ${s.kind}`, (frequency.get(`${s.color} ${s.kind}`) ?? 0) + 1);
    const qa = askQuestions(scene, 1, new Stream(seed, `train/qa/${i}`))[0]!;
    train.push({
      id: `shapes-train-${String(i).padStart(6, "0")}`,
      image: scene.image,
      conversations: [
        { from: "human", value: humanTurn(qa.question) },
        { from: "gpt", value: qa.answer },
      ],
    });
  }

  const evalVqa: VqaItem[] = [];
  for (let i = 0; evalVqa.length < opts.evalVqa; i++) {
    const scene = makeScene(seed, "vqa", i);
    scenes.set(scene.image, scene);
    let k = 0;
    for (const qa of askQuestions(scene, 2, new Stream(seed, `vqa/qa/${i}`))) {
      if (evalVqa.length === opts.evalVqa) break;
      const answers = vqaAnswers(qa);
      evalVqa.push({
        question_id: i * 10 + k++,
        question: qa.question,
        question_type: qa.questionType,
        answers,
        multiple_choice_answer: qa.answer,
        answer_type: qa.answerType,
        image_id: i,
        image: scene.image,
      });
    }
  }

  const evalPope: PopeItem[] = [];
  for (let i = 0; evalPope.length < opts.evalPope; i++) {
    const scene = makeScene(seed, "pope", i);
    scenes.set(scene.image, scene);
    const r = new Stream(seed, `pope/qa/${i}`);
    const category = POPE_CATEGORIES[i % POPE_CATEGORIES.length]!;
    const yes = r.pick(scene.shapes);
    const no = popeNegative(scene, category, frequency, r);
    const pair = [
      { t: yes, answer: "yes" as const },
      { t: no, answer: "no" as const },
    ];
    if (r.next() < 0.5) pair.reverse();
    for (const { t, answer } of pair) {
      if (evalPope.length === opts.evalPope) break;
      const n = evalPope.length;
      evalPope.push({
        id: String(n),
        question_id: n,
        question: `Is there ${article(t.color)} ${t.color} ${t.kind} in the image?`,
        answer,
        image_source: scene.image.replace(/\.png$/, ""),
        image: scene.image,
        category,
      });
    }
  }
  return { scenes, train, evalVqa, evalPope };
}

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary

/** Words (\w+ runs, as the tokenizer's Whitespace pre-tokenizer splits them) of every text the dataset and the
 * vicuna_v1 template can produce; punctuation is not included. Sorted, unique. */
export const SHAPES_VOCAB: string[] = (() => {
  const texts: string[] = [VICUNA_V1_SYSTEM, "USER: ASSISTANT:", SHORT_ANSWER_PROMPT, "yes no object shapes in the image"];
  texts.push("What color is the", "What shape is the", "How many shapes are there", "How many are there", "Where is the", "Is there a", "in the image");
  texts.push(...COLOR_NAMES, ...SHAPE_KINDS, ...SHAPE_KINDS.map((k) => `${k}s`), ...POSITIONS, ...NUMBER_WORDS);
  texts.push("0 1 2 3");
  const words = new Set<string>();
  for (const t of texts) for (const w of t.match(/\w+/g) ?? []) words.add(w);
  return [...words].sort();
})();
