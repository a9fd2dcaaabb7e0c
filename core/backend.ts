// The one tfjs namespace the project uses, and backend selection.
// auto: tfjs-node-gpu -> tfjs-node -> wasm -> cpu; the first that initialises wins, and one line says why.
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { createRequire } from "node:module";
import path from "node:path";
import { installWasmFusedMatMulFix } from "./wasm_fused_matmul.js";
import { installWasmMatMulFastPath, installWasmZeroCopyIdentity } from "./wasm_kernels.js";
import { installWasmThreads, wasmThreadsInUse } from "./wasm_threads.js";

export { tf };

export const BACKENDS = ["auto", "tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];

const require = createRequire(import.meta.url);

/** The backend name a run should use: `VZT_BACKEND` overrides the configured value. */
export function resolveBackendName(configured?: string): BackendName {
  const name = process.env.VZT_BACKEND || configured || "auto";
  if (!(BACKENDS as readonly string[]).includes(name)) {
    const from = process.env.VZT_BACKEND ? "VZT_BACKEND" : "runtime.backend";
    throw new Error(`${from}: unknown backend "${name}"; valid: ${BACKENDS.join(", ")}`);
  }
  return name as BackendName;
}

async function tryTensorflow(): Promise<string | undefined> {
  // tfjs-node(-gpu) register the "tensorflow" backend on import. Never imported at top level:
  // their install step downloads libtensorflow, so they are usually absent.
  const tried: string[] = [];
  for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    try {
      await import(pkg);
      if (await tf.setBackend("tensorflow")) return undefined;
      tried.push(`${pkg}: loaded but the backend did not initialise`);
    } catch (e) {
      const msg = (e as Error).message.split("\n")[0] ?? "";
      tried.push(`${pkg}: ${/Cannot find (package|module)/.test(msg) ? "not installed" : msg}`);
    }
  }
  return tried.join("; ");
}

let wasmPathsSet = false;
async function tryWasm(): Promise<string | undefined> {
  try {
    if (!wasmPathsSet) {
      // Load the .wasm binaries from the installed package, never from the network.
      const dir = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
      setWasmPaths(path.join(dir, "dist") + path.sep);
      wasmPathsSet = true;
    }
    // Both cores: tfjs's threaded SIMD build through worker_threads (VZT_THREADS, default all cores; see
    // core/wasm_threads.ts for why tfjs alone stays on one thread in Node). Fixed once the backend is up.
    installWasmThreads();
    if (!(await tf.setBackend("wasm"))) return "wasm: did not initialise";
    installWasmMatMulFastPath();
    installWasmZeroCopyIdentity();
    installWasmFusedMatMulFix();
    return undefined;
  } catch (e) {
    return `wasm: ${(e as Error).message}`;
  }
}

async function tryCpu(): Promise<string | undefined> {
  return (await tf.setBackend("cpu")) ? undefined : "cpu: did not initialise";
}

const TRY: Record<Exclude<BackendName, "auto">, () => Promise<string | undefined>> = {
  tensorflow: tryTensorflow,
  wasm: tryWasm,
  cpu: tryCpu,
};

/**
 * Selects the tensor backend and returns the name in use. With no argument, `VZT_BACKEND` or "auto".
 * An explicit name that fails to initialise is an error; "auto" falls through the chain.
 */
let chosen = false;

export async function setBackend(name?: BackendName, opts: { quiet?: boolean } = {}): Promise<string> {
  chosen = true;
  const wanted = name ?? resolveBackendName();
  if (wanted !== "auto") {
    if (tf.getBackend() === tfName(wanted) && tf.findBackend(tfName(wanted))) return tf.getBackend();
    const why = await TRY[wanted]();
    if (why) throw new Error(`backend "${wanted}" is not available: ${why}`);
    if (!opts.quiet) log(`backend: ${describeBackend()} (requested)`);
    return tf.getBackend();
  }
  const skipped: string[] = [];
  for (const candidate of ["tensorflow", "wasm", "cpu"] as const) {
    const why = await TRY[candidate]();
    if (!why) {
      if (!opts.quiet) log(`backend: ${describeBackend()} (auto${skipped.length ? `; skipped ${skipped.join("; ")}` : ""})`);
      return tf.getBackend();
    }
    skipped.push(why);
  }
  throw new Error(`no tensor backend could be initialised: ${skipped.join("; ")}`);
}

/** "wasm (2 threads)", "cpu", "tensorflow". */
export function describeBackend(): string {
  const b = tf.getBackend();
  if (b !== "wasm") return b;
  const n = wasmThreadsInUse();
  return `wasm (${n} thread${n === 1 ? "" : "s"})`;
}

function tfName(name: Exclude<BackendName, "auto">): string {
  return name;
}

function log(line: string): void {
  process.stderr.write(line + "\n");
}

let ensured: Promise<string> | undefined;

/**
 * Makes sure one of our backends is initialised before tensors are made: the first call with no backend chosen
 * yet runs `setBackend()` (VZT_BACKEND or auto). Library entry points call it, so a caller who never picked a
 * backend still gets wasm (with its binaries from the installed package) rather than tfjs's own default.
 */
export function ensureBackend(): Promise<string> {
  if (chosen) return Promise.resolve(tf.getBackend());
  ensured ??= setBackend();
  return ensured;
}
