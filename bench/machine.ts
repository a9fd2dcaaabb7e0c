// The machine a bench ran on: CPU model and cores, OS, node and tfjs versions, backend and wasm thread count.
import os from "node:os";
import { tf } from "../core/backend.js";
import { wasmThreadsInUse } from "../core/wasm_threads.js";
import type { MachineInfo } from "./results.js";

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  const backend = tf.getBackend();
  const threads = backend === "wasm" ? wasmThreadsInUse() : backend === "cpu" ? 1 : undefined;
  return {
    cpu: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    tfjs: tf.version.tfjs,
    backend,
    ...(threads !== undefined ? { threads } : {}),
    loadavg: os.loadavg(),
  };
}

/** Bytes of the wasm backend's linear memory (it only grows; max 4 GiB), or undefined on other backends. */
export function wasmHeapBytes(): number | undefined {
  if (tf.getBackend() !== "wasm") return undefined;
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.byteLength;
}
