import { KPartyError } from "../errors/index.ts";
import type { Aggregation } from "../models/index.ts";

/** A model's registration settings as the CLI spells them (`--max-samples`, `--rule`, `--trim`, `--clip-norm`). */
export interface ModelSettingsInput {
  maxSamples?: string;
  rule?: string;
  trim?: string;
  clipNorm?: string;
}

const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

function number(value: string, name: string): number {
  if (!NUMBER.test(value))
    throw new KPartyError("invalid_argument", `${name} must be a number, got "${value}"`);
  return Number(value);
}

/**
 * The `maxSamplesPerUpdate` and `aggregation` of a registration from CLI strings; only what
 * was given (the store checks ranges and fills defaults).
 */
export function modelSettings(input: ModelSettingsInput): {
  maxSamplesPerUpdate?: number;
  aggregation?: Aggregation;
} {
  const out: { maxSamplesPerUpdate?: number; aggregation?: Aggregation } = {};
  if (input.maxSamples !== undefined) out.maxSamplesPerUpdate = number(input.maxSamples, "max-samples");
  if (input.rule !== undefined || input.trim !== undefined || input.clipNorm !== undefined) {
    const aggregation = { rule: (input.rule ?? "fedavg") as Aggregation["rule"] } as Aggregation;
    if (input.trim !== undefined) aggregation.trimFraction = number(input.trim, "trim");
    if (input.clipNorm !== undefined) aggregation.clipNorm = number(input.clipNorm, "clip-norm");
    out.aggregation = aggregation;
  }
  return out;
}

const SPEC_KEYS = new Map<string, keyof ModelSettingsInput>([
  ["max-samples", "maxSamples"],
  ["rule", "rule"],
  ["trim", "trim"],
  ["clip-norm", "clipNorm"],
]);

/**
 * `id:d1,d2…[:key=value…]` (keys `max-samples`, `rule`, `trim`, `clip-norm`) → a model to
 * register, e.g. `fl-demo:101:max-samples=5000:rule=trimmed-mean:trim=0.2:clip-norm=5`.
 */
export function parseModelSpec(value: string): {
  id: string;
  shape: number[];
  maxSamplesPerUpdate?: number;
  aggregation?: Aggregation;
} {
  const usage = `--model must be ID:SHAPE[:max-samples=N][:rule=fedavg|median|trimmed-mean][:trim=β][:clip-norm=C] (e.g. fl-demo:101), got "${value}"`;
  const [id, dims, ...rest] = value.split(":");
  const shape = (dims ?? "").split(",").map(Number);
  if (!id || !dims || !shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new KPartyError("invalid_argument", usage);
  }
  const input: ModelSettingsInput = {};
  for (const part of rest) {
    const eq = part.indexOf("=");
    const key = SPEC_KEYS.get(part.slice(0, eq));
    if (eq < 0 || !key || input[key] !== undefined) throw new KPartyError("invalid_argument", usage);
    input[key] = part.slice(eq + 1);
  }
  return { id, shape, ...modelSettings(input) };
}
