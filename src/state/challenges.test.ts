import { describe, expect, it } from "vitest";
import {
  challengeRefusal,
  challengeTtlMs,
  consumeNonceRefusal,
  consumeRefusal,
  nonceRefusal,
} from "./challenges.ts";

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

describe("the OID4VP nonce rules of both backends", () => {
  const t = { nonce: "n", respondedAt: null, expiresAt: 11 };
  it("refuses an unknown request, another nonce, an answered and an expired request; admits a live one", () => {
    expect(codeAndMessage(nonceRefusal(undefined, "n", 10))).toEqual([
      "challenge_invalid",
      "state names no authorization request of this gateway",
    ]);
    expect(codeAndMessage(nonceRefusal(t, "m", 10))).toEqual([
      "challenge_invalid",
      "the presentation's nonce is not the one of this request",
    ]);
    expect(codeAndMessage(nonceRefusal({ ...t, respondedAt: 5 }, "n", 10))).toEqual([
      "challenge_reused",
      "this authorization request has already been answered",
    ]);
    expect(codeAndMessage(nonceRefusal(t, "n", 11))).toEqual([
      "challenge_invalid",
      "the authorization request has expired",
    ]);
    expect(nonceRefusal(t, "n", 10)).toBeNull();
  });

  it("counts a failed consume of a request that passes by then as answered meanwhile", () => {
    expect(codeAndMessage(consumeNonceRefusal(t, "n", 10))).toEqual([
      "challenge_reused",
      "this authorization request has already been answered",
    ]);
    expect(codeAndMessage(consumeNonceRefusal(t, "n", 11))?.[1]).toBe(
      "the authorization request has expired",
    );
  });
});
