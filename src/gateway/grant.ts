import type { FastifyRequest } from "fastify";
import type { Action } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import { publicRequestUrl } from "./guard.ts";
import { grantScope, type ScopeRequest } from "./policy.ts";
import type { GatewayServices } from "./services.ts";
import type { VerifiedPresentation } from "./verify/verifier.ts";

/** The token response (RFC 6749 §5.1 with kparty's fields). */
export interface AccessTokenResponse {
  access_token: string;
  /** `DPoP` for a token bound to the proof key (RFC 9449 §5), `Bearer` otherwise. */
  token_type: "DPoP" | "Bearer";
  expires_in: number;
  scope: string;
  holder: string;
  models: string[];
  credential_id: string;
}

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
 * The one grant → token step, for every way a presentation reaches the gateway (`POST
 * /auth/token`, OID4VP): the scope granted from what was asked and what the credential allows
 * (`scope_denied`), then a token capped at the credential's and the presentation's expiry
 * (`expired` if that is already past), bound to `jkt` when there is one. Refusals carry the
 * verifier's checks plus the failed one.
 */
export function accessTokenFor(
  services: Pick<GatewayServices, "tokens">,
  verified: VerifiedPresentation,
  asked: ScopeRequest,
  jkt: string | undefined,
): AccessTokenResponse {
  const { credential, holder } = verified;
  let scope: { actions: Action[]; models: string[] };
  try {
    scope = grantScope(asked, credential.claims);
  } catch (error) {
    const checks = [...verified.checks, { check: "scope", passed: false, code: "scope_denied" as const }];
    throw new KPartyError("scope_denied", (error as KPartyError).shortMessage, { details: { checks } });
  }
  let issued: ReturnType<GatewayServices["tokens"]["issue"]>;
  try {
    issued = services.tokens.issue(
      {
        holder,
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
        ...(jkt !== undefined ? { jkt } : {}),
      },
      verified.expires !== undefined ? { presentationExpiresAt: verified.expires } : {},
    );
  } catch (error) {
    if (!(error instanceof KPartyError)) throw error;
    const checks = [...verified.checks, { check: "token.lifetime", passed: false, code: error.code }];
    throw new KPartyError(error.code, error.shortMessage, { details: { checks } });
  }
  return {
    access_token: issued.token,
    token_type: jkt !== undefined ? "DPoP" : "Bearer",
    expires_in: issued.expiresIn,
    scope: scope.actions.join(" "),
    holder,
    models: scope.models,
    credential_id: credential.credentialId,
  };
}
