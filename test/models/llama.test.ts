// LLaMA-family LLM against the golden llama_tiny vectors (karpathy/llama2.c reference), plus invariants: cached
// decoding = recomputation, left padding, EOS, Qwen2 / composite LLaVA layouts, weight-map errors, no tensor leaks.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { loadLanguageModel, type LanguageModel } from "../../models/llama.js";
import { parseLlmConfig, readLlmConfig } from "../../models/llm_config.js";
import { llmComponent } from "../../models/llama_weights.js";
import { classifyNames } from "../../models/weights.js";
import { readSafetensors, writeSafetensors } from "../../models/safetensors.js";

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error("package.json not found above the test file");
    dir = up;
  }
  return dir;
}
const GOLDEN = path.resolve(repoRoot(), "../shared/golden");
const MODEL = path.join(GOLDEN, "models/llama_tiny");
const VEC = path.join(GOLDEN, "models/vectors/llama_tiny");
const REAL = path.join(GOLDEN, "real/models");

interface Vec {
  shape: number[];
  data: Float32Array | Int32Array;
}
function vec(name: string): Vec {
  const j = JSON.parse(readFileSync(path.join(VEC, name + ".json"), "utf8")) as { shape: number[]; dtype: string; data: number[] };
  return { shape: j.shape, data: j.dtype === "int32" ? Int32Array.from(j.data) : Float32Array.from(j.data) };
}
function rows(v: Vec): number[][] {
  const [B, T] = v.shape as [number, number];
  return Array.from({ length: B }, (_, b) => Array.from(v.data.subarray(b * T, (b + 1) * T)));
}
function ids2d(v: Vec): tf.Tensor2D {
  return tf.tensor2d(v.data as Int32Array, v.shape as [number, number], "int32");
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "lengths differ");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
function assertClose(t: tf.Tensor, want: Vec | tf.Tensor, tol: number, what: string): void {
  const wantShape = want instanceof tf.Tensor ? want.shape : want.shape;
  const wantData = want instanceof tf.Tensor ? want.dataSync() : want.data;
  assert.deepEqual(t.shape, wantShape, `${what}: shape`);
  const d = maxDiff(t.dataSync(), wantData);
  assert.ok(d <= tol, `${what}: max abs diff ${d.toExponential(3)} > ${tol}`);
}

