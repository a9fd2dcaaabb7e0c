// Prompt templates and conversation -> ids + labels: exact vicuna_v1 / plain prompt strings from llava/conversation.py,
// Jinja chat templates of llava-1.5-7b-hf and Qwen2.5 against strings read off the templates, and LLaVA's
// preprocess_v1 / preprocess_plain masking on the real llava-hf tokenizer and the real LCS-558K records.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ConfigError, DataError } from "../../core/errors.js";
import {
  chatMessages,
  IGNORE_INDEX,
  IMAGE_TOKEN_INDEX,
  toConversation,
  tokenizeConversation,
  type Conversation,
  type TokenizedConversation,
} from "../../data/conversation.js";
import { buildPrompt, renderChatTemplate, VICUNA_V1_SYSTEM } from "../../data/prompt.js";
import { loadTokenizer, loadTokenizerConfig, type Tokenizer } from "../../data/tokenizer.js";
import { goldenDir } from "../helpers.js";

const REAL = path.join(goldenDir(), "real");
const llava = await loadTokenizer(path.join(REAL, "models/llava-hf_llava-1.5-7b-hf"));
const qwen = await loadTokenizer(path.join(REAL, "models/qwen2.5-0.5b-instruct_resaved"));

const SYS =
  "A chat between a curious user and an artificial intelligence assistant. " +
  "The assistant gives helpful, detailed, and polite answers to the user's questions.";

/** Maximal runs of trained labels, decoded. */
function trainedSpans(tok: Tokenizer, r: TokenizedConversation): string[] {
  const spans: string[] = [];
  let cur: number[] = [];
  for (const l of [...r.labels, IGNORE_INDEX]) {
    if (l !== IGNORE_INDEX) cur.push(l);
    else if (cur.length) {
      spans.push(tok.decode(cur));
      cur = [];
    }
  }
  return spans;
}

/** Checks the invariants every tokenized sample must satisfy. */
function checkShape(r: TokenizedConversation): void {
  assert.equal(r.labels.length, r.inputIds.length);
  r.labels.forEach((l, i) => assert.ok(l === IGNORE_INDEX || l === r.inputIds[i], `label ${i}`));
  assert.deepEqual(r.imagePositions, r.inputIds.flatMap((id, i) => (id === IMAGE_TOKEN_INDEX ? [i] : [])));
  for (const p of r.imagePositions) assert.equal(r.labels[p], IGNORE_INDEX);
}

/** With the llava-hf tokenizer <image> is token 32000, so the ids must equal encode(prompt) with -200 for 32000. */
function asWholePrompt(r: TokenizedConversation): number[] {
  return r.inputIds.map((id) => (id === IMAGE_TOKEN_INDEX ? 32000 : id));
}

const twoTurns: Conversation = {
  id: "t2",
  image: "coco/1.jpg",
  messages: [
    { from: "human", value: "What is on the table?\n<image>" },
    { from: "gpt", value: "A red cup and a plate." },
    { from: "human", value: "What colour is the plate?" },
    { from: "gpt", value: "It is white." },
  ],
};

test("vicuna_v1: exact prompt string, <image> at the end of a human turn moved to the front", () => {
  assert.equal(VICUNA_V1_SYSTEM, SYS);
  const p = buildPrompt(chatMessages(twoTurns), llava, { template: "vicuna_v1", hasImage: true });
  assert.equal(
    p.text,
    `${SYS} USER: <image>\nWhat is on the table? ASSISTANT: A red cup and a plate.</s>` +
      `USER: What colour is the plate? ASSISTANT: It is white.</s>`,
  );
  assert.deepEqual(
    p.segments.filter((s) => s.train).map((s) => s.text),
    [" A red cup and a plate.</s>", " It is white.</s>"],
  );
  const g = buildPrompt(chatMessages(twoTurns), llava, { template: "vicuna_v1", forGeneration: true });
  assert.equal(
    g.text,
    `${SYS} USER: <image>\nWhat is on the table? ASSISTANT: A red cup and a plate.</s>USER: What colour is the plate? ASSISTANT:`,
  );
  assert.ok(g.segments.every((s) => !s.train));
});

