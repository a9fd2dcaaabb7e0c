// The training recipe end to end on the tiny models: the loss falls, resume equals an uninterrupted run (in process
// and across SIGKILLs), the NaN guard stops the run without touching the last checkpoint, no tensor growth, and
// the feature cache gives the same losses as computing features.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { configFromObject, loadConfig } from "../../configs/load.js";
import type { RunConfig } from "../../configs/schema.js";
import { setBackend } from "../../core/backend.js";
import { makeShapesData } from "../../data/make_data.js";
import { makeTiny } from "../../models/make_tiny.js";
import { listCheckpoints, resolveCheckpoint } from "../../train/checkpoint.js";
import { NonFiniteError, train } from "../../train/recipe.js";
import { cleanup, setup } from "../../train/setup.js";
import { repoRoot } from "../helpers.js";

let tmp = "";

before(async () => {
  await setBackend("wasm", { quiet: true });
  tmp = await mkdtemp(path.join(tmpdir(), "vzt-recipe-"));
  await makeTiny(path.join(tmp, "tiny"), { seed: 0 });
  await makeShapesData({ out: path.join(tmp, "shapes"), seed: 0, train: 16, evalVqa: 4, evalPope: 4 });
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function rawConfig(out: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, Record<string, unknown> | string | number> = {
    output_dir: path.join(tmp, out),
    seed: 0,
    model: { llava: path.join(tmp, "tiny/llava"), projector: null },
    reducer: { name: "visionzip", dominant: 54, contextual: 10 },
    data: { train: path.join(tmp, "shapes/train"), max_length: 256, prefetch: 1 },
    train: { max_steps: 6, micro_batch_size: 2, global_batch_size: 4 },
    optimizer: { lr: 2e-3 },
    schedule: { name: "cosine", warmup_steps: 0 },
    checkpoint: { every_steps: 2, keep_last: 2 },
    logging: { every_steps: 1, tensorboard: true, progress: "off" },
    runtime: { backend: "wasm" },
  };
  for (const [k, v] of Object.entries(overrides)) {
    const [section, key] = k.split(".") as [string, string | undefined];
    if (key === undefined) base[section] = v as never;
    else (base[section] as Record<string, unknown>)[key] = v;
  }
  return base;
}

const config = (out: string, overrides: Record<string, unknown> = {}): RunConfig => configFromObject(rawConfig(out, overrides), { purpose: "train" });

async function runAll(cfg: RunConfig, opts: { resume?: string; stopAt?: number } = {}) {
  const run = await setup(cfg, { resume: opts.resume, quiet: true });
  try {
    return await train(run, { stopAt: opts.stopAt });
  } finally {
    await cleanup(run);
  }
}

const projectorBytes = async (dir: string) => readFile(path.join(dir, "projector.safetensors"));

test("training on a fixed batch lowers the loss clearly, with no tensor growth across steps", async () => {
  const cfg = config("overfit", { "train.max_steps": 10, "train.micro_batch_size": 4, "data.shuffle": false, "optimizer.lr": 3e-3, "checkpoint.every_steps": null });
  // 16 rows, global batch 4, no shuffle: the run cycles over the same four batches.
  const r = await runAll(cfg);
  assert.equal(r.steps, 10);
  const first = (r.losses[0]! + r.losses[1]! + r.losses[2]! + r.losses[3]!) / 4;
  const last = (r.losses[6]! + r.losses[7]! + r.losses[8]! + r.losses[9]!) / 4;
  assert.ok(last < first - 1, `mean loss of the last pass ${last.toFixed(3)} should be well below the first ${first.toFixed(3)}`);
  assert.ok(r.numTensors.every((n) => n === r.numTensors[0]), `tensor count per step: ${r.numTensors.join(", ")}`);
  // Logs: metrics.jsonl has one line per step; the resolved config and a TensorBoard file exist.
  const lines = (await readFile(path.join(cfg.output_dir, "metrics.jsonl"), "utf8")).trim().split("\n");
  assert.equal(lines.length, 10);
  assert.ok(existsSync(path.join(cfg.output_dir, "config.yaml")));
});

test("configs/demo.yaml (the shipped demo recipe) trains a few steps and the loss decreases", async () => {
  const cfg = loadConfig(path.join(repoRoot(), "configs/demo.yaml"), {
    purpose: "train",
    sets: [
      `output_dir=${path.join(tmp, "demo")}`,
      `model.llava=${path.join(tmp, "tiny/llava")}`,
      `model.projector=${path.join(tmp, "tiny/projector")}`,
      `data.train=${path.join(tmp, "shapes/train")}`,
      "train.max_steps=6",
      "logging.progress=off",
      // The demo's evaluations during training read checkpoints/shapes (test/eval/training_eval.test.ts covers them).
      "data.eval=null",
      "train.eval_every_steps=null",
      "train.eval_on_start=false",
      "eval.benchmarks=[]",
    ],
  });
  const r = await runAll(cfg);
  assert.equal(r.steps, 6);
  const first = (r.losses[0]! + r.losses[1]!) / 2;
  const last = (r.losses[4]! + r.losses[5]!) / 2;
  assert.ok(last < first, `losses ${r.losses.map((l) => l.toFixed(3)).join(", ")}`);
});

test("stop at step 3 + resume latest == an uninterrupted run: same losses, identical projector bytes", async () => {
  const full = await runAll(config("full"));
  const part = config("parted", { "checkpoint.every_steps": 3 });
  const a = await runAll(part, { stopAt: 3 });
  const b = await runAll(part, { resume: "latest" });
  assert.deepEqual([...a.losses, ...b.losses], full.losses);
  const fullDir = await resolveCheckpoint("latest", path.join(tmp, "full"));
  const partDir = await resolveCheckpoint("latest", path.join(tmp, "parted"));
  assert.ok((await projectorBytes(fullDir!)).equals(await projectorBytes(partDir!)));
  assert.ok((await readFile(path.join(fullDir!, "optimizer.safetensors"))).equals(await readFile(path.join(partDir!, "optimizer.safetensors"))));
});

test("resuming with a changed config is refused, naming the keys", async () => {
  const cfg = config("changed");
  await runAll(cfg, { stopAt: 2 });
  const changed = config("changed", { "optimizer.lr": 1e-3 });
  await assert.rejects(setup(changed, { resume: "latest", quiet: true }), /optimizer\.lr/);
});

test("the feature cache gives the same losses as computing features, and hits on a second run", async () => {
  const plain = await runAll(config("nocache", { "train.max_steps": 4 }));
  const cached1 = await runAll(config("cache1", { "train.max_steps": 4, "train.feature_cache": path.join(tmp, "fc") }));
  const cached2 = await runAll(config("cache2", { "train.max_steps": 4, "train.feature_cache": path.join(tmp, "fc") }));
  assert.ok(cached1.featureCache!.misses > 0);
  assert.equal(cached2.featureCache!.misses, 0, "the second run computes no features");
  assert.ok(cached2.featureCache!.hits > 0);
  for (const [i, l] of plain.losses.entries()) {
    assert.ok(Math.abs(cached1.losses[i]! - l) < 1e-5, `step ${i + 1}: ${cached1.losses[i]} vs ${l}`);
    assert.ok(Math.abs(cached2.losses[i]! - l) < 1e-5, `step ${i + 1}: ${cached2.losses[i]} vs ${l}`);
  }
});

test("a non-finite loss stops the run, names the step and batch, and leaves the last checkpoint as latest", async () => {
  const cfg = config("nan", { "optimizer.lr": 1e30, "train.max_grad_norm": null, "checkpoint.every_steps": 1 });
  await assert.rejects(runAll(cfg), (e: unknown) => {
    assert.ok(e instanceof NonFiniteError, String(e));
    assert.match(e.message, /step \d+: (loss|gradient norm).*not finite.*Batch ids: \S+/);
    return true;
  });
  const cks = await listCheckpoints(cfg.output_dir);
  assert.ok(cks.length >= 1, "the good steps before the blow-up were checkpointed");
  const latest = await resolveCheckpoint("latest", cfg.output_dir);
  const state = JSON.parse(await readFile(path.join(latest!, "train_state.json"), "utf8")) as { metrics: { loss: number } };
  assert.ok(Number.isFinite(state.metrics.loss));
});

test("SIGKILL at random moments, 20 times: --resume latest always loads a complete checkpoint and ends equal to an uninterrupted run", { timeout: 300_000 }, async () => {
  const raw = rawConfig("killed", { "train.max_steps": 6, "train.global_batch_size": 2, "checkpoint.every_steps": 1, "checkpoint.keep_last": 2 });
  const ref = await runAll(configFromObject({ ...raw, output_dir: path.join(tmp, "unkilled") }, { purpose: "train" }));
  assert.equal(ref.steps, 6);
  const file = path.join(tmp, "killed.yaml");
  await writeFile(file, stringify(raw));
  const cli = path.join(repoRoot(), "dist/cli.js");
  const out = path.join(tmp, "killed");
  let seed = 7;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const hasCheckpoint = async () => existsSync(out) && (await resolveCheckpoint("latest", out)) !== undefined;
  const runChild = async (killAfterMs?: number) => {
    const args = [cli, "train", "--config", file];
    if (await hasCheckpoint()) args.push("--resume", "latest");
    return new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, VZT_BACKEND: "wasm" } });
      let err = "";
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), killAfterMs);
      child.on("exit", (code, signal) => {
        if (timer) clearTimeout(timer);
        if (code !== 0 && signal !== "SIGKILL") assert.fail(`child failed (${code}): ${err}`);
        resolve(code);
      });
    });
  };
  let kills = 0;
  while (kills < 20) {
    const code = await runChild(300 + rand() * 2500);
    if (code === 0) await rm(out, { recursive: true, force: true }); // finished before the kill: start over
    else kills++;
    if (await hasCheckpoint()) {
      // latest is complete: its files verify against the COMPLETE marker and its state parses.
      const dir = (await resolveCheckpoint("latest", out))!;
      const state = JSON.parse(await readFile(path.join(dir, "train_state.json"), "utf8")) as { step: number };
      assert.match(dir, new RegExp(`step_${String(state.step).padStart(6, "0")}$`));
    }
  }
  assert.equal(await runChild(), 0);
  const finalDir = await resolveCheckpoint("latest", out);
  const refDir = await resolveCheckpoint("latest", path.join(tmp, "unkilled"));
  assert.match(finalDir!, /step_000006$/);
  assert.ok((await projectorBytes(finalDir!)).equals(await projectorBytes(refDir!)), "final projector bytes equal the uninterrupted run's");
});
