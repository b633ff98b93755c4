import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from "fastify";
import type { CredentialState } from "../chain/index.ts";
import type { Action } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import type { AuditStore, Awaitable, RateLimits } from "../state/port.ts";
import { auditEntryOf } from "./audit-entry.ts";
import type { DpopVerifier } from "./dpop.ts";
import type { StatusKey } from "./status-cache.ts";
import type { AccessClaims } from "./tokens.ts";
import { judgeCredentialState, type RemovedIssuerPolicy } from "./verify/judge.ts";

declare module "fastify" {
  interface FastifyRequest {
    /**
     * The verified access of the caller, the action granted and the client address (captured
     * when access was granted: a refused upload may have lost its socket by the time it is audited).
     */
    kparty?: AccessClaims & { action?: Action; client?: string };
  }
}

export interface GuardOptions {
  /** Verifies the gateway's access tokens (the gateway's token service, or a public-key verifier). */
  tokens: TokenVerifierLike;
  /** Revoked token ids (`POST /oauth/revoke`): a revoked token is refused with `token_revoked`. */
  revoked?: { isRevoked(tokenId: string): Awaitable<boolean> };
  /** Where credential states come from (a {@link StatusCache}, or a direct chain read). */
  states: { get(key: StatusKey): Promise<CredentialState> };
  /** Where decisions are recorded (the gateway always passes one). */
  audit?: AuditStore;
  /** The same policy the verifier applies (default `deny`). */
  removedIssuerPolicy?: RemovedIssuerPolicy;
  /** Per-credential rate limiting: the credential's quota, or `defaultRequestsPerMinute`. */
  limiter?: RateLimits;
  /** Requests a minute for credentials without a quota (default 600). */
  defaultRequestsPerMinute?: number;
  /**
   * `dpop` (default): only DPoP-bound tokens (`cnf.jkt`), each request with a fresh proof of
   * their key. `bearer`: unbound tokens as `Authorization: Bearer` too (bound ones still need
   * their proof).
   */
  tokenBinding?: TokenBinding;
  /** Checks the DPoP proofs (required: a bound token without a verifier is refused). */
  dpop?: DpopVerifier;
  /**
   * The public base URL this server is reached at (e.g. `https://models.example/kparty`), which
   * a proof's `htu` must name, followed by the request's path. Default: the request's own scheme
   * and `Host` (behind a trusted proxy, `X-Forwarded-Proto` / `X-Forwarded-Host`).
   */
  publicUrl?: string;
}

/** How access tokens are bound: to a DPoP key (the default) or to nothing (bearer). */
export type TokenBinding = "dpop" | "bearer";

/** The mode, checked (`TypeError` for anything but `dpop` and `bearer`; default `dpop`). */
export function resolveTokenBinding(value: unknown): TokenBinding {
  if (value === undefined) return "dpop";
  if (value !== "dpop" && value !== "bearer") throw new TypeError('tokenBinding must be "dpop" or "bearer"');
  return value;
}

/** A `publicUrl` option, checked and without its trailing slash (`TypeError` if not an http(s) URL). */
export function resolvePublicUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError("publicUrl must be an http(s) URL");
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.search || url.hash)
    throw new TypeError("publicUrl must be an http(s) URL without query or fragment");
  return `${url.protocol}//${url.host}${url.pathname}`.replace(/\/+$/, "");
}

/** The URL a DPoP proof for `request` must name: `publicUrl` (or the request's scheme and host) and its path. */
export function publicRequestUrl(request: FastifyRequest, publicUrl: string | undefined): string {
  const path = request.url.split("?")[0] ?? "/";
  return publicUrl !== undefined ? `${publicUrl}${path}` : `${request.protocol}://${request.host}${path}`;
}

const AUTHORIZATION = /^(Bearer|DPoP) ([A-Za-z0-9_.~+/-]+=*)$/i;

/** Whether the grant covers `model` (`"*"` covers every model). */
export function grantCoversModel(claims: AccessClaims, model: string): boolean {
  return claims.models.includes("*") || claims.models.includes(model);
}

/** Verifies an access token: the gateway's token service, or a public-key verifier. */
export interface TokenVerifierLike {
  verify(token: unknown): Awaitable<AccessClaims>;
}

