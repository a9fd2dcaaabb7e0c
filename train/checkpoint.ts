// Training checkpoints: `<output_dir>/step_NNNNNN/{projector.safetensors, optimizer.safetensors, train_state.json,
// COMPLETE}`, written so that a crash at any moment leaves every earlier checkpoint whole.
//
// Layout and names
//   projector.safetensors  the projector in LLaVA names and PyTorch layout (`model.mm_projector.0.weight` [out, in], ...,
//                          as models/projector.ts `projectorTensors(p, "llava")` gives them): the file is itself a LLaVA
//                          adapter that `loadProjector(file)` reads; `assignProjector` puts it back into live variables.
//   optimizer.safetensors  the optimizer's named tensors as given (AdamW: `<var>.exp_avg`, `<var>.exp_avg_sq`);
//                          `__metadata__.step` holds the optimizer's step count.
//   train_state.json       TrainState below (step, epoch, data cursor, RNG states, config + hash, metrics, projector
//                          spec, reducer, model sources, versions, time).
//   COMPLETE               written last: JSON {format, version, step, files: {name: {bytes, sha256}}}.
//
// Write protocol: every file goes into `<output_dir>/.tmp-step_NNNNNN-<pid>/` and is fsynced; COMPLETE last; the temp
// folder is fsynced, renamed to `step_NNNNNN` (the commit point), and the parent folder fsynced. Only then are old
// checkpoints pruned (keepLast), so the one a run resumed from is deleted only once a newer complete one exists.
// Readers trust a step folder only when COMPLETE parses and every file it lists has the listed size (loadCheckpoint
// also checks the sha256), so a partial or half-copied folder is never used; `latest` is the complete folder with the
// highest step, found by scanning (there is no pointer file that could dangle).
// Stale folders (`.tmp-*`, `.old-*`, `.del-*` of a pid that is no longer alive, or of this process) are removed by
// `cleanStaleCheckpoints`, which the run that owns output_dir calls at its start (saveCheckpoint also calls it). One
// process writes to an output_dir at a time.
import { packageRoot } from "../core/paths.js";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { tf } from "../core/backend.js";
import { ConfigError, WeightsError } from "../core/errors.js";
import { warn } from "../core/log.js";
import type { RngState } from "../core/rng.js";
import type { Projector, ProjectorSpec } from "../models/projector.js";
import { projectorWeightMap } from "../models/projector.js";
import { encodeSafetensors, readHeader, readSafetensors } from "../models/safetensors.js";

