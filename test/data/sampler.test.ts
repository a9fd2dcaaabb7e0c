// Sampler: shard spec parsing, seeded epoch permutations, --shard i/N splits, row index, shuffle buffer order.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  RowIndex, ShuffleBufferOrder, checkCursor, chooseShuffleMode, epochPermutation, epochSeed, nextOwnedPosition, ownsPosition,
  parseShardSpec, takeShard,
} from "../../data/sampler.js";

function isPermutation(a: ArrayLike<number>, n: number): boolean {
  if (a.length !== n) return false;
  const seen = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v < n) || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

test("parseShardSpec: i/N with 0 <= i < N, clear errors otherwise", () => {
  assert.deepEqual(parseShardSpec("0/1"), { index: 0, count: 1 });
  assert.deepEqual(parseShardSpec(" 3 / 8 "), { index: 3, count: 8 });
  assert.throws(() => parseShardSpec("4/4"), /0 <= i < N/);
  assert.throws(() => parseShardSpec("0/0"), /N must be at least 1/);
  assert.throws(() => parseShardSpec("-1/4"), /expected i\/N/);
  assert.throws(() => parseShardSpec("1of4"), /expected i\/N/);
  assert.throws(() => parseShardSpec("1.5/4"), /expected i\/N/);
});

test("epochPermutation: a permutation; same seed+epoch same order; other epoch/seed differ", () => {
  for (const n of [0, 1, 2, 17, 1000]) assert.ok(isPermutation(epochPermutation(n, 7, 0), n), `n=${n}`);
  const a = epochPermutation(1000, 42, 3);
  assert.deepEqual(epochPermutation(1000, 42, 3), a);
  assert.notDeepEqual(epochPermutation(1000, 42, 4), a);
  assert.notDeepEqual(epochPermutation(1000, 43, 3), a);
  // Seeds above 2^32 use the high bits too.
  assert.notDeepEqual(epochPermutation(100, 2 ** 40, 0), epochPermutation(100, 0, 0));
});

test("epochSeed: distinct safe integers over a grid of seeds and epochs", () => {
  const seen = new Set<number>();
  for (const seed of [0, 1, 2, 1234, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER]) {
    for (let e = 0; e < 50; e++) {
      const s = epochSeed(seed, e);
      assert.ok(Number.isSafeInteger(s) && s >= 0);
      seen.add(s);
    }
  }
  assert.equal(seen.size, 7 * 50);
  assert.throws(() => epochSeed(-1, 0), /seed/);
  assert.throws(() => epochSeed(0, 1.5), /epoch/);
});

