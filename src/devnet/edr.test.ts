import { describe, expect, it } from "vitest";
import { KPartyError } from "../errors/index.ts";
import { edrProblem, repairEdr } from "./edr.ts";

/** A function that records its call in `calls` and returns `value`. */
const recorded =
  <T>(calls: string[], name: string, value: () => T) =>
  (): T => {
    calls.push(name);
    return value();
  };

describe("repairEdr (after hardhat node exited at once)", () => {
  it("leaves the failure as it was when EDR loads: no setup run", () => {
    const calls: string[] = [];
    expect(
      repairEdr(
        recorded(calls, "probe", () => null),
        recorded(calls, "setup", () => true),
      ),
    ).toBe(false);
    expect(calls).toEqual(["probe"]);
  });

  it("runs the setup step when EDR does not load, and reports it repaired once EDR loads", () => {
    const problems: (string | null)[] = ["Cannot find native binding", null];
    const calls: string[] = [];
    expect(
      repairEdr(
        recorded(calls, "probe", () => problems.shift() ?? null),
        recorded(calls, "setup", () => true),
      ),
    ).toBe(true);
    expect(calls).toEqual(["probe", "setup", "probe"]);
  });

  it("is config_invalid, naming the problem and the fix, when the setup cannot run or does not help", () => {
    for (const setup of [() => false, () => true]) {
      let error: unknown;
      try {
        repairEdr(() => "Cannot find native binding", setup);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(KPartyError);
      expect((error as KPartyError).code).toBe("config_invalid");
      expect((error as KPartyError).message).toBe(
        "Hardhat's native runtime (EDR) does not load here: Cannot find native binding",
      );
      expect((error as KPartyError).details.hint).toMatch(/^run `npm run setup` in the kparty checkout/);
    }
  });

  it("probes the real EDR in a fresh process: a module that is not installed is named", () => {
    expect(edrProblem("/")).toBe("Error: Cannot find module '@nomicfoundation/edr'");
  });
});
