// The CLI's command table: name -> summary, flags and the function it calls. cli.ts only parses and dispatches.
import type { ParseArgsConfig } from "node:util";
import { VISUALIZE_FLAGS } from "./reduce/visualize.js";

type Flags = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, unknown>;

export interface Command {
  summary: string;
  usage: string;
  options: Flags;
  run(values: Values, positionals: string[]): Promise<number | void>;
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

/** The repeated `--set key.path=value` flags. */
const sets = (v: Values): string[] => (Array.isArray(v.set) ? (v.set as string[]) : []);

/** An optional non-negative integer flag. */
function int(v: unknown, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || !/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new Error(`${flag} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

export const COMMANDS: Record<string, Command> = {
  download: {
    summary: "download a model from the Hugging Face Hub into the HF cache for offline use",
    usage: "usage: vzt download ORG/NAME[@REVISION] [--revision R] [--cache-dir DIR] [--files a,b] [--offline] [--endpoint URL]\n" +
      "Fetches config, tokenizer and safetensors files (never pickles) into HF_HUB_CACHE / $HF_HOME/hub / ~/.cache/huggingface/hub\n" +
      "and prints the snapshot folder. HF_TOKEN is sent for gated repos and never printed.",
    options: { revision: { type: "string" }, "cache-dir": { type: "string" }, files: { type: "string" }, offline: { type: "boolean" }, endpoint: { type: "string" } },
    async run(v, pos) {
      const repo = pos[0];
      if (!repo) throw new Error("vzt download: give a repo id, e.g. vzt download llava-hf/llava-1.5-7b-hf");
      const { downloadModel } = await import("./models/hub.js");
      const dir = await downloadModel(repo, {
        revision: str(v.revision),
        cacheDir: str(v["cache-dir"]),
        files: str(v.files)?.split(",").map((f) => f.trim()).filter(Boolean),
        offline: v.offline === true ? true : undefined,
        hubUrl: str(v.endpoint),
      });
      console.log(dir);
    },
  },
  inspect: {
    summary: "show a model's family, sizes, parameter counts and how every tensor name maps (no weights read)",
    usage: "usage: vzt inspect SOURCE [--json]     SOURCE = model folder or ORG/NAME[@REVISION]",
    options: { json: { type: "boolean" } },
    async run(v, pos) {
      const source = pos[0];
      if (!source) throw new Error("vzt inspect: give a model folder or repo id");
      const { inspectModel, formatInspection } = await import("./models/inspect.js");
      const report = await inspectModel(source);
      console.log(v.json ? JSON.stringify(report, null, 2) : formatInspection(report));
    },
  },
  "make-tiny": {
    summary: "write deterministic tiny HF-format models (CLIP 336/14, LLaMA, tokenizer, LLaVA composite)",
    usage: "usage: vzt make-tiny --out DIR [--seed N] [--llm-layers N] [--pretrain-steps N [--pretrain-images M] [--pretrain-batch B] [--pretrain-lr X] [--pretrain-tokens none|pool@64,random@64] [--continue]]\n" +
      "--pretrain-steps trains the tiny LLM + projector on synthetic shapes (pooled/random token sets by default, or the\n" +
      "--pretrain-tokens reducers, e.g. none = all 576 patches), so the LLM can read visual tokens like a released LLaVA;\n" +
      "the untrained projector is kept as projector_init/ (see models/pretrain_tiny.ts). --continue trains the already\n" +
      "pretrained folder DIR further (a second stage) instead of writing new models.",
    options: { out: { type: "string" }, seed: { type: "string" }, "llm-layers": { type: "string" }, "pretrain-steps": { type: "string" }, "pretrain-images": { type: "string" }, "pretrain-batch": { type: "string" }, "pretrain-lr": { type: "string" }, "pretrain-tokens": { type: "string" }, continue: { type: "boolean" } },
    async run(v) {
      const out = str(v.out);
      if (!out) throw new Error("vzt make-tiny: --out DIR is required");
      const { makeTiny } = await import("./models/make_tiny.js");
      const { pretrainTiny, parseTokenSets } = await import("./models/pretrain_tiny.js");
      const steps = int(v["pretrain-steps"], "--pretrain-steps");
      const lr = str(v["pretrain-lr"]);
      const tokens = str(v["pretrain-tokens"]);
      const pretrain = steps
        ? { steps, images: int(v["pretrain-images"], "--pretrain-images"), batchSize: int(v["pretrain-batch"], "--pretrain-batch"), lr: lr === undefined ? undefined : Number(lr), tokenSets: tokens === undefined ? undefined : parseTokenSets(tokens) }
        : undefined;
      if (v.continue) {
        if (!pretrain) throw new Error("vzt make-tiny --continue: --pretrain-steps N is required (the updates of the new stage)");
        const r = await pretrainTiny(out, { ...pretrain, seed: int(v.seed, "--seed") ?? 1, continue: true });
        console.log(`continued the pretraining of ${out} for ${steps} steps: loss ${r.firstLoss.toFixed(3)} -> ${r.lastLoss.toFixed(3)}`);
        return;
      }
      const r = await makeTiny(out, { seed: int(v.seed, "--seed"), llmLayers: int(v["llm-layers"], "--llm-layers"), pretrain });
      console.log(`tiny models written to ${out}${r ? ` (pretrained ${steps} steps: loss ${r.firstLoss.toFixed(3)} -> ${r.lastLoss.toFixed(3)})` : ""}`);
    },
  },
  demo: {
    summary: "the quick-start job on the embedded tiny models (what `npm run demo` runs)",
    usage: "usage: vzt demo [--out DIR]",
    options: { out: { type: "string" } },
    async run(v) {
      const { runDemo } = await import("./demo.js");
      await runDemo({ out: str(v.out) });
    },
  },
  "make-data": {
    summary: "write the synthetic shapes dataset (train, eval_vqav2, eval_pope) as HF-datasets Arrow shards",
    usage: "usage: vzt make-data shapes --out DIR [--seed N] [--train N] [--eval-vqa N] [--eval-pope N] [--overwrite]",
    options: { out: { type: "string" }, seed: { type: "string" }, train: { type: "string" }, "eval-vqa": { type: "string" }, "eval-pope": { type: "string" }, overwrite: { type: "boolean" } },
    async run(v, pos) {
      if (pos[0] !== "shapes") throw new Error(`vzt make-data: unknown dataset ${JSON.stringify(pos[0] ?? "")}; available: shapes`);
      const out = str(v.out);
      if (!out) throw new Error("vzt make-data: --out DIR is required");
      const { makeShapesData } = await import("./data/make_data.js");
      const r = await makeShapesData({ out, seed: int(v.seed, "--seed"), train: int(v.train, "--train"), evalVqa: int(v["eval-vqa"], "--eval-vqa"), evalPope: int(v["eval-pope"], "--eval-pope"), overwrite: v.overwrite === true, progress: true });
      console.log(`shapes data written to ${r.out} (splits: train, eval_vqav2, eval_pope)`);
    },
  },
  prepare: {
    summary: "convert LLaVA JSON/JSONL + an image folder into HF-datasets Arrow shards with embedded images",
    usage: "usage: vzt prepare --input FILE.json|.jsonl --image-root DIR --out DIR [--shard-size 500MB] [--on-error skip|raise] [--split train] [--verify header|decode] [--overwrite]",
    options: { input: { type: "string" }, "image-root": { type: "string" }, out: { type: "string" }, "shard-size": { type: "string" }, "on-error": { type: "string" }, split: { type: "string" }, verify: { type: "string" }, overwrite: { type: "boolean" } },
    async run(v) {
      const input = str(v.input);
      const imageRoot = str(v["image-root"]);
      const out = str(v.out);
      if (!input || !imageRoot || !out) throw new Error("vzt prepare: --input, --image-root and --out are required");
      const onError = str(v["on-error"]) ?? "skip";
      if (onError !== "skip" && onError !== "raise") throw new Error(`vzt prepare: --on-error must be skip or raise, got "${onError}"`);
      const verify = str(v.verify) ?? "header";
      if (verify !== "header" && verify !== "decode") throw new Error(`vzt prepare: --verify must be header or decode, got "${verify}"`);
      const { prepare, formatPrepareSummary, parseByteSize } = await import("./data/prepare.js");
      const sizeText = str(v["shard-size"]);
      const summary = await prepare({ input, imageRoot, out, onError, verify, split: str(v.split), overwrite: v.overwrite === true, shardBytes: sizeText ? parseByteSize(sizeText) : undefined, progress: true });
      console.log(formatPrepareSummary(summary));
      return summary.written === 0 ? 1 : 0;
    },
  },
  visualize: {
    summary: "draw the kept and merged patches of a reducer over an image (PNG)",
    usage: "usage: vzt visualize (--config FILE | --model DIR | --vision-tower DIR) --image FILE --out FILE.png\n" +
      "       [--reducer visionzip|uniform|pool|random] [--budget N | --dominant N --contextual N] [--seed N] [--mode clip|pad] [--layer N] [--scale N]",
    options: { ...VISUALIZE_FLAGS, set: { type: "string", multiple: true } },
    async run(v) {
      const m = await import("./reduce/visualize.js");
      const file = str(v.config);
      let opts;
      if (file) {
        // A training recipe names the model, the reducer and its budget, the layer and the aspect mode.
        const image = str(v.image);
        const out = str(v.out);
        if (!image || !out) throw new Error("vzt visualize: --image FILE and --out FILE.png are required");
        const { loadConfig } = await import("./configs/load.js");
        const { reducerParams } = await import("./train/setup.js");
        const cfg = loadConfig(file, { sets: sets(v) });
        const model = cfg.model.llava ?? { visionTower: cfg.model.vision_tower ?? undefined };
        opts = { model, image, out, reducer: { name: cfg.reducer.name, ...reducerParams(cfg.reducer) }, mode: cfg.data.image_aspect_ratio === "pad" ? ("pad" as const) : ("clip" as const), layer: cfg.model.vision_layer, scale: int(v.scale, "--scale") };
      } else opts = m.visualizeOptionsFromFlags(v);
      const r = await m.visualizeCommand(opts);
      console.log(`${r.out} (${r.width}x${r.height})`);
    },
  },
  validate: {
    summary: "check a YAML config without running it (every problem at once)",
    usage: "usage: vzt validate --config FILE [--set key.path=value ...] [--no-check-paths] [--print] [--keys]\n" +
      "example: vzt validate --config configs/demo.yaml --set train.max_steps=10\n" +
      "Paths (model.*, data.train, data.eval) must exist unless --no-check-paths; --print shows the resolved YAML; --keys lists every key with its default.",
    options: { config: { type: "string" }, set: { type: "string", multiple: true }, "no-check-paths": { type: "boolean" }, print: { type: "boolean" }, keys: { type: "boolean" } },
    async run(v) {
      if (v.keys) {
        const { runConfigKeys } = await import("./configs/schema.js");
        console.log(runConfigKeys().join("\n"));
        return;
      }
      const file = str(v.config);
      if (!file) throw new Error("vzt validate: --config FILE is required");
      const { validateConfigFile } = await import("./configs/load.js");
      const { configHash, resolvedConfigYaml } = await import("./configs/resolved.js");
      const cfg = validateConfigFile(file, sets(v), { checkPaths: v["no-check-paths"] !== true });
      console.log(v.print ? resolvedConfigYaml(cfg) : `${file}: OK (config_hash ${configHash(cfg)})`);
    },
  },
  train: {
    summary: "projector-only fine-tuning from a YAML recipe (checkpoints, exact resume, TensorBoard)",
    usage: "usage: vzt train --config FILE [--set key.path=value ...] [--resume latest|PATH] [--force] [--dry-run]\n" +
      "example: vzt train --config configs/demo.yaml --set train.max_steps=10\n" +
      "--resume continues exactly (same losses, same final bytes); a changed config is refused unless --force.",
    options: { config: { type: "string" }, set: { type: "string", multiple: true }, resume: { type: "string" }, force: { type: "boolean" }, "dry-run": { type: "boolean" } },
    async run(v) {
      const file = str(v.config);
      if (!file) throw new Error("vzt train: --config FILE is required");
      const { loadConfig } = await import("./configs/load.js");
      const cfg = loadConfig(file, { sets: sets(v), purpose: "train" });
      const { setup, cleanup } = await import("./train/setup.js");
      if (v["dry-run"]) {
        const run = await setup(cfg, { dryRun: true, quiet: true });
        try {
          const { describeRun } = await import("./train/dry_run.js");
          console.log(await describeRun(run));
        } finally {
          await cleanup(run);
        }
        return;
      }
      const { train } = await import("./train/recipe.js");
      const { accuracyEval } = await import("./eval/training_eval.js");
      const run = await setup(cfg, { resume: str(v.resume), force: v.force === true });
      try {
        const r = await train(run, { periodicEval: accuracyEval(cfg) });
        console.log(`trained ${r.steps} steps; checkpoint ${r.lastCheckpoint ?? "(none)"}; logs in ${r.outputDir} (metrics.jsonl, tensorboard/)`);
      } finally {
        await cleanup(run);
      }
    },
  },
  export: {
    summary: "export a tuned projector in LLaVA or HF LLaVA layout (mm_projector.safetensors + config.json)",
    usage: "usage: vzt export --checkpoint PATH|latest [--output-dir DIR] [--format llava|hf] --out DIR\n" +
      "PATH: a step_NNNNNN folder, or an output folder (its newest complete checkpoint); latest needs --output-dir.",
    options: { checkpoint: { type: "string" }, format: { type: "string" }, out: { type: "string" }, "output-dir": { type: "string" } },
    async run(v) {
      const checkpoint = str(v.checkpoint);
      const out = str(v.out);
      const format = str(v.format) ?? "llava";
      if (!checkpoint || !out) throw new Error("vzt export: --checkpoint and --out are required");
      if (format !== "llava" && format !== "hf") throw new Error(`vzt export: --format must be llava or hf, got "${format}"`);
      const { exportProjector } = await import("./train/export.js");
      const r = await exportProjector({ checkpoint, format, out, outputDir: str(v["output-dir"]) });
      console.log(`${r.file}\n${r.configFile}  (step ${r.meta.source.step}, ${r.meta.mm_projector_type} ${r.meta.mm_hidden_size}->${r.meta.hidden_size})`);
    },
  },
  eval: {
    summary: "score a model on VQA-style benchmarks across reduction methods x budgets (report.md, results.json, plots)",
    usage: "usage: vzt eval --config FILE [--set key.path=value ...] [--shard i/N]\n" +
      "       vzt eval --merge OUTPUT_DIR            (combine shard results)\n" +
      "       vzt eval --compare A/results.json B/results.json\n" +
      "example: vzt eval --config configs/eval/demo.yaml",
    options: { config: { type: "string" }, set: { type: "string", multiple: true }, shard: { type: "string" }, merge: { type: "boolean" }, compare: { type: "boolean" } },
    async run(v, pos) {
      if (v.compare) {
        if (pos.length !== 2) throw new Error("vzt eval --compare: give two results.json files");
        const { compareResults } = await import("./eval/compare.js");
        process.stdout.write(compareResults(pos[0]!, pos[1]!).text);
        return;
      }
      if (v.merge) {
        if (pos.length === 0) throw new Error("vzt eval --merge: give the eval output folder(s)");
        const { mergeShards } = await import("./eval/outputs.js");
        const r = mergeShards(pos);
        console.log(Object.values(r.files).join("\n"));
        return;
      }
      const file = str(v.config);
      if (!file) throw new Error("vzt eval: --config FILE is required (or --merge / --compare)");
      const { loadEvalConfig } = await import("./configs/eval_schema.js");
      const { runEval } = await import("./eval/recipe.js");
      const summary = await runEval(loadEvalConfig(file, { sets: sets(v) }), { shard: str(v.shard) });
      console.log(summary.results ? `eval written to ${summary.outputDir}:\n  ${Object.values(summary.files).join("\n  ")}` : `shard done (${summary.scored} items); merge with vzt eval --merge ${summary.outputDir}`);
    },
  },
  gsearch: {
    summary: "greedy shallow-to-deep search of the smallest keep rate per LLM layer (writes a schedule JSON; resumable)",
    usage: "usage: vzt gsearch --config EVAL.yaml [--set key.path=value ...]\n" +
      "The eval config's `search` section names the benchmark, limit and tolerance; use the schedule as gsearch@<file> in vzt eval.",
    options: { config: { type: "string" }, set: { type: "string", multiple: true } },
    async run(v) {
      const file = str(v.config);
      if (!file) throw new Error("vzt gsearch: --config EVAL.yaml is required");
      const { loadEvalConfig } = await import("./configs/eval_schema.js");
      const { runGSearch } = await import("./eval/search.js");
      const r = await runGSearch(loadEvalConfig(file, { sets: sets(v) }));
      console.log(`G-Search schedule written to ${r.output}\n  keep per layer: ${r.schedule.keep.join(" ")}\n  accuracy ${r.accuracy.toFixed(2)} (unreduced ${r.baseline.toFixed(2)}), ${r.equivalentTokens.toFixed(1)} FLOPs-equivalent tokens\n  run it: vzt eval ... with grid cell gsearch@${r.output}`);
    },
  },
  psigmoid: {
    summary: "fit a P-Sigmoid keep schedule at a FLOPs budget by Bayesian optimisation (writes a schedule JSON)",
    usage: "usage: vzt psigmoid --config EVAL.yaml [--budget B] [--set key.path=value ...]\n" +
      "B: retained-token budget whose prefill FLOPs the schedule matches (default: search.budget); use it as psigmoid@<file>.",
    options: { config: { type: "string" }, set: { type: "string", multiple: true }, budget: { type: "string" } },
    async run(v) {
      const file = str(v.config);
      if (!file) throw new Error("vzt psigmoid: --config EVAL.yaml is required");
      const budgetText = str(v.budget);
      const budget = budgetText === undefined ? undefined : Number(budgetText);
      if (budget !== undefined && !(Number.isFinite(budget) && budget > 0)) throw new Error(`vzt psigmoid: --budget must be a positive number, got "${budgetText}"`);
      const { loadEvalConfig } = await import("./configs/eval_schema.js");
      const { runPSigmoid } = await import("./eval/search.js");
      const r = await runPSigmoid(loadEvalConfig(file, { sets: sets(v) }), budget);
      console.log(`P-Sigmoid schedule written to ${r.output}\n  k ${r.k.toFixed(3)}, r_min ${r.rMin.toFixed(3)}, l0 ${r.l0.toFixed(2)}; keep per layer: ${r.schedule.keep.join(" ")}\n  accuracy ${r.accuracy.toFixed(2)}, ${r.equivalentTokens.toFixed(1)} FLOPs-equivalent tokens (budget ${r.budget})\n  run it: vzt eval ... with grid cell psigmoid@${r.output}`);
    },
  },
};
