/**
 * Binary logistic regression on a synthetic, deterministically generated classification set:
 * what the federated example trains. Weights are `features + 1` float32 values, the bias last.
 */

export interface Dataset {
  features: number;
  /** Row-major, `samples × features`. */
  x: Float64Array;
  /** Labels 0 or 1. */
  y: Uint8Array;
  samples: number;
}

/** A seeded PRNG (mulberry32): same seed, same numbers, on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: () => number): number {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/**
 * `samples` points in `features` dimensions, labelled by a hidden linear rule with label noise
 * (`flip` of them flipped). Deterministic in `seed`.
 */
export function syntheticDataset(params: {
  seed: number;
  samples: number;
  features: number;
  flip?: number;
}): Dataset {
  const { samples, features } = params;
  const rule = prng(0x6b70); // the hidden rule is shared by every split of the same problem
  const truth = Array.from({ length: features + 1 }, () => gaussian(rule));
  const rand = prng(params.seed);
  const x = new Float64Array(samples * features);
  const y = new Uint8Array(samples);
  for (let s = 0; s < samples; s++) {
    let z = truth[features] as number;
    for (let f = 0; f < features; f++) {
      const v = gaussian(rand);
      x[s * features + f] = v;
      z += v * (truth[f] as number);
    }
    y[s] = (z > 0 ? 1 : 0) ^ (rand() < (params.flip ?? 0.05) ? 1 : 0);
  }
  return { features, x, y, samples };
}

/** Rows `[from, to)` of a dataset. */
export function slice(data: Dataset, from: number, to: number): Dataset {
  const f = data.features;
  return { features: f, x: data.x.slice(from * f, to * f), y: data.y.slice(from, to), samples: to - from };
}

function score(weights: Float32Array, data: Dataset, s: number): number {
  const f = data.features;
  let z = weights[f] as number;
  for (let j = 0; j < f; j++) z += (weights[j] as number) * (data.x[s * f + j] as number);
  return z;
}

/** `epochs` of full-batch gradient descent on the logistic loss, starting from `weights`. */
export function trainLocal(
  weights: Float32Array,
  data: Dataset,
  options: { epochs: number; learningRate: number },
): Float32Array {
  const f = data.features;
  const w = Float64Array.from(weights);
  const grad = new Float64Array(f + 1);
  for (let e = 0; e < options.epochs; e++) {
    grad.fill(0);
    for (let s = 0; s < data.samples; s++) {
      const p = 1 / (1 + Math.exp(-score(Float32Array.from(w), data, s)));
      const err = p - (data.y[s] as number);
      for (let j = 0; j < f; j++) grad[j] = (grad[j] as number) + err * (data.x[s * f + j] as number);
      grad[f] = (grad[f] as number) + err;
    }
    for (let j = 0; j <= f; j++)
      w[j] = (w[j] as number) - (options.learningRate * (grad[j] as number)) / data.samples;
  }
  return Float32Array.from(w);
}

/** Share of `data` classified correctly (threshold 0.5). */
export function accuracy(weights: Float32Array, data: Dataset): number {
  let right = 0;
  for (let s = 0; s < data.samples; s++) if ((score(weights, data, s) > 0 ? 1 : 0) === data.y[s]) right++;
  return right / data.samples;
}
