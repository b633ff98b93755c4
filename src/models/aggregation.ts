import { type FileHandle, open } from "node:fs/promises";
import { KPartyError } from "../errors/index.ts";
import { writeFileAtomic } from "../util/atomic-file.ts";

/**
 * How a model's rounds become its next version, chosen at registration:
 * - `fedavg`: the sample-weighted mean (each update weighs its sample count / the round's total);
 * - `median`: the coordinate-wise median (the mean of the two middle values for an even count);
 * - `trimmed-mean`: per coordinate, the mean of the values left after dropping the
 *   ⌊β·n⌋ smallest and ⌊β·n⌋ largest of the n updates.
 *
 * `median` and `trimmed-mean` ignore sample counts: every update counts once.
 */
export type AggregationRule = "fedavg" | "median" | "trimmed-mean";

/** Every {@link AggregationRule}. */
export const AGGREGATION_RULES: readonly AggregationRule[] = ["fedavg", "median", "trimmed-mean"];

/** A model's aggregation settings, stored in its metadata. */
export interface Aggregation {
  rule: AggregationRule;
  /** `trimmed-mean` only: β in (0, 0.5); ⌊β·n⌋ updates are dropped at each end of every coordinate. */
  trimFraction?: number;
  /**
   * When set, each update's delta from the current global weights is scaled down to at most
   * this L2 norm before the rule applies (updates within the bound are used as they are).
   */
  clipNorm?: number;
}

/** β for `trimmed-mean` when the registration names none. */
export const DEFAULT_TRIM_FRACTION = 0.2;
/** The per-update sample cap of a model registered without `maxSamplesPerUpdate`. */
export const DEFAULT_MAX_SAMPLES_PER_UPDATE = 1_000_000;
/** The largest `maxSamplesPerUpdate` an operator may set. */
export const MAX_SAMPLES_LIMIT = 1e12;

/**
 * Checks registration input for a model's aggregation settings (absent: `{rule: "fedavg"}`)
 * and returns them with defaults filled in; throws `invalid_argument`.
 *
 * @example
 * ```ts
 * parseAggregation({ rule: "trimmed-mean", clipNorm: 5 }); // { rule: "trimmed-mean", trimFraction: 0.2, clipNorm: 5 }
 * ```
 */
export function parseAggregation(raw: unknown): Aggregation {
  if (raw === undefined) return { rule: "fedavg" };
  const fail = (why: string): never => {
    throw new KPartyError("invalid_argument", `aggregation: ${why}`, { details: { field: "aggregation" } });
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return fail("must be an object {rule, trimFraction?, clipNorm?}");
  }
  const { rule, trimFraction, clipNorm, ...extra } = raw as Record<string, unknown>;
  if (Object.keys(extra).length > 0) return fail(`unknown field ${Object.keys(extra)[0]}`);
  if (!AGGREGATION_RULES.includes(rule as AggregationRule)) {
    return fail(`rule must be one of ${AGGREGATION_RULES.join(", ")}`);
  }
  const out: Aggregation = { rule: rule as AggregationRule };
  if (rule === "trimmed-mean") {
    const beta = trimFraction ?? DEFAULT_TRIM_FRACTION;
    if (typeof beta !== "number" || !(beta > 0 && beta < 0.5)) {
      return fail("trimFraction must be a number greater than 0 and less than 0.5");
    }
    out.trimFraction = beta;
  } else if (trimFraction !== undefined) {
    return fail("trimFraction applies only to the trimmed-mean rule");
  }
  if (clipNorm !== undefined) {
    if (typeof clipNorm !== "number" || !Number.isFinite(clipNorm) || clipNorm <= 0) {
      return fail("clipNorm must be a finite number greater than 0");
    }
    out.clipNorm = clipNorm;
  }
  return out;
}

/**
 * Checks a model's per-update sample cap (absent: {@link DEFAULT_MAX_SAMPLES_PER_UPDATE});
 * throws `invalid_argument`.
 */
