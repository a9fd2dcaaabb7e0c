// `vzt train --dry-run`: what a run would do, without training or writing anything.
import { resolvedConfigYaml } from "../configs/resolved.js";
import type { LoaderBatch } from "../data/loader.js";
import type { Run } from "./setup.js";

/** Prefill FLOPs of one sequence of n tokens through the LLM (FastV's per-layer count, SwiGLU MLP). */
export function prefillFlops(n: number, d: number, m: number, layers: number): number {
  return layers * (4 * n * d * d + 2 * n * n * d + 3 * n * d * m);
}

const count = (vars: Iterable<{ size: number }>) => [...vars].reduce((a, t) => a + t.size, 0);
const human = (n: number) => (n >= 1e12 ? `${(n / 1e12).toFixed(2)} T` : n >= 1e9 ? `${(n / 1e9).toFixed(2)} G` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${n}`);

/** A readable report of the run; reads the first micro-batch for sequence lengths. */
export async function describeRun(run: Run): Promise<string> {
  const { cfg, vlm } = run;
  const lm = vlm.lm.config;
  const tower = vlm.tower.config;
  const trainable = count(Object.values(vlm.projector.variables));
  const frozenLm = countTensors(vlm.lm.weights);
  const { value: batch } = (await run.loader.next()) as { value: LoaderBatch | undefined };
  const textLens = batch ? [...Array(batch.batchSize).keys()].map((b) => batch.attentionMask.subarray(b * batch.seqLen, (b + 1) * batch.seqLen).reduce((a, v) => a + v, 0) - batch.imagePositions[b]!.length) : [];
  const meanText = textLens.length ? textLens.reduce((a, v) => a + v, 0) / textLens.length : 0;
  const full = tower.numPositions - 1;
  const per = (visual: number) => 3 * prefillFlops(meanText + visual, lm.hidden, lm.intermediate, lm.layers) * cfg.train.global_batch_size!;
  const lines = [
    "resolved config:",
    ...resolvedConfigYaml(cfg).trimEnd().split("\n").map((l) => "  " + l),
    "",
    `backend: ${run.backend}`,
    `parameters: trainable ${trainable.toLocaleString("en-US")} (projector ${vlm.projector.type} ${vlm.projector.inDim}->${vlm.projector.outDim}); frozen LLM ${frozenLm.toLocaleString("en-US")}`,
    `visual tokens per image: ${tower.numPositions} from the tower -> ${run.tokensPerImage} after ${run.reducer.name}`,
    `sequence lengths (first micro-batch of ${batch?.batchSize ?? 0}): text ${textLens.join(", ") || "n/a"}; padded ${batch?.seqLen ?? "n/a"} with ${run.tokensPerImage} visual tokens`,
    `steps: ${run.totalSteps} (global batch ${cfg.train.global_batch_size}, micro ${cfg.train.micro_batch_size}, ${cfg.train.global_batch_size! / cfg.train.micro_batch_size} accumulation), starting at ${run.step}`,
    `estimated LLM FLOPs per step (forward + backward): ${human(per(run.tokensPerImage))} with ${run.reducer.name}, ${human(per(full))} with all ${full} patch tokens (x${(per(full) / per(run.tokensPerImage)).toFixed(2)})`,
    `data: ${run.data.shards.length} shard(s), ${run.data.totalRows ?? "?"} rows: ${run.data.shards.map((s) => s.file).slice(0, 5).join(", ")}${run.data.shards.length > 5 ? ", ..." : ""}`,
    `feature cache: ${run.cache ? run.cache.dir : "off"}`,
  ];
  return lines.join("\n");
}

function countTensors(w: unknown): number {
  let n = 0;
  const walk = (v: unknown) => {
    if (v && typeof v === "object") {
      if ("size" in v && "shape" in v && typeof (v as { size: unknown }).size === "number") n += (v as { size: number }).size;
      else for (const x of Object.values(v)) walk(x);
    }
  };
  walk(w);
  return n;
}