test("preprocess_multimodal: all <image> removed, text stripped, one <image>\\n in front", () => {
  const m = chatMessages({ messages: [{ from: "human", value: "  <image> a <image> b \n" }, { from: "gpt", value: "c" }] });
  assert.deepEqual(m, [
    { role: "user", content: "<image>\na  b" },
    { role: "assistant", content: "c" },
  ]);
  assert.equal(chatMessages({ messages: [{ from: "human", value: "<image>" }] })[0]!.content, "<image>");
  // An image given without a placeholder gets one in front of the first user turn (LLaVA eval scripts).
  assert.equal(chatMessages({ image: "x.jpg", messages: [{ role: "user", content: "Q?" }] })[0]!.content, "<image>\nQ?");
  assert.throws(() => chatMessages({ id: 7, messages: [{ from: "bot", value: "x" }] }), (e: unknown) => e instanceof DataError && /conversation 7, message 0: unknown role "bot"/.test(e.message));
});

test("vicuna_v1 ids + labels on the llava-hf tokenizer: two turns with an image", () => {
  const r = tokenizeConversation(twoTurns, llava, { template: "vicuna_v1" });
  checkShape(r);
  assert.equal(r.truncated, false);
  assert.deepEqual(r.imagePositions, [35]);
  // BOS, then "▁A ▁chat ..." of the system prompt.
  assert.deepEqual(r.inputIds.slice(0, 3), [1, 319, 13563]);
  // LLaVA's well-known "USER: <image>\n" ids: ▁US ER : ▁ <image> ▁ <0x0A>.
  assert.deepEqual(r.inputIds.slice(31, 38), [3148, 1001, 29901, 29871, IMAGE_TOKEN_INDEX, 29871, 13]);
  // The concatenated chunk ids equal the tokenization of the whole prompt (tokenizer_image_token == encode here).
  const text = `${SYS} USER: <image>\nWhat is on the table? ASSISTANT: A red cup and a plate.</s>USER: What colour is the plate? ASSISTANT: It is white.</s>`;
  assert.deepEqual(asWholePrompt(r), llava.encode(text));
  // Trained: exactly the replies + </s>; masked: BOS, system, every "USER: ... ASSISTANT:".
  assert.deepEqual(trainedSpans(llava, r), ["A red cup and a plate.</s>", "It is white.</s>"]);
  const firstTrained = r.labels.findIndex((l) => l !== IGNORE_INDEX);
  assert.equal(llava.decode(r.inputIds.slice(1, firstTrained).filter((id) => id >= 0)).endsWith("What is on the table? ASSISTANT:"), true);
  assert.equal(llava.idToToken(r.inputIds[firstTrained]!), "▁A"); // the reply starts at "▁A", ":" stays masked
  assert.equal(r.labels[0], IGNORE_INDEX);
  assert.equal(r.inputIds[r.inputIds.length - 1], 2);
  assert.equal(r.labels[r.labels.length - 1], 2);
});

test("vicuna_v1: text-only conversation has no image and equals encode(prompt)", () => {
  const conv: Conversation = {
    messages: [
      { role: "user", content: "Say hi in French." },
      { role: "assistant", content: "Bonjour ! Ça va ?" },
    ],
  };
  const r = tokenizeConversation(conv, llava, { template: "vicuna_v1" });
  checkShape(r);
  assert.deepEqual(r.imagePositions, []);
  assert.deepEqual(r.inputIds, llava.encode(`${SYS} USER: Say hi in French. ASSISTANT: Bonjour ! Ça va ?</s>`));
  assert.deepEqual(trainedSpans(llava, r), ["Bonjour ! Ça va ?</s>"]);
});

test("vicuna_v1: multi-turn (3 rounds, newlines in replies), system message replaces the default", () => {
  const conv: Conversation = {
    image: "a.jpg",
    messages: [
      { role: "system", content: "Be terse." },
      { role: "user", content: "<image>\nCount the dogs." },
      { role: "assistant", content: "Two." },
      { role: "user", content: "And cats?" },
      { role: "assistant", content: "None.\nOnly dogs." },
      { role: "user", content: "Sure?" },
      { role: "assistant", content: "Yes, 100%." },
    ],
  };
  const r = tokenizeConversation(conv, llava, { template: "vicuna_v1" });
  checkShape(r);
  assert.equal(r.imagePositions.length, 1);
  const text =
    "Be terse. USER: <image>\nCount the dogs. ASSISTANT: Two.</s>USER: And cats? ASSISTANT: None.\nOnly dogs.</s>" +
    "USER: Sure? ASSISTANT: Yes, 100%.</s>";
  assert.deepEqual(asWholePrompt(r), llava.encode(text));
  assert.deepEqual(trainedSpans(llava, r), ["Two.</s>", "None.\nOnly dogs.</s>", "Yes, 100%.</s>"]);
});

