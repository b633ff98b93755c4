import { describe, expect, it } from "vitest";
import { integerIn } from "./integer.ts";

describe("integerIn", () => {
  it.each([
    ["7", 1, undefined, 7],
    ["0", 0, undefined, 0],
    ["65535", 1, 65535, 65535],
    ["007", 1, undefined, 7],
  ] as const)("reads %j (from %d to %s) as %d", (value, min, max, expected) => {
    expect(integerIn(value, min, max)).toBe(expected);
  });

  it.each([
    ["0", 1, undefined],
    ["65536", 1, 65535],
    ["-1", 0, undefined],
    ["1.5", 1, undefined],
    ["1e3", 1, undefined],
    [" 2", 1, undefined],
    ["", 0, undefined],
    ["0x10", 1, undefined],
    ["9007199254740993", 1, undefined],
  ] as const)("refuses %j (from %d to %s)", (value, min, max) => {
    expect(integerIn(value, min, max)).toBeNull();
  });
});
