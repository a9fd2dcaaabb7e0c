// make-tiny: deterministic files, configs with the stated fields, tensor names/shapes recomputed here from the
// config numbers (HF naming), a tokenizer that covers the shapes vocabulary, and a forward through the real loaders.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { fileHashes } from "../helpers.js";
import { tmpdir } from "node:os";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { generateShapes, humanTurn, SHAPES_VOCAB } from "../../data/shapes.js";
import { VICUNA_V1_SYSTEM } from "../../data/prompt.js";
import { loadTokenizer } from "../../data/tokenizer.js";
import { makeTiny } from "../../models/make_tiny.js";
import { loadVisionTower } from "../../models/clip_vision.js";
import { loadLanguageModel } from "../../models/llama.js";
import { loadProjector } from "../../models/projector.js";
import { readHeader, readSafetensors } from "../../models/safetensors.js";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const tmp = await mkdtemp(path.join(tmpdir(), "vzt-make-tiny-"));
after(() => rm(tmp, { recursive: true, force: true }));
await setBackend("wasm", { quiet: true });
const A = path.join(tmp, "a");
await assertNoTensorLeak("makeTiny", () => makeTiny(A, { seed: 3 }));
const json = async (p: string): Promise<Json> => JSON.parse(await readFile(path.join(A, p), "utf8")) as Json;

test("same seed writes byte-identical files; another seed changes only the weights", async () => {
  await makeTiny(path.join(tmp, "b"), { seed: 3 });
  await makeTiny(path.join(tmp, "c"), { seed: 4 });
  const [a, b, c] = await Promise.all(["a", "b", "c"].map((d) => fileHashes(path.join(tmp, d))));
  const expected = ["config.json", "model.safetensors"];
  for (const d of ["clip", "llm", "projector", "llava"]) for (const f of expected) assert.ok(a!.has(`${d}/${f}`), `${d}/${f} missing`);
  for (const d of ["llm", "llava"]) {
    for (const f of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]) assert.ok(a!.has(`${d}/${f}`), `${d}/${f}`);
  }
  assert.ok(a!.has("clip/preprocessor_config.json") && a!.has("llava/preprocessor_config.json"));
  assert.deepEqual([...a!.entries()].sort(), [...b!.entries()].sort());
  assert.deepEqual([...a!.keys()].sort(), [...c!.keys()].sort());
  for (const [f, h] of a!) assert.equal(h === c!.get(f), !f.endsWith(".safetensors"), `${f} with seed 4 vs 3`);
});

test("configs carry the stated fields and agree with each other", async () => {
  const clip = await json("clip/config.json");
  assert.equal(clip.model_type, "clip_vision_model");
  assert.deepEqual(clip.architectures, ["CLIPVisionModel"]);
  assert.equal(clip.image_size, 336);
  assert.equal(clip.patch_size, 14);
  assert.equal((clip.image_size / clip.patch_size) ** 2 + 1, 577);
  assert.equal(clip.hidden_act, "quick_gelu");
  assert.equal(clip.hidden_size % clip.num_attention_heads, 0);
  const pre = await json("clip/preprocessor_config.json");
  assert.equal(pre.size, 336);
  assert.equal(pre.crop_size, 336);
  assert.deepEqual(pre.image_mean, [0.48145466, 0.4578275, 0.40821073]);
  assert.deepEqual(pre.image_std, [0.26862954, 0.26130258, 0.27577711]);

  const llm = await json("llm/config.json");
  const tok = await loadTokenizer(path.join(A, "llm"));
  assert.equal(llm.model_type, "llama");
  assert.deepEqual(llm.architectures, ["LlamaForCausalLM"]);
  assert.equal(llm.vocab_size, tok.vocabSize);
  assert.equal(llm.rms_norm_eps, 1e-6);
  assert.equal(llm.rope_theta, 10000);
  assert.equal(llm.max_position_embeddings, 512);
  assert.equal(llm.tie_word_embeddings, false);
  assert.equal(llm.num_attention_heads % llm.num_key_value_heads, 0);
  assert.ok(llm.num_key_value_heads < llm.num_attention_heads, "GQA");
  assert.equal(llm.bos_token_id, tok.bosTokenId);
  assert.equal(llm.eos_token_id, tok.eosTokenId);
  assert.equal(llm.pad_token_id, tok.padTokenId);

  const proj = await json("projector/config.json");
  assert.equal(proj.mm_projector_type, "mlp2x_gelu");
  assert.equal(proj.mm_hidden_size, clip.hidden_size);
  assert.equal(proj.hidden_size, llm.hidden_size);

  const llava = await json("llava/config.json");
  assert.equal(llava.model_type, "llava");
  assert.equal(llava.image_token_index, tok.tokenToId("<image>"));
  assert.equal(llava.vision_feature_layer, -2);
  assert.equal(llava.vision_feature_select_strategy, "default");
  assert.equal(llava.projector_hidden_act, "gelu");
  assert.deepEqual(llava.vision_config, clip);
  assert.deepEqual(llava.text_config, llm);
  assert.deepEqual(await json("llava/tokenizer.json"), await json("llm/tokenizer.json"));
  assert.deepEqual(await json("llava/preprocessor_config.json"), pre);
});

