import { createPublicKey, generateKeyPairSync, type KeyObject, randomUUID, sign, verify } from "node:crypto";
import type { Action } from "../credential/index.ts";
import { decodeJwt } from "../credential/index.ts";
import { KPartyError, type KPartyErrorCode } from "../errors/index.ts";
import { TokenKeyRing, tokenKeyId } from "../state/keys.ts";
import type { TokenPublicKey } from "../state/port.ts";
import { resolveClockSkew, windowVerdict } from "./verify/window.ts";

/** What a gateway access token grants, bound to one holder and one credential. */
export interface AccessGrant {
  holder: string;
  credentialId: string;
  /** What is anchored on chain for the credential: its id or its batch root. */
  anchorKey: string;
  issuerAccount: string;
  revocationIndex: number;
  suspensionIndex: number;
  actions: Action[];
  models: string[];
  /** The credential's quota, if it sets one. */
  requestsPerMinute?: number;
  /** The credential's `nbf` (seconds): carried in the token and re-checked on every use. */
  credentialNotBefore: number;
  /** The credential's `exp` (seconds): the token ends no later, and every use re-checks it. */
  credentialExpiresAt: number;
  /**
   * The JWK SHA-256 thumbprint of the holder's DPoP key (RFC 9449 `cnf.jkt`): the token is then
   * honoured only with a fresh proof signed by that key. Absent: a bearer token.
   */
  jkt?: string;
}

export interface AccessClaims extends AccessGrant {
  tokenId: string;
  /** The token's `exp` (seconds): the earliest of grant time + TTL, the credential's and the presentation's `exp`. */
  expiresAt: number;
}