// ---- state ------------------------------------------------------------------------------------------------------

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** The reducer a run trained with (the config's `reducer` section: name, budget, dominant/contextual, ...). */
export interface ReducerInfo {
  name: string;
  budget?: number | null;
  dominant?: number | null;
  contextual?: number | null;
  [key: string]: JsonValue | undefined;
}

/** Where the frozen base models came from (the config's `model` section: folders or Hub ids). */
export interface ModelSources {
  llava?: string | null;
  visionTower?: string | null;
  llm?: string | null;
  /** The projector the run started from (null: fresh seeded init). */
  projector?: string | null;
}

export interface RunVersions {
  package: string;
  tfjs: string;
  backend: string;
  node: string;
}

/** train_state.json: everything besides the tensors that an exact resume and an export need. */
export interface TrainState {
  /** Optimizer steps done (the folder is step_<step>). */
  step: number;
  /** Epoch the data cursor is in (0-based). */
  epoch: number;
  /** The data loader's resume cursor, opaque here. */
  dataCursor: JsonValue;
  /** Named RNG states (e.g. `{ shuffle, reducer }`). */
  rng: Record<string, RngState>;
  /** Hash of the resolved config (configs/ `configHash`). */
  configHash: string;
  /** The resolved config itself, so a refused resume can name the keys that changed. */
  config: JsonValue;
  /** Last logged metrics (loss, lr, grad_norm, ...). */
  metrics: Record<string, number>;
  projector: ProjectorSpec;
  reducer: ReducerInfo;
  models: ModelSources;
  versions: RunVersions;
  /** ISO 8601 time of the save. */
  time: string;
}

/** What saveCheckpoint takes: step, versions and time are filled in when absent. */
export type TrainStateInput = Omit<TrainState, "step" | "versions" | "time"> & Partial<Pick<TrainState, "step" | "versions" | "time">>;

/** Errors about checkpoint folders (missing, partial, corrupt, mismatched); `dir` is the folder at fault. */
export class CheckpointError extends Error {
  constructor(message: string, readonly dir?: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

// ---- names ------------------------------------------------------------------------------------------------------

export const PROJECTOR_FILE = "projector.safetensors";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const STATE_FILE = "train_state.json";
export const COMPLETE_FILE = "COMPLETE";
const MARKER_FORMAT = "vzt-checkpoint";
const MARKER_VERSION = 1;

/** `step_000200` (6 digits, more when the step needs them). */
export function stepDirName(step: number): string {
  return `step_${String(step).padStart(6, "0")}`;
}

const STEP_RE = /^step_(\d{6,})$/;
const STALE_RE = /^\.(tmp|old|del)-(step_\d{6,})-(\d+)$/;

function parseStep(name: string): number | undefined {
  const m = STEP_RE.exec(name);
  return m ? Number(m[1]) : undefined;
}

// ---- durable file system steps ----------------------------------------------------------------------------------

/** Writes a new file and fsyncs it (the folder is ours: "wx" refuses to overwrite). */
async function writeSynced(file: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(file, "wx");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs a folder, so the names created or renamed in it survive a power loss (a no-op where folders cannot be opened). */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === "win32") return;
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, owned by someone else
  }
}

// ---- versions -----------------------------------------------------------------------------------------------------

let packageVersion: string | undefined;

/** Package, tfjs, backend and node versions of this process, for train_state.json. */
export function runVersions(): RunVersions {
  if (packageVersion === undefined) {
    try {
      packageVersion = (JSON.parse(readFileSync(path.join(packageRoot(), "package.json"), "utf8")) as { version?: string }).version ?? "unknown";
    } catch {
      packageVersion = "unknown";
    }
  }
  const tfVersion = (tf.version as Record<string, string | undefined>)["tfjs"] ?? tf.version_core;
  return { package: packageVersion, tfjs: tfVersion, backend: tf.getBackend() ?? "none", node: process.version };
}

// ---- save ---------------------------------------------------------------------------------------------------------

export interface CheckpointPayload {
  step: number;
  /** The projector in LLaVA names, PyTorch layout: `projectorTensors(projector, "llava")`. Read, not disposed. */
  projectorTensors: Record<string, tf.Tensor>;
  /** The optimizer state tensors (`AdamW.state().tensors`). Read, not disposed. */
  optimizerTensors: Record<string, tf.Tensor>;
  /** The optimizer's own step count (AdamW.state().step); default `step`. */
  optimizerStep?: number;
  state: TrainStateInput;
}

export interface SaveOptions {
  /** Complete step folders kept after this save (the new one included); null/undefined = all. */
  keepLast?: number | null;
  /** Test hook, called after each file is written into the temp folder (then after "rename"); a throw aborts the save. */
  afterWrite?: (what: string) => void | Promise<void>;
}

export interface SaveResult {
  dir: string;
  step: number;
  /** Step folders removed by keepLast. */
  pruned: string[];
}

/**
 * Saves a checkpoint as `<outputDir>/step_NNNNNN` (see the file header for the protocol) and prunes to keepLast.
 * A complete folder of the same step is replaced (moved aside, the new one renamed in, the old one removed).
 * @throws CheckpointError on a bad step or state; file system errors as they come (the temp folder is removed).
 */
export async function saveCheckpoint(outputDir: string, payload: CheckpointPayload, opts: SaveOptions = {}): Promise<SaveResult> {
  const { step } = payload;
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`saveCheckpoint: step must be an integer >= 0, got ${step}`);
  if (payload.state.step !== undefined && payload.state.step !== step) {
    throw new CheckpointError(`saveCheckpoint: state.step ${payload.state.step} differs from step ${step}`);
  }
  const optimizerStep = payload.optimizerStep ?? step;
  if (!Number.isSafeInteger(optimizerStep) || optimizerStep < 0) throw new CheckpointError(`saveCheckpoint: optimizerStep must be an integer >= 0, got ${optimizerStep}`);
  const keepLast = opts.keepLast ?? null;
  if (keepLast !== null && (!Number.isSafeInteger(keepLast) || keepLast < 1)) throw new CheckpointError(`saveCheckpoint: keepLast must be an integer >= 1 or null, got ${keepLast}`);
  const hook = opts.afterWrite ?? (() => {});

  await mkdir(outputDir, { recursive: true });
  await cleanStaleCheckpoints(outputDir);
  const name = stepDirName(step);
  const tmp = path.join(outputDir, `.tmp-${name}-${process.pid}`);
  const final = path.join(outputDir, name);
  const state: TrainState = { ...payload.state, step, versions: payload.state.versions ?? runVersions(), time: payload.state.time ?? new Date().toISOString() };

  await mkdir(tmp);
  try {
    const files: Record<string, { bytes: number; sha256: string }> = {};
    const put = async (file: string, data: Uint8Array | string): Promise<void> => {
      await writeSynced(path.join(tmp, file), data);
      files[file] = { bytes: typeof data === "string" ? Buffer.byteLength(data) : data.byteLength, sha256: sha256(data) };
      await hook(file);
    };
    await put(PROJECTOR_FILE, await encodeSafetensors(payload.projectorTensors, { step: String(step) }));
    await put(OPTIMIZER_FILE, await encodeSafetensors(payload.optimizerTensors, { step: String(optimizerStep) }));
    await put(STATE_FILE, JSON.stringify(state, null, 2) + "\n");
    const marker = { format: MARKER_FORMAT, version: MARKER_VERSION, step, files };
    await writeSynced(path.join(tmp, COMPLETE_FILE), JSON.stringify(marker, null, 2) + "\n");
    await hook(COMPLETE_FILE);
    await syncDir(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
    throw e;
  }

  // Commit: make room for the name, rename, fsync the parent.
  let aside: string | undefined;
  if (existsSync(final)) {
    if ((await checkComplete(final)).ok) {
      aside = path.join(outputDir, `.old-${name}-${process.pid}`);
      await rename(final, aside);
    } else {
      warn(`${final}: incomplete checkpoint folder (no valid ${COMPLETE_FILE}) replaced by the new save`);
      await rm(final, { recursive: true, force: true });
    }
  }
  await rename(tmp, final);
  await syncDir(outputDir);
  await hook("rename");
  if (aside) await rm(aside, { recursive: true, force: true });

  const pruned = keepLast === null ? [] : await prune(outputDir, keepLast, step);
  return { dir: final, step, pruned };
}

/** Removes complete step folders beyond the newest `keepLast` (by step), never the one just saved. */
async function prune(outputDir: string, keepLast: number, savedStep: number): Promise<string[]> {
  const complete = (await listCheckpoints(outputDir)).filter((c) => c.complete);
  const newer = complete.filter((c) => c.step > savedStep);
  if (newer.length) {
    warn(`${outputDir}: ${newer.map((c) => c.name).join(", ")} ${newer.length === 1 ? "is" : "are"} newer than the step just saved (${stepDirName(savedStep)}); "latest" resolves to the highest step`);
  }
  const keep = new Set(complete.slice(-keepLast).map((c) => c.step));
  keep.add(savedStep);
  const pruned: string[] = [];
  for (const c of complete) {
    if (keep.has(c.step)) continue;
    // Rename first, so an interrupted delete leaves a `.del-*` folder (cleaned later), never a half-deleted step folder.
    const del = path.join(outputDir, `.del-${c.name}-${process.pid}`);
    await rename(c.dir, del);
    await rm(del, { recursive: true, force: true });
    pruned.push(c.dir);
  }
  return pruned;
}

/**
 * Removes `.tmp-*`, `.del-*` and `.old-*` folders left by crashed saves (their pid is not alive, or is this process);
 * an `.old-step_N` whose `step_N` is missing is renamed back when complete (a crash inside the replace of step N).
 * Call once at the start of a run that owns outputDir. Returns the paths removed or restored.
 */
export async function cleanStaleCheckpoints(outputDir: string): Promise<string[]> {
  const names = await readdir(outputDir).catch(() => [] as string[]);
  const done: string[] = [];
  for (const n of names) {
    const m = STALE_RE.exec(n);
    if (!m) continue;
    const [, kind, stepName, pidText] = m as unknown as [string, string, string, string];
    const pid = Number(pidText);
    if (pid !== process.pid && pidAlive(pid)) continue; // another live run's save in progress
    const dir = path.join(outputDir, n);
    const target = path.join(outputDir, stepName);
    if (kind === "old" && !existsSync(target) && (await checkComplete(dir)).ok) {
      await rename(dir, target);
      await syncDir(outputDir);
    } else {
      await rm(dir, { recursive: true, force: true });
    }
    done.push(dir);
  }
  return done;
}

// ---- find ---------------------------------------------------------------------------------------------------------

export interface CheckpointInfo {
  dir: string;
  name: string;
  step: number;
  complete: boolean;
  /** Why an incomplete folder is not trusted. */
  problem?: string;
}

interface Marker {
  step: number;
  files: Record<string, { bytes: number; sha256: string }>;
}

/** Reads COMPLETE and checks that each listed file exists with its size (no hashing). */
async function checkComplete(dir: string): Promise<{ ok: true; marker: Marker } | { ok: false; problem: string }> {
  let text: string;
  try {
    text = await readFile(path.join(dir, COMPLETE_FILE), "utf8");
  } catch {
    return { ok: false, problem: `no ${COMPLETE_FILE} marker (a save that did not finish, or a partial copy)` };
  }
  let m: Partial<Marker & { format: string }>;
  try {
    m = JSON.parse(text) as typeof m;
  } catch (e) {
    return { ok: false, problem: `${COMPLETE_FILE} is not valid JSON: ${(e as Error).message}` };
  }
  if (m.format !== MARKER_FORMAT || typeof m.step !== "number" || typeof m.files !== "object" || m.files === null) {
    return { ok: false, problem: `${COMPLETE_FILE} is not a ${MARKER_FORMAT} marker` };
  }
  for (const required of [PROJECTOR_FILE, OPTIMIZER_FILE, STATE_FILE]) {
    if (!m.files[required]) return { ok: false, problem: `${COMPLETE_FILE} does not list ${required}` };
  }
  for (const [file, info] of Object.entries(m.files)) {
    const st = await stat(path.join(dir, file)).catch(() => undefined);
    if (!st) return { ok: false, problem: `${file} is missing` };
    if (st.size !== info.bytes) return { ok: false, problem: `${file} has ${st.size} bytes, ${COMPLETE_FILE} says ${info.bytes}` };
  }
  return { ok: true, marker: m as Marker };
}

/** Every `step_*` folder of outputDir, ascending by step, each marked complete or not (with the reason). */
export async function listCheckpoints(outputDir: string): Promise<CheckpointInfo[]> {
  const entries = await readdir(outputDir, { withFileTypes: true }).catch(() => []);
  const out: CheckpointInfo[] = [];
  for (const e of entries) {
    const step = parseStep(e.name);
    if (step === undefined || !e.isDirectory()) continue;
    const dir = path.join(outputDir, e.name);
    const c = await checkComplete(dir);
    const info: CheckpointInfo = { dir, name: e.name, step, complete: c.ok };
    if (!c.ok) info.problem = c.problem;
    else if (c.marker.step !== step) Object.assign(info, { complete: false, problem: `${COMPLETE_FILE} says step ${c.marker.step}, the folder name says ${step}` });
    out.push(info);
  }
  return out.sort((a, b) => a.step - b.step);
}

/**
 * The checkpoint folder a spec names: "latest" (the complete step folder with the highest step in outputDir, or
 * undefined when there is none; "<dir>/latest" looks in <dir>), a step folder (relative paths are tried against the working directory, then
 * outputDir), or an output folder (its latest). A named folder that is not complete is an error, never skipped.
 */
export async function resolveCheckpoint(spec: string, outputDir?: string): Promise<string | undefined> {
  if (spec === "latest") {
    if (!outputDir) throw new CheckpointError(`checkpoint "latest" needs the output folder to look in`);
    return latestIn(outputDir);
  }
  // "<output dir>/latest" (no such folder on disk) reads as "latest" in that output folder.
  if (path.basename(spec) === "latest" && path.dirname(spec) !== "." && !existsSync(path.resolve(spec))) return resolveCheckpoint("latest", path.dirname(spec));
  let dir = path.resolve(spec);
  if (!existsSync(dir) && outputDir && !path.isAbsolute(spec) && existsSync(path.join(outputDir, spec))) dir = path.resolve(outputDir, spec);
  const st = await stat(dir).catch(() => undefined);
  if (!st) throw new CheckpointError(`checkpoint ${spec}: no such folder${outputDir && !path.isAbsolute(spec) ? ` (also looked in ${outputDir})` : ""}`, dir);
  if (!st.isDirectory()) throw new CheckpointError(`checkpoint ${spec}: not a folder (expected a step_NNNNNN folder or an output folder)`, dir);
  if (parseStep(path.basename(dir)) === undefined && !existsSync(path.join(dir, COMPLETE_FILE))) {
    const latest = await latestIn(dir);
    if (latest) return latest;
    throw new CheckpointError(`checkpoint ${spec}: neither a step_NNNNNN folder nor an output folder holding a complete one`, dir);
  }
  const c = await checkComplete(dir);
  if (!c.ok) throw new CheckpointError(`checkpoint ${dir}: not complete: ${c.problem}`, dir);
  return dir;
}

async function latestIn(outputDir: string): Promise<string | undefined> {
  const all = await listCheckpoints(outputDir);
  for (let i = all.length - 1; i >= 0; i--) if (all[i]!.complete) return all[i]!.dir;
  return undefined;
}

// ---- load ---------------------------------------------------------------------------------------------------------

export interface LoadedCheckpoint {
  dir: string;
  step: number;
  /** The optimizer's step count from optimizer.safetensors metadata. */
  optimizerStep: number;
  /** LLaVA names, PyTorch layout (the caller disposes). */
  projector: Map<string, tf.Tensor>;
  /** Optimizer state tensors (the caller disposes). */
  optimizer: Map<string, tf.Tensor>;
  state: TrainState;
}

/** Checks COMPLETE, file sizes and sha256 digests of a checkpoint folder; returns the marker. */
export async function verifyCheckpoint(dir: string): Promise<{ step: number }> {
  const c = await checkComplete(dir);
  if (!c.ok) throw new CheckpointError(`checkpoint ${dir}: not complete: ${c.problem}`, dir);
  for (const [file, info] of Object.entries(c.marker.files)) {
    const digest = sha256(await readFile(path.join(dir, file)));
    if (digest !== info.sha256) throw new CheckpointError(`checkpoint ${dir}: ${file} is corrupt (sha256 ${digest}, ${COMPLETE_FILE} says ${info.sha256})`, dir);
  }
  return { step: c.marker.step };
}

/** Reads and checks train_state.json of a checkpoint folder. */
export async function readTrainState(dir: string): Promise<TrainState> {
  const file = path.join(dir, STATE_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read: ${(e as Error).message}`, dir);
  }
  const s = json as Partial<TrainState>;
  const problems: string[] = [];
  if (typeof s !== "object" || s === null) problems.push("not a JSON object");
  else {
    if (!Number.isSafeInteger(s.step)) problems.push(`step: expected an integer, got ${JSON.stringify(s.step)}`);
    if (!Number.isSafeInteger(s.epoch)) problems.push(`epoch: expected an integer, got ${JSON.stringify(s.epoch)}`);
    if (typeof s.configHash !== "string") problems.push(`configHash: expected a string, got ${JSON.stringify(s.configHash)}`);
    if (typeof s.projector !== "object" || s.projector === null) problems.push("projector: missing {type, inDim, outDim}");
    if (typeof s.rng !== "object" || s.rng === null) problems.push("rng: missing");
  }
  if (problems.length) throw new ConfigError(problems, file);
  return s as TrainState;
}

/**
 * Loads a checkpoint ("latest" in outputDir, a step folder or an output folder): verifies COMPLETE and the sha256 of
 * every file, then reads train_state.json and both tensor files. The caller disposes the tensors.
 * @throws CheckpointError when none is found, a file is corrupt, or the steps of folder, marker and state disagree.
 */
export async function loadCheckpoint(spec: string, outputDir?: string): Promise<LoadedCheckpoint> {
  const dir = await resolveCheckpoint(spec, outputDir);
  if (!dir) throw new CheckpointError(`no complete checkpoint in ${outputDir} (looked for step_NNNNNN folders with a ${COMPLETE_FILE} marker)`, outputDir);
  const { step } = await verifyCheckpoint(dir);
  const state = await readTrainState(dir);
  const nameStep = parseStep(path.basename(dir));
  if (state.step !== step || (nameStep !== undefined && nameStep !== step)) {
    throw new CheckpointError(`checkpoint ${dir}: steps disagree (folder ${nameStep ?? "?"}, ${COMPLETE_FILE} ${step}, ${STATE_FILE} ${state.step})`, dir);
  }
  const optFile = path.join(dir, OPTIMIZER_FILE);
  const projector = await readSafetensors(path.join(dir, PROJECTOR_FILE));
  let optimizer: Map<string, tf.Tensor>;
  try {
    optimizer = await readSafetensors(optFile);
  } catch (e) {
    for (const t of projector.values()) t.dispose();
    throw e;
  }
  const meta = (await readHeader(optFile)).metadata;
  const optimizerStep = meta.step !== undefined ? Number(meta.step) : step;
  if (!Number.isSafeInteger(optimizerStep) || optimizerStep < 0) {
    for (const t of [...projector.values(), ...optimizer.values()]) t.dispose();
    throw new CheckpointError(`${optFile}: __metadata__.step must be an integer >= 0, got ${JSON.stringify(meta.step)}`, dir);
  }
  return { dir, step, optimizerStep, projector, optimizer, state };
}

/**
 * Copies a checkpoint's projector tensors (LLaVA names, PyTorch layout) into a live projector's variables
 * (transposed back to [in, out]: exact). @throws WeightsError naming a missing, unexpected or mis-shaped tensor.
 */
export function assignProjector(p: Projector, tensors: Map<string, tf.Tensor>, file = PROJECTOR_FILE): void {
  const prefix = "model.mm_projector.";
  const entries = projectorWeightMap("llava", p.type).entries;
  const problems: string[] = [];
  const plan: [tf.Variable, tf.Tensor, boolean][] = [];
  for (const [disk, ours] of Object.entries(entries)) {
    const name = prefix + disk;
    const t = tensors.get(name);
    const [layer, part] = ours.split(".") as [string, string];
    const v = p.variables[`${layer}.${part === "weight" ? "kernel" : "bias"}`]!;
    const want = part === "weight" ? [v.shape[1]!, v.shape[0]!] : v.shape;
    if (!t) problems.push(`"${name}" is missing`);
    else if (t.shape.join(",") !== want.join(",")) problems.push(`"${name}" has shape [${t.shape}], expected [${want}]`);
    else plan.push([v, t, part === "weight"]);
  }
  const known = new Set(Object.keys(entries).map((d) => prefix + d));
  for (const n of tensors.keys()) if (!known.has(n)) problems.push(`"${n}" is unexpected for a ${p.type} projector`);
  if (problems.length) throw new WeightsError(`${file}: ${problems.join("; ")}`, file);
  for (const [v, t, transpose] of plan) tf.tidy(() => v.assign(transpose ? tf.transpose(t) : t));
}

// ---- resume config ------------------------------------------------------------------------------------------------

export interface ConfigDifference {
  /** Dotted key path (`optimizer.lr`, `data.train[1]`). */
  key: string;
  saved: unknown;
  current: unknown;
}

/** Keys whose values differ between two plain JSON values, depth-first, in key order. */
export function diffJson(saved: unknown, current: unknown, key = ""): ConfigDifference[] {
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (isObj(saved) && isObj(current)) {
    const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])].sort();
    return keys.flatMap((k) => diffJson(saved[k], current[k], key ? `${key}.${k}` : k));
  }
  if (Array.isArray(saved) && Array.isArray(current)) {
    if (saved.length !== current.length) return [{ key, saved, current }];
    return saved.flatMap((v, i) => diffJson(v, current[i], `${key}[${i}]`));
  }
  if (Object.is(saved, current) || (saved === undefined && current === null) || (saved === null && current === undefined)) return [];
  return [{ key, saved, current }];
}

export interface ResumeCheckOptions {
  /** Resume anyway: the differences are warned about, not thrown. */
  force?: boolean;
  /** The current config's hash (configs/ `configHash`); when equal to the saved one, no diff is done. */
  currentHash?: string;
  /** Key paths (or prefixes `a.b`) that may change on resume (e.g. `train.max_steps`). */
  ignore?: readonly string[];
  /** A diff function (configs/ `diffConfigs`); default diffJson. */
  diff?: (saved: unknown, current: unknown) => readonly { key: string; saved?: unknown; current?: unknown }[];
}

/**
 * Refuses to resume a run whose config changed: throws ConfigError naming each differing key with both values,
 * unless `force` (then warns). Returns the differences found (ignored keys excluded).
 */
export function checkResumeConfig(savedHash: string, savedConfig: unknown, currentConfig: unknown, opts: ResumeCheckOptions = {}): ConfigDifference[] {
  if (opts.currentHash !== undefined && opts.currentHash === savedHash) return [];
  const ignored = (k: string): boolean => (opts.ignore ?? []).some((p) => k === p || k.startsWith(p + ".") || k.startsWith(p + "["));
  const diffs = (opts.diff ?? diffJson)(savedConfig, currentConfig)
    .filter((d) => !ignored(d.key))
    .map((d) => ({ key: d.key, saved: d.saved, current: d.current }));
  const show = (v: unknown): string => (v === undefined ? "(absent)" : JSON.stringify(v) ?? String(v));
  const problems = diffs.map((d) => `${d.key}: checkpoint has ${show(d.saved)}, the config now has ${show(d.current)}`);
  if (!problems.length && savedConfig === undefined && opts.currentHash !== undefined) {
    problems.push(`config hash ${opts.currentHash} differs from the checkpoint's ${savedHash} (the checkpoint holds no config to compare keys)`);
  }
  if (!problems.length) return diffs;
  if (opts.force) {
    warn(`resuming with a changed config (forced): ${problems.join("; ")}`);
    return diffs;
  }
  throw new ConfigError([...problems, "resume refused: restore these values, start a new output_dir, or pass --force to resume anyway"], "resume");
}