export function parseMaxSamples(raw: unknown): number {
  if (raw === undefined) return DEFAULT_MAX_SAMPLES_PER_UPDATE;
  if (typeof raw !== "number" || !Number.isSafeInteger(raw) || raw < 1 || raw > MAX_SAMPLES_LIMIT) {
    throw new KPartyError(
      "invalid_argument",
      `maxSamplesPerUpdate must be an integer from 1 to ${MAX_SAMPLES_LIMIT}`,
      { details: { field: "maxSamplesPerUpdate" } },
    );
  }
  return raw;
}

/** How many updates `trimmed-mean` drops at each end of a coordinate with `n` updates. */
export function trimCount(n: number, trimFraction: number): number {
  return Math.floor(trimFraction * n + 1e-9); // 0.29 · 100 is 28.999…96 in binary
}

/** One update to aggregate: its file (little-endian float32) and its claimed sample count. */
export interface AggregationInput {
  file: string;
  samples: number;
}

/** FedAvg reads `BLOCK_FLOATS` values per update at a time (256 KiB). */
const BLOCK_FLOATS = 64 * 1024;
/** The order-statistic rules hold one block of every update at once: at most this many floats (16 MiB). */
const MATRIX_FLOATS = 4 * 1024 * 1024;

async function readBlock(handle: FileHandle, buf: Buffer, n: number, start: number, what: string) {
  const { bytesRead } = await handle.read(buf, 0, n * 4, start * 4);
  if (bytesRead !== n * 4) throw new KPartyError("internal", `${what} is truncated`);
}

/**
 * Aggregates `inputs` into `out` (written atomically) under `aggregation`; `current` is the
 * file of the current global weights, read only when clipping. Files are read block by block:
 * memory stays O(block) for FedAvg and O(updates × block) for the order-statistic rules,
 * whatever the model size. Values are float32 in and out, computed in float64.
 * Returns how many updates were clipped.
 */
export async function aggregateFiles(args: {
  inputs: AggregationInput[];
  current: string;
  parameterCount: number;
  out: string;
  aggregation: Aggregation;
}): Promise<{ clipped: number }> {
  const { inputs, current, parameterCount, out, aggregation } = args;
  const handles: FileHandle[] = [];
  try {
    for (const input of inputs) handles.push(await open(input.file, "r"));
    const global = aggregation.clipNorm !== undefined ? await open(current, "r") : null;
    if (global) handles.push(global);
    const updates = global ? handles.slice(0, -1) : handles;
    const scales =
      global && aggregation.clipNorm !== undefined
        ? await clipScales(updates, global, parameterCount, aggregation.clipNorm)
        : null;
    await writeFileAtomic(out, async (write) => {
      if (aggregation.rule === "fedavg") {
        const total = inputs.reduce((sum, i) => sum + i.samples, 0);
        const weights = inputs.map((i) => i.samples / total);
        await weightedMean(updates, weights, global, scales, parameterCount, write);
      } else {
        const n = updates.length;
        const trim = aggregation.rule === "trimmed-mean" ? trimCount(n, aggregation.trimFraction ?? 0) : 0;
        const statistic =
          aggregation.rule === "median" ? median : (col: Float64Array) => trimmedMean(col, trim);
        await orderStatistic(updates, global, scales, parameterCount, statistic, write);
      }
    });
    return { clipped: scales ? scales.filter((s) => s < 1).length : 0 };
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
}

/** Per update: 1, or C / ‖update − global‖₂ when that norm exceeds C. */
async function clipScales(
  updates: FileHandle[],
  global: FileHandle,
  parameterCount: number,
  clipNorm: number,
): Promise<number[]> {
  const sums = new Float64Array(updates.length);
  const g = Buffer.alloc(BLOCK_FLOATS * 4);
  const u = Buffer.alloc(BLOCK_FLOATS * 4);
  for (let start = 0; start < parameterCount; start += BLOCK_FLOATS) {
    const n = Math.min(BLOCK_FLOATS, parameterCount - start);
    await readBlock(global, g, n, start, "the current weights file");
    for (const [k, handle] of updates.entries()) {
      await readBlock(handle, u, n, start, `update file ${k}`);
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const d = u.readFloatLE(i * 4) - g.readFloatLE(i * 4);
        sum += d * d;
      }
      sums[k] = (sums[k] as number) + sum;
    }
  }
  return [...sums].map((sum) => {
    const norm = Math.sqrt(sum);
    return norm > clipNorm ? clipNorm / norm : 1;
  });
}

