import { describe, expect, it } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import { KPartyError } from "../errors/index.ts";
import { RateLimiter } from "./rate-limit.ts";

describe("RateLimiter", () => {
  it("allows a burst of perMinute, then refuses with the seconds until the next token", () => {
    let now = 0;
    const limiter = new RateLimiter({ now: () => now });
    for (let i = 0; i < 6; i++) limiter.take("k", 6, "test");
    let error: unknown;
    try {
      limiter.take("k", 6, "test");
    } catch (e) {
      error = e;
    }
    expect(error instanceof KPartyError && [error.code, error.details.retryAfterSeconds]).toEqual([
      "rate_limited",
      10,
    ]);
    now += 10_000;
    expect(errorCode(() => limiter.take("k", 6, "test"))).toBe("no error");
    expect(errorCode(() => limiter.take("k", 6, "test"))).toBe("rate_limited");
    expect(errorCode(() => limiter.take("other", 6, "test"))).toBe("no error");
  });

  it("keeps at most maxKeys buckets, dropping exactly the least recently used", () => {
    const limiter = new RateLimiter({ now: () => 0, maxKeys: 10 });
    for (let i = 0; i < 100; i++) limiter.take(`k${i}`, 1, "test");
    expect(limiter.size).toBe(10);
    // k90…k99 are held (empty); k89 was dropped and restarts full
    expect(errorCode(() => limiter.take("k90", 1, "test"))).toBe("rate_limited");
    expect(errorCode(() => limiter.take("k89", 1, "test"))).toBe("no error"); // k91 dropped: k90 was used since
    expect(limiter.size).toBe(10);
    expect(errorCode(() => limiter.take("k90", 1, "test"))).toBe("rate_limited");
    expect(errorCode(() => limiter.take("k91", 1, "test"))).toBe("no error");
  });
});
