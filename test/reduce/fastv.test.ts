// FastV (reduce/fastv.ts): kept counts from R or a budget, the decision point (layer K, the last token's attention
// row of layer K-1), a stable top-k mapped back to the alive tokens, config errors naming the key, and on the golden
// llama_tiny the default K = 2, R = 50 % keeping the top 3 of 5 by golden mm_attn_probs_layer_1[:, :, last, 0:5].
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { tf, setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { loadLanguageModel } from "../../models/llama.js";
import { fastvKeep, fastvReducer } from "../../reduce/fastv.js";
import { goldenDir, readGoldenVector } from "../helpers.js";

test("fastv: kept count = round(N · (1 - R)) or the budget", () => {
  assert.equal(fastvKeep(576, {}), 288);
  assert.equal(fastvKeep(576, { ratio: 0.75 }), 144);
  assert.equal(fastvKeep(576, { ratio: 0.75, budget: 64 }), 64);
  assert.equal(fastvKeep(5, {}), 3); // 2.5 rounds up
});

test("fastv: one decision entering layer K on the last token's row; the top scores among the alive tokens, ties to the lower index", () => {
  const r = fastvReducer({ layer: 2, budget: 2 });
  assert.deepEqual(r.decisions(32, 576), [{ layer: 2, attention: "last" }]);
  const kept = r.decide({ layer: 2, visualTokens: 8, alive: [[0, 2, 5, 7], [1, 3, 4, 6]], scores: [Float32Array.from([0.1, 0.4, 0.2, 0.4]), Float32Array.from([0.3, 0.3, 0.3, 0.1])] });
  assert.deepEqual(kept, [[2, 7], [1, 3]]);
});

test("fastv: bad settings are refused naming the key", () => {
  assert.throws(() => fastvReducer({ layer: 0 }), /fastv.layer: must be an integer >= 1/);
  assert.throws(() => fastvReducer({ ratio: 1.5 }), /fastv.ratio: must be in \[0, 1\]/);
  assert.throws(() => fastvReducer({ budget: -1 }), /fastv.budget: must be a non-negative integer/);
  assert.throws(() => fastvReducer({ layer: 32 }).decisions(32, 576), /K = 32 must be below the LLM's 32 layers/);
  assert.throws(() => fastvReducer({ budget: 600 }).decisions(32, 576), /fastv.budget: 600 exceeds the 576 visual tokens/);
});

for (const backend of ["wasm", "cpu"] as const) {
  test(`fastv defaults on llama_tiny keep the top 3 of 5 by the golden last-token attention of layer 1 (${backend})`, async () => {
    await setBackend(backend);
    const G = path.join(goldenDir(), "models");
    const lm = await loadLanguageModel(path.join(G, "llama_tiny"));
    const e = readGoldenVector(path.join(G, "vectors/llama_tiny/mm_inputs_embeds.json"));
    const p = readGoldenVector(path.join(G, "vectors/llama_tiny/mm_attn_probs_layer_1.json")).data; // [2, 4, 12, 12]
    const embeds = tf.tensor3d(e.data as Float32Array, e.shape as [number, number, number]);
    try {
      const trace = await assertNoTensorLeak("fastv forward", () => {
        const o = lm.forward({ inputsEmbeds: embeds, lastLogitsOnly: true, reduction: { reducer: fastvReducer(), visualPositions: [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]] } });
        o.logits.dispose();
        return o.reduction!;
      });
      assert.deepEqual(trace.visualPerLayer, [5, 5, 3]);
      for (let b = 0; b < 2; b++) {
        const golden = [0, 1, 2, 3, 4].map((j) => [0, 1, 2, 3].reduce((s, h) => s + p[((b * 4 + h) * 12 + 11) * 12 + j]!, 0) / 4);
        const want = golden.map((s, j) => [s, j] as const).sort((x, y) => y[0] - x[0] || x[1] - y[1]).slice(0, 3).map(([, j]) => j).sort((x, y) => x - y);
        assert.deepEqual(trace.decisions[0]!.kept[b], want, `row ${b}`);
        golden.forEach((g, j) => assert.ok(Math.abs(trace.decisions[0]!.scores![b]![j]! - g) <= 1e-5, `row ${b} token ${j}: score vs golden`));
      }
    } finally {
      embeds.dispose();
      lm.dispose();
    }
  });
}