/**
 * Σ weightₖ · updateₖ, or with clipping global + Σ weightₖ · scaleₖ · (updateₖ − global).
 * One update block in memory at a time. Without clipping the arithmetic (order included)
 * is the store's original FedAvg, so its results are byte-identical.
 */
async function weightedMean(
  updates: FileHandle[],
  weights: number[],
  global: FileHandle | null,
  scales: number[] | null,
  parameterCount: number,
  write: (bytes: Uint8Array) => Promise<void>,
) {
  const acc = new Float64Array(BLOCK_FLOATS);
  const buf = Buffer.alloc(BLOCK_FLOATS * 4);
  const g = Buffer.alloc(global ? BLOCK_FLOATS * 4 : 0);
  const block = new Float32Array(BLOCK_FLOATS);
  for (let start = 0; start < parameterCount; start += BLOCK_FLOATS) {
    const n = Math.min(BLOCK_FLOATS, parameterCount - start);
    acc.fill(0, 0, n);
    if (global) await readBlock(global, g, n, start, "the current weights file");
    for (const [k, handle] of updates.entries()) {
      await readBlock(handle, buf, n, start, `update file ${k}`);
      const weight = weights[k] ?? 0;
      if (global && scales) {
        const w = weight * (scales[k] ?? 0);
        for (let i = 0; i < n; i++)
          acc[i] = (acc[i] as number) + w * (buf.readFloatLE(i * 4) - g.readFloatLE(i * 4));
      } else {
        for (let i = 0; i < n; i++) acc[i] = (acc[i] as number) + weight * buf.readFloatLE(i * 4);
      }
    }
    if (global) for (let i = 0; i < n; i++) block[i] = g.readFloatLE(i * 4) + (acc[i] as number);
    else for (let i = 0; i < n; i++) block[i] = acc[i] as number;
    await write(new Uint8Array(block.buffer, 0, n * 4));
  }
}

/** The median of sorted values: the middle one, or the mean of the two middle ones. */
function median(sorted: Float64Array): number {
  const n = sorted.length;
  const mid = n >> 1;
  return n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The mean of sorted values without the `trim` smallest and `trim` largest. */
function trimmedMean(sorted: Float64Array, trim: number): number {
  let sum = 0;
  for (let i = trim; i < sorted.length - trim; i++) sum += sorted[i] as number;
  return sum / (sorted.length - 2 * trim);
}

/**
 * Per coordinate, `statistic` of the updates' values (or, with clipping, global + `statistic`
 * of the clipped deltas). Holds one block of every update at once, the block shrinking as
 * updates grow so that the matrix stays within {@link MATRIX_FLOATS}.
 */
async function orderStatistic(
  updates: FileHandle[],
  global: FileHandle | null,
  scales: number[] | null,
  parameterCount: number,
  statistic: (sorted: Float64Array) => number,
  write: (bytes: Uint8Array) => Promise<void>,
) {
  const count = updates.length;
  const blockFloats = Math.max(256, Math.min(BLOCK_FLOATS, Math.floor(MATRIX_FLOATS / count)));
  const matrix = Buffer.alloc(count * blockFloats * 4);
  const g = Buffer.alloc(global ? blockFloats * 4 : 0);
  const column = new Float64Array(count);
  const block = new Float32Array(blockFloats);
  for (let start = 0; start < parameterCount; start += blockFloats) {
    const n = Math.min(blockFloats, parameterCount - start);
    if (global) await readBlock(global, g, n, start, "the current weights file");
    for (const [k, handle] of updates.entries()) {
      await readBlock(handle, matrix.subarray(k * blockFloats * 4), n, start, `update file ${k}`);
    }
    for (let i = 0; i < n; i++) {
      const base = global ? g.readFloatLE(i * 4) : 0;
      for (let k = 0; k < count; k++) {
        const value = matrix.readFloatLE((k * blockFloats + i) * 4);
        column[k] = global && scales ? (value - base) * (scales[k] ?? 0) : value;
      }
      column.sort();
      block[i] = global ? base + statistic(column) : statistic(column);
    }
    await write(new Uint8Array(block.buffer, 0, n * 4));
  }
}
