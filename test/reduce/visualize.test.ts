// `vzt visualize`: patch roles from hand-built provenance, exact inversion of the preprocessing, and the PNG drawn for
// VisionZip (golden clip_vision_336 tower, a real COCO image) and for a pruning reducer: size, counts, and sampled
// pixels (kept = the image as the tower saw it, contextual = tinted, dropped = dimmed, targets and outlines coloured).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { setBackend } from "../../core/backend.js";
import { assertNoTensorLeak } from "../../core/memory.js";
import { normalizeTable, parsePreprocessorConfig, preprocessToFloat32 } from "../../data/preprocess.js";
import {
  groupColour, LEGEND_HEIGHT, preprocessedRGB, reductionLayout, visualizeCommand, visualizeOptionsFromFlags, type VisualizeResult,
} from "../../reduce/visualize.js";
import { goldenDir } from "../helpers.js";

const TOWER = path.join(goldenDir(), "models", "clip_vision_336");
const IMAGE = path.join(goldenDir(), "real", "images", "COCO_val2014_000000265719.jpg");
const IMAGE2 = path.join(goldenDir(), "real", "images", "COCO_val2014_000000297078.jpg");
const tmp = await mkdtemp(path.join(tmpdir(), "vzt-visualize-"));
after(() => rm(tmp, { recursive: true, force: true }));

test("reductionLayout: dominant, contextual groups with targets, dropped and CLS from provenance", () => {
  // 3x3 grid: CLS token, kept 0 and 4, a group targeting 2 with members 5 and 8, patch 1, 3, 6, 7 dropped.
  const l = reductionLayout({ provenance: [[], [0], [4], [2, 5, 8]], keptIndices: [0, 4] }, 3);
  assert.deepEqual(Array.from(l.role), [-2, -1, 0, -1, -2, 0, -1, -1, 0]);
  assert.deepEqual([l.dominant, l.dropped, l.cls, l.targets, l.groupSizes], [2, 4, true, [2], [3]]);
  // A single-patch token not in keptIndices is a group of one (an empty VisionZip slot); without keptIndices it is kept.
  assert.deepEqual(Array.from(reductionLayout({ provenance: [[0], [3]], keptIndices: [0] }, 2).role), [-2, -1, -1, 0]);
  assert.deepEqual(Array.from(reductionLayout({ provenance: [[0], [3]] }, 2).role), [-2, -1, -1, -2]);
  assert.throws(() => reductionLayout({ provenance: [[9]] }, 3), /token 0 covers patch 9, outside the 3x3 grid/);
});

test("preprocessedRGB inverts the normalisation exactly (clip and pad)", async () => {
  const bytes = new Uint8Array(await readFile(IMAGE2));
  const cfg = parsePreprocessorConfig({});
  const lut = normalizeTable(cfg);
  for (const mode of ["clip", "pad"] as const) {
    const rgb = await preprocessedRGB(bytes, mode);
    const px = await preprocessToFloat32(bytes, { mode });
    assert.deepEqual([rgb.height, rgb.width], [336, 336]);
    const hw = 336 * 336;
    let bad = 0;
    for (let i = 0; i < hw; i++) for (let c = 0; c < 3; c++) if (lut[c * 256 + rgb.data[i * 3 + c]!] !== px.data[c * hw + i]) bad++;
    assert.equal(bad, 0, `${mode}: ${bad} values do not re-normalise to pixel_values`);
  }
});

async function readPng(file: string): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/** Interior pixel of patch p (away from outlines and target dots), in output coordinates. */
function interior(p: number, r: VisualizeResult): { x: number; y: number } {
  const patchPx = 14 * r.scale;
  const G = r.layout.gridSize;
  return { x: (p % G) * patchPx + 4, y: Math.floor(p / G) * patchPx + 4 };
}

