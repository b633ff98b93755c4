import { describe, expect, it } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import { createTokenService } from "./tokens.ts";

const grant = {
  holder: "did:ethr:0x7a69:0xabc",
  credentialId: `0x${"11".repeat(32)}`,
  anchorKey: `0x${"22".repeat(32)}`,
  issuerAccount: "0x0000000000000000000000000000000000000001",
  revocationIndex: 3,
  suspensionIndex: 3,
  actions: ["model:read" as const],
  models: ["m"],
};

describe("access tokens", () => {
  it("round-trips the grant and expires after the ttl", () => {
    let now = 1_800_000_000_000;
    const tokens = createTokenService({ domain: "gw", ttlSeconds: 300, now: () => now });
    const { token, expiresIn } = tokens.issue(grant);
    expect(expiresIn).toBe(300);
    expect(tokens.verify(token)).toMatchObject({ ...grant, expiresAt: 1_800_000_300 });
    now += 300_000;
    expect(errorCode(() => tokens.verify(token))).toBe("token_invalid");
  });

  it("refuses tokens of another gateway key or domain, tampered tokens and junk", () => {
    const now = () => 1_800_000_000_000;
    const a = createTokenService({ domain: "gw", now });
    const b = createTokenService({ domain: "gw", now });
    const token = a.issue(grant).token;
    expect(errorCode(() => b.verify(token))).toBe("token_invalid");
    const [h, p, s] = token.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString());
    payload.scope = "model:read round:aggregate";
    expect(
      errorCode(() => a.verify(`${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`)),
    ).toBe("token_invalid");
    expect(errorCode(() => a.verify("junk"))).toBe("token_invalid");
  });

  it("rejects misconfiguration with TypeError", () => {
    expect(() => createTokenService({ domain: "", now: Date.now })).toThrow(TypeError);
    expect(() => createTokenService({ domain: "gw", ttlSeconds: 0, now: Date.now })).toThrow(TypeError);
  });
});
