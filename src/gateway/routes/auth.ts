import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { ACTIONS, type Action, isModelSelector } from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { auditEntryOf } from "../audit-entry.ts";
import { jsonObject } from "../body.ts";
import { rateLimitKey } from "../client-address.ts";
import { grantScope, type ScopeRequest } from "../policy.ts";
import type { GatewayServices } from "../services.ts";
import type { AccessGrant, TokenService } from "../tokens.ts";
import type { CheckResult } from "../verify/checks.ts";
import type { VerifiedPresentation } from "../verify/verifier.ts";

const TOKEN_BODY_KEYS = ["presentation", "scope", "models"];

function parseTokenRequest(body: unknown): { presentation: string; request: ScopeRequest } {
  const { presentation, scope, models } = jsonObject(
    body,
    TOKEN_BODY_KEYS,
    "{presentation, scope?, models?}",
  );
  if (typeof presentation !== "string" || presentation.length === 0) {
    throw new KPartyError("malformed", "presentation must be a VP JWT string");
  }
  let actions: Action[] | null = null;
  if (scope !== undefined) {
    const requested = typeof scope === "string" ? scope.split(" ").filter(Boolean) : [];
    if (requested.length === 0 || !requested.every((a) => ACTIONS.includes(a as Action))) {
      throw new KPartyError(
        "malformed",
        `scope must be a space-separated list of actions among ${ACTIONS.join(", ")}`,
      );
    }
    actions = [...new Set(requested)] as Action[];
  }
  if (
    models !== undefined &&
    (!Array.isArray(models) || models.length === 0 || !models.every(isModelSelector))
  ) {
    throw new KPartyError("malformed", 'models must be a non-empty list of model ids or ["*"]');
  }
  return {
    presentation,
    request: { actions, models: models === undefined ? null : [...new Set(models as string[])] },
  };
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

/** The token answer of `/auth/token` and of an OID4VP transaction. */
export interface TokenAnswer {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  holder: string;
  models: string[];
  credential_id: string;
}

/**
 * The one grant → token step of every route that hands out access tokens (`/auth/token`, OID4VP):
 * signs a token for `grant`, capped at the credential's and the presentation's `exp`; a cap
 * already past throws `expired` with `checks` plus the failed `token.lifetime` check. `request`
 * is the HTTP request that collects the token (where a sender constraint would be read).
 */
export async function handOverToken(
  services: Pick<GatewayServices, "tokens">,
  grant: PresentationGrant,
  context: { request: FastifyRequest; checks: CheckResult[] },
): Promise<TokenAnswer> {
  const { presentationExpiresAt, ...access } = grant;
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
    token_type: "Bearer",
    expires_in: issued.expiresIn,
    scope: grant.actions.join(" "),
    holder: grant.holder,
    models: grant.models,
    credential_id: grant.credentialId,
  };
}

/**
 * The native path: `POST /auth/challenge` (and VC-API's `POST /challenges`, the same single-use
 * challenges) and `POST /auth/token`, which turns a presentation into an access token bounded by
 * its credential. Every token decision is in the audit log before the answer.
 */
export const authRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  const { domain, limiter, challenges, challengesPerMinute, verifier, audit } = services;
  const clientOf = (request: FastifyRequest) => request.ip;
  const bucketOf = (request: FastifyRequest) => rateLimitKey(request.ip);

  const issueChallenge = async (request: FastifyRequest) => {
    await limiter.take(`challenge:${bucketOf(request)}`, challengesPerMinute, "challenges from this address");
    const { challenge, expiresAt } = await challenges.issue(clientOf(request));
    return { challenge, domain, expiresAt: expiresAt.toISOString() };
  };
  app.post("/auth/challenge", async (request) => issueChallenge(request));
  // VC-API's name for the same single-use challenge (for POST /presentations/verify)
  app.post("/challenges", async (request) => issueChallenge(request));

  app.post("/auth/token", async (request) => {
    let holder: string | null = null;
    let credentialId: string | null = null;
    try {
      const { presentation, request: asked } = parseTokenRequest(request.body);
      const verified = await verifier.verifyPresentation(presentation, {
        domain,
        precheckChallenge: (nonce) => challenges.check(nonce),
        consumeChallenge: (nonce) => challenges.consume(nonce),
      });
      holder = verified.holder;
      credentialId = verified.credential.credentialId;
      let scope: { actions: Action[]; models: string[] };
      try {
        scope = grantScope(asked, verified.credential.claims);
      } catch (error) {
        const checks = [...verified.checks, { check: "scope", passed: false, code: "scope_denied" as const }];
        throw new KPartyError("scope_denied", (error as KPartyError).shortMessage, { details: { checks } });
      }
      const { actions } = scope;
      const answer = await handOverToken(services, grantOf(verified, scope), {
        request,
        checks: verified.checks,
      });
      await audit.append(
        auditEntryOf(request, { outcome: "granted", holder, credentialId, action: actions.join(" ") }),
      );
      return answer;
    } catch (error) {
      await audit.append(auditEntryOf(request, { outcome: "denied", error, holder, credentialId }));
      throw error;
    }
  });
};
