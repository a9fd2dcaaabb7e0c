// Checkpoints: byte-identical save -> load round trips (tensors, optimizer step, train state) on wasm and cpu; the
// LLaVA names and PyTorch layout on disk; `latest` = newest complete folder, ignoring partial temp folders and folders
// without a valid COMPLETE marker; stale temp folders cleaned; keep_last prunes only after the new save is complete;
// a failure in the middle of a save leaves the previous checkpoint latest and intact; 20 SIGKILLs of a child that
// saves in a loop each leave a complete checkpoint whose tensors match its step; resume config check.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tf, setBackend } from "../../core/backend.js";
import { ConfigError } from "../../core/errors.js";
import { createRng } from "../../core/rng.js";
import { buildProjector, projectorTensors } from "../../models/projector.js";
import { readHeader } from "../../models/safetensors.js";
import { AdamW } from "../../train/optimizer.js";
import {
  assignProjector, checkResumeConfig, cleanStaleCheckpoints, diffJson, listCheckpoints, loadCheckpoint, resolveCheckpoint,
  saveCheckpoint, stepDirName, type CheckpointPayload, type TrainStateInput,
} from "../../train/checkpoint.js";

const tmp = (): Promise<string> => mkdtemp(path.join(tmpdir(), "vzt-ckpt-"));

function stateFor(step: number): TrainStateInput {
  const rng = createRng(1000 + step);
  rng.normal(); // leaves a pending Box-Muller spare in the state
  return {
    epoch: 2,
    dataCursor: { shard: 1, batch: 3, row: step, order: [3, 1, 2] },
    rng: { shuffle: rng.getState(), reducer: createRng(7).getState() },
    configHash: "abc123",
    config: { optimizer: { lr: 1e-3 }, data: { train: ["a.arrow"] } },
    metrics: { loss: 1.25 + step, lr: 1e-3 },
    projector: { type: "mlp2x_gelu", inDim: 8, outDim: 6 },
    reducer: { name: "visionzip", dominant: 54, contextual: 10, budget: 64, keep_cls: true },
    models: { llava: null, visionTower: "openai/clip-vit-large-patch14-336", llm: "lmsys/vicuna-7b-v1.5", projector: null },
  };
}

/** Tensors filled with `step` (projector in LLaVA names, [out, in]), for the simple tests. */
function filled(step: number): CheckpointPayload {
  return {
    step,
    projectorTensors: {
      "model.mm_projector.0.weight": tf.fill([6, 8], step),
      "model.mm_projector.0.bias": tf.fill([6], step),
      "model.mm_projector.2.weight": tf.fill([6, 6], step),
      "model.mm_projector.2.bias": tf.fill([6], step),
    },
    optimizerTensors: { "linear_1.kernel.exp_avg": tf.fill([8, 6], -step) },
    state: stateFor(step),
  };
}

function disposePayload(p: CheckpointPayload): void {
  for (const t of [...Object.values(p.projectorTensors), ...Object.values(p.optimizerTensors)]) t.dispose();
}

async function save(out: string, step: number, opts: Parameters<typeof saveCheckpoint>[2] = {}): Promise<void> {
  const p = filled(step);
  try {
    await saveCheckpoint(out, p, opts);
  } finally {
    disposePayload(p);
  }
}

/** The step a loaded checkpoint's tensors hold (asserts every element of every tensor is that value). */
async function filledStep(projector: Map<string, tf.Tensor>): Promise<number> {
  const values = new Set<number>();
  for (const t of projector.values()) for (const v of await t.data()) values.add(v);
  assert.equal(values.size, 1, `tensors hold several values: ${[...values].slice(0, 5).join(", ")}`);
  return [...values][0]!;
}

