// Collate: exact padding, masks, labels and image positions on hand-built samples; errors; batchToTensors.
import assert from "node:assert/strict";
import { test } from "node:test";
import { setBackend, tf } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { collate, padTokenIdOf, type Sample } from "../../data/batch.js";
import { batchToTensors, disposeBatchTensors } from "../../data/batch_tensors.js";

const img = (v: number, h = 2, w = 2) => ({ data: new Float32Array(3 * h * w).fill(v), shape: [3, h, w] as const });

// Row 0: BOS, image, 2 prompt tokens, 1 answer token (5). Row 1: text only (3). Row 2: image first (2).
const samples: Sample[] = [
  { id: "a", inputIds: [1, -200, 11, 12, 13], labels: [-100, -100, -100, -100, 13], images: [img(0.5)] },
  { id: "b", inputIds: [1, 21, 22], labels: [-100, 21, 22] },
  { id: "c", inputIds: [-200, 31], labels: [-100, 31], images: [img(-1)] },
];

test("right padding: ids, labels -100 and mask 0 on padding, image positions, pixels in row order", () => {
  const b = collate(samples, { padId: 0 }, [{ file: "x.arrow", row: 4 }]);
  assert.equal(b.batchSize, 3);
  assert.equal(b.seqLen, 5);
  assert.deepEqual(Array.from(b.inputIds), [1, -200, 11, 12, 13, /**/ 1, 21, 22, 0, 0, /**/ -200, 31, 0, 0, 0]);
  assert.deepEqual(Array.from(b.labels), [-100, -100, -100, -100, 13, /**/ -100, 21, 22, -100, -100, /**/ -100, 31, -100, -100, -100]);
  assert.deepEqual(Array.from(b.attentionMask), [1, 1, 1, 1, 1, /**/ 1, 1, 1, 0, 0, /**/ 1, 1, 0, 0, 0]);
  assert.deepEqual(b.imagePositions, [[1], [], [0]]);
  assert.deepEqual(b.hasImage, [true, false, true]);
  assert.deepEqual(b.ids, ["a", "b", "c"]);
  assert.deepEqual(b.pixelShape, [2, 3, 2, 2]);
  assert.deepEqual(Array.from(b.pixelValues), [...Array(12).fill(0.5), ...Array(12).fill(-1)]);
  assert.deepEqual(b.where, [{ file: "x.arrow", row: 4 }, {}, {}]);
});

test("left padding (generation): image positions shift with the padding; padToMultipleOf", () => {
  const b = collate(samples, { padId: 32001, padSide: "left", padToMultipleOf: 4 });
  assert.equal(b.seqLen, 8);
  const P = 32001;
  assert.deepEqual(Array.from(b.inputIds), [P, P, P, 1, -200, 11, 12, 13, /**/ P, P, P, P, P, 1, 21, 22, /**/ P, P, P, P, P, P, -200, 31]);
  assert.deepEqual(Array.from(b.attentionMask), [0, 0, 0, 1, 1, 1, 1, 1, /**/ 0, 0, 0, 0, 0, 1, 1, 1, /**/ 0, 0, 0, 0, 0, 0, 1, 1]);
  assert.deepEqual(Array.from(b.labels.subarray(0, 8)), [-100, -100, -100, -100, -100, -100, -100, 13]);
  assert.deepEqual(b.imagePositions, [[4], [], [6]]);
  for (let r = 0; r < 3; r++) for (const p of b.imagePositions[r]!) assert.equal(b.inputIds[r * b.seqLen + p], -200);
});

test("text-only batch: no pixels, shape [0, 3, H, W] from imageShape", () => {
  const b = collate([samples[1]!], { padId: 0, imageShape: [3, 336, 336] });
  assert.deepEqual(b.pixelShape, [0, 3, 336, 336]);
  assert.equal(b.pixelValues.length, 0);
  assert.deepEqual(b.hasImage, [false]);
});

test("pad id: pad ?? unk ?? 0", () => {
  assert.equal(padTokenIdOf({ padTokenId: 32001, unkTokenId: 0 }), 32001);
  assert.equal(padTokenIdOf({ padTokenId: undefined, unkTokenId: 3 }), 3);
  assert.equal(padTokenIdOf({}), 0);
});

test("bad samples are DataErrors naming the row", () => {
  const where = [{ file: "d.arrow", batch: 0, row: 7 }];
  assert.throws(() => collate([{ id: "x", inputIds: [1, -200], labels: [-100, -100] }], { padId: 0 }, where), /d\.arrow, batch 0, row 7: .*0 image\(s\) but 1 image placeholder/);
  assert.throws(() => collate([{ id: "x", inputIds: [1, 2], labels: [2] }], { padId: 0 }, where), /row 7: .*1 labels for 2 inputIds/);
  assert.throws(() => collate([{ id: "x", inputIds: [1, -5], labels: [1, 2] }], { padId: 0 }, where), /inputIds\[1\] = -5/);
  assert.throws(() => collate([samples[0]!, { ...samples[2]!, images: [img(1, 4, 4)] }], { padId: 0 }), /differs from the batch's/);
  assert.throws(() => collate([], { padId: 0 }), /no samples/);
});

for (const backend of ["wasm", "cpu"] as const) {
  test(`batchToTensors on ${backend}: shapes, dtypes, values; nothing left after dispose`, async () => {
    await setBackend(backend, { quiet: true });
    const b = collate(samples, { padId: 0 });
    await assertNoTensorLeak("batchToTensors + dispose", async () => {
      const t = batchToTensors(b);
      assert.deepEqual(t.inputIds.shape, [3, 5]);
      assert.equal(t.inputIds.dtype, "int32");
      assert.deepEqual(Array.from(await t.labels.data()), Array.from(b.labels));
      assert.deepEqual(Array.from(await t.attentionMask.data()), Array.from(b.attentionMask));
      assert.deepEqual(t.pixelValues?.shape, [2, 3, 2, 2]);
      assert.deepEqual(Array.from(await t.pixelValues!.data()), Array.from(b.pixelValues));
      disposeBatchTensors(t);
    });
    await assertNoTensorLeak("text-only batch", () => {
      const t = batchToTensors(collate([samples[1]!], { padId: 0 }));
      assert.equal(t.pixelValues, undefined);
      assert.equal(tf.memory().numTensors >= 3, true);
      disposeBatchTensors(t);
    });
  });
}

test("the batch counts samples cut at maxLength, and cached images (empty data) become zeros without a shape check", () => {
  const cut: Sample = { ...samples[1]!, id: "cut", truncated: true };
  assert.equal(collate([samples[1]!, cut], { padId: 0 }).truncated, 1);
  assert.equal(collate([samples[1]!], { padId: 0 }).truncated, 0);
  const withImage = samples.find((s) => (s.images?.length ?? 0) > 0)!;
  const cached: Sample = { ...withImage, id: "cached", images: withImage.images!.map(() => ({ data: new Float32Array(0), shape: [3, 0, 0] as const, sha256: "ab" })) };
  const b = collate([withImage, cached], { padId: 0 });
  assert.equal(b.pixelShape[0], withImage.images!.length * 2);
  assert.deepEqual(b.imageShas.slice(-1), ["ab"]);
  const per = 3 * b.pixelShape[2] * b.pixelShape[3];
  assert.ok(b.pixelValues.subarray(per * withImage.images!.length).every((x) => x === 0));
});
