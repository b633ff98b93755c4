import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import { KPartyError } from "../errors/index.ts";
import { createTokenService, createTokenVerifier } from "./tokens.ts";
import { DEFAULT_CLOCK_SKEW_SECONDS } from "./verify/window.ts";

/** Grant time of these tests, in seconds (the clocks below are in milliseconds). */
const T = 1_800_000_000;

const grant = {
  holder: "did:ethr:0x7a69:0xabc",
  credentialId: `0x${"11".repeat(32)}`,
  anchorKey: `0x${"22".repeat(32)}`,
  issuerAccount: "0x0000000000000000000000000000000000000001",
  revocationIndex: 3,
  suspensionIndex: 3,
  actions: ["model:read" as const],
  models: ["m"],
  credentialNotBefore: T - 86_400,
  credentialExpiresAt: T + 86_400,
};

const payloadOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()) as Record<string, unknown>;

/** A token service on a clock the test moves (`clock.ms`). */
function service(ttlSeconds = 300, clockSkewSeconds?: number) {
  const clock = { ms: T * 1000 + 400 };
  const tokens = createTokenService({
    domain: "gw",
    ttlSeconds,
    now: () => clock.ms,
    ...(clockSkewSeconds !== undefined ? { clockSkewSeconds } : {}),
  });
  return { clock, tokens };
}

