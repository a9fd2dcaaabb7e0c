// A small seedable PRNG: xoshiro128** (Blackman & Vigna), seeded through splitmix32.
// Integer-only state updates (Math.imul, >>> 0), so the uint32 stream is identical on every JS engine and platform.
// normal() is Box-Muller on that stream (Math.log/cos/sqrt: V8's fdlibm ports, the same on every platform).
// getState()/setState() use plain JSON, so a training run can save the generator and resume it exactly.

/** The generator's full state, as plain JSON. `spare` is the second Box-Muller draw, if one is pending. */
export interface RngState {
  algorithm: "xoshiro128**";
  s: [number, number, number, number];
  spare: number | null;
}

export interface Rng {
  /** Uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Uniform float in [0, 1), 24 bits of resolution (exactly representable as float32, so never rounds to 1). */
  nextFloat(): number;
  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number;
  /** Uniform integer in [0, n), without modulo bias (n <= 2^32). */
  nextInt(n: number): number;
  /** Standard normal draw N(0, 1). */
  normal(): number;
  getState(): RngState;
  setState(state: RngState): void;
}

const TWO_POW_M24 = 2 ** -24;

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** splitmix32 step: a well-mixed uint32 sequence from any seed, used only to fill the xoshiro state. */
function splitmix32(state: { x: number }): number {
  state.x = (state.x + 0x9e3779b9) >>> 0;
  let z = state.x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** A generator seeded from a non-negative safe integer (both 32-bit halves of the seed are used). */
export function createRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`rng seed must be a non-negative safe integer, got ${seed}`);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 2 ** 32) >>> 0;
  const mix = { x: (lo ^ Math.imul(hi, 0x632be5ab)) >>> 0 };
  const s: [number, number, number, number] = [splitmix32(mix), splitmix32(mix), splitmix32(mix), splitmix32(mix)];
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1; // the all-zero state is a fixed point
  return makeRng(s, null);
}

/** A generator resumed from a saved state. */
export function rngFromState(state: RngState): Rng {
  const r = makeRng([1, 0, 0, 0], null);
  r.setState(state);
  return r;
}

function makeRng(s: [number, number, number, number], spareInit: number | null): Rng {
  let spare = spareInit;
  const rng: Rng = {
    nextUint32() {
      const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
      const t = (s[1] << 9) >>> 0;
      s[2] = (s[2] ^ s[0]) >>> 0;
      s[3] = (s[3] ^ s[1]) >>> 0;
      s[1] = (s[1] ^ s[2]) >>> 0;
      s[0] = (s[0] ^ s[3]) >>> 0;
      s[2] = (s[2] ^ t) >>> 0;
      s[3] = rotl(s[3], 11);
      return result;
    },
    nextFloat() {
      return (rng.nextUint32() >>> 8) * TWO_POW_M24;
    },
    uniform(lo, hi) {
      return lo + (hi - lo) * rng.nextFloat();
    },
    nextInt(n) {
      if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`nextInt: n must be an integer in [1, 2^32], got ${n}`);
      // Rejection sampling: accept x below the largest multiple of n that fits in 2^32.
      const limit = 2 ** 32 - (2 ** 32 % n);
      for (;;) {
        const x = rng.nextUint32();
        if (x < limit) return x % n;
      }
    },
    normal() {
      if (spare !== null) {
        const z = spare;
        spare = null;
        return z;
      }
      // Box-Muller; u1 in (0, 1] so log(u1) is finite.
      const u1 = 1 - rng.nextFloat();
      const u2 = rng.nextFloat();
      const r = Math.sqrt(-2 * Math.log(u1));
      const theta = 2 * Math.PI * u2;
      spare = r * Math.sin(theta);
      return r * Math.cos(theta);
    },
    getState() {
      return { algorithm: "xoshiro128**", s: [s[0], s[1], s[2], s[3]], spare };
    },
    setState(state) {
      const ok =
        state !== null && typeof state === "object" && state.algorithm === "xoshiro128**" && Array.isArray(state.s) && state.s.length === 4 &&
        state.s.every((w) => Number.isInteger(w) && w >= 0 && w < 2 ** 32) && (state.s[0] | state.s[1] | state.s[2] | state.s[3]) !== 0 &&
        (state.spare === null || (typeof state.spare === "number" && Number.isFinite(state.spare)));
      if (!ok) throw new RangeError(`rng state is not a valid xoshiro128** state: ${JSON.stringify(state)}`);
      for (let i = 0; i < 4; i++) s[i] = state.s[i]! >>> 0;
      spare = state.spare;
    },
  };
  return rng;
}