test("forGeneration: prompt ends with ASSISTANT:, no trained labels, final assistant turn dropped", () => {
  const r = tokenizeConversation(twoTurns, llava, { template: "vicuna_v1", forGeneration: true });
  checkShape(r);
  assert.ok(r.labels.every((l) => l === IGNORE_INDEX));
  assert.deepEqual(r.inputIds.slice(-5), [319, 1799, 9047, 13566, 29901]); // ▁A SS IST ANT :
  assert.ok(llava.decode(r.inputIds.slice(r.imagePositions[0]! + 1)).endsWith("What colour is the plate? ASSISTANT:"));
  const q = tokenizeConversation({ image: "x.jpg", messages: [{ from: "human", value: "Is there a dog?" }] }, llava, {
    template: "vicuna_v1",
    forGeneration: true,
  });
  assert.deepEqual(asWholePrompt(q), llava.encode(`${SYS} USER: <image>\nIs there a dog? ASSISTANT:`));
});

test("truncation: cut to maxLength and flagged; images cost imageSeqLen and are never cut in half", () => {
  const full = tokenizeConversation(twoTurns, llava, { template: "vicuna_v1" });
  const same = tokenizeConversation(twoTurns, llava, { template: "vicuna_v1", maxLength: full.inputIds.length });
  assert.equal(same.truncated, false);
  assert.deepEqual(same, full);
  const cut = tokenizeConversation(twoTurns, llava, { template: "vicuna_v1", maxLength: 50 });
  assert.equal(cut.truncated, true);
  assert.deepEqual(cut.inputIds, full.inputIds.slice(0, 50));
  assert.deepEqual(cut.labels, full.labels.slice(0, 50));
  // 35 tokens before the image + 576 image positions > 600: the image and everything after it go.
  const noImage = tokenizeConversation(twoTurns, llava, { template: "vicuna_v1", maxLength: 600, imageSeqLen: 576 });
  assert.equal(noImage.truncated, true);
  assert.equal(noImage.inputIds.length, 35);
  assert.deepEqual(noImage.imagePositions, []);
  const fits = tokenizeConversation(twoTurns, llava, { template: "vicuna_v1", maxLength: 576 + full.inputIds.length - 1, imageSeqLen: 576 });
  assert.equal(fits.truncated, false);
  // Generation prompts are never cut (they would lose "ASSISTANT:"), only flagged.
  const gen = tokenizeConversation(twoTurns, llava, { template: "vicuna_v1", forGeneration: true, maxLength: 10 });
  assert.equal(gen.truncated, true);
  assert.ok(gen.inputIds.length > 10);
});

test("plain on the 10 real LCS-558K records: one -200 right after BOS, caption + \\n supervised", () => {
  const recs = JSON.parse(readFileSync(path.join(REAL, "llava_data/blip_laion_cc_sbu_558k_first10.json"), "utf8")) as unknown[];
  assert.equal(recs.length, 10);
  recs.forEach((rec, i) => {
    const conv = toConversation(rec, `record ${i}`);
    const caption = (rec as { conversations: { value: string }[] }).conversations[1]!.value;
    const r = tokenizeConversation(conv, llava, { template: "plain" });
    checkShape(r);
    assert.deepEqual(r.imagePositions, [1], `record ${i}`);
    assert.equal(r.inputIds.filter((id) => id === IMAGE_TOKEN_INDEX).length, 1);
    assert.equal(r.inputIds[0], 1);
    assert.deepEqual(r.labels.slice(0, 2), [IGNORE_INDEX, IGNORE_INDEX]);
    assert.ok(r.labels.slice(2).every((l) => l !== IGNORE_INDEX), `record ${i}: everything after the image is trained`);
    assert.deepEqual(trainedSpans(llava, r), [caption + "\n"]);
    // preprocess_plain: tokenizer_image_token("<image>" + caption + "\n") = [BOS, -200] + encode(caption + "\n") minus BOS.
    assert.deepEqual(r.inputIds.slice(2), llava.encode(caption + "\n").slice(1));
  });
});