/** A model folder in a temp dir: config.json + model.safetensors built from llama_tiny's tensors. */
async function makeFolder(root: string, name: string, config: Record<string, unknown>, edit: (t: Record<string, tf.Tensor>) => Record<string, tf.Tensor>): Promise<string> {
  const dir = path.join(root, name);
  await mkdir(dir, { recursive: true });
  const base = await readSafetensors(path.join(MODEL, "model.safetensors"));
  const tensors = edit(Object.fromEntries(base));
  await writeFile(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  await writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  tf.dispose([...base.values(), ...Object.values(tensors)]);
  return dir;
}
const BASE_CONFIG = JSON.parse(readFileSync(path.join(MODEL, "config.json"), "utf8")) as Record<string, unknown>;

// ---------------------------------------------------------------- config and weight-map checks (no backend math)

test("config: real llava-hf config takes HF LlamaConfig defaults for omitted text_config keys", async () => {
  const c = await readLlmConfig(path.join(REAL, "llava-hf_llava-1.5-7b-hf"));
  assert.equal(c.family, "llama");
  assert.equal(c.modelType, "llava");
  assert.equal(c.weightPrefix, "language_model.");
  assert.deepEqual(
    [c.hidden, c.layers, c.heads, c.kvHeads, c.headDim, c.intermediate, c.vocab, c.ropeTheta, c.eps, c.maxPositions, c.tieEmbeddings],
    [4096, 32, 32, 32, 128, 11008, 32064, 10000, 1e-5, 4096, false],
  );
  assert.equal(c.bosTokenId, 1);
  assert.deepEqual(c.eosTokenIds, [2]);
  assert.equal(c.padTokenId, 32001);
});

test("config: real Qwen2.5 config (tied, 2 KV heads, theta 1e6) and the original flat LLaVA config", async () => {
  const q = await readLlmConfig(path.join(REAL, "qwen2.5-0.5b-instruct_resaved"));
  assert.deepEqual([q.family, q.hidden, q.heads, q.kvHeads, q.headDim, q.ropeTheta, q.tieEmbeddings, q.qkvBias, q.oBias], ["qwen2", 896, 14, 2, 64, 1e6, true, true, false]);
  assert.deepEqual(q.eosTokenIds, [151645]);
  const l = await readLlmConfig(path.join(REAL, "liuhaotian_llava-v1.5-7b"));
  assert.deepEqual([l.family, l.weightPrefix, l.hidden, l.layers, l.vocab, l.eps], ["llama", "", 4096, 32, 32000, 1e-5]);
});

test("config: unsupported rope_scaling and model_type are errors naming the key", () => {
  assert.throws(() => parseLlmConfig({ ...BASE_CONFIG, rope_scaling: { type: "dynamic", factor: 2 } }, "x/config.json"), /rope_scaling.*"dynamic"/);
  assert.throws(() => parseLlmConfig({ ...BASE_CONFIG, rope_scaling: { rope_type: "llama3", factor: 8 } }), /rope_scaling.*"llama3"/);
  assert.throws(() => parseLlmConfig({ ...BASE_CONFIG, model_type: "mistral" }), /model_type: "mistral"/);
  assert.throws(() => parseLlmConfig({ model_type: "llava", text_config: { model_type: "llama", rope_scaling: { type: "yarn" } } }), /text_config\.rope_scaling/);
  assert.deepEqual(parseLlmConfig({ ...BASE_CONFIG, rope_scaling: { type: "linear", factor: 2 } }).ropeScaling, { type: "linear", factor: 2 });
});

test("weight map: every LLM tensor of the real llava-hf index is mapped; vision/projector tensors are not the LLM's", async () => {
  const dir = path.join(REAL, "llava-hf_llava-1.5-7b-hf");
  const names = Object.keys((JSON.parse(readFileSync(path.join(dir, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> }).weight_map);
  const cls = classifyNames(names, [llmComponent(await readLlmConfig(dir))]);
  const mapped = [...cls.values()].filter((s) => s.status === "mapped").length;
  assert.equal(mapped, 291);
  for (const [n, s] of cls) assert.equal(s.status === "mapped", n.startsWith("language_model."), n);
  assert.deepEqual(cls.get("language_model.model.layers.31.self_attn.k_proj.weight"), { status: "mapped", component: "llama", ours: "layers.31.k.weight" });
});

// ---------------------------------------------------------------- numerics, on both backends

for (const backend of ["wasm", "cpu"] as const) {
  describe(`llama_tiny on ${backend}`, () => {
    let lm: LanguageModel;
    let tmp: string;
    before(async () => {
      await setBackend(backend, { quiet: true });
      lm = await loadLanguageModel(MODEL);
      tmp = await mkdtemp(path.join(os.tmpdir(), "vzt-llama-"));
    });
    after(async () => {
      lm.dispose();
      await rm(tmp, { recursive: true, force: true });
    });

    test("config", () => {
      const c = lm.config;
      assert.deepEqual([c.family, c.hidden, c.layers, c.heads, c.kvHeads, c.headDim, c.intermediate, c.vocab, c.ropeTheta, c.eps], ["llama", 64, 3, 4, 2, 16, 160, 97, 10000, 1e-6]);
      assert.equal(c.bosTokenId, 1);
      assert.deepEqual(c.eosTokenIds, [2]);
    });

    test("text: logits and HF-indexed hidden states match the reference (1e-4)", async () => {
      await assertNoTensorLeak("text forward", () => {
        const ids = ids2d(vec("text_input_ids"));
        const out = lm.forward({ inputIds: ids, outputHiddenStates: true });
        assertClose(out.logits, vec("text_logits"), 1e-4, "text_logits");
        assert.equal(out.hiddenStates!.length, 4);
        out.hiddenStates!.forEach((h, i) => assertClose(h, vec(`text_hidden_states_${i}`), 1e-4, `text_hidden_states_${i}`));
        tf.dispose([ids, out.logits, ...out.hiddenStates!]);
      });
    });

    test("inputs_embeds: logits, last hidden state (1e-4) and attention probs of every layer (1e-5)", async () => {
      const embeds = tf.tensor3d(vec("mm_inputs_embeds").data as Float32Array, vec("mm_inputs_embeds").shape as [number, number, number]);
      await assertNoTensorLeak("mm forward", () => {
        const out = lm.forward({ inputsEmbeds: embeds, outputHiddenStates: true, outputAttentions: [0, 1, 2] });
        assertClose(out.logits, vec("mm_logits"), 1e-4, "mm_logits");
        assertClose(out.hiddenStates!.at(-1)!, vec("mm_last_hidden_state"), 1e-4, "mm_last_hidden_state");
        for (const l of [0, 1, 2]) assertClose(out.attentions!.get(l)!, vec(`mm_attn_probs_layer_${l}`), 1e-5, `mm_attn_probs_layer_${l}`);
        tf.dispose([out.logits, ...out.hiddenStates!, ...out.attentions!.values()]);
      });
      assert.ok(!embeds.isDisposed, "the caller's inputsEmbeds stays alive");
      // The mm text tokens are embed_tokens rows: lm.embed gives them.
      const tail = tf.slice(embeds, [0, 5, 0], [2, 7, 64]);
      const e = lm.embed(ids2d(vec("mm_text_ids")));
      assertClose(e, tail, 0, "embed(mm_text_ids)");
      tf.dispose([embeds, tail, e]);
    });

    test("greedy: ids exactly, and per-step logits from prefill + cached single-token steps", async () => {
      const prompt = vec("greedy_prompt_ids");
      const want = rows(vec("greedy_new_ids"));
      const got = await assertNoTensorLeak("generate", () => lm.generate(rows(prompt), { maxNewTokens: 8 }));
      assert.deepEqual(got, want);

      await assertNoTensorLeak("cached steps", () => {
        const cache = lm.newCache();
        const steps: tf.Tensor3D[] = [];
        const ids = ids2d(prompt);
        steps.push(lm.forward({ inputIds: ids, cache, lastLogitsOnly: true }).logits);
        for (let s = 0; s < 7; s++) {
          const tok = tf.tensor2d(want.map((r) => [r[s]!]), [2, 1], "int32");
          steps.push(lm.forward({ inputIds: tok, cache }).logits);
          tok.dispose();
        }
        assert.equal(cache.length(0), 13);
        assert.deepEqual(Array.from(cache.nextPosition!.dataSync()), [13, 13]);
        const all = tf.concat(steps, 1);
        assertClose(all, vec("greedy_step_logits"), 1e-4, "greedy_step_logits");
        tf.dispose([ids, all, ...steps]);
        cache.dispose();
      });
    });

    test("cache: chunked incremental decoding equals full recomputation", async () => {
      await assertNoTensorLeak("incremental", () => {
        const ids = ids2d(vec("text_input_ids"));
        const full = lm.forward({ inputIds: ids }).logits;
        const cache = lm.newCache();
        const parts: tf.Tensor3D[] = [];
        for (const [start, len] of [[0, 5], [5, 3], [8, 1], [9, 1], [10, 2]] as const) {
          const chunk = tf.slice(ids, [0, start], [2, len]);
          // HF-style full-length mask on one chunk, new-tokens-only mask on the others.
          const mask = start === 8 ? tf.ones([2, start + len]) : undefined;
          parts.push(lm.forward({ inputIds: chunk, cache, ...(mask ? { attentionMask: mask as tf.Tensor2D } : {}) }).logits);
          tf.dispose([chunk, ...(mask ? [mask] : [])]);
        }
        const inc = tf.concat(parts, 1);
        assertClose(inc, full, 1e-4, "incremental vs full");
        tf.dispose([ids, full, inc, ...parts]);
        cache.dispose();
      });
    });

    test("left padding: real positions of a padded batch equal each prompt alone; generate too", async () => {
      const text = rows(vec("text_input_ids"));
      const long = text[0]!; // 12 tokens
      const short = text[1]!.slice(0, 7); // 7 tokens, padded on the left with an arbitrary id
      await assertNoTensorLeak("padded forward", () => {
        const ids = tf.tensor2d([long, [...new Array<number>(5).fill(33), ...short]], [2, 12], "int32");
        const mask = tf.tensor2d([new Array<number>(12).fill(1), [...new Array<number>(5).fill(0), ...new Array<number>(7).fill(1)]], [2, 12], "int32");
        const batched = lm.forward({ inputIds: ids, attentionMask: mask }).logits;
        const aloneL = tf.tensor2d([long], [1, 12], "int32");
        const aloneS = tf.tensor2d([short], [1, 7], "int32");
        const l = lm.forward({ inputIds: aloneL }).logits;
        const s = lm.forward({ inputIds: aloneS }).logits;
        const b0 = tf.slice(batched, [0, 0, 0], [1, 12, 97]);
        const b1 = tf.slice(batched, [1, 5, 0], [1, 7, 97]);
        assertClose(b0, l, 1e-4, "row 0");
        assertClose(b1, s, 1e-4, "row 1 (real positions)");
        tf.dispose([ids, mask, batched, aloneL, aloneS, l, s, b0, b1]);
      });
      const batchedGen = await lm.generate([long, short], { maxNewTokens: 5 });
      const aloneGen = [(await lm.generate([long], { maxNewTokens: 5 }))[0], (await lm.generate([short], { maxNewTokens: 5 }))[0]];
      assert.deepEqual(batchedGen, aloneGen);
      // The same batch given with an explicit mask (pads chosen by the caller).
      const explicit = await lm.generate([long, [...new Array<number>(5).fill(90), ...short]], { maxNewTokens: 5, attentionMask: [new Array<number>(12).fill(1), [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]] });
      assert.deepEqual(explicit, aloneGen);
    });

    test("EOS stops a row after the EOS id; other rows go on", async () => {
      const prompt = rows(vec("greedy_prompt_ids"));
      const want = rows(vec("greedy_new_ids")); // row 0: 42 69 72 95 ..., row 1: 50 39 20 18 19 1 19 1
      const eos = want[0]![3]!; // 95, absent from row 1
      assert.ok(!want[1]!.includes(eos) && want[0]!.indexOf(eos) === 3);
      assert.deepEqual(await lm.generate(prompt, { maxNewTokens: 8, eosTokenId: eos }), [want[0]!.slice(0, 4), want[1]]);
      const eos1 = want[1]![4]!; // 19
      assert.deepEqual(await lm.generate(prompt, { maxNewTokens: 8, eosTokenId: [eos, eos1] }), [want[0]!.slice(0, 4), want[1]!.slice(0, 5)]);
    });

    test("qwen2 layout: zero biases + tied embeddings equal llama with lm_head = embed_tokens; non-zero biases differ", async () => {
      const tiedHead = await makeFolder(tmp, "llama_head_is_embed", BASE_CONFIG, (t) => ({ ...t, "lm_head.weight": t["model.embed_tokens.weight"]!.clone() }));
      const qwenConfig = { ...BASE_CONFIG, model_type: "qwen2", architectures: ["Qwen2ForCausalLM"], tie_word_embeddings: true, head_dim: undefined, attention_bias: undefined };
      const withBiases = (scale: number) => (t: Record<string, tf.Tensor>) => {
        const out = { ...t };
        delete out["lm_head.weight"];
        for (let l = 0; l < 3; l++) {
          for (const [p, n] of [["q", 64], ["k", 32], ["v", 32]] as const) {
            out[`model.layers.${l}.self_attn.${p}_proj.bias`] = tf.mul(tf.randomNormal([n], 0, 1, "float32", 7 + l), scale);
          }
        }
        return out;
      };
      const qZero = await makeFolder(tmp, "qwen2_zero", qwenConfig, withBiases(0));
      const qBias = await makeFolder(tmp, "qwen2_bias", qwenConfig, withBiases(0.5));
      const count0 = tf.memory().numTensors;
      const ids = ids2d(vec("text_input_ids"));
      const [a, b, c] = await Promise.all([tiedHead, qZero, qBias].map((d) => loadLanguageModel(d)));
      assert.equal(b!.config.family, "qwen2");
      assert.equal(b!.weights.lmHead, undefined, "tied: no separate lm_head");
      const [la, lb, lc] = [a!, b!, c!].map((m) => m.forward({ inputIds: ids }).logits);
      // 1e-4: tied logits use embed with transposeB, untied a transposed copy, so summation order differs (~1e-5 on wasm).
      assertClose(lb!, la!, 1e-4, "qwen2 zero biases vs llama with lm_head = embed");
      const d = maxDiff(lc!.dataSync(), la!.dataSync());
      assert.ok(d > 1e-2, `non-zero biases change the logits (max diff ${d})`);
      tf.dispose([ids, la!, lb!, lc!]);
      for (const m of [a, b, c]) m!.dispose();
      assert.equal(tf.memory().numTensors, count0, "load + dispose frees every weight tensor");
    });

    test("composite llava-hf folder (language_model.* names, text_config) gives the golden logits", async () => {
      const cfg = {
        architectures: ["LlavaForConditionalGeneration"],
        model_type: "llava",
        tie_word_embeddings: false,
        text_config: { ...BASE_CONFIG, architectures: ["LlamaForCausalLM"] },
        vision_config: { model_type: "clip_vision_model", hidden_size: 64 },
      };
      const dir = await makeFolder(tmp, "llava", cfg, (t) => {
        const out: Record<string, tf.Tensor> = {};
        for (const [n, v] of Object.entries(t)) out[n === "lm_head.weight" ? "language_model.lm_head.weight" : `language_model.${n}`] = v;
        out["multi_modal_projector.linear_1.weight"] = tf.zeros([64, 64]); // other components: not the LLM's business
        out["vision_tower.vision_model.post_layernorm.weight"] = tf.ones([64]);
        out["language_model.model.layers.0.self_attn.rotary_emb.inv_freq"] = tf.ones([8]); // known extra: ignored
        return out;
      });
      const m = await loadLanguageModel(dir);
      assert.equal(m.config.modelType, "llava");
      const ids = ids2d(vec("text_input_ids"));
      const logits = m.forward({ inputIds: ids }).logits;
      assertClose(logits, vec("text_logits"), 1e-4, "llava composite text_logits");
      tf.dispose([ids, logits]);
      m.dispose();
    });

    test("linear rope_scaling: factor 2 at positions 2p equals no scaling at positions p", async () => {
      const dir = await makeFolder(tmp, "linear_rope", { ...BASE_CONFIG, rope_scaling: { type: "linear", factor: 2 } }, (t) => t);
      const m = await loadLanguageModel(dir);
      const ids = ids2d(vec("text_input_ids"));
      const p = tf.tile(tf.range(0, 12, 1, "int32").reshape([1, 12]), [2, 1]) as tf.Tensor2D;
      const p2 = tf.mul(p, 2) as tf.Tensor2D;
      const a = lm.forward({ inputIds: ids, positionIds: p }).logits;
      const b = m.forward({ inputIds: ids, positionIds: p2 }).logits;
      assertClose(a, vec("text_logits"), 1e-4, "explicit positions 0..11");
      assertClose(b, a, 1e-4, "linear scaling");
      tf.dispose([ids, p, p2, a, b]);
      m.dispose();
    });

    test("weight-map errors name the tensor (and both shapes)", async () => {
      const missing = await makeFolder(tmp, "missing", BASE_CONFIG, (t) => {
        const out = { ...t };
        delete out["model.layers.1.mlp.up_proj.weight"];
        return out;
      });
      await assert.rejects(loadLanguageModel(missing), /missing tensor "model\.layers\.1\.mlp\.up_proj\.weight"/);
      const extra = await makeFolder(tmp, "extra", BASE_CONFIG, (t) => ({ ...t, "model.layers.0.self_attn.q_norm.weight": tf.ones([16]) }));
      await assert.rejects(loadLanguageModel(extra), /unexpected tensor "model\.layers\.0\.self_attn\.q_norm\.weight"/);
      const shape = await makeFolder(tmp, "shape", BASE_CONFIG, (t) => ({ ...t, "model.layers.2.self_attn.k_proj.weight": tf.zeros([64, 64]) }));
      await assert.rejects(loadLanguageModel(shape), (e: Error) => /"model\.layers\.2\.self_attn\.k_proj\.weight"/.test(e.message) && e.message.includes("[64,64]") && e.message.includes("[32,64]"));
      const untied = await makeFolder(tmp, "untied_no_head", BASE_CONFIG, (t) => {
        const out = { ...t };
        delete out["lm_head.weight"];
        return out;
      });
      await assert.rejects(loadLanguageModel(untied), /missing tensor "lm_head\.weight"/);
    });

    test("no tensor growth across repeated forward (with cache, hidden states, attentions) and generate", async () => {
      const ids = ids2d(vec("text_input_ids"));
      const before = tf.memory().numTensors;
      for (let i = 0; i < 2; i++) {
        const cache = lm.newCache();
        const o1 = lm.forward({ inputIds: ids, cache, outputHiddenStates: true, outputAttentions: [1] });
        const tok = tf.tensor2d([[3], [4]], [2, 1], "int32");
        const o2 = lm.forward({ inputIds: tok, cache, outputAttentions: [2] });
        assert.deepEqual(o2.attentions!.get(2)!.shape, [2, 4, 1, 13]);
        tf.dispose([o1.logits, ...o1.hiddenStates!, ...o1.attentions!.values(), o2.logits, ...o2.attentions!.values(), tok]);
        cache.dispose();
        await lm.generate([[5, 6, 7], [8]], { maxNewTokens: 3, eosTokenId: 2 });
        assert.equal(tf.memory().numTensors, before, `iteration ${i}`);
      }
      ids.dispose();
    });
  });
}
