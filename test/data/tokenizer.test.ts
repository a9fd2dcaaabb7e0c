// Tokenizer loading on the real tokenizer files in ../shared/golden/real/models: known ids of the LLaMA
// (llava-1.5-7b-hf) tokenizer, ids of the Qwen2.5 byte-level BPE derived from vocab.json, round trips, special
// tokens and chat templates from the old and new config layouts, and clear errors for folders without a vocabulary.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { WeightsError } from "../../core/errors.js";
import { loadTokenizer, loadTokenizerConfig } from "../../data/tokenizer.js";
import { goldenDir } from "../helpers.js";

const MODELS = path.join(goldenDir(), "real/models");
const LLAVA_HF = path.join(MODELS, "llava-hf_llava-1.5-7b-hf");
const QWEN25 = path.join(MODELS, "qwen2.5-0.5b-instruct_resaved");

const llava = await loadTokenizer(LLAVA_HF);
const qwen = await loadTokenizer(QWEN25);

test("llava-hf (LLaMA SentencePiece-BPE): special token ids and vocabulary size", () => {
  assert.equal(llava.bosTokenId, 1);
  assert.equal(llava.eosTokenId, 2);
  assert.equal(llava.unkTokenId, 0);
  assert.equal(llava.padTokenId, 32001);
  assert.equal(llava.bosToken, "<s>");
  assert.equal(llava.padToken, "<pad>");
  assert.equal(llava.imageToken, "<image>");
  assert.equal(llava.tokenToId("<image>"), 32000);
  assert.equal(llava.idToToken(32001), "<pad>");
  assert.equal(llava.idToToken(13), "<0x0A>");
  assert.equal(llava.vocabSize, 32002); // 32000 SentencePiece pieces + <image> + <pad>
  assert.equal(llava.addsBos, true);
});

test("llava-hf: known encodings", () => {
  assert.deepEqual(llava.encode("Hello"), [1, 15043]);
  assert.deepEqual(llava.encode("Hello", { addSpecialTokens: false }), [15043]);
  assert.deepEqual(llava.encode(""), [1]);
  // "USER: <image>\n" around LLaVA's image: "▁" (29871) before and "▁" "<0x0A>" (29871, 13) after.
  assert.deepEqual(llava.encode("USER: <image>\n", { addSpecialTokens: false }), [3148, 1001, 29901, 29871, 32000, 29871, 13]);
  // Special tokens inside text are split out whole.
  assert.deepEqual(llava.encode("a</s>b", { addSpecialTokens: false }).includes(2), true);
});

test("llava-hf: decode(encode(x)) == x for ASCII, non-ASCII (byte fallback) and newlines", () => {
  const texts = [
    "Hello world.",
    "A chat between a curious user and an artificial intelligence assistant.",
    "héllo wörld — 日本語 ñ 🦙",
    "line one\nline two\n\n  indented\ttab",
    "Ω≈ç√ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
  ];
  for (const x of texts) {
    assert.equal(llava.decode(llava.encode(x, { addSpecialTokens: false })), x, JSON.stringify(x));
    assert.equal(llava.decode(llava.encode(x), { skipSpecialTokens: true }), x, JSON.stringify(x));
  }
  const nl = llava.encode("a\nb", { addSpecialTokens: false });
  assert.ok(nl.includes(13), "newline is the byte-fallback token <0x0A>");
  assert.equal(llava.decode([1, 15043, 2]), "<s> Hello</s>");
  assert.equal(llava.decode([1, 15043, 2], { skipSpecialTokens: true }), "Hello");
  assert.equal(llava.decode([]), "");
  assert.throws(() => llava.decode([1, -200, 5]), /ids\[1\] = -200/);
});

test("llava-hf: chat template comes from chat_template.json", () => {
  assert.ok(llava.chatTemplate?.startsWith("{% for message in messages %}"));
  assert.ok(llava.chatTemplate?.includes("'ASSISTANT:'"));
});

test("qwen2.5: byte-level BPE built from vocab.json + merges.txt matches ids read off vocab.json", () => {
  const vocab = JSON.parse(readFileSync(path.join(QWEN25, "vocab.json"), "utf8")) as Record<string, number>;
  const v = (t: string): number => {
    const id = vocab[t];
    assert.ok(id !== undefined, `${t} in vocab.json`);
    return id;
  };
  // Words present whole in vocab.json encode to that single id ("Ġ" is the byte-level space, "Ċ" the newline).
  assert.deepEqual(qwen.encode("Hello"), [v("Hello")]);
  assert.deepEqual(qwen.encode("user"), [v("user")]);
  assert.deepEqual(qwen.encode("Hello world!"), [v("Hello"), v("Ġworld"), v("!")]);
  assert.deepEqual(qwen.encode("Hello world!"), [9707, 1879, 0]);
  // 你好 is the bytes e4 bd a0 e5 a5 bd, written "ä½łå¥½" in the byte-to-unicode alphabet.
  assert.deepEqual(qwen.encode("你好"), [v("ä½łå¥½")]);
  // Added tokens from tokenizer_config.json added_tokens_decoder are split out first.
  assert.deepEqual(qwen.encode("<|im_start|>user\nHi<|im_end|>\n"), [151644, v("user"), v("Ċ"), v("Hi"), 151645, v("Ċ")]);
  // The Qwen2 regex keeps digits single: "2024" is four tokens.
  assert.deepEqual(qwen.encode("2024"), [v("2"), v("0"), v("2"), v("4")]);
});