/** HF CLIPVisionModel names and shapes from the config numbers. */
function clipShapes(c: Json): Record<string, number[]> {
  const C = c.hidden_size, F = c.intermediate_size, P = c.patch_size;
  const out: Record<string, number[]> = {
    "vision_model.embeddings.patch_embedding.weight": [C, c.num_channels, P, P],
    "vision_model.embeddings.class_embedding": [C],
    "vision_model.embeddings.position_embedding.weight": [(c.image_size / P) ** 2 + 1, C],
    "vision_model.pre_layrnorm.weight": [C],
    "vision_model.pre_layrnorm.bias": [C],
    "vision_model.post_layernorm.weight": [C],
    "vision_model.post_layernorm.bias": [C],
  };
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `vision_model.encoder.layers.${l}.`;
    for (const x of ["q", "k", "v", "out"]) Object.assign(out, { [`${p}self_attn.${x}_proj.weight`]: [C, C], [`${p}self_attn.${x}_proj.bias`]: [C] });
    for (const n of ["layer_norm1", "layer_norm2"]) Object.assign(out, { [`${p}${n}.weight`]: [C], [`${p}${n}.bias`]: [C] });
    Object.assign(out, { [`${p}mlp.fc1.weight`]: [F, C], [`${p}mlp.fc1.bias`]: [F], [`${p}mlp.fc2.weight`]: [C, F], [`${p}mlp.fc2.bias`]: [C] });
  }
  return out;
}

/** HF LlamaForCausalLM names and shapes from the config numbers. */
function llamaShapes(c: Json): Record<string, number[]> {
  const H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, D = H / c.num_attention_heads;
  const out: Record<string, number[]> = { "model.embed_tokens.weight": [V, H], "model.norm.weight": [H], "lm_head.weight": [V, H] };
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    Object.assign(out, {
      [`${p}self_attn.q_proj.weight`]: [c.num_attention_heads * D, H],
      [`${p}self_attn.k_proj.weight`]: [c.num_key_value_heads * D, H],
      [`${p}self_attn.v_proj.weight`]: [c.num_key_value_heads * D, H],
      [`${p}self_attn.o_proj.weight`]: [H, c.num_attention_heads * D],
      [`${p}mlp.gate_proj.weight`]: [F, H],
      [`${p}mlp.up_proj.weight`]: [F, H],
      [`${p}mlp.down_proj.weight`]: [H, F],
      [`${p}input_layernorm.weight`]: [H],
      [`${p}post_attention_layernorm.weight`]: [H],
    });
  }
  return out;
}

const prefixed = (prefix: string, shapes: Record<string, number[]>) => Object.fromEntries(Object.entries(shapes).map(([k, v]) => [prefix + k, v]));

async function headerShapes(file: string): Promise<Record<string, number[]>> {
  const h = await readHeader(file);
  for (const t of h.tensors.values()) assert.equal(t.dtype, "F32", `${file}: ${t.name}`);
  return Object.fromEntries([...h.tensors.values()].map((t) => [t.name, t.shape]));
}

