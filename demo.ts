// `npm run demo`: the product's main job on the embedded tiny models, end to end, in a few minutes on 2 CPU cores:
// tiny models + shapes data (made once) -> projector-only training with VisionZip 54+10 (configs/demo.yaml) -> export
// -> eval of the untrained and the tuned projector at several budgets (configs/eval/demo.yaml), the released tiny
// projector beside them for reference -> where it all is.
import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { loadEvalConfig } from "./configs/eval_schema.js";
import { loadConfig } from "./configs/load.js";
import { setBackend, resolveBackendName } from "./core/backend.js";
import { info } from "./core/log.js";
import { makeShapesData } from "./data/make_data.js";
import { compareResults } from "./eval/compare.js";
import type { EvalResults } from "./eval/aggregate.js";
import { runEval } from "./eval/recipe.js";
import { accuracyEval } from "./eval/training_eval.js";
import { makeTiny } from "./models/make_tiny.js";
import { installPretrained } from "./models/pretrain_tiny.js";
import { runTraining } from "./train/recipe.js";
import { exportProjector } from "./train/export.js";

export interface DemoOptions {
  /** Folder for everything the demo makes (default checkpoints/). */
  out?: string;
}

export async function runDemo(opts: DemoOptions = {}): Promise<void> {
  const root = opts.out ?? "checkpoints";
  const t0 = performance.now();
  const secs = () => ((performance.now() - t0) / 1000).toFixed(0);
  await setBackend(resolveBackendName());
  const tiny = path.join(root, "tiny");
  const shapes = path.join(root, "shapes");
  if (!existsSync(path.join(tiny, "pretrain.json"))) {
    info(`[demo ${secs()}s] writing the tiny models to ${tiny} (vzt make-tiny)`);
    await makeTiny(tiny, { seed: 0 });
    // A random frozen LLM cannot learn to read images through the projector alone; real LLaVA LLMs are pretrained.
    // The tiny LLM's pretrained weights ship with the package (made by `vzt make-tiny --pretrain-steps`, see
    // models/tiny_pretrained/README.md): 8 minutes and more of CPU that the demo does not repeat.
    info(`[demo ${secs()}s] installing the pretrained tiny LLM (models/tiny_pretrained)`);
    await installPretrained(tiny);
  }
  if (!existsSync(path.join(shapes, "dataset_dict.json"))) {
    info(`[demo ${secs()}s] writing the shapes dataset to ${shapes} (vzt make-data shapes)`);
    await makeShapesData({ out: shapes, seed: 0, progress: true });
  }

  const sets = [`output_dir=${path.join(root, "demo")}`, `model.llava=${path.join(tiny, "llava")}`, `model.projector=${path.join(tiny, "projector_init")}`, `data.train=${path.join(shapes, "train")}`, `data.eval=${path.join(shapes, "eval_vqav2")}`, `eval.benchmarks.0.data=${path.join(shapes, "eval_vqav2")}`];
  const cfg = loadConfig("configs/demo.yaml", { sets, purpose: "train" });
  await rm(cfg.output_dir, { recursive: true, force: true }); // the demo starts over each time
  info(`[demo ${secs()}s] training the projector (configs/demo.yaml: VisionZip ${cfg.reducer.dominant}+${cfg.reducer.contextual} tokens, ${cfg.train.max_steps} steps)`);
  const trained = await runTraining(cfg, { periodicEval: accuracyEval(cfg) });
  const first = trained.losses.slice(0, 5);
  const last = trained.losses.slice(-5);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
  info(`[demo ${secs()}s] loss ${mean(first).toFixed(3)} (first 5 steps) -> ${mean(last).toFixed(3)} (last 5)`);

  const exportDir = path.join(cfg.output_dir, "export");
  const exported = await exportProjector({ checkpoint: trained.lastCheckpoint!, format: "llava", out: exportDir });
  info(`[demo ${secs()}s] exported the tuned projector: ${exported.file}`);

  const evalSets = (name: string, projector: string, extra: string[] = []) => [`output_dir=${path.join(root, name)}`, `model.llava=${path.join(tiny, "llava")}`, `model.projector=${projector}`, `benchmarks.0.data=${path.join(shapes, "eval_vqav2")}`, `benchmarks.1.data=${path.join(shapes, "eval_pope")}`, ...extra];
  const cell = `visionzip@${cfg.reducer.dominant! + cfg.reducer.contextual!}`;
  const runs: [string, string, string, string[]][] = [
    ["untrained projector (the run's starting point)", "eval-untrained", cfg.model.projector!, []],
    ["tuned projector", "eval-tuned", exportDir, []],
    // For reference: the projector pretrained with the tiny LLM (on pooled and random 64-token sets), at the trained cell.
    ["released tiny projector, for reference", "eval-released", path.join(tiny, "projector"), [`grid=[${cell}]`]],
  ];
  const results: EvalResults[] = [];
  for (const [what, name, projector, extra] of runs) {
    await rm(path.join(root, name), { recursive: true, force: true });
    info(`[demo ${secs()}s] evaluating the ${what} (configs/eval/demo.yaml)`);
    const r = await runEval(loadEvalConfig("configs/eval/demo.yaml", { sets: evalSets(name, projector, extra) }), { quiet: true });
    results.push(r.results!);
  }
  const [untrained, tuned, released] = results as [EvalResults, EvalResults, EvalResults];
  console.log(`\nA = the untrained projector; B = tuned (${cfg.train.max_steps} steps of projector-only training on ${cell} tokens)\n` + compareResults(untrained, tuned).text);
  const scores = (r: EvalResults) => Object.entries(r.results[cell] ?? {}).map(([bench, s]) => `${bench} ${s.primary} ${s.score.toFixed(1)}`).join(", ");
  console.log(`held-out loss on ${cfg.data.eval}: ${heldOut(cfg.output_dir)}`);
  console.log(`at ${cell}: untrained ${scores(untrained)}; tuned ${scores(tuned)}; released tiny projector (reference) ${scores(released)}\n`);
  console.log(
    [
      `demo done in ${secs()} s.`,
      `  training run:   ${cfg.output_dir}  (config.yaml, metrics.jsonl, step_*/ checkpoints)`,
      `  tuned projector: ${exported.file}  (LLaVA names; vzt export --format hf for llava-hf names)`,
      `  eval reports:   ${path.join(root, "eval-untrained", "report.md")}, ${path.join(root, "eval-tuned", "report.md")} (+ results.json, SVG plots)`,
      `  TensorBoard:    tensorboard --logdir ${path.join(cfg.output_dir, "tensorboard")}`,
      `  see the tokens VisionZip keeps: npx vzt visualize --model ${path.join(tiny, "llava")} --image <an image> --out zip.png`,
    ].join("\n"),
  );
}

/** "0.812 (step 0) -> 0.671 (step 150)": the first and last eval_loss in the run's metrics.jsonl. */
function heldOut(outputDir: string): string {
  const rows = readFileSync(path.join(outputDir, "metrics.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { step: number; eval_loss?: number });
  const evals = rows.filter((r) => r.eval_loss !== undefined);
  if (evals.length === 0) return "not measured";
  const at = (r: { step: number; eval_loss?: number }) => `${r.eval_loss!.toFixed(3)} (step ${r.step})`;
  return evals.length === 1 ? at(evals[0]!) : `${at(evals[0]!)} -> ${at(evals.at(-1)!)}`;
}
