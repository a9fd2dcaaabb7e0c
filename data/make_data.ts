// `vzt make-data shapes`: the synthetic shapes dataset (data/shapes.ts) written as one DatasetDict save_to_disk
// folder whose splits have their own features (datasets allows that per split):
//   OUT/dataset_dict.json        {"splits": ["train", "eval_vqav2", "eval_pope"]}
//   OUT/train/                   LLaVA rows {id, image: Image, conversations: list<struct<from, value>>}, the same
//                                features `vzt prepare` writes
//   OUT/eval_vqav2/              lmms-lab/VQAv2 columns: question_type, multiple_choice_answer,
//                                answers: list<struct<answer, answer_confidence, answer_id: int64>>, image_id: int64,
//                                answer_type, question_id: int64, question, image: Image
//   OUT/eval_pope/               lmms-lab/POPE columns: id, question_id (strings, as on the Hub), question,
//                                answer ("yes"/"no"), image_source, image: Image, category
// Open a split with `openShards(OUT, { split: "eval_pope" })` or `openShards("OUT/eval_pope")`. Images are 336x336
// PNGs embedded as Image structs ({bytes, path: the scene's relative path, e.g. "vqa/000003.png"}).
// Deterministic: the same seed and sizes give byte-identical folders.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Progress } from "../core/log.js";
import { DATASET_DICT_JSON } from "./hf_datasets.js";
import type { HfFeatures } from "./hf_datasets.js";
import { LLAVA_PREPARED_FEATURES, mapOrdered } from "./prepare.js";
import { generateShapes, scenePng } from "./shapes.js";
import type { Scene } from "./shapes.js";
import { writeDatasetFolder } from "./write_shards.js";
import type { Row } from "./write_shards.js";

const str = { dtype: "string", _type: "Value" };
const int64 = { dtype: "int64", _type: "Value" };

export const SHAPES_SPLITS = ["train", "eval_vqav2", "eval_pope"] as const;
export type ShapesSplit = (typeof SHAPES_SPLITS)[number];

/** Features of each split (column order as on the Hub cards). */
export const SHAPES_FEATURES: Record<ShapesSplit, HfFeatures> = {
  train: LLAVA_PREPARED_FEATURES,
  eval_vqav2: {
    question_type: str,
    multiple_choice_answer: str,
    answers: { feature: { answer: str, answer_confidence: str, answer_id: int64 }, _type: "List" },
    image_id: int64,
    answer_type: str,
    question_id: int64,
    question: str,
    image: { _type: "Image" },
  },
  eval_pope: {
    id: str,
    question_id: str,
    question: str,
    answer: str,
    image_source: str,
    image: { _type: "Image" },
    category: str,
  },
};

/**
 * Default sizes, for the demo (projector training on 2 cores in a few minutes): 800 training conversations
 * (one scene each), 200 VQAv2-style questions (100 scenes) and 200 POPE questions (100 scenes, yes/no balanced).
 */
export const SHAPES_DATA_DEFAULTS = { seed: 0, train: 800, evalVqa: 200, evalPope: 200 } as const;

export interface MakeShapesOptions {
  /** Output DatasetDict folder. */
  out: string;
  seed?: number;
  train?: number;
  evalVqa?: number;
  evalPope?: number;
  /** Show a progress bar on stderr. Default false. */
  progress?: boolean;
  /** Replace splits already saved in `out`. Default false. */
  overwrite?: boolean;
}

/** Split folders written (absolute paths); `out` itself is the DatasetDict. */
export interface ShapesDataFolders {
  out: string;
  train: string;
  eval_vqav2: string;
  eval_pope: string;
}

/** Writes the shapes DatasetDict (train / eval_vqav2 / eval_pope) to `opts.out`. */
export async function makeShapesData(opts: MakeShapesOptions): Promise<ShapesDataFolders> {
  const out = path.resolve(opts.out);
  const ds = generateShapes({
    seed: opts.seed ?? SHAPES_DATA_DEFAULTS.seed,
    train: opts.train ?? SHAPES_DATA_DEFAULTS.train,
    evalVqa: opts.evalVqa ?? SHAPES_DATA_DEFAULTS.evalVqa,
    evalPope: opts.evalPope ?? SHAPES_DATA_DEFAULTS.evalPope,
  });
  const total = ds.train.length + ds.evalVqa.length + ds.evalPope.length;
  const bar = opts.progress ? new Progress({ total, label: "make-data shapes" }) : undefined;
  const png = pngCache(ds.scenes);

  // Rows with their image rendered (up to 4 PNG encodes in flight, rows kept in order).
  async function* withImages<T extends { image: string }>(items: T[], toRow: (item: T, image: { bytes: Uint8Array; path: string }) => Row): AsyncGenerator<Row> {
    const render = async (item: T) => toRow(item, { bytes: await png(item.image), path: item.image });
    for await (const row of mapOrdered(toAsync(items), render, 4)) {
      bar?.tick();
      yield row;
    }
  }

  const rows: Record<ShapesSplit, AsyncGenerator<Row>> = {
    train: withImages(ds.train, (s, image) => ({ id: s.id, image, conversations: s.conversations })),
    eval_vqav2: withImages(ds.evalVqa, (q, image) => ({
      question_type: q.question_type,
      multiple_choice_answer: q.multiple_choice_answer,
      answers: q.answers,
      image_id: q.image_id,
      answer_type: q.answer_type,
      question_id: q.question_id,
      question: q.question,
      image,
    })),
    eval_pope: withImages(ds.evalPope, (q, image) => ({
      id: q.id,
      question_id: String(q.question_id),
      question: q.question,
      answer: q.answer,
      image_source: q.image_source,
      image,
      category: q.category,
    })),
  };
  const dirs = {} as Record<ShapesSplit, string>;
  for (const split of SHAPES_SPLITS) {
    dirs[split] = path.join(out, split);
    await writeDatasetFolder(dirs[split], SHAPES_FEATURES[split], rows[split], { split, overwrite: opts.overwrite ?? false });
  }
  await writeFile(path.join(out, DATASET_DICT_JSON), JSON.stringify({ splits: SHAPES_SPLITS }));
  bar?.finish();
  return { out, ...dirs };
}

/** PNG bytes of a scene by image path; keeps the last few (eval splits ask two questions per scene in a row). */
function pngCache(scenes: Map<string, Scene>): (image: string) => Promise<Uint8Array> {
  const cache = new Map<string, Promise<Uint8Array>>();
  return (image) => {
    let p = cache.get(image);
    if (!p) {
      const scene = scenes.get(image);
      if (!scene) throw new Error(`make-data shapes: no scene for image "${image}"`);
      p = scenePng(scene);
      cache.set(image, p);
      if (cache.size > 8) cache.delete(cache.keys().next().value!);
    }
    return p;
  };
}

async function* toAsync<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}
