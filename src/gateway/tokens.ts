import { createPublicKey, generateKeyPairSync, type KeyObject, randomUUID, sign, verify } from "node:crypto";
import type { Action } from "../credential/index.ts";
import { decodeJwt } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";

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
}

export interface AccessClaims extends AccessGrant {
  tokenId: string;
  expiresAt: number;
}

export interface TokenServiceOptions {
  /** The gateway's domain: issuer and audience of its tokens. */
  domain: string;
  /** Token lifetime in seconds (default 300). */
  ttlSeconds?: number;
  /** Clock in milliseconds. */
  now: () => number;
  /** Ed25519 private key; a fresh one per gateway process by default (tokens then end with the process). */
  privateKey?: KeyObject;
}

/**
 * Short-lived access tokens: compact JWS, EdDSA (Ed25519) with the gateway's own key,
 * `typ: at+jwt`, bound to the holder DID, the credential id and the granted scope.
 * @example
 * ```ts
 * const tokens = createTokenService({ domain: "gw.example", now: Date.now });
 * const { token } = tokens.issue(grant);
 * const claims = tokens.verify(token); // throws token_invalid
 * ```
 */
export function createTokenService(options: TokenServiceOptions) {
  const ttl = options.ttlSeconds ?? 300;
  if (!Number.isSafeInteger(ttl) || ttl <= 0)
    throw new TypeError("token ttlSeconds must be a positive integer");
  if (!options.domain) throw new TypeError("domain is required");
  const privateKey = options.privateKey ?? generateKeyPairSync("ed25519").privateKey;
  if (privateKey.asymmetricKeyType !== "ed25519") throw new TypeError("privateKey must be an Ed25519 key");
  const publicKey = createPublicKey(privateKey);
  const publicJwk = publicKey.export({ format: "jwk" });
  const kid = `${options.domain}#${Buffer.from(publicJwk.x as string, "base64url")
    .subarray(0, 8)
    .toString("hex")}`;
  const header = Buffer.from(JSON.stringify({ alg: "EdDSA", typ: "at+jwt", kid })).toString("base64url");
  const jwk = { kty: "OKP" as const, crv: "Ed25519" as const, x: publicJwk.x as string, kid };
  const verifier = createTokenVerifier({ domain: options.domain, publicJwk: jwk, now: options.now });

  return {
    publicJwk: { ...jwk, alg: "EdDSA", use: "sig" },
    ttlSeconds: ttl,

    issue(grant: AccessGrant): { token: string; expiresIn: number; claims: AccessClaims } {
      const iat = Math.floor(options.now() / 1000);
      const claims: AccessClaims = { ...grant, tokenId: randomUUID(), expiresAt: iat + ttl };
      const payload = {
        iss: options.domain,
        aud: options.domain,
        sub: grant.holder,
        jti: claims.tokenId,
        iat,
        exp: claims.expiresAt,
        cid: grant.credentialId,
        ak: grant.anchorKey,
        ica: grant.issuerAccount,
        ri: grant.revocationIndex,
        si: grant.suspensionIndex,
        scope: grant.actions.join(" "),
        models: grant.models,
        ...(grant.requestsPerMinute ? { rpm: grant.requestsPerMinute } : {}),
      };
      const input = `${header}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
      const signature = sign(null, Buffer.from(input), privateKey).toString("base64url");
      return { token: `${input}.${signature}`, expiresIn: ttl, claims };
    },

    /** Checks signature, issuer, audience and expiry; throws `token_invalid`. */
    verify: verifier.verify,
  };
}

/** The public half of a gateway's token key, as `/.well-known/kparty` publishes it. */
export interface TokenPublicKey {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  kid: string;
}

/**
 * Verifies access tokens of the gateway at `domain` with its public key alone — what a model
 * or inference server needs to accept the gateway's tokens (see docs/middleware.md).
 * @example
 * ```ts
 * const { domain, accessToken } = await (await fetch(`${gateway}/.well-known/kparty`)).json();
 * const tokens = createTokenVerifier({ domain, publicJwk: accessToken.key, now: Date.now });
 * const claims = tokens.verify(bearer); // throws token_invalid
 * ```
 */
export function createTokenVerifier(options: {
  domain: string;
  publicJwk: TokenPublicKey;
  now: () => number;
}) {
  const { domain, publicJwk } = options;
  if (!domain) throw new TypeError("domain is required");
  if (publicJwk?.kty !== "OKP" || publicJwk.crv !== "Ed25519" || typeof publicJwk.kid !== "string") {
    throw new TypeError("publicJwk must be the gateway's Ed25519 JWK with its kid");
  }
  const publicKey = createPublicKey({ format: "jwk", key: { kty: "OKP", crv: "Ed25519", x: publicJwk.x } });
  const kid = publicJwk.kid;

  function invalid(message: string): never {
    throw new KPartyError("token_invalid", message);
  }

  return {
    /** Checks signature, issuer, audience and expiry; throws `token_invalid`. */
    verify(token: unknown): AccessClaims {
      let decoded: ReturnType<typeof decodeJwt>;
      try {
        decoded = decodeJwt(token);
      } catch {
        invalid("the access token is not a JWT");
      }
      const { header: h, payload: p, signingInput, signature } = decoded;
      if (h.alg !== "EdDSA" || h.typ !== "at+jwt" || h.kid !== kid || h.crit !== undefined) {
        invalid("the access token was not issued by this gateway");
      }
      if (!verify(null, Buffer.from(signingInput), publicKey, signature))
        invalid("the access token signature is invalid");
      if (p.iss !== domain || p.aud !== domain) invalid("the access token is for another gateway");
      if (typeof p.exp !== "number" || p.exp <= Math.floor(options.now() / 1000))
        invalid("the access token has expired");
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
        tokenId: p.jti as string,
        expiresAt: p.exp,
      };
    },
  };
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;

export type TokenService = ReturnType<typeof createTokenService>;
