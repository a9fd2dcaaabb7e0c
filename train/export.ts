// `vzt export`: a checkpoint's tuned projector in the layouts users already load.
//   DIR/mm_projector.safetensors  LLaVA names (`model.mm_projector.0.weight` [out, in], `.0.bias`, `.2.weight`, `.2.bias`;
//                                 `model.mm_projector.weight/bias` for `linear`) or HF LLaVA names
//                                 (`multi_modal_projector.linear_1.weight` ... `linear_2.bias`), float32, PyTorch layout.
//   DIR/config.json               the LLaVA keys loadProjector and LLaVA read (mm_projector_type, mm_hidden_size,
//                                 hidden_size, mm_vision_tower) plus what the projector was tuned for: reducer and
//                                 budget, base models, source run and step.
// `loadProjector(DIR)` reads the folder back. Both files are replaced atomically (temp + fsync + rename).
import { mkdir } from "node:fs/promises";
import { writeFileAtomic } from "../core/atomic.js";
import path from "node:path";
import { loadProjector, projectorConfigJson, projectorTensors, type ProjectorNaming } from "../models/projector.js";
import { writeSafetensors } from "../models/safetensors.js";
import { CheckpointError, PROJECTOR_FILE, readTrainState, resolveCheckpoint, runVersions, verifyCheckpoint } from "./checkpoint.js";

export const EXPORT_FORMATS: readonly ProjectorNaming[] = ["llava", "hf"];
export const EXPORT_WEIGHTS_FILE = "mm_projector.safetensors";
export const EXPORT_CONFIG_FILE = "config.json";

export interface ExportOptions {
  /** A step folder, an output folder (its latest), or "latest" with `outputDir`. */
  checkpoint: string;
  format: ProjectorNaming;
  /** Folder to write (created when missing). */
  out: string;
  outputDir?: string;
}

export interface ExportMeta {
  mm_projector_type: string;
  mm_hidden_size: number;
  hidden_size: number;
  mm_vision_tower?: string;
  /** Tensor naming of mm_projector.safetensors. */
  projector_naming: ProjectorNaming;
  /** The reducer the projector was tuned behind, with its token budget (dominant + contextual for visionzip). */
  reducer: Record<string, unknown> & { name: string; budget: number | null };
  base_models: { llava: string | null; vision_tower: string | null; llm: string | null; projector_init: string | null };
  source: { output_dir: string; checkpoint: string; step: number; epoch: number; config_hash: string; saved_at: string };
  exported_by: { package: string; tfjs: string; node: string; time: string };
}

/**
 * Exports a checkpoint's projector (see the file header for the files). The checkpoint is verified (COMPLETE and
 * sha256) and its train_state.json supplies the spec, reducer, models and step.
 * @throws CheckpointError when the checkpoint is missing/incomplete or its state disagrees with its tensors;
 *   WeightsError for `hf` with a `linear` projector (HF LLaVA has no such layout).
 */
export async function exportProjector(opts: ExportOptions): Promise<{ file: string; configFile: string; meta: ExportMeta }> {
  if (!EXPORT_FORMATS.includes(opts.format)) throw new CheckpointError(`export: format must be one of ${EXPORT_FORMATS.join(", ")}, got "${opts.format}"`);
  const dir = await resolveCheckpoint(opts.checkpoint, opts.outputDir);
  if (!dir) throw new CheckpointError(`export: no complete checkpoint in ${opts.outputDir}`, opts.outputDir);
  const { step } = await verifyCheckpoint(dir);
  const state = await readTrainState(dir);

  const p = await loadProjector(path.join(dir, PROJECTOR_FILE));
  try {
    const s = state.projector;
    if (s.type !== p.type || s.inDim !== p.inDim || s.outDim !== p.outDim) {
      throw new CheckpointError(
        `${dir}: train_state.json says projector ${s.type} ${s.inDim}->${s.outDim} but ${PROJECTOR_FILE} holds ${p.type} ${p.inDim}->${p.outDim}`,
        dir,
      );
    }
    const meta = exportMeta(state, dir, step, opts.format);
    await mkdir(opts.out, { recursive: true });
    const file = path.join(opts.out, EXPORT_WEIGHTS_FILE);
    const tensors = projectorTensors(p, opts.format);
    try {
      await writeSafetensors(file, tensors, { step: String(step), projector_naming: opts.format });
    } finally {
      for (const t of Object.values(tensors)) t.dispose();
    }
    const configFile = path.join(opts.out, EXPORT_CONFIG_FILE);
    await writeFileAtomic(configFile, JSON.stringify(meta, null, 2) + "\n");
    return { file, configFile, meta };
  } finally {
    p.dispose();
  }
}

function exportMeta(state: Awaited<ReturnType<typeof readTrainState>>, dir: string, step: number, format: ProjectorNaming): ExportMeta {
  const spec = projectorConfigJson(state.projector) as { mm_projector_type: string; mm_hidden_size: number; hidden_size: number };
  const r = state.reducer ?? { name: "unknown" };
  const sum = typeof r.dominant === "number" && typeof r.contextual === "number" ? r.dominant + r.contextual : null;
  const m = state.models ?? {};
  const v = runVersions();
  const visionTower = m.visionTower ?? m.llava ?? undefined;
  return {
    ...spec,
    ...(visionTower ? { mm_vision_tower: visionTower } : {}),
    projector_naming: format,
    reducer: { ...r, budget: r.budget ?? sum },
    base_models: { llava: m.llava ?? null, vision_tower: m.visionTower ?? null, llm: m.llm ?? null, projector_init: m.projector ?? null },
    source: { output_dir: path.dirname(dir), checkpoint: dir, step, epoch: state.epoch, config_hash: state.configHash, saved_at: state.time },
    exported_by: { package: v.package, tfjs: v.tfjs, node: v.node, time: new Date().toISOString() },
  };
}