/** The token a request authenticated with (see {@link createTokenAuthenticator}). */
export interface AuthenticatedToken {
  claims: AccessClaims;
  token: string;
}

/**
 * Authenticates a request by its access token, as every protected route does: the
 * `Authorization` header, the token's signature and times (`tokens`), and — for a DPoP-bound
 * token (`cnf.jkt`) — `Authorization: DPoP` with a fresh proof of that key for this method and
 * URL; an unbound token only as `Authorization: Bearer` and only when `tokenBinding` is
 * `bearer`. `seen` is told the claims as soon as the token verifies (a refusal after that is
 * audited with its holder). Scope, quota and the credential's state are the caller's.
 */
export function createTokenAuthenticator(options: {
  tokens: TokenVerifierLike;
  tokenBinding?: TokenBinding;
  dpop?: DpopVerifier;
  publicUrl?: string;
}) {
  const { tokens, dpop } = options;
  const binding = resolveTokenBinding(options.tokenBinding);
  if (binding === "dpop" && !dpop) throw new TypeError("tokenBinding dpop needs a DPoP verifier (dpop)");
  const publicUrl = resolvePublicUrl(options.publicUrl);
  return async function authenticate(
    request: FastifyRequest,
    reply: FastifyReply,
    seen?: (claims: AccessClaims) => void,
  ): Promise<AuthenticatedToken> {
    const header = request.headers.authorization;
    const match = typeof header === "string" ? AUTHORIZATION.exec(header) : null;
    if (!match) {
      throw new KPartyError(
        "token_invalid",
        binding === "dpop"
          ? "an access token is required (Authorization: DPoP … with a DPoP proof)"
          : "an access token is required (Authorization: Bearer …)",
        { details: { scheme: binding === "dpop" ? "DPoP" : "Bearer" } },
      );
    }
    const scheme = (match[1] as string).toLowerCase() === "dpop" ? "DPoP" : "Bearer";
    const token = match[2] as string;
    const claims = await tokens.verify(token);
    seen?.(claims);
    const named = { holder: claims.holder, credentialId: claims.credentialId };
    if (claims.jkt !== undefined) {
      if (scheme !== "DPoP" || !dpop) {
        throw new KPartyError(
          "token_invalid",
          "the access token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof",
          { details: { ...named, scheme: "DPoP" } },
        );
      }
      if (dpop.requiresNonce) reply.header("dpop-nonce", dpop.nonce());
      const proof = await dpop.verify(request.headers.dpop, {
        method: request.method,
        url: publicRequestUrl(request, publicUrl),
        accessToken: token,
        endpoint: "resource",
      });
      if (proof.jkt !== claims.jkt) {
        throw new KPartyError(
          "invalid_dpop_proof",
          "the DPoP proof is signed by another key than the one the access token is bound to",
          { details: { ...named, endpoint: "resource" } },
        );
      }
    } else if (binding === "dpop") {
      throw new KPartyError(
        "token_invalid",
        "the gateway accepts only DPoP-bound access tokens; get one with a DPoP proof",
        { details: { ...named, scheme: "DPoP" } },
      );
    } else if (scheme !== "Bearer") {
      throw new KPartyError("token_invalid", "an access token without cnf goes with Authorization: Bearer", {
        details: { ...named, scheme: "Bearer" },
      });
    }
    return { claims, token };
  };
}

/**
 * The per-use checks of a live token beyond its signature and times, shared by every protected
 * request and by introspection (one verdict): `revoked` refuses a token whose id was revoked
 * (`token_revoked`, 401); `credential` judges the credential's on-chain state and its issuer's
 * membership (`judgeCredentialState`: `revoked`, `suspended`, `issuer_not_member`, …).
 */