async function bytesOf(t: tf.Tensor): Promise<Buffer> {
  const d = await t.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

function disposeLoaded(c: { projector: Map<string, tf.Tensor>; optimizer: Map<string, tf.Tensor> }): void {
  for (const t of [...c.projector.values(), ...c.optimizer.values()]) t.dispose();
}

/** A pid that is not running: a child that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["-e", "0"]);
  assert.ok(r.pid);
  return r.pid!;
}

for (const backend of ["wasm", "cpu"] as const) {
  test(`save -> load round trip is byte-identical: projector, optimizer moments and step, train state (${backend})`, async () => {
    await setBackend(backend, { quiet: true });
    const out = await tmp();
    try {
      const before = tf.memory().numTensors;
      const p = buildProjector({ type: "mlp2x_gelu", inDim: 8, outDim: 6, seed: 3 });
      const opt = new AdamW(p.variables, { weightDecay: 0.1 });
      for (let k = 0; k < 2; k++) {
        const grads = tf.tidy(() => Object.fromEntries(Object.entries(p.variables).map(([n, v]) => [n, tf.sin(tf.mul(v, 7 + k))])));
        opt.step(grads, 1e-2);
        for (const g of Object.values(grads)) g.dispose();
      }
      const proj = projectorTensors(p, "llava");
      // Awkward float32 values must survive bit for bit: -0, the smallest subnormal, the largest finite, infinities.
      proj["model.mm_projector.0.bias"]!.dispose();
      proj["model.mm_projector.0.bias"] = tf.tensor1d([-0, 1.401298464324817e-45, 3.4028234663852886e38, -Infinity, Infinity, 1 / 3]);
      const ostate = opt.state();
      const state = stateFor(12);
      await saveCheckpoint(out, { step: 12, projectorTensors: proj, optimizerTensors: ostate.tensors, optimizerStep: ostate.step, state }, { keepLast: 2 });

      const dir = path.join(out, "step_000012");
      assert.deepEqual((await readdir(dir)).sort(), ["COMPLETE", "optimizer.safetensors", "projector.safetensors", "train_state.json"]);
      assert.deepEqual(await readdir(out), ["step_000012"], "no temp folder left behind");
      // LLaVA names, PyTorch [out, in] layout.
      const h = await readHeader(path.join(dir, "projector.safetensors"));
      assert.deepEqual([...h.tensors.keys()].sort(), ["model.mm_projector.0.bias", "model.mm_projector.0.weight", "model.mm_projector.2.bias", "model.mm_projector.2.weight"]);
      assert.deepEqual(h.tensors.get("model.mm_projector.0.weight")!.shape, [6, 8]);
      assert.equal((await readHeader(path.join(dir, "optimizer.safetensors"))).metadata.step, "2");
      // COMPLETE's digests are those of the files on disk.
      const marker = JSON.parse(await readFile(path.join(dir, "COMPLETE"), "utf8")) as { step: number; files: Record<string, { bytes: number; sha256: string }> };
      assert.equal(marker.step, 12);
      for (const [f, info] of Object.entries(marker.files)) {
        const data = await readFile(path.join(dir, f));
        assert.equal(info.bytes, data.length, f);
        assert.equal(info.sha256, createHash("sha256").update(data).digest("hex"), f);
      }

      const c = await loadCheckpoint("latest", out);
      assert.equal(c.dir, dir);
      assert.equal(c.step, 12);
      assert.equal(c.optimizerStep, 2);
      assert.deepEqual([...c.projector.keys()].sort(), Object.keys(proj).sort());
      for (const [n, t] of Object.entries(proj)) assert.ok((await bytesOf(c.projector.get(n)!)).equals(await bytesOf(t)), `projector ${n}`);
      assert.deepEqual([...c.optimizer.keys()].sort(), Object.keys(ostate.tensors).sort());
      for (const [n, t] of Object.entries(ostate.tensors)) assert.ok((await bytesOf(c.optimizer.get(n)!)).equals(await bytesOf(t)), `optimizer ${n}`);
      const { versions, time, step, ...rest } = c.state;
      assert.equal(step, 12);
      assert.deepEqual(rest, state);
      assert.equal(versions.node, process.version);
      assert.equal(versions.backend, backend);
      assert.match(versions.package, /^\d+\.\d+\.\d+/);
      assert.match(versions.tfjs, /^4\./);
      assert.ok(Number.isFinite(Date.parse(time)));
      // RNG resumes where it was: the pending spare and the stream.
      const resumed = createRng(0);
      resumed.setState(c.state.rng.shuffle!);
      const orig = createRng(1000 + 12);
      orig.normal();
      assert.equal(resumed.normal(), orig.normal());
      assert.equal(resumed.nextUint32(), orig.nextUint32());

      // Saving the loaded tensors again gives the same file bytes.
      const again = path.join(out, "again");
      await saveCheckpoint(again, { step: 12, projectorTensors: Object.fromEntries(c.projector), optimizerTensors: Object.fromEntries(c.optimizer), optimizerStep: c.optimizerStep, state: c.state });
      for (const f of ["projector.safetensors", "optimizer.safetensors", "train_state.json"]) {
        assert.ok((await readFile(path.join(again, "step_000012", f))).equals(await readFile(path.join(dir, f))), f);
      }
      // Back into live variables (opt state too): the projector and AdamW state equal the saved ones exactly.
      const q = buildProjector({ type: "mlp2x_gelu", inDim: 8, outDim: 6, seed: 99 });
      const opt2 = new AdamW(q.variables);
      assignProjector(q, c.projector);
      opt2.loadState({ step: c.optimizerStep, tensors: Object.fromEntries(c.optimizer) });
      for (const [n, v] of Object.entries(p.variables)) {
        if (n === "linear_1.bias") continue; // replaced by the awkward values above
        assert.ok((await bytesOf(q.variables[n]!)).equals(await bytesOf(v)), `variable ${n}`);
      }
      assert.ok((await bytesOf(q.variables["linear_1.bias"]!)).equals(await bytesOf(proj["model.mm_projector.0.bias"]!)));
      const s2 = opt2.state();
      for (const [n, t] of Object.entries(ostate.tensors)) assert.ok((await bytesOf(s2.tensors[n]!)).equals(await bytesOf(t)), `moment ${n}`);
      assert.equal(s2.step, 2);
      for (const t of [...Object.values(s2.tensors), ...Object.values(ostate.tensors), ...Object.values(proj)]) t.dispose();
      disposeLoaded(c);
      opt.dispose();
      opt2.dispose();
      p.dispose();
      q.dispose();
      assert.equal(tf.memory().numTensors, before, "no tensors left behind");
      // A missing or mis-shaped projector tensor is named.
      const bad = new Map([["model.mm_projector.0.weight", tf.zeros([8, 6])]]);
      const r = buildProjector({ type: "mlp2x_gelu", inDim: 8, outDim: 6, seed: 1 });
      assert.throws(() => assignProjector(r, bad), /"model\.mm_projector\.0\.weight" has shape \[8,6\], expected \[6,8\].*"model\.mm_projector\.0\.bias" is missing/);
      r.dispose();
      bad.get("model.mm_projector.0.weight")!.dispose();
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
}

test("latest is the newest complete folder; partial temp folders and folders without COMPLETE are ignored, stale temps cleaned", async () => {
  await setBackend("wasm", { quiet: true });
  const out = await tmp();
  try {
    assert.equal(await resolveCheckpoint("latest", out), undefined);
    await assert.rejects(loadCheckpoint("latest", out), /no complete checkpoint/);
    await save(out, 5);
    await save(out, 2); // saved later, but a lower step
    await save(out, 7);
    assert.equal(await resolveCheckpoint("latest", out), path.join(out, "step_000007"));

    // A step_000008 whose marker lists a truncated file.
    await save(out, 8);
    await truncate(path.join(out, "step_000008", "optimizer.safetensors"), 40);
    // A crashed save of step 9 (half its files, dead pid) and a step_000010 copied without its marker.
    const dead = deadPid();
    const staleTmp = path.join(out, `.tmp-step_000009-${dead}`);
    await mkdir(staleTmp);
    await copyFile(path.join(out, "step_000007", "projector.safetensors"), path.join(staleTmp, "projector.safetensors"));
    const liveTmp = path.join(out, `.tmp-step_000011-${process.ppid}`); // a live pid: another run's save in progress
    await mkdir(liveTmp);
    const noMarker = path.join(out, "step_000010");
    await mkdir(noMarker);
    for (const f of ["projector.safetensors", "optimizer.safetensors", "train_state.json"]) await copyFile(path.join(out, "step_000007", f), path.join(noMarker, f));

    assert.equal(await resolveCheckpoint("latest", out), path.join(out, "step_000007"));
    const c = await loadCheckpoint("latest", out);
    assert.equal(c.step, 7);
    assert.equal(await filledStep(c.projector), 7);
    disposeLoaded(c);
    const list = await listCheckpoints(out);
    assert.deepEqual(list.map((x) => [x.step, x.complete]), [[2, true], [5, true], [7, true], [8, false], [10, false]]);
    assert.match(list[3]!.problem!, /optimizer\.safetensors has 40 bytes, COMPLETE says \d+/);
    assert.match(list[4]!.problem!, /no COMPLETE marker/);
    // Named explicitly, an incomplete folder is an error, never silently replaced by another.
    await assert.rejects(resolveCheckpoint(noMarker), /not complete: no COMPLETE marker/);
    await assert.rejects(resolveCheckpoint("step_000008", out), /not complete: optimizer\.safetensors has 40 bytes/);
    await assert.rejects(resolveCheckpoint(path.join(out, "step_000099")), /no such folder/);
    // An output folder given as the checkpoint means its latest; a relative step name is found in outputDir.
    assert.equal(await resolveCheckpoint(out), path.join(out, "step_000007"));
    assert.equal(await resolveCheckpoint(path.join(out, "latest")), path.join(out, "step_000007")); // "<run>/latest"
    assert.equal(await resolveCheckpoint("step_000005", out), path.join(out, "step_000005"));
    // Same size, flipped byte: listed complete (sizes only), but loading checks the sha256 and names the file.
    const f5 = path.join(out, "step_000005", "projector.safetensors");
    const bytes = await readFile(f5);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x40;
    await writeFile(f5, bytes);
    await assert.rejects(loadCheckpoint("step_000005", out), /step_000005: projector\.safetensors is corrupt \(sha256/);

    // Cleaning removes the dead run's temp folder only.
    const cleaned = await cleanStaleCheckpoints(out);
    assert.deepEqual(cleaned, [staleTmp]);
    assert.ok(!existsSync(staleTmp) && existsSync(liveTmp));
    // Saving step 10 replaces the marker-less folder; it becomes latest.
    await save(out, 10);
    const c10 = await loadCheckpoint("latest", out);
    assert.equal(c10.step, 10);
    assert.equal(await filledStep(c10.projector), 10);
    disposeLoaded(c10);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("keep_last prunes the oldest only after the new checkpoint is complete; a failed save leaves the previous one latest and intact", async () => {
  await setBackend("wasm", { quiet: true });
  const out = await tmp();
  const steps = async () => (await listCheckpoints(out)).filter((c) => c.complete).map((c) => c.step);
  try {
    for (const s of [1, 2, 3]) await save(out, s, { keepLast: 2 });
    assert.deepEqual(await steps(), [2, 3]);
    // During the save of step 4 (after each file, COMPLETE and the rename) both old ones are still there.
    const seen: string[] = [];
    await save(out, 4, {
      keepLast: 2,
      afterWrite: async (what) => {
        seen.push(what);
        assert.deepEqual(await steps(), what === "rename" ? [2, 3, 4] : [2, 3], `after ${what}`);
        assert.equal(await resolveCheckpoint("latest", out), path.join(out, what === "rename" ? "step_000004" : "step_000003"));
      },
    });
    assert.deepEqual(seen, ["projector.safetensors", "optimizer.safetensors", "train_state.json", "COMPLETE", "rename"]);
    assert.deepEqual(await steps(), [3, 4]);

    // keepLast 1 and a failure right after projector.safetensors: step 4 stays latest and whole, nothing pruned.
    await assert.rejects(
      save(out, 5, {
        keepLast: 1,
        afterWrite: (what) => {
          if (what === "projector.safetensors") throw new Error("injected crash");
        },
      }),
      /injected crash/,
    );
    assert.deepEqual(await steps(), [3, 4]);
    assert.deepEqual((await readdir(out)).sort(), ["step_000003", "step_000004"], "the failed save's temp folder is gone");
    const c = await loadCheckpoint("latest", out);
    assert.equal(c.step, 4);
    assert.equal(await filledStep(c.projector), 4);
    assert.equal(c.state.dataCursor && (c.state.dataCursor as { row: number }).row, 4);
    disposeLoaded(c);
    await save(out, 5, { keepLast: 1 });
    assert.deepEqual(await steps(), [5]);

    // Saving an existing step replaces it whole; a crash inside the replace is recovered by the next cleaning.
    const p = filled(5);
    p.projectorTensors["model.mm_projector.0.bias"]!.dispose();
    p.projectorTensors["model.mm_projector.0.bias"] = tf.fill([6], 55);
    await saveCheckpoint(out, p, { keepLast: 1 });
    disposePayload(p);
    assert.deepEqual(await readdir(out), ["step_000005"]);
    const c5 = await loadCheckpoint("latest", out);
    assert.deepEqual([...(await c5.projector.get("model.mm_projector.0.bias")!.data())], [55, 55, 55, 55, 55, 55]);
    disposeLoaded(c5);
    const dead = deadPid();
    const { rename } = await import("node:fs/promises");
    await rename(path.join(out, "step_000005"), path.join(out, `.old-step_000005-${dead}`)); // as if killed between the renames
    assert.equal(await resolveCheckpoint("latest", out), undefined);
    await cleanStaleCheckpoints(out);
    assert.deepEqual(await readdir(out), ["step_000005"]);
    assert.equal(await resolveCheckpoint("latest", out), path.join(out, "step_000005"));
    await assert.rejects(save(out, 6, { keepLast: 0 }), /keepLast must be an integer >= 1 or null/);
    const bad = filled(6);
    await assert.rejects(saveCheckpoint(out, { ...bad, state: { ...bad.state, step: 7 } }), /state\.step 7 differs from step 6/);
    disposePayload(bad);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("20 SIGKILLs of a child saving in a loop: latest always loads whole, with tensors equal to its step", async () => {
  const out = await tmp();
  const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "checkpoint_child.js");
  const rng = createRng(20240607);
  let last = 0;
  let stale = 0;
  try {
    await setBackend("wasm", { quiet: true });
    for (let k = 0; k < 20; k++) {
      const proc = spawn(process.execPath, [child, out], { stdio: ["ignore", "pipe", "inherit"] });
      let text = "";
      const exited = new Promise<void>((resolve) => proc.on("exit", () => resolve()));
      // Kill at a random moment after the child has saved at least one checkpoint in this run.
      await new Promise<void>((resolve, reject) => {
        proc.stdout.on("data", (d: Buffer) => {
          text += d.toString();
          if (/saved \d+/.test(text)) resolve();
        });
        void exited.then(() => reject(new Error(`child exited early: ${text}`)));
      });
      await new Promise((r) => setTimeout(r, rng.nextInt(120)));
      proc.kill("SIGKILL");
      await exited;
      stale += (await readdir(out)).filter((n) => n.startsWith(".tmp-")).length;
      const dir = await resolveCheckpoint("latest", out);
      assert.ok(dir, `kill ${k}: no complete checkpoint`);
      const c = await loadCheckpoint(dir);
      const step = await filledStep(c.projector);
      assert.equal(c.step, step, `kill ${k}: folder step vs tensors`);
      assert.equal(c.state.step, step);
      assert.deepEqual(c.state.dataCursor, { row: step * 10 });
      const opt = c.optimizer.get("linear_1.kernel.exp_avg_sq")!;
      assert.equal((await opt.data()).every((v) => v === 3 * step), true, `kill ${k}: optimizer tensor vs step`);
      assert.ok(step >= last, `kill ${k}: latest went back from ${last} to ${step}`);
      const savedHere = [...text.matchAll(/saved (\d+)/g)].map((m) => Number(m[1]));
      assert.ok(step >= savedHere[savedHere.length - 1]!, `kill ${k}: step ${savedHere.at(-1)} was reported saved but latest is ${step}`);
      last = step;
      disposeLoaded(c);
      const complete = (await listCheckpoints(out)).filter((x) => x.complete).length;
      assert.ok(complete >= 1 && complete <= 4, `kill ${k}: ${complete} complete checkpoints with keepLast 3`);
    }
    assert.ok(last >= 20, `only ${last} steps saved over 20 runs`);
    process.stderr.write(`# SIGKILL test: ${last} steps, ${stale} stale temp folders seen after kills\n`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test("checkResumeConfig: equal hashes pass; changed keys are named with both values; force warns; ignore and custom diff", () => {
  const saved = { model: { llm: "a" }, optimizer: { lr: 1e-3, betas: [0.9, 0.999] }, train: { max_steps: 100 }, data: { train: ["x.arrow"] } };
  const same = structuredClone(saved);
  assert.deepEqual(checkResumeConfig("h1", saved, same, { currentHash: "h1" }), []);
  assert.deepEqual(checkResumeConfig("h1", saved, same), []);
  const changed = { ...structuredClone(saved), optimizer: { lr: 2e-3, betas: [0.9, 0.95] }, train: { max_steps: 200 }, extra: true };
  assert.throws(
    () => checkResumeConfig("h1", saved, changed, { currentHash: "h2" }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /extra: checkpoint has \(absent\), the config now has true/.test(e.message) &&
      /optimizer\.betas\[1\]: checkpoint has 0\.999, the config now has 0\.95/.test(e.message) &&
      /optimizer\.lr: checkpoint has 0\.001, the config now has 0\.002/.test(e.message) &&
      /train\.max_steps/.test(e.message) &&
      !/model\.llm/.test(e.message),
  );
  const forced = checkResumeConfig("h1", saved, changed, { force: true, ignore: ["train.max_steps"] });
  assert.deepEqual(forced.map((d) => d.key), ["extra", "optimizer.betas[1]", "optimizer.lr"]);
  assert.throws(() => checkResumeConfig("h1", undefined, undefined, { currentHash: "h2" }), /config hash h2 differs from the checkpoint's h1/);
  const custom = () => [{ key: "from.custom", saved: 1, current: 2 }];
  assert.throws(() => checkResumeConfig("h1", saved, same, { diff: custom }), /from\.custom: checkpoint has 1, the config now has 2/);
  assert.deepEqual(diffJson({ a: [1, 2] }, { a: [1] }), [{ key: "a", saved: [1, 2], current: [1] }]);
  assert.equal(stepDirName(7), "step_000007");
  assert.equal(stepDirName(1234567), "step_1234567");
});