test("safetensors headers hold exactly the HF names and shapes the configs imply", async () => {
  const clip = await json("clip/config.json");
  const llm = await json("llm/config.json");
  const [Cv, Ct] = [clip.hidden_size, llm.hidden_size];
  const projLlava = { "model.mm_projector.0.weight": [Ct, Cv], "model.mm_projector.0.bias": [Ct], "model.mm_projector.2.weight": [Ct, Ct], "model.mm_projector.2.bias": [Ct] };
  const projHf = { "multi_modal_projector.linear_1.weight": [Ct, Cv], "multi_modal_projector.linear_1.bias": [Ct], "multi_modal_projector.linear_2.weight": [Ct, Ct], "multi_modal_projector.linear_2.bias": [Ct] };
  assert.deepEqual(await headerShapes(path.join(A, "clip/model.safetensors")), clipShapes(clip));
  assert.deepEqual(await headerShapes(path.join(A, "llm/model.safetensors")), llamaShapes(llm));
  assert.deepEqual(await headerShapes(path.join(A, "projector/model.safetensors")), projLlava);
  assert.deepEqual(await headerShapes(path.join(A, "llava/model.safetensors")), {
    ...prefixed("vision_tower.", clipShapes(clip)),
    ...prefixed("language_model.", llamaShapes(llm)),
    ...projHf,
  });
});

test("llava/ holds the same tensors as clip/, llm/ and projector/; draws have the intended scales", async () => {
  const llava = await readSafetensors(path.join(A, "llava/model.safetensors"));
  const parts = [
    ["clip", "vision_tower."],
    ["llm", "language_model."],
  ] as const;
  try {
    for (const [dir, prefix] of parts) {
      const m = await readSafetensors(path.join(A, dir, "model.safetensors"));
      for (const [name, t] of m) assert.deepEqual(await t.data(), await llava.get(prefix + name)!.data(), `${dir}/${name}`);
      m.forEach((t) => t.dispose());
    }
    const p = await readSafetensors(path.join(A, "projector/model.safetensors"));
    for (const [a, b] of [["0", "linear_1"], ["2", "linear_2"]]) {
      for (const part of ["weight", "bias"]) {
        assert.deepEqual(await p.get(`model.mm_projector.${a}.${part}`)!.data(), await llava.get(`multi_modal_projector.${b}.${part}`)!.data());
      }
    }
    p.forEach((t) => t.dispose());
    const stats = async (name: string) => {
      const v = Array.from(await llava.get(name)!.data());
      const mean = v.reduce((s, x) => s + x, 0) / v.length;
      const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
      return { mean, std };
    };
    const norm = await stats("vision_tower.vision_model.pre_layrnorm.weight");
    assert.ok(Math.abs(norm.mean - 1) < 0.05 && norm.std < 0.2, `norm weights ~1: ${JSON.stringify(norm)}`);
    const emb = await stats("language_model.model.embed_tokens.weight");
    assert.ok(Math.abs(emb.mean) < 0.05 && emb.std > 0.9 && emb.std < 1.1, `embeddings ~N(0,1): ${JSON.stringify(emb)}`);
    const q = await stats("language_model.model.layers.0.self_attn.q_proj.weight");
    assert.ok(q.std > 0.01 && q.std < 0.3, `q_proj std ${q.std}`);
  } finally {
    llava.forEach((t) => t.dispose());
  }
});

test("the tokenizer covers SHAPES_VOCAB and every shapes text without <unk>, adds BOS and round-trips", async () => {
  for (const dir of ["llm", "llava"]) {
    const tok = await loadTokenizer(path.join(A, dir));
    const unk = tok.unkTokenId;
    assert.equal(unk, 0);
    assert.ok(tok.addsBos);
    for (const w of SHAPES_VOCAB) {
      const ids = tok.encode(w, { addSpecialTokens: false });
      assert.equal(ids.length, 1, `"${w}" -> ${ids}`);
      assert.notEqual(ids[0], unk, `"${w}" is <unk>`);
      assert.equal(tok.idToToken(ids[0]!), w);
    }
    const d = generateShapes({ seed: 5, train: 200, evalVqa: 40, evalPope: 40 });
    const texts = [...d.train.flatMap((s) => s.conversations.map((c) => c.value)), ...d.evalVqa.map((q) => q.question), ...d.evalPope.map((q) => q.question)];
    for (const t of texts) assert.ok(!tok.encode(t).includes(unk!), `<unk> in "${t}"`);

    const sample = d.train[0]!;
    const prompt = `${VICUNA_V1_SYSTEM} USER: ${sample.conversations[0]!.value} ASSISTANT: ${sample.conversations[1]!.value}</s>`;
    const ids = tok.encode(prompt);
    assert.equal(ids[0], tok.bosTokenId);
    assert.equal(ids.filter((i) => i === tok.bosTokenId).length, 1);
    assert.equal(ids.at(-1), tok.eosTokenId);
    assert.equal(ids.filter((i) => i === tok.tokenToId("<image>")).length, 1);
    assert.ok(!ids.includes(unk!));
    // Round trip up to whitespace: the same word/punctuation sequence (decode joins tokens with spaces).
    const words = (s: string) => s.match(/<[^>]+>|\w+|[^\w\s]+/g);
    assert.deepEqual(words(tok.decode(ids, { skipSpecialTokens: false })), words(`<s>${prompt}`));
    assert.deepEqual(words(tok.decode(ids, { skipSpecialTokens: true })), words(prompt.replace("<image>", "").replace("</s>", "")));
    assert.equal(tok.decode(tok.encode("top left", { addSpecialTokens: false }), { skipSpecialTokens: true }), "top left");
    assert.equal(tok.decode(tok.encode(humanTurn("How many shapes are there?"), { addSpecialTokens: false }), { skipSpecialTokens: true }), "How many shapes are there? Answer the question using a single word or phrase.");
  }
});

