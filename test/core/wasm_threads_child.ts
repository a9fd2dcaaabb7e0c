// Child process of wasm_threads.test.ts: initialises wasm with VZT_THREADS threads, runs the matMul cases and prints
// {threads, tensorsBefore, tensorsAfter, buffersBefore, buffersAfter, results: [{name, shape, b64}]} as JSON. It must exit by itself (no process.exit).
import { tf, setBackend } from "../../core/backend.js";
import { installWasmThreads, wasmThreadsInUse } from "../../core/wasm_threads.js";
import { installWasmFusedMatMulFix } from "../../core/wasm_fused_matmul.js";
import { runMatMulCases } from "./wasm_threads_cases.js";

installWasmThreads();
await setBackend("wasm", { quiet: true });
installWasmFusedMatMulFix(); // until core/backend.ts installs it: tfjs's fused slow path is wrong with bias / relu
const tensorsBefore = tf.memory().numTensors;
const buffersBefore = tf.memory().numDataBuffers;
const results = runMatMulCases();
const tensorsAfter = tf.memory().numTensors;
const buffersAfter = tf.memory().numDataBuffers;
process.stdout.write(
  JSON.stringify({
    backend: tf.getBackend(),
    threads: wasmThreadsInUse(),
    tensorsBefore,
    tensorsAfter,
    buffersBefore,
    buffersAfter,
    results: results.map((r) => ({ name: r.name, shape: r.shape, b64: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength).toString("base64") })),
  }) + "\n",
);
