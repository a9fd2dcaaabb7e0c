// The threaded wasm build (core/wasm_threads.ts): 2 threads give bit-for-bit the same matrix products as tfjs's
// single-threaded wasm build (plain, transposed flags, fused bias + activations, broadcast batches, gradients), both
// agree with the cpu backend, no tensors leak, and a process that used 2 threads exits by itself.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setBackend } from "../../core/backend.js";
import { MAX_WASM_THREADS, wantedWasmThreads } from "../../core/wasm_threads.js";
import { maxAbsDiff } from "../helpers.js";
import { runMatMulCases } from "./wasm_threads_cases.js";

interface ChildOut {
  backend: string;
  threads: number;
  tensorsBefore: number;
  tensorsAfter: number;
  buffersBefore: number;
  buffersAfter: number;
  results: { name: string; shape: number[]; b64: string }[];
}

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "wasm_threads_child.js");

/** Runs the child with VZT_THREADS=threads; rejects if it fails or does not exit within 25 s (a hanging worker). */
function runChild(threads: number): Promise<ChildOut> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [child], { env: { ...process.env, VZT_THREADS: String(threads) }, timeout: 25_000, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wasm_threads_child (VZT_THREADS=${threads}) ${err.killed ? "did not exit within 25 s" : "failed"}: ${err.message}\n${stderr}`));
      resolve(JSON.parse(stdout) as ChildOut);
    });
  });
}

const floats = (b64: string) => {
  const buf = Buffer.from(b64, "base64");
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
};

test("VZT_THREADS picks the thread count, default the core count, capped at the pool size", () => {
  assert.equal(wantedWasmThreads({ VZT_THREADS: "1" }), 1);
  assert.equal(wantedWasmThreads({ VZT_THREADS: "2" }), 2);
  assert.equal(wantedWasmThreads({ VZT_THREADS: "64" }), MAX_WASM_THREADS);
  assert.ok(wantedWasmThreads({}) >= 1);
  assert.throws(() => wantedWasmThreads({ VZT_THREADS: "two" }), /VZT_THREADS/);
  assert.throws(() => wantedWasmThreads({ VZT_THREADS: "0" }), /VZT_THREADS/);
});

test("2 wasm threads: same matMul results as 1 thread (bit-equal) and as the cpu backend, no leak, clean exit", async () => {
  const [one, two] = await Promise.all([runChild(1), runChild(2)]);
  assert.equal(one.backend, "wasm");
  assert.equal(two.backend, "wasm");
  assert.equal(one.threads, 1);
  assert.equal(two.threads, 2, "the threaded build did not start 2 threads");
  for (const r of [one, two]) {
    assert.equal(r.tensorsAfter, r.tensorsBefore, `tensor count changed with ${r.threads} thread(s)`);
    assert.equal(r.buffersAfter, r.buffersBefore, `backend data buffers leaked with ${r.threads} thread(s)`);
  }

  await setBackend("cpu", { quiet: true });
  const ref = runMatMulCases();
  assert.equal(two.results.length, ref.length);
  for (const [i, want] of ref.entries()) {
    const a = one.results[i]!;
    const b = two.results[i]!;
    assert.equal(b.name, want.name);
    assert.deepEqual(b.shape, want.shape, want.name);
    assert.equal(b.b64, a.b64, `${want.name}: 2 threads differ from 1 thread (max abs diff ${maxAbsDiff(floats(a.b64), floats(b.b64))})`);
    // cpu sums in another order: agree to float32 rounding of sums of ~300 products of magnitude <= 1
    const scale = Math.max(1, ...Array.from(want.data, Math.abs));
    const diff = maxAbsDiff(floats(b.b64), want.data);
    assert.ok(diff <= 2e-5 * scale, `${want.name}: wasm vs cpu max abs diff ${diff}`);
  }
});
