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
  tokens: { verify(token: unknown): Awaitable<AccessClaims> };
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

/**
 * A guard factory: `requireAccess(action)` returns a preHandler that accepts only a valid
 * access token of this gateway — DPoP-bound ones (`cnf.jkt`) as `Authorization: DPoP` with a
 * fresh proof of their key for this method and URL (see `createDpopVerifier`), unbound ones as
 * `Authorization: Bearer` and only when `tokenBinding` is `bearer` — whose credential is still within its validity window (`tokens`
 * re-checks the window the token carries, with the one clock skew: `credential_expired`), whose
 * scope has `action` (and, for `/models/:id…`, covers the model) and whose credential's
 * on-chain state still passes the verifier's judgement (`judgeCredentialState`). States come
 * from `states` — in the gateway a cache invalidated by the registry's events, so a revocation
 * refuses live tokens as soon as the gateway has seen its block. Every decision is audited
 * before the reply.
 */
export function createAccessGuard(options: GuardOptions) {
  const ctx = guardContext(options);
  return function requireAccess(action: Action): preHandlerAsyncHookHandler {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      // the verified claims, once there: named in the audit record of any refusal from then on
      const seen: { claims?: AccessClaims } = {};
      try {
        const claims = await authorize(ctx, request, reply, action, seen);
        request.kparty = { ...claims, action, client: request.ip };
        const { holder, credentialId } = claims;
        await ctx.audit?.append(auditEntryOf(request, { outcome: "granted", holder, credentialId, action }));
      } catch (error) {
        // an authentic token refused for its times names its holder and credential in the error
        const named = error instanceof KPartyError ? error.details : {};
        await ctx.audit?.append(
          auditEntryOf(request, {
            outcome: "denied",
            error,
            holder: seen.claims?.holder ?? (typeof named.holder === "string" ? named.holder : null),
            credentialId:
              seen.claims?.credentialId ??
              (typeof named.credentialId === "string" ? named.credentialId : null),
            action,
          }),
        );
        throw error;
      }
    };
  };
}

/** A guard's options, checked and resolved to their defaults. */
interface GuardContext {
  tokens: GuardOptions["tokens"];
  states: GuardOptions["states"];
  audit: AuditStore | undefined;
  policy: RemovedIssuerPolicy;
  limiter: RateLimits | undefined;
  defaultRpm: number;
  binding: TokenBinding;
  dpop: DpopVerifier | undefined;
  publicUrl: string | undefined;
}

function guardContext(options: GuardOptions): GuardContext {
  const { tokens, states } = options;
  if (!tokens || !states) throw new TypeError("tokens and states are required");
  const binding = resolveTokenBinding(options.tokenBinding);
  if (binding === "dpop" && !options.dpop)
    throw new TypeError("tokenBinding dpop needs a DPoP verifier (dpop)");
  return {
    tokens,
    states,
    audit: options.audit,
    policy: options.removedIssuerPolicy ?? "deny",
    limiter: options.limiter,
    defaultRpm: options.defaultRequestsPerMinute ?? 600,
    binding,
    dpop: options.dpop,
    publicUrl: resolvePublicUrl(options.publicUrl),
  };
}

/**
 * Every check of a request, in order: the token, its binding, the rate limit, the scope and
 * the credential's on-chain state; the claims of an access granted (puts them in `seen` once
 * the token verifies).
 */
async function authorize(
  ctx: GuardContext,
  request: FastifyRequest,
  reply: FastifyReply,
  action: Action,
  seen: { claims?: AccessClaims },
): Promise<AccessClaims> {
  const model = (request.params as { id?: string }).id ?? null;
  const { scheme, token } = authorizationOf(request, ctx.binding);
  const claims = await ctx.tokens.verify(token);
  seen.claims = claims;
  await checkBinding(ctx, request, reply, { claims, scheme, token });
  await ctx.limiter?.take(
    `credential:${claims.credentialId}`,
    claims.requestsPerMinute ?? ctx.defaultRpm,
    "this credential",
  );
  if (!claims.actions.includes(action)) {
    throw new KPartyError("scope_denied", `the access token does not grant ${action}`);
  }
  if (model !== null && !grantCoversModel(claims, model)) {
    throw new KPartyError("scope_denied", `the access token does not cover model ${model}`);
  }
  const state = await ctx.states.get({
    anchorKey: claims.anchorKey,
    issuer: claims.issuerAccount,
    revocationIndex: claims.revocationIndex,
    suspensionIndex: claims.suspensionIndex,
  });
  await judgeCredentialState(state, claims.issuerAccount, ctx.policy, (_check, fn) => fn());
  return claims;
}

/** The request's `Authorization` scheme and token (`token_invalid` when it has none). */
function authorizationOf(
  request: FastifyRequest,
  binding: TokenBinding,
): { scheme: "DPoP" | "Bearer"; token: string } {
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
  return { scheme, token: match[2] as string };
}

/**
 * A DPoP-bound token must come as `Authorization: DPoP` with a fresh proof of its key; an
 * unbound one only as `Bearer`, and only when the binding is `bearer`.
 */
async function checkBinding(
  ctx: GuardContext,
  request: FastifyRequest,
  reply: FastifyReply,
  { claims, scheme, token }: { claims: AccessClaims; scheme: "DPoP" | "Bearer"; token: string },
): Promise<void> {
  const named = { holder: claims.holder, credentialId: claims.credentialId };
  const { dpop } = ctx;
  if (claims.jkt === undefined) {
    if (ctx.binding === "dpop") {
      throw new KPartyError(
        "token_invalid",
        "the gateway accepts only DPoP-bound access tokens; get one with a DPoP proof",
        { details: { ...named, scheme: "DPoP" } },
      );
    }
    if (scheme !== "Bearer") {
      throw new KPartyError("token_invalid", "an access token without cnf goes with Authorization: Bearer", {
        details: { ...named, scheme: "Bearer" },
      });
    }
    return;
  }
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
    url: publicRequestUrl(request, ctx.publicUrl),
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
}
