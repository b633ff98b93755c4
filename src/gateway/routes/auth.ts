import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { ACTIONS, type Action } from "../../credential/index.ts";
import type { ServiceErrorCode } from "../../errors/index.ts";
import { auditEntryOf } from "../audit-entry.ts";
import { type InputMessages, rejectInvalidInput } from "../body.ts";
import { rateLimitKey } from "../client-address.ts";
import { grantOf, handOverToken, scopeOf, tokenBindingOf } from "../grant.ts";
import type { ScopeRequest } from "../policy.ts";
import {
  challengeSchema,
  errorResponses,
  modelsSchema,
  scopeSchema,
  tokenSchema,
  UNAVAILABLE,
  VERIFICATION_CODES,
} from "../schemas.ts";
import type { GatewayServices } from "../services.ts";

const SCOPE_MESSAGE = `scope must be a space-separated list of actions among ${ACTIONS.join(", ")}`;
const MODELS_MESSAGE = 'models must be a non-empty list of model ids or ["*"]';

/** What `POST /auth/token` accepts. */
export const tokenRequestSchema = {
  type: "object",
  required: ["presentation"],
  additionalProperties: false,
  properties: {
    // non-empty; a pattern, not minLength, which counts the characters of the whole JWT (≈9 µs each)
    presentation: { type: "string", pattern: "^[\\s\\S]", description: "a VP JWT (non-empty)" },
    scope: {
      ...scopeSchema,
      description: `${scopeSchema.description}; the grant is this ∩ what the credential allows`,
    },
    models: {
      ...modelsSchema,
      description: 'model ids (or ["*"]); the grant is this ∩ the credential\'s models',
    },
  },
};

const TOKEN_INPUT: InputMessages = {
  shape: "{presentation, scope?, models?}",
  fields: {
    "/presentation": "presentation must be a VP JWT string",
    "/scope": SCOPE_MESSAGE,
    "/models": MODELS_MESSAGE,
  },
};

/** The token request of a body its schema accepted: the presentation and the scope asked for. */
function tokenRequestOf(body: unknown): { presentation: string; request: ScopeRequest } {
  const { presentation, scope, models } = body as { presentation: string; scope?: string; models?: string[] };
  const actions = scope === undefined ? null : ([...new Set(scope.split(" ").filter(Boolean))] as Action[]);
  return { presentation, request: { actions, models: models === undefined ? null : [...new Set(models)] } };
}

const CHALLENGE_CODES: ServiceErrorCode[] = ["payload_too_large", "rate_limited", "state_unavailable"];
const challengeRoute = (summary: string) => ({
  config: { doc: { summary, secured: false, tags: ["auth"] } },
  schema: {
    response: { 200: { description: "ok", ...challengeSchema }, ...errorResponses(CHALLENGE_CODES) },
  },
});

/** `POST /auth/token` in the document: what it says the schemas cannot. */
const TOKEN_DOC = (skew: number) => ({
  summary: "Exchange a presentation (VP JWT) of a K-th Party token for an access token",
  secured: false,
  tags: ["auth"],
  description:
    "The token's exp is the earliest of grant time + the gateway's TTL, the credential's exp and the " +
    "presentation's exp (if it has one), exactly: no clock skew is added to the cap. `expires_in` is " +
    "that capped lifetime. A grant whose capped lifetime would be 0 s or less is refused with " +
    `\`expired\`, even when the verifier's ${skew} s clock skew still tolerates the credential. Every use of the ` +
    "token re-checks the credential's validity window (carried in the token), its status and its " +
    `issuer's membership; credential and token times are judged with the same ${skew} s skew, so a token ` +
    "is never honoured at a time its credential would be refused (then: 401 `credential_expired`). " +
    "With a `DPoP` header (a proof for POST at this URL, no `ath`) the token is bound to the proof's key " +
    "(`cnf.jkt`, `token_type: DPoP`); in the default dpop mode the proof is required (400 " +
    "`invalid_dpop_proof`; 400 `use_dpop_nonce` with `DPoP-Nonce` when nonces are required). It is " +
    "checked before the presentation, so a refused proof does not use up the challenge.",
});

const TOKEN_CODES: ServiceErrorCode[] = [
  ...VERIFICATION_CODES,
  "scope_denied",
  "invalid_dpop_proof",
  "use_dpop_nonce",
  "payload_too_large",
  ...UNAVAILABLE,
];

const tokenRoute = (skew: number) => ({
  attachValidation: true,
  config: { doc: TOKEN_DOC(skew) },
  schema: {
    body: tokenRequestSchema,
    headers: {
      type: "object",
      properties: {
        dpop: {
          type: "string",
          description: "a DPoP proof JWT (RFC 9449); required unless the gateway runs in bearer mode",
        },
      },
    },
    response: {
      200: { description: "granted", ...tokenSchema },
      ...errorResponses(TOKEN_CODES, { dpopAt400: true }),
    },
  },
});

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
  app.post(
    "/auth/challenge",
    challengeRoute("A single-use challenge (60 s) for one presentation"),
    async (request) => issueChallenge(request),
  );
  // VC-API's name for the same single-use challenge (for POST /presentations/verify)
  app.post(
    "/challenges",
    challengeRoute("VC-API: the same single-use challenge as /auth/challenge (one pool, one rate limit)"),
    async (request) => issueChallenge(request),
  );

  app.post("/auth/token", tokenRoute(services.clockSkewSeconds), async (request, reply) => {
    let holder: string | null = null;
    let credentialId: string | null = null;
    try {
      rejectInvalidInput(request, TOKEN_INPUT);
      const { presentation, request: asked } = tokenRequestOf(request.body);
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
