// An independent float64 LLaMA reference for the in-LLM reduction tests, in plain JS from the HF safetensors weights
// (golden llama_tiny): RMSNorm -> GQA attention with rotate-half RoPE at explicit position ids, causal over the
// sequence order -> SwiGLU. `cut` drops sequence entries entering a layer, as in-LLM token reduction does; a
// sequence of prefill + generated tokens recomputed this way equals cached decoding with reduced caches.
import { readSafetensors } from "../../models/safetensors.js";

type Mat = Float64Array[]; // rows
export interface Cut {
  layer: number;
  keep: number[];
}

export interface RefLlama {
  layers: number;
  /**
   * Logits [T'][V] of the entries that survive every cut (in order), for one unpadded row. A cut keeps, entering
   * `layer`, the entries whose input index is in `keep`.
   */
  forward(embeds: Mat, positions: number[], cut?: Cut | Cut[]): Mat;
  embed(id: number): Float64Array;
}

export async function loadRefLlama(file: string, cfg: { heads: number; kvHeads: number; eps: number; theta: number }): Promise<RefLlama> {
  const t = await readSafetensors(file);
  const W = (name: string): Mat => {
    const x = t.get(name);
    if (!x) throw new Error(`ref: no tensor ${name}`);
    const [r, c] = x.shape as [number, number];
    const d = x.dataSync();
    return Array.from({ length: r }, (_, i) => Float64Array.from(d.subarray(i * c, (i + 1) * c)));
  };
  const V = (name: string): Float64Array => Float64Array.from(t.get(name)!.dataSync());
  let L = 0;
  while (t.has(`model.layers.${L}.input_layernorm.weight`)) L++;
  const layers = Array.from({ length: L }, (_, l) => {
    const p = `model.layers.${l}.`;
    return {
      n1: V(p + "input_layernorm.weight"), n2: V(p + "post_attention_layernorm.weight"),
      q: W(p + "self_attn.q_proj.weight"), k: W(p + "self_attn.k_proj.weight"), v: W(p + "self_attn.v_proj.weight"), o: W(p + "self_attn.o_proj.weight"),
      g: W(p + "mlp.gate_proj.weight"), u: W(p + "mlp.up_proj.weight"), d: W(p + "mlp.down_proj.weight"),
    };
  });
  const norm = V("model.norm.weight");
  const head = W("lm_head.weight");
  const emb = W("model.embed_tokens.weight");
  for (const x of t.values()) x.dispose();

  const lin = (x: Float64Array, w: Mat) => Float64Array.from(w, (row) => row.reduce((s, v, i) => s + v * x[i]!, 0));
  const rms = (x: Float64Array, w: Float64Array) => {
    const r = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + cfg.eps);
    return x.map((v, i) => v * r * w[i]!);
  };
  const C = norm.length;
  const Dh = C / cfg.heads;
  const G = cfg.heads / cfg.kvHeads;
  const rope = (x: Float64Array, heads: number, pos: number) => {
    const out = new Float64Array(x.length);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < Dh / 2; i++) {
        const f = pos / Math.pow(cfg.theta, (2 * i) / Dh);
        const a = x[h * Dh + i]!;
        const b = x[h * Dh + i + Dh / 2]!;
        out[h * Dh + i] = a * Math.cos(f) - b * Math.sin(f);
        out[h * Dh + i + Dh / 2] = b * Math.cos(f) + a * Math.sin(f);
      }
    }
    return out;
  };
  const layer = (lw: (typeof layers)[number], xs: Mat, pos: number[]): Mat => {
    const hn = xs.map((x) => rms(x, lw.n1));
    const q = hn.map((x, t) => rope(lin(x, lw.q), cfg.heads, pos[t]!));
    const k = hn.map((x, t) => rope(lin(x, lw.k), cfg.kvHeads, pos[t]!));
    const v = hn.map((x) => lin(x, lw.v));
    return xs.map((x, t) => {
      const ctx = new Float64Array(C);
      for (let h = 0; h < cfg.heads; h++) {
        const kv = Math.floor(h / G);
        const s: number[] = [];
        for (let j = 0; j <= t; j++) {
          let d = 0;
          for (let i = 0; i < Dh; i++) d += q[t]![h * Dh + i]! * k[j]![kv * Dh + i]!;
          s.push(d / Math.sqrt(Dh));
        }
        const m = Math.max(...s);
        const e = s.map((z) => Math.exp(z - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= t; j++) for (let i = 0; i < Dh; i++) ctx[h * Dh + i]! += (e[j]! / z) * v[j]![kv * Dh + i]!;
      }
      const att = lin(ctx, lw.o);
      const h1 = x.map((val, i) => val + att[i]!);
      const m2 = rms(h1, lw.n2);
      const gate = lin(m2, lw.g);
      const up = lin(m2, lw.u);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = lin(act, lw.d);
      return h1.map((val, i) => val + down[i]!);
    });
  };
  return {
    layers: L,
    embed: (id) => emb[id]!.slice(),
    forward(embeds, positions, cut) {
      let xs = embeds;
      let pos = positions;
      let idx = embeds.map((_, i) => i);
      const cuts = cut === undefined ? [] : Array.isArray(cut) ? cut : [cut];
      layers.forEach((lw, l) => {
        for (const c of cuts.filter((c) => c.layer === l)) {
          const keep = new Set(c.keep);
          const at = idx.map((i, j) => (keep.has(i) ? j : -1)).filter((j) => j >= 0);
          xs = at.map((j) => xs[j]!);
          pos = at.map((j) => pos[j]!);
          idx = at.map((j) => idx[j]!);
        }
        xs = layer(lw, xs, pos);
      });
      return xs.map((x) => lin(rms(x, norm), head));
    },
  };
}
