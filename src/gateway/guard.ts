import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from "fastify";
import { type ChainClient, getCredentialState } from "../chain/index.ts";
import type { Action } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import type { AuditLog } from "./state.ts";
import type { AccessClaims, TokenService } from "./tokens.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The verified access of the caller, set by the access guard. */
    kparty?: AccessClaims;
  }
}

export interface GuardOptions {
  tokens: TokenService;
  chain: ChainClient;
  audit: AuditLog;
}

/** Whether the grant covers `model` (`"*"` covers every model). */
export function grantCoversModel(claims: AccessClaims, model: string): boolean {
  return claims.models.includes("*") || claims.models.includes(model);
}

/**
 * A guard factory: `requireAccess(action)` returns a preHandler that accepts only a valid
 * bearer token of this gateway whose scope has `action` (and, for `/models/:id…`, covers
 * the model), whose credential is still anchored, unrevoked and unsuspended, and whose
 * issuer is still a member — read from the chain on every request, so a revocation
 * refuses live tokens at once. Every decision is audited before the reply.
 */
export function createAccessGuard(options: GuardOptions) {
  const { tokens, chain, audit } = options;
  if (!tokens || !chain || !audit) throw new TypeError("tokens, chain and audit are required");

  return function requireAccess(action: Action): preHandlerAsyncHookHandler {
    return async (request: FastifyRequest, _reply: FastifyReply) => {
      const model = (request.params as { id?: string }).id ?? null;
      let claims: AccessClaims | undefined;
      try {
        const header = request.headers.authorization;
        const match = typeof header === "string" ? /^Bearer ([A-Za-z0-9_.-]+)$/.exec(header) : null;
        if (!match)
          throw new KPartyError("token_invalid", "an access token is required (Authorization: Bearer …)");
        claims = tokens.verify(match[1]);
        if (!claims.actions.includes(action)) {
          throw new KPartyError("scope_denied", `the access token does not grant ${action}`);
        }
        if (model !== null && !grantCoversModel(claims, model)) {
          throw new KPartyError("scope_denied", `the access token does not cover model ${model}`);
        }
        const state = await getCredentialState(chain, {
          credentialId: claims.credentialId,
          issuer: claims.issuerAccount,
          revocationIndex: claims.revocationIndex,
          suspensionIndex: claims.suspensionIndex,
        });
        if (!state.issuerIsMember)
          throw new KPartyError("issuer_not_member", "the credential's issuer is no longer a member");
        if (state.anchoredBy?.toLowerCase() !== claims.issuerAccount.toLowerCase()) {
          throw new KPartyError(
            "not_anchored",
            "the credential behind this token is not anchored by its issuer",
          );
        }
        if (state.revoked)
          throw new KPartyError("revoked", "the credential behind this token has been revoked");
        if (state.suspended)
          throw new KPartyError("suspended", "the credential behind this token is suspended");
        request.kparty = claims;
        audit.append({
          client: request.ip,
          route: request.routeOptions.url ?? request.url,
          holder: claims.holder,
          credentialId: claims.credentialId,
          action,
          model,
          outcome: "granted",
        });
      } catch (error) {
        audit.append({
          client: request.ip,
          route: request.routeOptions.url ?? request.url,
          holder: claims?.holder ?? null,
          credentialId: claims?.credentialId ?? null,
          action,
          model,
          outcome: "denied",
          code: error instanceof KPartyError ? error.code : "internal",
        });
        throw error;
      }
    };
  };
}
