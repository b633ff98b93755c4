import { describe, expect, it } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import { AuditLog, ChallengeStore, openGatewayDatabase } from "./state.ts";

describe("ChallengeStore", () => {
  it("accepts a challenge once, then reports challenge_reused", () => {
    const store = new ChallengeStore(openGatewayDatabase(":memory:"), {
      ttlSeconds: 60,
      now: () => 1_000_000,
    });
    const { challenge, expiresAt } = store.issue("127.0.0.1");
    expect(expiresAt.getTime()).toBe(1_060_000);
    expect(errorCode(() => store.consume(challenge))).toBe("no error");
    expect(errorCode(() => store.consume(challenge))).toBe("challenge_reused");
  });

  it("reports challenge_invalid for an unknown or expired challenge", () => {
    let now = 1_000_000;
    const store = new ChallengeStore(openGatewayDatabase(":memory:"), { ttlSeconds: 60, now: () => now });
    expect(errorCode(() => store.consume("never-issued"))).toBe("challenge_invalid");
    const { challenge } = store.issue("127.0.0.1");
    now += 60_000;
    expect(errorCode(() => store.consume(challenge))).toBe("challenge_invalid");
  });
});

describe("AuditLog", () => {
  it("appends decisions in order and returns the newest", () => {
    const log = new AuditLog(openGatewayDatabase(":memory:"), {
      now: () => Date.parse("2026-11-22T00:00:00Z"),
    });
    log.append({
      client: "a",
      route: "/auth/token",
      outcome: "granted",
      holder: "did:1",
      credentialId: "0x1",
    });
    log.append({ client: "b", route: "/auth/token", outcome: "denied", code: "revoked" });
    expect(log.tail(1)).toEqual([
      {
        seq: 2,
        at: "2026-11-22T00:00:00.000Z",
        client: "b",
        route: "/auth/token",
        holder: null,
        credentialId: null,
        action: null,
        model: null,
        outcome: "denied",
        code: "revoked",
      },
    ]);
    expect(log.tail(10).map((r) => r.seq)).toEqual([1, 2]);
  });
});
