// Both cores for the wasm backend in Node: runs tfjs-backend-wasm's threaded SIMD build (XNNPACK's pthreadpool
// over worker_threads) instead of the single-threaded SIMD build tfjs picks in Node.
//
// Why tfjs 4.22 stays on one thread in Node (files under node_modules/@tensorflow/tfjs-backend-wasm/):
// 1. dist/tf-backend-wasm.node.js:7633 (source dist/flags_wasm.js:44), flag WASM_HAS_MULTITHREAD_SUPPORT:
//    `if (ENV.get('IS_NODE')) return false;` (a TODO for tensorflow/tfjs#3830). init() (:9305) then loads
//    tfjs-backend-wasm-simd.wasm, built without pthreads (src/cc/backend.cc: num_cores = 1 without
//    __EMSCRIPTEN_PTHREADS__, and the pool is capped at num_cores): setThreadsCount(n) is ignored, getThreadsCount() = 1.
// 2. Forcing the flag is not enough: the threaded glue spawns its 8 pool workers (:8145) with
//    `new Worker(locateFile(...))`, and locateFile (:9323) returns a blob: URL; then it asks them to importScripts a
//    Blob (mainScriptUrlOrBlob, :9363). Node's worker_threads take neither (the workers fail at start).
// 3. With working workers, src/cc/backend.cc still caps the pool at min(n, emscripten_num_logical_cores() / 2),
//    and in Node that is require("os").cpus().length / 2 (:8236): 1 on this 2-core machine.
// What this file does (public hooks of tfjs and emscripten; nothing in node_modules is edited): sets the flag,
// installs a global Worker shim the pool uses (the worker source from wasm-out/*.worker.js run with {eval: true}, the
// main script passed as the wasm-out/*.js path, workers unref'd so they never keep Node alive), reports 2 x threads
// logical cores only while the wasm module starts, and calls setThreadsCount(threads). All before the first
// tf.setBackend("wasm"). Kernels and numerics are those of the same XNNPACK build (results bit-equal to 1 thread).
import * as tf from "@tensorflow/tfjs";
import { getThreadsCount, setThreadsCount } from "@tensorflow/tfjs-backend-wasm";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { Worker as NodeWorker, type WorkerOptions } from "node:worker_threads";

const require = createRequire(import.meta.url);

/**
 * emscripten pre-spawns this many pthread workers (PTHREAD_POOL_SIZE of the 4.22 build); a larger pool would need
 * workers that start while the main thread blocks in the first parallel op.
 */
export const MAX_WASM_THREADS = 8;

/**
 * The thread count a run should use: `VZT_THREADS` (an integer >= 1) or os.availableParallelism(),
 * capped at MAX_WASM_THREADS.
 */
export function wantedWasmThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.VZT_THREADS;
  let n = os.availableParallelism();
  if (raw !== undefined && raw !== "") {
    n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new Error(`VZT_THREADS: expected an integer >= 1, got "${raw}"`);
  }
  return Math.min(n, MAX_WASM_THREADS);
}

let installedThreads = 0;

/**
 * Makes the next initialisation of tfjs's wasm backend use `threads` threads (default wantedWasmThreads()).
 * Call before the first `tf.setBackend("wasm")`; later calls, or a call after the backend already initialised,
 * change nothing. Returns the count that will be (or is) in use; 1 keeps tfjs's single-threaded SIMD build.
 */
export function installWasmThreads(threads: number = wantedWasmThreads()): number {
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`installWasmThreads: threads must be an integer >= 1, got ${threads}`);
  if (tf.engine().registry["wasm"]) return wasmThreadsInUse();
  if (installedThreads) return installedThreads;
  const n = Math.min(threads, MAX_WASM_THREADS);
  installedThreads = n;
  if (n === 1) return 1;
  const entry = tf.engine().registryFactory["wasm"];
  if (!entry) throw new Error("installWasmThreads: @tensorflow/tfjs-backend-wasm did not register the wasm backend");
  installWorkerShim();
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
  setThreadsCount(n);
  const factory = entry.factory;
  entry.factory = async () => {
    // backend.cc sizes the pool min(threads, logical cores / 2); the count is read once, while the module starts.
    const nodeOs = require("os") as typeof os;
    const realCpus = nodeOs.cpus;
    nodeOs.cpus = () => {
      const cpus = realCpus.call(nodeOs);
      const one = cpus[0];
      return one ? Array.from({ length: 2 * n }, (_, i) => cpus[i % cpus.length] ?? one) : cpus;
    };
    try {
      return await factory();
    } finally {
      nodeOs.cpus = realCpus;
    }
  };
  return n;
}

/** Threads the initialised wasm backend uses (XNNPACK's pool incl. the main thread); 1 when wasm is not initialised. */
export function wasmThreadsInUse(): number {
  if (!tf.engine().registry["wasm"]) return 1;
  try {
    return Math.max(1, getThreadsCount());
  } catch {
    return 1;
  }
}

function wasmPackageDir(): string {
  return path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
}

let shimInstalled = false;

// emscripten's pthread pool runs `new Worker(locateFile("…worker.js"))` on the global Worker (which its Node glue
// sets to worker_threads.Worker) and then posts {cmd: "load", urlOrBlob, wasmModule, wasmMemory}.
function installWorkerShim(): void {
  if (shimInstalled) return;
  shimInstalled = true;
  const dir = wasmPackageDir();
  const mainScript = path.join(dir, "wasm-out", "tfjs-backend-wasm-threaded-simd.js");
  const workerModule = require(path.join(dir, "wasm-out", "tfjs-backend-wasm-threaded-simd.worker.js")) as { wasmWorkerContents: string };
  // The source is a template literal whose "\n" escapes became newlines inside string literals; tfjs escapes them
  // back the same way before making its Blob.
  const workerSource = workerModule.wasmWorkerContents.replace(/\n/g, "\\n");

  class PthreadWorker extends NodeWorker {
    constructor(url: string | URL, options?: WorkerOptions) {
      const s = String(url);
      const ours = s.startsWith("blob:") || s.endsWith("tfjs-backend-wasm-threaded-simd.worker.js");
      super(ours ? workerSource : url, ours ? { eval: true } : options);
      // XNNPACK's pool threads live as long as the module and wait on a futex between ops: never keep Node alive.
      if (ours) this.unref();
      this.ours = ours;
    }
    private readonly ours: boolean;
    override ref(): void {
      if (!this.ours) super.ref();
    }
    override postMessage(value: unknown, transferList?: readonly import("node:worker_threads").TransferListItem[]): void {
      const msg = value as { cmd?: string; urlOrBlob?: unknown } | null;
      if (this.ours && msg && msg.cmd === "load" && typeof msg.urlOrBlob !== "string") value = { ...msg, urlOrBlob: mainScript };
      super.postMessage(value, transferList);
    }
  }
  // emscripten assigns globalThis.Worker = worker_threads.Worker when the threaded module starts; keep the shim.
  Object.defineProperty(globalThis, "Worker", {
    configurable: true,
    get: () => PthreadWorker,
    set: () => undefined,
  });
}
