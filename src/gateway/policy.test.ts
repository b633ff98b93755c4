import { describe, expect, it } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import { grantScope } from "./policy.ts";

const claims = { actions: ["model:read" as const, "model:contribute" as const], models: ["a", "b"] };

describe("grantScope", () => {
  it("grants everything allowed when nothing is asked", () => {
    expect(grantScope({ actions: null, models: null }, claims)).toEqual({
      actions: ["model:read", "model:contribute"],
      models: ["a", "b"],
    });
  });

  it("narrows to the intersection of asked and allowed, in actions and in models", () => {
    expect(grantScope({ actions: ["model:read", "round:aggregate"], models: ["b", "c"] }, claims)).toEqual({
      actions: ["model:read"],
      models: ["b"],
    });
    expect(grantScope({ actions: null, models: ["*"] }, claims).models).toEqual(["a", "b"]);
    expect(grantScope({ actions: null, models: ["x"] }, { ...claims, models: ["*"] }).models).toEqual(["x"]);
    expect(grantScope({ actions: null, models: null }, { ...claims, models: ["*"] }).models).toEqual(["*"]);
  });

  it("refuses an empty grant: scope_denied", () => {
    expect(errorCode(() => grantScope({ actions: ["round:aggregate"], models: null }, claims))).toBe(
      "scope_denied",
    );
    expect(errorCode(() => grantScope({ actions: null, models: ["c"] }, claims))).toBe("scope_denied");
  });
});
