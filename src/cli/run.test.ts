import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { positiveInt, readyUntilSignal } from "./run.ts";

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

describe("readyUntilSignal", () => {
  it("listens for SIGINT and SIGTERM before it prints the ready result, and resolves on the first", async () => {
    const before = [process.listenerCount("SIGINT"), process.listenerCount("SIGTERM")];
    const printed: { value: unknown; human: string | string[]; listening: number[] }[] = [];
    const out = {
      result(value: unknown, human: string | string[]) {
        printed.push({
          value,
          human,
          listening: [process.listenerCount("SIGINT"), process.listenerCount("SIGTERM")],
        });
      },
    };
    const signal = readyUntilSignal(out, { url: "http://127.0.0.1:1" }, ["ready"]);
    expect(printed).toEqual([
      {
        value: { url: "http://127.0.0.1:1" },
        human: ["ready"],
        listening: [(before[0] as number) + 1, (before[1] as number) + 1],
      },
    ]);
    process.emit("SIGTERM", "SIGTERM");
    expect(await signal).toBe("SIGTERM");
    expect([process.listenerCount("SIGINT"), process.listenerCount("SIGTERM")]).toEqual(before);
  });
});