/** A NumericDate as ISO 8601 (or as is, past the dates JavaScript can show). */
function when(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

export interface TokenServiceOptions {
  /** The gateway's domain: issuer and audience of its tokens. */
  domain: string;
  /** Token lifetime in seconds (default 300). */
  ttlSeconds?: number;
  /** Clock in milliseconds. */
  now: () => number;
  /** Ed25519 private key held in memory only; a fresh one by default (tokens then end with the process). */
  privateKey?: KeyObject;
  /** The deployment's keys instead (loaded; see `TokenKeyRing`): the newest signs, every one verifies. */
  keys?: TokenKeyRing;
  /** Tolerated clock difference when judging a token's times (default `DEFAULT_CLOCK_SKEW_SECONDS`, 60). */
  clockSkewSeconds?: number;
}

/**
 * Short-lived access tokens: compact JWS, EdDSA (Ed25519) with the gateway's own key,
 * `typ: at+jwt`, bound to the holder DID, the credential id and the granted scope, and — when
 * the grant has a `jkt` — to the holder's DPoP key (`cnf.jkt`, RFC 9449).
 *
 * A token never outlives what grounded it: its `exp` is the earliest of grant time + TTL, the
 * credential's `exp` and the presentation's `exp` (exactly: no clock skew is added to a cap).
 * It carries the credential's window (`cnbf`, `cexp`), which {@link createTokenVerifier}
 * re-checks on every use.
 * @example
 * ```ts
 * const tokens = createTokenService({ domain: "gw.example", now: Date.now });
 * const { token, expiresIn } = tokens.issue(grant, { presentationExpiresAt: vp.exp });
 * const claims = tokens.verify(token); // throws credential_expired, token_invalid
 * ```
 */
export function createTokenService(options: TokenServiceOptions) {
  const ttl = options.ttlSeconds ?? 300;
  if (!Number.isSafeInteger(ttl) || ttl <= 0)
    throw new TypeError("token ttlSeconds must be a positive integer");
  if (!options.domain) throw new TypeError("domain is required");
  const keys = keyRingOf(options);
  const headerOf = headerCache();
  const verifier = tokenVerifier({
    domain: options.domain,
    lookup: (kid) => keys.get(kid)?.publicKey,
    now: options.now,
    clockSkewSeconds: resolveClockSkew(options.clockSkewSeconds),
  });
  const published = (jwk: TokenPublicKey) => ({ ...jwk, alg: "EdDSA" as const, use: "sig" as const });

  return {
    /** The public key new tokens are signed with. */
    get publicJwk() {
      return published(keys.signing.jwk);
    },
    /** Every key tokens may be signed with, oldest first (`GET /.well-known/jwks.json`). */
    jwks() {
      return { keys: keys.jwks.map(published) };
    },
    /** The key ring (the gateway refreshes it before signing; see `TokenKeyRing`). */
    keys,
    ttlSeconds: ttl,

    /**
     * Signs a token for `grant`. Its lifetime is capped at the credential's `exp` and at
     * `presentationExpiresAt` (the presentation's `exp`, if it has one); a cap at or before the
     * grant time throws `expired` (the credential or presentation has already expired, even if
     * within the clock skew the verifier tolerates). `expiresIn` is the capped lifetime.
     */
    issue(
      grant: AccessGrant,
      bounds: { presentationExpiresAt?: number } = {},
    ): { token: string; expiresIn: number; claims: AccessClaims } {
      const iat = Math.floor(options.now() / 1000);
      const exp = cappedExpiry(grant, bounds, iat, ttl);
      const claims: AccessClaims = { ...grant, tokenId: randomUUID(), expiresAt: exp };
      const payload = tokenPayload(options.domain, claims, iat);
      const key = keys.signing;
      const input = `${headerOf(key.kid)}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
      const signature = sign(null, Buffer.from(input), key.privateKey).toString("base64url");
      return { token: `${input}.${signature}`, expiresIn: exp - iat, claims };
    },

    /** See {@link createTokenVerifier}'s `verify`. */
    verify: verifier.verify,

    /**
     * `verify`, after learning a `kid` this process does not know yet from the key store (a
     * key another replica signs with since a rotation; see `TokenKeyRing.learn`).
     */
    async verifyFresh(token: unknown): Promise<AccessClaims> {
      const kid = headerKid(token);
      if (kid !== null && !keys.get(kid)) await keys.learn(kid);
      return verifier.verify(token);
    },
  };
}

export type { TokenPublicKey };

/** The options' key ring, or a ring of the one key given (or made). */
function keyRingOf(options: TokenServiceOptions): TokenKeyRing {
  if (options.keys && options.privateKey) throw new TypeError("pass keys or privateKey, not both");
  if (options.keys) return options.keys;
  const privateKey = options.privateKey ?? generateKeyPairSync("ed25519").privateKey;
  if (privateKey.asymmetricKeyType !== "ed25519") throw new TypeError("privateKey must be an Ed25519 key");
  return TokenKeyRing.of(
    [{ kid: tokenKeyId(privateKey), privateKey, createdAt: options.now() }],
    options.now,
  );
}

/** The encoded JWS header of each `kid`, made once. */
function headerCache(): (kid: string) => string {
  const headers = new Map<string, string>();
  return (kid) => {
    let header = headers.get(kid);
    if (header === undefined) {
      header = Buffer.from(JSON.stringify({ alg: "EdDSA", typ: "at+jwt", kid })).toString("base64url");
      headers.set(kid, header);
    }
    return header;
  };
}

/**
 * A token's `exp`: the earliest of `iat` + the TTL, the credential's `exp` and the
 * presentation's; `expired` when that is not after `iat`.
 */
function cappedExpiry(
  grant: AccessGrant,
  bounds: { presentationExpiresAt?: number },
  iat: number,
  ttl: number,
): number {
  const { credentialNotBefore, credentialExpiresAt } = grant;
  const { presentationExpiresAt } = bounds;
  for (const value of [credentialNotBefore, credentialExpiresAt, presentationExpiresAt ?? 0]) {
    if (!Number.isSafeInteger(value)) throw new TypeError("token bounds must be NumericDates (seconds)");
  }
  let exp = iat + ttl;
  let cappedBy: "credential" | "presentation" | null = null;
  if (credentialExpiresAt < exp) [exp, cappedBy] = [credentialExpiresAt, "credential"];
  if (presentationExpiresAt !== undefined && presentationExpiresAt < exp)
    [exp, cappedBy] = [presentationExpiresAt, "presentation"];
  if (exp <= iat) {
    throw new KPartyError("expired", `the ${cappedBy} expired at ${when(exp)}: no access token outlives it`);
  }
  return exp;
}

/** The JWT claims of an access token for `claims`, issued at `iat` by and for `domain`. */
function tokenPayload(domain: string, claims: AccessClaims, iat: number) {
  return {
    iss: domain,
    aud: domain,
    sub: claims.holder,
    jti: claims.tokenId,
    iat,
    exp: claims.expiresAt,
    cid: claims.credentialId,
    ak: claims.anchorKey,
    ica: claims.issuerAccount,
    ri: claims.revocationIndex,
    si: claims.suspensionIndex,
    scope: claims.actions.join(" "),
    models: claims.models,
    ...(claims.requestsPerMinute ? { rpm: claims.requestsPerMinute } : {}),
    cnbf: claims.credentialNotBefore,
    cexp: claims.credentialExpiresAt,
    ...(claims.jkt !== undefined ? { cnf: { jkt: claims.jkt } } : {}),
  };
}

/** The `kid` of a compact JWS's header, or null (the verifier then refuses the token with its reason). */
function headerKid(token: unknown): string | null {
  if (typeof token !== "string") return null;
  const dot = token.indexOf(".");
  if (dot <= 0 || dot > 1024) return null;
  try {
    const { kid } = JSON.parse(Buffer.from(token.slice(0, dot), "base64url").toString("utf8")) as {
      kid?: unknown;
    };
    return typeof kid === "string" && kid.length <= 128 ? kid : null;
  } catch {
    return null;
  }
}

/**
 * Verifies access tokens of the gateway at `domain` with its public key alone — what a model
 * or inference server needs to accept the gateway's tokens (see docs/middleware.md).
 *
 * Times are judged with the one clock skew (`clockSkewSeconds`, default
 * `DEFAULT_CLOCK_SKEW_SECONDS`, 60 s — the verifier's): the credential's window carried in the
 * token first (`credential_expired` once its `exp` is `skew` seconds past, `not_yet_valid`
 * before its `nbf` minus `skew`), then the token's own `exp` (`token_invalid`). As a token's
 * `exp` is at most its credential's, a token is never honoured at a time its credential would
 * be refused, and a token ended by its credential is refused as `credential_expired`.
 * @example
 * ```ts
 * const { domain, accessToken } = await (await fetch(`${gateway}/.well-known/kparty`)).json();
 * const tokens = createTokenVerifier({ domain, publicJwk: accessToken.key, now: Date.now });
 * const claims = tokens.verify(bearer); // throws token_invalid
 * ```
 */
export function createTokenVerifier(options: {
  domain: string;
  /** The gateway's key (`/.well-known/kparty`'s `accessToken.key`); or `keys`. */
  publicJwk?: TokenPublicKey;
  /** The gateway's keys (`/.well-known/jwks.json`'s `keys`): tokens signed by any of them verify. */
  keys?: TokenPublicKey[];
  now: () => number;
  /** Tolerated clock difference, in seconds (default `DEFAULT_CLOCK_SKEW_SECONDS`, 60). */
  clockSkewSeconds?: number;
}) {
  const jwks = [...(options.publicJwk ? [options.publicJwk] : []), ...(options.keys ?? [])];
  if (jwks.length === 0) throw new TypeError("publicJwk or keys is required");
  const byKid = new Map<string, KeyObject>();
  for (const jwk of jwks) {
    if (
      jwk?.kty !== "OKP" ||
      jwk.crv !== "Ed25519" ||
      typeof jwk.kid !== "string" ||
      typeof jwk.x !== "string"
    ) {
      throw new TypeError("publicJwk must be the gateway's Ed25519 JWK with its kid");
    }
    byKid.set(jwk.kid, createPublicKey({ format: "jwk", key: { kty: "OKP", crv: "Ed25519", x: jwk.x } }));
  }
  return tokenVerifier({
    domain: options.domain,
    lookup: (kid) => byKid.get(kid),
    now: options.now,
    clockSkewSeconds: resolveClockSkew(options.clockSkewSeconds),
  });
}

function tokenVerifier(options: {
  domain: string;
  lookup: (kid: string) => KeyObject | undefined;
  now: () => number;
  clockSkewSeconds: number;
}) {
  const { domain, lookup } = options;
  if (!domain) throw new TypeError("domain is required");
  const skew = options.clockSkewSeconds;

  function invalid(message: string): never {
    throw new KPartyError("token_invalid", message);
  }

  return {
    /**
     * Checks signature, issuer, audience, then the credential's window (`credential_expired`,
     * `not_yet_valid`), then the token's expiry; otherwise throws `token_invalid`. A refusal of
     * an authentic token for its times carries `details.holder` and `details.credentialId`.
     */
    verify(token: unknown): AccessClaims {
      let decoded: ReturnType<typeof decodeJwt>;
      try {
        decoded = decodeJwt(token);
      } catch {
        invalid("the access token is not a JWT");
      }
      const { header: h, payload: p, signingInput, signature } = decoded;
      const publicKey = typeof h.kid === "string" ? lookup(h.kid) : undefined;
      if (h.alg !== "EdDSA" || h.typ !== "at+jwt" || !publicKey || h.crit !== undefined) {
        invalid("the access token was not issued by this gateway");
      }
      if (!verify(null, Buffer.from(signingInput), publicKey, signature))
        invalid("the access token signature is invalid");
      if (p.iss !== domain || p.aud !== domain) invalid("the access token is for another gateway");
      const { exp, cnbf, cexp } = p;
      if (!Number.isSafeInteger(exp) || !Number.isSafeInteger(cnbf) || !Number.isSafeInteger(cexp))
        invalid("the access token lacks its expiry or its credential's validity window");
      const t = Math.floor(options.now() / 1000);
      // An authentic token refused for its times: who it was for goes with the error (for the audit).
      const late = (code: KPartyErrorCode, message: string): never => {
        throw new KPartyError(code, message, { details: { holder: p.sub, credentialId: p.cid } });
      };
      // the credential first: a token its credential ended is refused for that reason
      const credential = windowVerdict(t, cnbf as number, cexp as number, skew);
      if (credential === "expired")
        late(
          "credential_expired",
          `the credential behind the access token expired at ${when(cexp as number)}`,
        );
      if (credential === "not_yet_valid") {
        late(
          "not_yet_valid",
          `the credential behind the access token is not valid before ${when(cnbf as number)}`,
        );
      }
      if (windowVerdict(t, undefined, exp as number, skew) === "expired")
        late("token_invalid", "the access token has expired");
      return {
        holder: p.sub as string,
        credentialId: p.cid as string,
        anchorKey: p.ak as string,
        issuerAccount: p.ica as string,
        revocationIndex: p.ri as number,
        suspensionIndex: p.si as number,
        actions: String(p.scope).split(" ") as Action[],
        models: p.models as string[],
        ...(typeof p.rpm === "number" ? { requestsPerMinute: p.rpm } : {}),
        credentialNotBefore: cnbf as number,
        credentialExpiresAt: cexp as number,
        ...(typeof (p.cnf as { jkt?: unknown } | undefined)?.jkt === "string"
          ? { jkt: (p.cnf as { jkt: string }).jkt }
          : {}),
        tokenId: p.jti as string,
        expiresAt: exp as number,
      };
    },
  };
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;

export type TokenService = ReturnType<typeof createTokenService>;
