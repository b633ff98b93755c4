import { describe, expect, it } from "vitest";
import { challengeRefusal, challengeTtlMs, consumeRefusal } from "./challenges.ts";

const codeAndMessage = (e: { code: string; message: string } | null) => (e ? [e.code, e.message] : null);

describe("the challenge rules of both backends", () => {
  it("refuses a used, an unknown and an expired challenge, and admits a live one", () => {
    expect(codeAndMessage(challengeRefusal({ usedAt: 5, expiresAt: 100 }, 10))).toEqual([
      "challenge_reused",
      "the challenge has already been used",
    ]);
    expect(codeAndMessage(challengeRefusal(undefined, 10))).toEqual([
      "challenge_invalid",
      "the challenge was not issued by this gateway",
    ]);
    expect(codeAndMessage(challengeRefusal({ usedAt: null, expiresAt: 10 }, 10))).toEqual([
      "challenge_invalid",
      "the challenge has expired",
    ]);
    expect(challengeRefusal({ usedAt: null, expiresAt: 11 }, 10)).toBeNull();
  });

  it("counts a failed consume of a row neither used nor expired as expired", () => {
    expect(codeAndMessage(consumeRefusal({ usedAt: null, expiresAt: 11 }, 10))).toEqual([
      "challenge_invalid",
      "the challenge has expired",
    ]);
    expect(codeAndMessage(consumeRefusal({ usedAt: 3, expiresAt: 11 }, 10))?.[0]).toBe("challenge_reused");
  });

  it("takes a positive lifetime in seconds only", () => {
    expect(challengeTtlMs(1.5)).toBe(1500);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => challengeTtlMs(bad)).toThrow(new TypeError("challenge ttlSeconds must be positive"));
    }
  });
});
