import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { ACTIONS, type Action, isModelSelector } from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { jsonObject } from "../body.ts";
import { rateLimitKey } from "../client-address.ts";
import { grantScope, type ScopeRequest } from "../policy.ts";
import type { GatewayServices } from "../services.ts";

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
 * The native path: `POST /auth/challenge` (and VC-API's `POST /challenges`, the same single-use
 * challenges) and `POST /auth/token`, which turns a presentation into an access token bounded by
 * its credential. Every token decision is in the audit log before the answer.
 */
export const authRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  const { domain, limiter, challenges, challengesPerMinute, verifier, tokens, audit } = services;
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
      const { credential } = verified;
      let issued: ReturnType<typeof tokens.issue>;
      await tokens.keys.fresh(); // a key rotated anywhere signs from here on
      try {
        // capped at the credential's and the presentation's exp; `expired` if that is already past
        issued = tokens.issue(
          {
            holder,
            credentialId: credential.credentialId,
            anchorKey: credential.anchorKey,
            issuerAccount: credential.issuerAccount,
            revocationIndex: credential.revocationIndex,
            suspensionIndex: credential.suspensionIndex,
            actions,
            models: scope.models,
            ...(credential.claims.quota
              ? { requestsPerMinute: credential.claims.quota.requestsPerMinute }
              : {}),
            credentialNotBefore: credential.notBefore,
            credentialExpiresAt: credential.expires,
          },
          verified.expires !== undefined ? { presentationExpiresAt: verified.expires } : {},
        );
      } catch (error) {
        if (!(error instanceof KPartyError)) throw error;
        const checks = [...verified.checks, { check: "token.lifetime", passed: false, code: error.code }];
        throw new KPartyError(error.code, error.shortMessage, { details: { checks } });
      }
      await audit.append({
        client: clientOf(request),
        route: "/auth/token",
        holder,
        credentialId,
        action: actions.join(" "),
        outcome: "granted",
      });
      return {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expiresIn,
        scope: actions.join(" "),
        holder,
        models: scope.models,
        credential_id: credential.credentialId,
      };
    } catch (error) {
      await audit.append({
        client: clientOf(request),
        route: "/auth/token",
        holder,
        credentialId,
        outcome: "denied",
        code: error instanceof KPartyError ? error.code : "internal",
      });
      throw error;
    }
  });
};