describe("access tokens", () => {
  it("round-trips the grant with the credential's window and lives the ttl, judged with the clock skew", () => {
    const { clock, tokens } = service(300);
    const { token, expiresIn } = tokens.issue(grant);
    expect(expiresIn).toBe(300);
    expect(tokens.verify(token)).toMatchObject({ ...grant, expiresAt: T + 300 });
    expect(payloadOf(token)).toMatchObject({ iat: T, exp: T + 300, cnbf: T - 86_400, cexp: T + 86_400 });
    // exp + skew - 1 s: still honoured (the one 60 s skew); exp + skew: refused as an expired token
    clock.ms = (T + 300 + DEFAULT_CLOCK_SKEW_SECONDS - 1) * 1000;
    expect(tokens.verify(token).tokenId).toBe(payloadOf(token).jti);
    clock.ms = (T + 300 + DEFAULT_CLOCK_SKEW_SECONDS) * 1000;
    expect(errorCode(() => tokens.verify(token))).toBe("token_invalid");
  });

  it("caps the token at the credential's exp when the ttl outlives it, and says so at expiry: credential_expired", () => {
    const { clock, tokens } = service(86_400);
    const credentialExpiresAt = T + 90;
    const { token, expiresIn, claims } = tokens.issue({ ...grant, credentialExpiresAt });
    expect(expiresIn).toBe(90);
    expect(claims.expiresAt).toBe(credentialExpiresAt);
    expect(payloadOf(token)).toMatchObject({ iat: T, exp: credentialExpiresAt, cexp: credentialExpiresAt });
    clock.ms = (credentialExpiresAt + 59) * 1000;
    expect(tokens.verify(token).expiresAt).toBe(credentialExpiresAt);
    // the credential's window is judged before the token's own expiry: the real reason is given
    clock.ms = (credentialExpiresAt + 60) * 1000;
    let refusal: unknown;
    try {
      tokens.verify(token);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(KPartyError);
    expect(refusal).toMatchObject({
      code: "credential_expired",
      shortMessage: `the credential behind the access token expired at ${new Date(credentialExpiresAt * 1000).toISOString()}`,
      details: { holder: grant.holder, credentialId: grant.credentialId },
    });
    // long after the token's own ttl, the reason is still the credential
    clock.ms = (T + 86_400 + 3_600) * 1000;
    expect(errorCode(() => tokens.verify(token))).toBe("credential_expired");
  });

  it("caps the token at the presentation's exp when it is the earliest; the credential stays valid", () => {
    const { clock, tokens } = service(300);
    const { token, expiresIn } = tokens.issue(
      { ...grant, credentialExpiresAt: T + 200 },
      { presentationExpiresAt: T + 45 },
    );
    expect(expiresIn).toBe(45);
    expect(payloadOf(token)).toMatchObject({ exp: T + 45, cexp: T + 200 });
    clock.ms = (T + 45 + 60) * 1000;
    expect(errorCode(() => tokens.verify(token))).toBe("token_invalid");
  });

  it("refuses a grant whose capped lifetime is not positive: expired, even within the skew", () => {
    const { tokens } = service(300);
    // the credential expired 30 s ago: the verifier's 60 s skew tolerates it, the cap does not
    const expired = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return error instanceof KPartyError ? [error.code, error.shortMessage] : [String(error)];
      }
      return ["no error"];
    };
    expect(expired(() => tokens.issue({ ...grant, credentialExpiresAt: T - 30 }))).toEqual([
      "expired",
      `the credential expired at ${new Date((T - 30) * 1000).toISOString()}: no access token outlives it`,
    ]);
    // exp equal to the grant's second leaves no lifetime either
    expect(expired(() => tokens.issue({ ...grant, credentialExpiresAt: T }))[0]).toBe("expired");
    expect(expired(() => tokens.issue(grant, { presentationExpiresAt: T - 1 }))).toEqual([
      "expired",
      `the presentation expired at ${new Date((T - 1) * 1000).toISOString()}: no access token outlives it`,
    ]);
    // one second left: a one-second token
    expect(tokens.issue({ ...grant, credentialExpiresAt: T + 1 }).expiresIn).toBe(1);
  });

  it("re-checks the credential's nbf on use: not_yet_valid before nbf - skew (a clock set back)", () => {
    const { clock, tokens } = service(300);
    const { token } = tokens.issue({ ...grant, credentialNotBefore: T });
    clock.ms = (T - 60) * 1000;
    expect(tokens.verify(token).credentialNotBefore).toBe(T);
    clock.ms = (T - 61) * 1000;
    expect(errorCode(() => tokens.verify(token))).toBe("not_yet_valid");
  });

  it("uses the configured skew for tokens and credential windows alike", () => {
    const { clock, tokens } = service(300, 0);
    const { token } = tokens.issue({ ...grant, credentialExpiresAt: T + 100 });
    clock.ms = (T + 99) * 1000 + 999;
    expect(tokens.verify(token).expiresAt).toBe(T + 100);
    clock.ms = (T + 100) * 1000;
    expect(errorCode(() => tokens.verify(token))).toBe("credential_expired");
  });

  it("a public-key verifier judges the same way as the issuing gateway", () => {
    const { clock, tokens } = service(86_400);
    const { token } = tokens.issue({ ...grant, credentialExpiresAt: T + 90 });
    const remote = createTokenVerifier({ domain: "gw", publicJwk: tokens.publicJwk, now: () => clock.ms });
    clock.ms = (T + 149) * 1000;
    expect(remote.verify(token).credentialExpiresAt).toBe(T + 90);
    clock.ms = (T + 150) * 1000;
    expect(errorCode(() => remote.verify(token))).toBe("credential_expired");
  });

  it("refuses a token of this gateway's key without the credential's window: token_invalid", () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const tokens = createTokenService({ domain: "gw", privateKey, now: () => T * 1000 });
    const [h, p] = tokens.issue(grant).token.split(".") as [string, string, string];
    const { cexp: _cexp, ...payload } = JSON.parse(Buffer.from(p, "base64url").toString());
    const input = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
    const resigned = `${input}.${sign(null, Buffer.from(input), privateKey).toString("base64url")}`;
    expect(errorCode(() => tokens.verify(resigned))).toBe("token_invalid");
  });

  it("refuses tokens of another gateway key or domain, tampered tokens and junk", () => {
    const now = () => T * 1000;
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
    expect(() => createTokenService({ domain: "gw", clockSkewSeconds: -1, now: Date.now })).toThrow(
      TypeError,
    );
    const { tokens } = service();
    expect(() =>
      createTokenVerifier({
        domain: "gw",
        publicJwk: tokens.publicJwk,
        now: Date.now,
        clockSkewSeconds: Number.NaN,
      }),
    ).toThrow(TypeError);
    expect(() => tokens.issue({ ...grant, credentialExpiresAt: Number.NaN })).toThrow(TypeError);
  });
});
