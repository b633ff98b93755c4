import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from "fastify";
import type { CredentialState } from "../chain/index.ts";
import type { Action } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import type { AuditStore, Awaitable, RateLimits } from "../state/port.ts";
import { auditEntryOf } from "./audit-entry.ts";
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
}

/** Whether the grant covers `model` (`"*"` covers every model). */
export function grantCoversModel(claims: AccessClaims, model: string): boolean {
  return claims.models.includes("*") || claims.models.includes(model);
}

/**
 * A guard factory: `requireAccess(action)` returns a preHandler that accepts only a valid
 * bearer token of this gateway, whose credential is still within its validity window (`tokens`
 * re-checks the window the token carries, with the one clock skew: `credential_expired`), whose
 * scope has `action` (and, for `/models/:id…`, covers the model) and whose credential's
 * on-chain state still passes the verifier's judgement (`judgeCredentialState`). States come
 * from `states` — in the gateway a cache invalidated by the registry's events, so a revocation
 * refuses live tokens as soon as the gateway has seen its block. Every decision is audited
 * before the reply.
 */
export function createAccessGuard(options: GuardOptions) {
  const { tokens, states, audit } = options;
  const policy = options.removedIssuerPolicy ?? "deny";
  const defaultRpm = options.defaultRequestsPerMinute ?? 600;
  if (!tokens || !states) throw new TypeError("tokens and states are required");

  return function requireAccess(action: Action): preHandlerAsyncHookHandler {
    return async (request: FastifyRequest, _reply: FastifyReply) => {
      const model = (request.params as { id?: string }).id ?? null;
      let claims: AccessClaims | undefined;
      try {
        const header = request.headers.authorization;
        const match = typeof header === "string" ? /^Bearer ([A-Za-z0-9_.-]+)$/.exec(header) : null;
        if (!match)
          throw new KPartyError("token_invalid", "an access token is required (Authorization: Bearer …)");
        claims = await tokens.verify(match[1]);
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
        const state = await states.get({
          anchorKey: claims.anchorKey,
          issuer: claims.issuerAccount,
          revocationIndex: claims.revocationIndex,
          suspensionIndex: claims.suspensionIndex,
        });
        await judgeCredentialState(state, claims.issuerAccount, policy, (_check, fn) => fn());
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