test("epochPermutation is uniform: all 24 orders of 4 items about equally often", () => {
  const counts = new Map<string, number>();
  const trials = 4800;
  for (let e = 0; e < trials; e++) {
    const k = Array.from(epochPermutation(4, 99, e)).join("");
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  assert.equal(counts.size, 24);
  // Expected 200 each; chi-square with 23 dof: p=0.001 at 49.7.
  const chi2 = [...counts.values()].reduce((s, c) => s + (c - 200) ** 2 / 200, 0);
  assert.ok(chi2 < 49.7, `chi2 ${chi2.toFixed(1)}`);
});

test("--shard i/N: disjoint subsets whose union is every position", () => {
  const n = 23;
  const perm = epochPermutation(n, 5, 0);
  for (const N of [1, 2, 3, 5, 30]) {
    const seen = new Map<number, number>();
    for (let i = 0; i < N; i++) {
      const shard = { index: i, count: N };
      const mine = takeShard(Array.from(perm), shard);
      for (const g of mine) {
        assert.equal(seen.has(g), false, `row ${g} in two workers (N=${N})`);
        seen.set(g, i);
      }
      // ownsPosition / nextOwnedPosition agree with takeShard.
      const positions = Array.from({ length: n }, (_, p) => p).filter((p) => ownsPosition(p, shard));
      assert.deepEqual(positions.map((p) => perm[p]), mine);
      for (let p = 0; p <= n + N; p++) {
        let q = p;
        while (!ownsPosition(q, shard)) q++;
        assert.equal(nextOwnedPosition(p, shard), q);
      }
    }
    assert.equal(seen.size, n, `N=${N}`);
  }
});

test("RowIndex: global index <-> (shard, row), empty shards skipped", () => {
  const idx = new RowIndex([3, 0, 0, 4, 1]);
  assert.equal(idx.total, 8);
  const want = [[0, 0], [0, 1], [0, 2], [3, 0], [3, 1], [3, 2], [3, 3], [4, 0]];
  want.forEach(([shard, row], g) => {
    assert.deepEqual(idx.locate(g), { shard, row });
    assert.equal(idx.globalIndex(shard!, row!), g);
  });
  assert.throws(() => idx.locate(8), /out of range/);
});

test("ShuffleBufferOrder: every row once, locality bounded by the buffer, deterministic, replayable", () => {
  const idx = new RowIndex([10, 0, 7, 13, 1]);
  const run = (size: number, seed: number, epoch: number) => {
    const o = new ShuffleBufferOrder(idx, size, seed, epoch);
    const out: number[] = [];
    const inputs: number[] = [];
    for (let g = o.step(inputs); g !== undefined; g = o.step(inputs)) out.push(g);
    return { out, inputs };
  };
  for (const size of [1, 4, 31, 100]) {
    const { out, inputs } = run(size, 3, 1);
    assert.ok(isPermutation(out, idx.total), `size ${size}`);
    assert.ok(isPermutation(inputs, idx.total));
    // Input order: whole shards, rows in order.
    for (let k = 1; k < inputs.length; k++) {
      const a = idx.locate(inputs[k - 1]!);
      const b = idx.locate(inputs[k]!);
      if (a.shard === b.shard) assert.equal(b.row, a.row + 1);
      else assert.equal(b.row, 0);
    }
    // The item emitted at position p was among the first p + size inputs.
    const rank = new Map(inputs.map((g, k) => [g, k]));
    out.forEach((g, p) => assert.ok(rank.get(g)! < p + size, `size ${size}, position ${p}`));
    if (size === 1) assert.deepEqual(out, inputs);
    assert.deepEqual(run(size, 3, 1).out, out);
  }
  assert.notDeepEqual(run(8, 3, 1).out, run(8, 3, 2).out);
  // Replay: skipTo(p) then step gives the uninterrupted order's tail.
  const full = run(8, 11, 0).out;
  for (const p of [0, 1, 8, 20, 30, 31]) {
    const o = new ShuffleBufferOrder(idx, 8, 11, 0);
    o.skipTo(p);
    const tail: number[] = [];
    for (let g = o.step(); g !== undefined; g = o.step()) tail.push(g);
    assert.deepEqual(tail, full.slice(p));
  }
});

test("chooseShuffleMode and checkCursor", () => {
  assert.equal(chooseShuffleMode("auto", 100, 100), "permutation");
  assert.equal(chooseShuffleMode("auto", 101, 100), "buffer");
  assert.equal(chooseShuffleMode("none", 1e9), "none");
  const run = { seed: 1, shard: { index: 1, count: 2 }, shuffle: "permutation" as const, rows: 10 };
  const c = { epoch: 2, position: 5, seed: 1, shard: "1/2", shuffle: "permutation", rows: 10 };
  assert.deepEqual(checkCursor(JSON.parse(JSON.stringify(c)), run), c);
  assert.throws(() => checkCursor({ ...c, seed: 2 }, run), /seed 2/);
  assert.throws(() => checkCursor({ ...c, shard: "0/2" }, run), /worker 0\/2/);
  assert.throws(() => checkCursor({ ...c, shard: undefined }, run), /unsharded/);
  assert.throws(() => checkCursor({ ...c, rows: 11 }, run), /11 rows/);
  assert.throws(() => checkCursor({ ...c, shuffle: "buffer" }, run), /shuffle "buffer"/);
  assert.throws(() => checkCursor({ ...c, position: 11 }, run), /position/);
});
