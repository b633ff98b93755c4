import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { ACTIONS, type Action, isModelSelector } from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { auditEntryOf } from "../audit-entry.ts";
import { jsonObject } from "../body.ts";
import { rateLimitKey } from "../client-address.ts";
import { grantOf, handOverToken, scopeOf, tokenBindingOf } from "../grant.ts";
import type { ScopeRequest } from "../policy.ts";
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
 * its credential and bound to the key of the request's DPoP proof (see `grant.ts`). Every token decision is in the audit log before the answer.
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

  app.post("/auth/token", async (request, reply) => {
    let holder: string | null = null;
    let credentialId: string | null = null;
    try {
      const { presentation, request: asked } = parseTokenRequest(request.body);
      if (services.dpop.requiresNonce) reply.header("dpop-nonce", services.dpop.nonce());
      // the proof first: it is cheap, and a refused one must not use up the challenge
      const jkt = await tokenBindingOf(services, request);
      const verified = await verifier.verifyPresentation(presentation, {
        domain,
        precheckChallenge: (nonce) => challenges.check(nonce),
        consumeChallenge: (nonce) => challenges.consume(nonce),
      });
      holder = verified.holder;
      credentialId = verified.credential.credentialId;
      const scope = scopeOf(verified, asked);
      const answer = await handOverToken(services, grantOf(verified, scope), {
        checks: verified.checks,
        jkt,
      });
      await audit.append(
        auditEntryOf(request, { outcome: "granted", holder, credentialId, action: answer.scope }),
      );
      return answer;
    } catch (error) {
      await audit.append(auditEntryOf(request, { outcome: "denied", error, holder, credentialId }));
      throw error;
    }
  });
};
