// Batched generation (left padding, per-row stops) gives each row the tokens it gets alone; a newline stops only its
// row; no tensor is left behind. On wasm (full check) and cpu (kept small: the cpu backend's tower takes ~2 s/image).
import assert from "node:assert/strict";
import { test } from "node:test";
import { setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { tokenizeConversation } from "../../data/conversation.js";
import { preprocessToFloat32 } from "../../data/preprocess.js";
import { openShards } from "../../data/arrow_shards.js";
import type { Tokenizer } from "../../data/tokenizer.js";
import { generateBatch, type GenerateRequest } from "../../eval/generate.js";
import { buildReducer } from "../../reduce/reducer.js";
import { loadVlm } from "../../models/llava.js";
import { makeEvalFixture } from "./fixtures.js";
import path from "node:path";

const QUESTIONS = ["What color is the circle?", "How many shapes are there?\nAnswer the question using a single word or phrase.", "Is there a red square?"];

for (const backend of ["wasm", "cpu"] as const) {
  test(`generateBatch: batched == one by one, newline stops its row only, no leak (${backend})`, async () => {
    await setBackend(backend);
    const f = await makeEvalFixture();
    const vlm = await loadVlm({ model: path.join(f.tiny, "llava") });
    try {
      const tok = vlm.tokenizer!;
      const set = await openShards(path.join(f.shapes, "eval_pope"));
      const images: Float32Array[] = [];
      for await (const { row } of set.rows()) {
        if (images.length === QUESTIONS.length) break;
        const img = row.image as { bytes: Uint8Array };
        images.push((await preprocessToFloat32(img.bytes, { config: vlm.preprocessor })).data);
      }
      // Prompts of different lengths, so the batch is left-padded.
      const small = backend === "cpu";
      const reqs: GenerateRequest[] = QUESTIONS.slice(0, small ? 2 : 3).map((q, i) => ({
        inputIds: tokenizeConversation({ image: "x", messages: [{ from: "human", value: `<image>\n${q}` }] }, tok, { template: "vicuna_v1", forGeneration: true }).inputIds,
        pixels: images[i]!,
      }));
      assert.notEqual(reqs[0]!.inputIds.length, reqs[1]!.inputIds.length);
      const opts = { maxNewTokens: 4, eosTokenIds: vlm.lm.config.eosTokenIds, tokenizer: tok, imageShape: [3, 336, 336] as [number, number, number] };
      const reducers = small ? [buildReducer("visionzip", { budget: 16 })] : [buildReducer("none"), buildReducer("visionzip", { budget: 16 })];
      for (const reducer of reducers) {
        const batched = await assertNoTensorLeak("generateBatch", () => generateBatch(vlm, reducer, reqs, opts));
        assert.equal(batched.visualTokens, reducer.name === "none" ? 576 : 16);
        for (let i = 0; i < reqs.length; i++) {
          const alone = await generateBatch(vlm, reducer, [reqs[i]!], opts);
          assert.deepEqual(batched.rows[i]!.ids, alone.rows[0]!.ids, `${reducer.name} row ${i}`);
          assert.equal(batched.rows[i]!.promptTokens, alone.rows[0]!.promptTokens);
          assert.equal(batched.rows[i]!.promptTokens, reqs[i]!.inputIds.length - 1 + batched.visualTokens);
        }
        if (small) continue;
        // A tokenizer that decodes row 0's first token as a newline: row 0 stops there, the others go on unchanged.
        const first = batched.rows[0]!.ids[0]!;
        const nlTok: Tokenizer = Object.create(tok, { decode: { value: (ids: readonly number[], o?: object) => ids.map((t) => (t === first ? "\n" : tok.decode([t], o))).join(" ") } });
        const cut = await generateBatch(vlm, reducer, reqs, { ...opts, tokenizer: nlTok });
        assert.deepEqual(cut.rows[0]!.ids, [first]);
        assert.equal(cut.rows[0]!.stop, "newline");
        assert.equal(cut.rows[0]!.text, "");
        for (let i = 1; i < reqs.length; i++) {
          const expect = batched.rows[i]!.ids;
          const k = expect.indexOf(first);
          assert.deepEqual(cut.rows[i]!.ids, k >= 0 ? expect.slice(0, k + 1) : expect);
        }
        assert.ok(batched.timings.towerMs > 0 && batched.timings.prefillMs > 0);
        assert.ok(batched.kvPeakBytes > 0);
      }
    } finally {
      vlm.dispose();
    }
  });
}