test("visionzip on the golden 336 tower and a COCO image: PNG size, counts, and sampled pixels", async () => {
  await setBackend("wasm", { quiet: true });
  const out = path.join(tmp, "zip.png");
  const r = await assertNoTensorLeak("visualizeCommand", () =>
    visualizeCommand({ model: TOWER, image: IMAGE, reducer: { name: "visionzip", dominant: 54, contextual: 10 }, out }),
  );
  assert.equal(r.scale, 2);
  assert.deepEqual([r.width, r.height, r.imageHeight], [672, 672 + LEGEND_HEIGHT, 672]);
  const l = r.layout;
  assert.deepEqual([l.dominant, l.cls, l.targets.length, l.dropped], [53, true, 10, 0]);
  assert.equal(l.groupSizes.reduce((a, b) => a + b, 0), 576 - 53);
  const png = await readPng(out);
  assert.deepEqual([png.width, png.height], [672, 736]);
  const at = (x: number, y: number) => Array.from(png.data.subarray((y * png.width + x) * png.channels, (y * png.width + x) * png.channels + 3));

  const rgb = await preprocessedRGB(new Uint8Array(await readFile(IMAGE)), "clip");
  const src = (x: number, y: number) => {
    const i = (Math.floor(y / 2) * 336 + Math.floor(x / 2)) * 3;
    return [rgb.data[i]!, rgb.data[i + 1]!, rgb.data[i + 2]!];
  };
  // A dominant patch shows the preprocessed pixels unchanged, and its outline (a side facing a non-dominant patch) is yellow.
  const dom = Array.from(l.role).findIndex((v, p) => v === -2 && p % 24 !== 0 && l.role[p - 1] !== -2);
  const d = interior(dom, r);
  assert.deepEqual(at(d.x, d.y), src(d.x, d.y));
  assert.deepEqual(at((dom % 24) * 28, d.y), [255, 214, 0]);
  // A contextual member (not a target) is its group's colour over the greyscale image, not the image.
  const mem = Array.from(l.role).findIndex((v, p) => v >= 0 && !l.targets.includes(p));
  const m = interior(mem, r);
  const [sr, sg, sb] = src(m.x, m.y) as [number, number, number];
  const grey = 0.8 * (0.299 * sr + 0.587 * sg + 0.114 * sb);
  const c = groupColour(l.role[mem]!);
  assert.deepEqual(at(m.x, m.y), c.map((v) => Math.round(grey * 0.55 + v * 0.45)));
  assert.notDeepEqual(at(m.x, m.y), src(m.x, m.y));
  // Each target's centre is its group's colour.
  l.targets.forEach((t, g) => {
    const G = 24;
    const cx = (t % G) * 28 + 14;
    const cy = Math.floor(t / G) * 28 + 14;
    assert.deepEqual(at(cx, cy), groupColour(g), `target of group ${g}`);
  });
  // The legend strip is the dark background at its left edge.
  assert.deepEqual(at(2, 672 + 2), [27, 27, 27]);
});

test("a pruning reducer (uniform) in pad mode: kept patches unchanged, dropped patches dimmed", async () => {
  await setBackend("wasm", { quiet: true });
  const out = path.join(tmp, "uniform.png");
  const r = await visualizeCommand({ model: TOWER, image: IMAGE2, reducer: { name: "uniform", budget: 144 }, out, mode: "pad", scale: 1 });
  assert.deepEqual([r.width, r.height], [336, 336 + LEGEND_HEIGHT]);
  assert.deepEqual([r.layout.dominant, r.layout.targets.length, r.layout.dropped, r.layout.cls], [144, 0, 432, false]);
  const png = await readPng(out);
  const rgb = await preprocessedRGB(new Uint8Array(await readFile(IMAGE2)), "pad");
  const at = (x: number, y: number) => Array.from(png.data.subarray((y * png.width + x) * png.channels, (y * png.width + x) * png.channels + 3));
  const src = (x: number, y: number) => Array.from(rgb.data.subarray((y * 336 + x) * 3, (y * 336 + x) * 3 + 3));
  // Sample the middle row of patches (the picture, not the pad bars).
  const row = 12;
  let keptSeen = 0;
  let droppedSeen = 0;
  for (let col = 0; col < 24; col++) {
    const p = row * 24 + col;
    const x = col * 14 + 5;
    const y = row * 14 + 5;
    const s = src(x, y) as [number, number, number];
    if (r.layout.role[p] === -2) {
      keptSeen++;
      assert.deepEqual(at(x, y), s, `kept patch ${p}`);
    } else {
      droppedSeen++;
      const v = Math.round(0.22 * (0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2]) + 12);
      assert.deepEqual(at(x, y), [v, v, v], `dropped patch ${p}`);
    }
  }
  assert.ok(keptSeen > 0 && droppedSeen > 0);
});

test("visualizeOptionsFromFlags: --model/--reducer/--dominant/--contextual map to visualizeCommand options", () => {
  assert.deepEqual(
    visualizeOptionsFromFlags({ model: "m", image: "i.jpg", out: "o.png", reducer: "visionzip", dominant: "54", contextual: "10", mode: "pad" }),
    { model: "m", image: "i.jpg", out: "o.png", reducer: { name: "visionzip", dominant: 54, contextual: 10 }, mode: "pad", layer: undefined, scale: undefined },
  );
  assert.deepEqual(visualizeOptionsFromFlags({ "vision-tower": "t", image: "i", out: "o.png" }).model, { model: undefined, visionTower: "t" });
  assert.throws(() => visualizeOptionsFromFlags({ image: "i", out: "o.jpg", mode: "x" }), (e: Error) =>
    /--model DIR/.test(e.message) && /must end in \.png/.test(e.message) && /--mode: expected clip or pad/.test(e.message));
  assert.throws(() => visualizeOptionsFromFlags({ model: "m", image: "i", out: "o.png", budget: "6.5" }), /--budget: expected an integer/);
});