test("the tiny models load through the real loaders and run: 577 vision tokens, finite non-degenerate logits", async () => {
  for (const dir of ["clip", "llava"]) {
    const tower = await loadVisionTower(path.join(A, dir));
    const px = tf.randomNormal([1, 3, 336, 336], 0, 1, "float32", 1) as tf.Tensor4D;
    await assertNoTensorLeak(`${dir} vision forward`, async () => {
      const out = tower.forward(px);
      assert.deepEqual(out.hidden.shape, [1, 577, 64]);
      assert.deepEqual(out.clsAttention.shape, [1, 4, 577]);
      const h = await out.hidden.data();
      assert.ok(h.every(Number.isFinite), `${dir}: non-finite hidden state`);
      const att = await out.clsAttention.data();
      assert.ok(Math.max(...att) > 5 / 577, `${dir}: CLS attention is flat (max ${Math.max(...att)})`);
      for (const t of [out.hidden, out.clsAttention, out.keys, out.keysMean]) t.dispose();
    });
    px.dispose();
    tower.dispose();
  }
  for (const backend of ["wasm", "cpu"] as const) {
    await setBackend(backend, { quiet: true });
    const tok = await loadTokenizer(path.join(A, "llm"));
    const ids = tok.encode(`${VICUNA_V1_SYSTEM} USER: ${humanTurn("What color is the circle?")} ASSISTANT:`).map((i) => (i === tok.tokenToId("<image>") ? tok.unkTokenId! : i));
    for (const dir of ["llm", "llava"]) {
      const lm = await loadLanguageModel(path.join(A, dir));
      await assertNoTensorLeak(`${dir} llm forward (${backend})`, async () => {
        const input = tf.tensor2d([ids], [1, ids.length], "int32");
        const { logits } = lm.forward({ inputIds: input });
        assert.deepEqual(logits.shape, [1, ids.length, tok.vocabSize]);
        const v = await logits.data();
        assert.ok(v.every(Number.isFinite), `${dir}: non-finite logits`);
        const last = Array.from(v.slice(-tok.vocabSize));
        const mean = last.reduce((a, b) => a + b, 0) / last.length;
        const std = Math.sqrt(last.reduce((a, b) => a + (b - mean) ** 2, 0) / last.length);
        assert.ok(std > 0.3 && std < 10, `${dir} (${backend}): last-position logit std ${std}`);
        const argmax = tf.tidy(() => tf.argMax(logits, -1));
        assert.ok(new Set(await argmax.data()).size > 1, `${dir} (${backend}): every position predicts the same token`);
        for (const t of [input, logits, argmax]) t.dispose();
      });
      lm.dispose();
    }
    for (const dir of ["projector", "llava"]) {
      const p = await loadProjector(path.join(A, dir));
      assert.deepEqual([p.type, p.inDim, p.outDim], ["mlp2x_gelu", 64, 128]);
      const x = tf.randomNormal([1, 576, 64], 0, 1, "float32", 2) as tf.Tensor3D;
      const y = p.apply(x);
      assert.deepEqual(y.shape, [1, 576, 128]);
      assert.ok((await y.data()).every(Number.isFinite));
      for (const t of [x, y]) t.dispose();
      p.dispose();
    }
  }
  await setBackend("wasm", { quiet: true });
});
