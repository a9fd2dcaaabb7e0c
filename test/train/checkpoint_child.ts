// Child process for the SIGKILL test of checkpoint.test.ts: saves checkpoints in a loop into argv[2], each holding
// tensors filled with its step number, until killed. Starts after the latest complete step; prints "ready", then
// "saved N" after each save.
import { setBackend, tf } from "../../core/backend.js";
import { createRng } from "../../core/rng.js";
import { cleanStaleCheckpoints, listCheckpoints, saveCheckpoint } from "../../train/checkpoint.js";

const out = process.argv[2]!;
await setBackend("cpu", { quiet: true });
await cleanStaleCheckpoints(out);
const done = (await listCheckpoints(out)).filter((c) => c.complete);
let step = (done[done.length - 1]?.step ?? 0) + 1;
process.stdout.write("ready\n");
for (;;) {
  const projectorTensors = {
    "model.mm_projector.0.weight": tf.fill([48, 96], step),
    "model.mm_projector.0.bias": tf.fill([48], step),
  };
  const optimizerTensors = { "linear_1.kernel.exp_avg": tf.fill([96, 48], 2 * step), "linear_1.kernel.exp_avg_sq": tf.fill([96, 48], 3 * step) };
  const rng = createRng(step);
  await saveCheckpoint(
    out,
    {
      step,
      projectorTensors,
      optimizerTensors,
      state: {
        epoch: Math.floor(step / 10),
        dataCursor: { row: step * 10 },
        rng: { shuffle: rng.getState() },
        configHash: "child",
        config: { step_independent: true },
        metrics: { loss: 1 / step },
        projector: { type: "mlp2x_gelu", inDim: 96, outDim: 48 },
        reducer: { name: "none", budget: null },
        models: {},
      },
    },
    { keepLast: 3 },
  );
  for (const t of [...Object.values(projectorTensors), ...Object.values(optimizerTensors)]) t.dispose();
  process.stdout.write(`saved ${step}\n`);
  step++;
}
