import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { positiveInt } from "./run.ts";

describe("positiveInt", () => {
  it("parses an option within its range", () => {
    expect(positiveInt("--port", 65535)("8080")).toBe(8080);
  });

  it("refuses one outside it, naming the option and the range", () => {
    const parse = positiveInt("--port", 65535);
    expect(() => parse("0")).toThrow(
      new InvalidArgumentError('--port must be an integer from 1 to 65535, got "0"'),
    );
    expect(() => parse("70000")).toThrow(
      new InvalidArgumentError('--port must be an integer from 1 to 65535, got "70000"'),
    );
  });
});
