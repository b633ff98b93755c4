import type { FastifyRequest } from "fastify";
import type { Action } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import { publicRequestUrl } from "./guard.ts";
import { grantScope, type ScopeRequest } from "./policy.ts";
import type { AccessTokenResponse } from "./schemas.ts";
import type { GatewayServices } from "./services.ts";
import type { AccessGrant, TokenService } from "./tokens.ts";
import type { CheckResult } from "./verify/checks.ts";
import type { VerifiedPresentation } from "./verify/verifier.ts";

/** The token response: its schema and type are in `schemas.ts` (`tokenSchema`). */
export type { AccessTokenResponse };

/**
 * The key a token asked for by `request` is bound to: the thumbprint of its `DPoP` proof's key,
 * after the proof has been checked for `POST` at this URL (no `ath` at a token endpoint).
 * With `tokenBinding: "dpop"` a proof is required (`invalid_dpop_proof`, 400); with `"bearer"`
 * a proof that is sent is honoured all the same (RFC 9449 §5: the token is then bound), and
 * without one the token is a bearer token. Check it before the presentation, which is the
 * expensive part and consumes the challenge.
 */
export async function tokenBindingOf(
  services: Pick<GatewayServices, "tokenBinding" | "dpop" | "publicUrl">,
  request: FastifyRequest,
): Promise<string | undefined> {
  const proof = request.headers.dpop;
  if (proof === undefined && services.tokenBinding === "bearer") return undefined;
  const { jkt } = await services.dpop.verify(proof, {
    method: request.method,
    url: publicRequestUrl(request, services.publicUrl),
    endpoint: "token",
  });
  return jkt;
}

/**
 * The scope granted from what was asked and what the credential allows, else `scope_denied`
 * with the verifier's checks plus the failed one.
 */
export function scopeOf(
  verified: VerifiedPresentation,
  asked: ScopeRequest,
): { actions: Action[]; models: string[] } {
  try {
    return grantScope(asked, verified.credential.claims);
  } catch (error) {
    const checks = [...verified.checks, { check: "scope", passed: false, code: "scope_denied" as const }];
    throw new KPartyError("scope_denied", (error as KPartyError).shortMessage, { details: { checks } });
  }
}

/**
 * What a verified presentation grants, as plain data: the access grant (bounded by the
 * credential) and the presentation's own `exp`. OID4VP keeps it between the wallet's response
 * and the caller's collection of the token.
 */
export interface PresentationGrant extends AccessGrant {
  presentationExpiresAt?: number;
}

/** The grant of `verified` for `scope` (what `grantScope` allowed). */
export function grantOf(
  verified: VerifiedPresentation,
  scope: { actions: Action[]; models: string[] },
): PresentationGrant {
  const { credential } = verified;
  return {
    holder: verified.holder,
    credentialId: credential.credentialId,
    anchorKey: credential.anchorKey,
    issuerAccount: credential.issuerAccount,
    revocationIndex: credential.revocationIndex,
    suspensionIndex: credential.suspensionIndex,
    actions: scope.actions,
    models: scope.models,
    ...(credential.claims.quota ? { requestsPerMinute: credential.claims.quota.requestsPerMinute } : {}),
    credentialNotBefore: credential.notBefore,
    credentialExpiresAt: credential.expires,
    ...(verified.expires !== undefined ? { presentationExpiresAt: verified.expires } : {}),
  };
}

/**
 * The one grant → token step of every route that hands out access tokens (`/auth/token`, OID4VP):
 * signs a token for `grant`, capped at the credential's and the presentation's `exp`; a cap
 * already past throws `expired` with `checks` plus the failed `token.lifetime` check. The token
 * is bound to `jkt` (the key of the DPoP proof of the request that collects it, see
 * {@link tokenBindingOf}) when there is one.
 */
export async function handOverToken(
  services: Pick<GatewayServices, "tokens">,
  grant: PresentationGrant,
  context: { checks: CheckResult[]; jkt: string | undefined },
): Promise<AccessTokenResponse> {
  const { presentationExpiresAt, ...rest } = grant;
  const access = context.jkt !== undefined ? { ...rest, jkt: context.jkt } : rest;
  await services.tokens.keys.fresh(); // a key rotated at any replica signs from here on
  let issued: ReturnType<TokenService["issue"]>;
  try {
    issued = services.tokens.issue(
      access,
      presentationExpiresAt !== undefined ? { presentationExpiresAt } : {},
    );
  } catch (error) {
    if (!(error instanceof KPartyError)) throw error;
    const checks = [...context.checks, { check: "token.lifetime", passed: false, code: error.code }];
    throw new KPartyError(error.code, error.shortMessage, { details: { checks } });
  }
  return {
    access_token: issued.token,
    token_type: context.jkt !== undefined ? "DPoP" : "Bearer",
    expires_in: issued.expiresIn,
    scope: grant.actions.join(" "),
    holder: grant.holder,
    models: grant.models,
    credential_id: grant.credentialId,
  };
}