export function createLiveTokenCheck(options: {
  states: { get(key: StatusKey): Promise<CredentialState> };
  revoked?: { isRevoked(tokenId: string): Awaitable<boolean> };
  removedIssuerPolicy?: RemovedIssuerPolicy;
}) {
  const { states, revoked } = options;
  const policy = options.removedIssuerPolicy ?? "deny";
  return {
    async revoked(claims: AccessClaims): Promise<void> {
      if (revoked && (await revoked.isRevoked(claims.tokenId))) {
        throw new KPartyError("token_revoked", "the access token has been revoked", {
          details: {
            holder: claims.holder,
            credentialId: claims.credentialId,
            scheme: claims.jkt !== undefined ? "DPoP" : "Bearer",
          },
        });
      }
    },
    async credential(claims: AccessClaims): Promise<void> {
      const state = await states.get({
        anchorKey: claims.anchorKey,
        issuer: claims.issuerAccount,
        revocationIndex: claims.revocationIndex,
        suspensionIndex: claims.suspensionIndex,
      });
      await judgeCredentialState(state, claims.issuerAccount, policy, (_check, fn) => fn());
    },
  };
}

/**
 * A guard factory: `requireAccess(action)` returns a preHandler that accepts only a valid
 * access token of this gateway — DPoP-bound ones (`cnf.jkt`) as `Authorization: DPoP` with a
 * fresh proof of their key for this method and URL (see `createDpopVerifier`), unbound ones as
 * `Authorization: Bearer` and only when `tokenBinding` is `bearer` (see
 * {@link createTokenAuthenticator}) — whose credential is still within its validity window (`tokens`
 * re-checks the window the token carries, with the one clock skew: `credential_expired`), that
 * is not revoked (`revoked`: `token_revoked`), whose
 * scope has `action` (and, for `/models/:id…`, covers the model) and whose credential's
 * on-chain state still passes the verifier's judgement (`judgeCredentialState`). States come
 * from `states` — in the gateway a cache invalidated by the registry's events, so a revocation
 * refuses live tokens as soon as the gateway has seen its block. Every decision is audited
 * before the reply.
 */
export function createAccessGuard(options: GuardOptions) {
  const { tokens, states, audit } = options;
  const defaultRpm = options.defaultRequestsPerMinute ?? 600;
  if (!tokens || !states) throw new TypeError("tokens and states are required");
  const authenticate = createTokenAuthenticator({
    tokens,
    ...(options.tokenBinding !== undefined ? { tokenBinding: options.tokenBinding } : {}),
    ...(options.dpop ? { dpop: options.dpop } : {}),
    ...(options.publicUrl !== undefined ? { publicUrl: options.publicUrl } : {}),
  });
  const live = createLiveTokenCheck({
    states,
    ...(options.revoked ? { revoked: options.revoked } : {}),
    ...(options.removedIssuerPolicy ? { removedIssuerPolicy: options.removedIssuerPolicy } : {}),
  });

  return function requireAccess(action: Action): preHandlerAsyncHookHandler {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      const model = (request.params as { id?: string }).id ?? null;
      let claims: AccessClaims | undefined;
      try {
        // the claims are named in the audit record of any refusal once the token verifies
        ({ claims } = await authenticate(request, reply, (verified) => {
          claims = verified;
        }));
        await live.revoked(claims);
        await options.limiter?.take(
          `credential:${claims.credentialId}`,
          claims.requestsPerMinute ?? defaultRpm,
          "this credential",
        );
        if (!claims.actions.includes(action)) {
          throw new KPartyError("scope_denied", `the access token does not grant ${action}`);
        }
        if (model !== null && !grantCoversModel(claims, model)) {
          throw new KPartyError("scope_denied", `the access token does not cover model ${model}`);
        }
        await live.credential(claims);
        request.kparty = { ...claims, action, client: request.ip };
        await audit?.append(
          auditEntryOf(request, {
            outcome: "granted",
            holder: claims.holder,
            credentialId: claims.credentialId,
            action,
          }),
        );
      } catch (error) {
        // an authentic token refused for its times names its holder and credential in the error
        const named = error instanceof KPartyError ? error.details : {};
        await audit?.append(
          auditEntryOf(request, {
            outcome: "denied",
            error,
            holder: claims?.holder ?? (typeof named.holder === "string" ? named.holder : null),
            credentialId:
              claims?.credentialId ?? (typeof named.credentialId === "string" ? named.credentialId : null),
            action,
          }),
        );
        throw error;
      }
    };
  };
}