test("plain: errors and generation prompt", () => {
  const g = tokenizeConversation({ image: "a.jpg", messages: [{ from: "human", value: "<image>" }] }, llava, { template: "plain", forGeneration: true });
  assert.deepEqual(g.inputIds, [1, IMAGE_TOKEN_INDEX]);
  assert.throws(
    () => tokenizeConversation({ id: "x", messages: [{ from: "human", value: "no image" }, { from: "gpt", value: "c" }] }, llava, { template: "plain" }),
    (e: unknown) => e instanceof DataError && /conversation "x": plain template needs an image/.test(e.message),
  );
  assert.throws(
    () => tokenizeConversation(twoTurns, llava, { template: "plain" }),
    (e: unknown) => e instanceof DataError && /exactly one user turn and one assistant caption, got 4 turns/.test(e.message),
  );
  assert.throws(
    () => tokenizeConversation({ messages: [{ from: "human", value: "a" }, { from: "human", value: "b" }] }, llava, { template: "vicuna_v1" }),
    (e: unknown) => e instanceof DataError && /turn 1 is "user", expected "assistant"/.test(e.message),
  );
});

test("llava-hf chat_template.json renders the exact string its Jinja says", () => {
  const msgs = chatMessages({
    messages: [
      { role: "user", content: "<image>\nWhat is shown?" },
      { role: "assistant", content: "A cat." },
      { role: "user", content: "Color?" },
    ],
  });
  // "ROLE: " + "<image>\n" per image item + text + " " per text item; "ASSISTANT:" as generation prompt.
  assert.equal(
    renderChatTemplate(llava.chatTemplate!, msgs, { addGenerationPrompt: true }),
    "USER: <image>\nWhat is shown? ASSISTANT: A cat. USER: Color? ASSISTANT:",
  );
  assert.equal(renderChatTemplate(llava.chatTemplate!, msgs.slice(0, 2)), "USER: <image>\nWhat is shown? ASSISTANT: A cat. ");
});

test("Qwen2.5 and Qwen2 chat templates render the exact ChatML strings", async () => {
  const msgs = chatMessages({ messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello!" }, { role: "user", content: "2+2?" }] });
  const qSys = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";
  assert.equal(
    renderChatTemplate(qwen.chatTemplate!, msgs, { addGenerationPrompt: true }),
    `${qSys}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n`,
  );
  const withSys = chatMessages({ messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }] });
  assert.equal(
    renderChatTemplate(qwen.chatTemplate!, withSys),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
  );
  const qwen2 = await loadTokenizerConfig(path.join(REAL, "models/qwen2-0.5b_resaved"));
  assert.equal(
    renderChatTemplate(qwen2.chatTemplate!, msgs.slice(0, 1), { addGenerationPrompt: true }),
    "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("chat_template masking: Qwen2.5 trains '{reply}<|im_end|>\\n'; llava-hf template gets BOS and -200", () => {
  const r = tokenizeConversation(twoTurns, qwen, { template: "chat_template" });
  checkShape(r);
  assert.deepEqual(trainedSpans(qwen, r), ["A red cup and a plate.<|im_end|>\n", "It is white.<|im_end|>\n"]);
  assert.equal(r.inputIds[0], 151644); // no BOS for Qwen
  assert.equal(r.imagePositions.length, 1);
  // The ids around the image: "<|im_start|>user\n" <image> "\nWhat ...".
  const p = r.imagePositions[0]!;
  assert.deepEqual(r.inputIds.slice(p - 3, p + 2), [151644, 872, 198, IMAGE_TOKEN_INDEX, 198]);
  const g = tokenizeConversation(twoTurns, qwen, { template: "chat_template", forGeneration: true });
  assert.deepEqual(g.inputIds.slice(-3), [151644, 77091, 198]); // <|im_start|>assistant\n

  const l = tokenizeConversation(twoTurns, llava, { template: "chat_template" });
  checkShape(l);
  assert.equal(l.inputIds[0], 1);
  assert.deepEqual(asWholePrompt(l), llava.encode("USER: <image>\nWhat is on the table? ASSISTANT: A red cup and a plate. USER: What colour is the plate? ASSISTANT: It is white. "));
  assert.deepEqual(trainedSpans(llava, l), ["A red cup and a plate.", "It is white. "]);
});

test("chat_template on a tokenizer without one is a ConfigError", () => {
  const noTemplate = Object.create(llava, { chatTemplate: { value: undefined } }) as Tokenizer;
  assert.throws(() => tokenizeConversation(twoTurns, noTemplate, { template: "chat_template" }), ConfigError);
  assert.throws(() => tokenizeConversation(twoTurns, llava, { template: "nope" as "plain" }), ConfigError);
});