test("qwen2.5: special tokens, no BOS, round trips", () => {
  assert.equal(qwen.bosTokenId, undefined);
  assert.equal(qwen.addsBos, false);
  assert.equal(qwen.eosTokenId, 151645); // <|im_end|>
  assert.equal(qwen.padTokenId, 151643); // <|endoftext|>
  assert.equal(qwen.unkTokenId, undefined);
  assert.equal(qwen.imageToken, undefined);
  assert.equal(qwen.vocabSize, 151665);
  assert.ok(qwen.chatTemplate?.includes("You are Qwen, created by Alibaba Cloud."));
  for (const x of ["Hello, it's 2024 — café  \n\n  ok", "日本語のテキスト 🦙\tend", "  leading and trailing  "]) {
    assert.equal(qwen.decode(qwen.encode(x)), x, JSON.stringify(x));
  }
  assert.equal(qwen.decode([151644, 872, 151645], { skipSpecialTokens: true }), "user");
});

test("liuhaotian/llava-v1.5-7b: no vocabulary -> clear error; config-only read works", async () => {
  const dir = path.join(MODELS, "liuhaotian_llava-v1.5-7b");
  await assert.rejects(loadTokenizer(dir), (e: unknown) => {
    assert.ok(e instanceof WeightsError);
    assert.match(e.message, /missing tokenizer\.json \(or vocab\.json \+ merges\.txt\)/);
    assert.match(e.message, /found only tokenizer_config\.json, special_tokens_map\.json/);
    return true;
  });
  const cfg = await loadTokenizerConfig(dir);
  assert.equal(cfg.tokenizerClass, "LlamaTokenizer");
  assert.equal(cfg.bosToken, "<s>"); // {__type: "AddedToken", content: "<s>"}
  assert.equal(cfg.eosToken, "</s>");
  assert.equal(cfg.unkToken, "<unk>");
  assert.equal(cfg.padToken, "<unk>"); // special_tokens_map.json overrides tokenizer_config's null
  assert.equal(cfg.modelMaxLength, 2048);
  assert.equal(cfg.paddingSide, "right");
  assert.equal(cfg.addBosToken, true);
  assert.equal(cfg.chatTemplate, undefined);
});

test("qwen2-0.5b (no vocab files): clear error; simple ChatML template from tokenizer_config", async () => {
  const dir = path.join(MODELS, "qwen2-0.5b_resaved");
  await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof WeightsError && /missing tokenizer\.json/.test(e.message));
  const cfg = await loadTokenizerConfig(dir);
  assert.equal(cfg.eosToken, "<|endoftext|>");
  assert.equal(cfg.bosToken, undefined);
  assert.deepEqual(cfg.addedTokens.map((t) => [t.id, t.content, t.special]), [
    [151643, "<|endoftext|>", true],
    [151644, "<|im_start|>", true],
    [151645, "<|im_end|>", true],
  ]);
  assert.ok(cfg.chatTemplate?.includes("You are a helpful assistant"));
});

test("lora adapter folder: newer tokenizer_config layout (TokenizersBackend, model_specific_special_tokens)", async () => {
  const dir = path.join(MODELS, "llava-1.5-7b-hf_lora-adapter_v5-save");
  const cfg = await loadTokenizerConfig(dir);
  assert.equal(cfg.tokenizerClass, "TokenizersBackend");
  assert.equal(cfg.bosToken, "<s>");
  assert.equal(cfg.eosToken, "</s>");
  assert.equal(cfg.padToken, "<pad>");
  assert.equal(cfg.unkToken, "<unk>");
  assert.equal(cfg.imageToken, "<image>");
  assert.equal(cfg.modelMaxLength, undefined); // 1e30 sentinel = no limit
  assert.equal(cfg.paddingSide, "left");
  await assert.rejects(loadTokenizer(dir), WeightsError);
});

test("every real model folder either loads or fails with a WeightsError naming tokenizer.json", async () => {
  const loaded: string[] = [];
  for (const name of readdirSync(MODELS).sort()) {
    try {
      const t = await loadTokenizer(path.join(MODELS, name));
      assert.ok(t.vocabSize > 0);
      loaded.push(name);
    } catch (e) {
      assert.ok(e instanceof WeightsError, `${name}: ${String(e)}`);
      assert.match(e.message, /tokenizer\.json/);
    }
  }
  assert.deepEqual(loaded, ["llava-hf_llava-1.5-7b-hf", "qwen2.5-0.5b-instruct_resaved"]);
});

test("chat_template.jinja beside the config wins; a list-of-named chat_template picks 'default'", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), "vzt-tok-"));
  try {
    await writeFile(
      path.join(dir, "tokenizer_config.json"),
      JSON.stringify({ bos_token: { content: "<s>" }, chat_template: [{ name: "tool_use", template: "T" }, { name: "default", template: "D" }] }),
    );
    assert.equal((await loadTokenizerConfig(dir)).chatTemplate, "D");
    assert.equal((await loadTokenizerConfig(dir)).bosToken, "<s>");
    await writeFile(path.join(dir, "chat_template.jinja"), "J");
    assert.equal((await loadTokenizerConfig(dir)).chatTemplate, "J");
    await writeFile(path.join(dir, "tokenizer.json"), "{not json");
    await assert.rejects(loadTokenizer(dir), (e: unknown) => e instanceof WeightsError && /tokenizer\.json: not valid JSON/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
