import { describe, expect, it } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import { modelSettings, parseModelSpec } from "./model-settings.ts";

describe("model settings from the command line", () => {
  it("parses --model ID:SHAPE with optional key=value settings", () => {
    expect(parseModelSpec("fl-demo:101")).toEqual({ id: "fl-demo", shape: [101] });
    expect(parseModelSpec("m:784,10:max-samples=5000:rule=trimmed-mean:trim=0.25:clip-norm=1e1")).toEqual({
      id: "m",
      shape: [784, 10],
      maxSamplesPerUpdate: 5000,
      aggregation: { rule: "trimmed-mean", trimFraction: 0.25, clipNorm: 10 },
    });
    expect(parseModelSpec("m:4:clip-norm=2")).toEqual({
      id: "m",
      shape: [4],
      aggregation: { rule: "fedavg", clipNorm: 2 },
    });
  });

  it("refuses unknown, repeated or malformed settings with invalid_argument", () => {
    for (const bad of [
      "m",
      "m:0",
      "m:4:rule",
      "m:4:constructor=1",
      "m:4:rule=median:rule=median",
      "m:4:max-samples=lots",
      "m:4:clip-norm=-1",
    ]) {
      expect({ bad, code: errorCode(() => parseModelSpec(bad)) }).toEqual({ bad, code: "invalid_argument" });
    }
  });

  it("passes only the settings given (the store fills defaults and checks ranges)", () => {
    expect(modelSettings({})).toEqual({});
    expect(modelSettings({ maxSamples: "100", rule: "median" })).toEqual({
      maxSamplesPerUpdate: 100,
      aggregation: { rule: "median" },
    });
  });
});
