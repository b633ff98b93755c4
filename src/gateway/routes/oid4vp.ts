import { randomBytes } from "node:crypto";
import { setGlobalConfig } from "@openid4vc/oauth2";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { ACTIONS, type Action } from "../../credential/index.ts";
import { KPartyError, type ServiceErrorCode } from "../../errors/index.ts";
import { type AuditOutcome, auditEntryOf } from "../audit-entry.ts";
import { type InputMessages, rejectInvalidInput } from "../body.ts";
import { rateLimitKey } from "../client-address.ts";
import { errorResponse } from "../errors.ts";
import { grantOf, handOverToken, type PresentationGrant, tokenBindingOf } from "../grant.ts";
import {
  checkDcql,
  createAuthorizationRequest,
  presentationOfResponse,
  type StoredRequest,
} from "../oid4vp.ts";
import { grantScope } from "../policy.ts";
import {
  errorResponses,
  modelsSchema,
  scopeSchema,
  transactionSchema,
  UNAVAILABLE,
  VERIFICATION_CODES,
} from "../schemas.ts";
import type { GatewayServices } from "../services.ts";

const random = () => randomBytes(32).toString("base64url");

const doc = (summary: string, description?: string) => ({
  doc: { summary, secured: false, tags: ["oid4vp"], ...(description ? { description } : {}) },
});
const str = { type: "string" } as const;

const OPEN_INPUT: InputMessages = {
  shape: "{scope, models}",
  fields: {
    "/scope": `scope must be a space-separated list of actions among ${ACTIONS.join(", ")}`,
    "/models": 'models must be a non-empty list of model ids or ["*"]',
  },
};
const RESPONSE_INPUT: InputMessages = {
  shape: "{vp_token, state}",
  fields: { "/state": "state is required" },
};

const OPEN_DESCRIPTION =
  "Builds an OpenID for Verifiable Presentations 1.0 authorization request: a DCQL query for one " +
  "`jwt_vc_json` KPartyCredential whose kParty.actions contain every requested action and whose " +
  'kParty.models contain every requested model (or "*"), `response_mode: direct_post` to ' +
  "`/oid4vp/responses`, a single-use `nonce`, a `state`, and the client identifier " +
  "`decentralized_identifier:did:jwk:…` (the gateway's OID4VP key). The request object is a JAR " +
  "(`typ: oauth-authz-req+jwt`, EdDSA, `kid` = the did:jwk's key) delivered by value " +
  "(`authorization_request_by_value`) and by reference (`authorization_request`, `request_uri`, GET). " +
  "`transaction_id` is the caller's secret: whoever holds it collects the access token at " +
  "`GET /oid4vp/transactions/{id}`. Rate-limited with the challenges.";

const openRoute = {
  attachValidation: true,
  config: doc(
    "OID4VP 1.0: open a transaction — a signed authorization request for a scope (models × actions)",
    OPEN_DESCRIPTION,
  ),
  schema: {
    body: {
      type: "object",
      required: ["scope", "models"],
      additionalProperties: false,
      properties: { scope: scopeSchema, models: modelsSchema },
    },
    response: {
      201: {
        description: "the transaction and its authorization request",
        type: "object",
        required: [
          "transaction_id",
          "client_id",
          "authorization_request",
          "authorization_request_by_value",
          "request_uri",
          "request",
          "dcql_query",
          "expires_at",
        ],
        additionalProperties: false,
        properties: {
          transaction_id: str,
          client_id: str,
          authorization_request: { type: "string", description: "openid4vp://?client_id=…&request_uri=…" },
          authorization_request_by_value: {
            type: "string",
            description: "openid4vp://?client_id=…&request=…",
          },
          request_uri: str,
          request: { type: "string", description: "the signed request object (JAR)" },
          dcql_query: { type: "object" },
          expires_at: { type: "string", format: "date-time" },
        },
      },
      ...errorResponses(["payload_too_large", "rate_limited", "state_unavailable"]),
    },
  },
};

const requestObjectRoute = {
  config: doc("OID4VP 1.0: the request object of an open request (request_uri, GET)"),
  schema: {
    params: { type: "object", required: ["state"], properties: { state: str } },
    response: {
      200: {
        description: "the signed request object",
        content: { "application/oauth-authz-req+jwt": { schema: str } },
      },
      ...errorResponses(["not_found", "state_unavailable"]),
    },
  },
};

const RESPONSE_DESCRIPTION =
  "Form-encoded (or JSON) `vp_token` and `state`. `vp_token` must be OID4VP 1.0's shape: a JSON object " +
  'whose only key is the credential query id "kparty", holding an array of exactly one VP JWT; anything ' +
  "else (a bare JWT, an array, pre-1.0 shapes, `direct_post.jwt`'s `response`) is 400 malformed. The VP " +
  "goes through the same verifier as /auth/token with the request's nonce as the single-use challenge " +
  "and its full client_id (prefix included) as the audience: 401 challenge_invalid (unknown state, " +
  "another request's nonce, expired request), 401 challenge_reused (already answered), 401 " +
  "domain_mismatch, and every credential-level code of /auth/token. Then 403 dcql_unsatisfied when the " +
  "verified credential does not satisfy the DCQL query. Failures before the nonce is consumed leave " +
  "the request open; after, the transaction is denied with that code.";

const responseBody = {
  type: "object",
  required: ["state"],
  additionalProperties: false,
  properties: {
    vp_token: { description: "a JSON object {kparty: [VP JWT]} (form-encoded: its JSON text)" },
    state: { type: "string", minLength: 1 },
    response: { description: "direct_post.jwt: not supported (400)" },
  },
};

const RESPONSE_CODES: ServiceErrorCode[] = [
  ...VERIFICATION_CODES,
  "dcql_unsatisfied",
  "scope_denied",
  "payload_too_large",
  ...UNAVAILABLE,
];

const responseRoute = {
  attachValidation: true,
  config: {
    doc: {
      ...doc(
        "OID4VP 1.0: the response URI (direct_post) — the wallet posts vp_token and state",
        RESPONSE_DESCRIPTION,
      ).doc,
      bodyContent: {
        "application/x-www-form-urlencoded": { schema: responseBody },
        "application/json": { schema: responseBody },
      },
    },
  },
  schema: {
    body: responseBody,
    response: {
      200: {
        description: "accepted: the caller collects the token",
        type: "object",
        additionalProperties: false,
      },
      ...errorResponses(RESPONSE_CODES),
    },
  },
};

const TRANSACTION_CODES: ServiceErrorCode[] = [
  "not_found",
  "invalid_dpop_proof",
  "use_dpop_nonce",
  "token_invalid",
  "expired",
  ...UNAVAILABLE,
];

const transactionRoute = {
  config: doc(
    "OID4VP 1.0: the caller polls its transaction and collects the access token (once)",
    "`pending` until the wallet answers (or `expired`); `denied` with the refusal's code; `granted` " +
      "with the access token — through the same grant → token step as /auth/token (lifetime capped at " +
      "the credential's and the presentation's exp) — exactly once, `redeemed` afterwards.",
  ),
  schema: {
    params: { type: "object", required: ["id"], properties: { id: str } },
    response: {
      200: { description: "the transaction's status (with the token when granted)", ...transactionSchema },
      ...errorResponses(TRANSACTION_CODES, { dpopAt400: true }),
    },
  },
};

/** The scope a transaction asks for, from a body its schema accepted. */
function scopeOfBody(body: unknown): { actions: Action[]; models: string[] } {
  const { scope, models } = body as { scope: string; models: string[] };
  return {
    actions: [...new Set(scope.split(" ").filter(Boolean))] as Action[],
    models: [...new Set(models)],
  };
}

/**
 * OpenID for Verifiable Presentations 1.0 (final) on the gateway, with the OpenWallet Foundation's
 * `@openid4vc/openid4vp` and `dcql`:
 *
 * - `POST /oid4vp/requests` `{scope, models}`: a caller (an operator, a wallet's companion) opens a
 *   transaction; 201 with its secret `transaction_id` and the signed authorization request by
 *   reference (`openid4vp://?client_id=…&request_uri=…`) and by value.
 * - `GET /oid4vp/requests/:state`: the request object (JAR, `oauth-authz-req+jwt`).
 * - `POST /oid4vp/responses`: the response URI (`direct_post`): `vp_token` and `state`. The
 *   presentation goes through the one verifier, exactly as at `/auth/token`, with the request's
 *   nonce as the single-use challenge and its client_id as the audience; then DCQL and scope.
 * - `GET /oid4vp/transactions/:id`: the caller polls; a granted transaction hands out its access
 *   token once, through the same grant → token step as `/auth/token`.
 *
 * Every decision is audited. A response is bound to its request only once it consumed the
 * nonce: failures before that (wrong audience, bad signature) leave the request open, so nobody
 * who merely saw the `state` can spoil a transaction.
 */
export const oid4vpRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  // direct_post sends application/x-www-form-urlencoded (OID4VP 1.0 §8.2)
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, formFields(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  app.post("/oid4vp/requests", openRoute, openTransaction(services));
  app.get<{ Params: { state: string } }>(
    "/oid4vp/requests/:state",
    requestObjectRoute,
    async (request, reply) => {
      const { transactions } = services.oid4vp;
      const transaction = await transactions.byState(request.params.state);
      if (!transaction || transaction.expiresAt <= services.now()) {
        throw new KPartyError("not_found", "no open authorization request here");
      }
      reply.type("application/oauth-authz-req+jwt");
      return (JSON.parse(transaction.request) as StoredRequest).requestObject;
    },
  );
  app.post("/oid4vp/responses", responseRoute, receiveResponse(services));
  app.get<{ Params: { id: string } }>(
    "/oid4vp/transactions/:id",
    transactionRoute,
    pollTransaction(services),
  );
};

/** A form body's fields, each exactly once (else `malformed`). */
function formFields(body: string): Record<string, string> {
  const params = new URLSearchParams(body);
  const fields: Record<string, string> = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    if (values.length !== 1) throw new KPartyError("malformed", `${key} appears more than once`);
    fields[key] = values[0] as string;
  }
  return fields;
}

/** The gateway's public base URL for the request's links. */
function baseOf(services: GatewayServices, request: FastifyRequest): string {
  const base = services.oid4vp.publicUrl ?? `${request.protocol}://${request.host}`;
  // the library accepts only https URLs unless told otherwise: a gateway served over http
  // (loopback, behind a TLS-terminating proxy without publicUrl) tells it so
  if (base.startsWith("http:")) setGlobalConfig({ allowInsecureUrls: true });
  return base;
}

/** `POST /oid4vp/requests`: a new transaction and its signed authorization request. */
function openTransaction(services: GatewayServices) {
  const { limiter, challengesPerMinute, now } = services;
  const { signer, transactions, requestTtlSeconds } = services.oid4vp;
  return async (request: FastifyRequest, reply: FastifyReply) => {
    limiter.take(
      `challenge:${rateLimitKey(request.ip)}`,
      challengesPerMinute,
      "challenges from this address",
    );
    rejectInvalidInput(request, OPEN_INPUT);
    const scope = scopeOfBody(request.body);
    const base = baseOf(services, request);
    const [id, state, nonce] = [random(), random(), random()];
    const at = now();
    const created = await createAuthorizationRequest({
      signer,
      scope,
      nonce,
      state,
      responseUri: `${base}/oid4vp/responses`,
      requestUri: `${base}/oid4vp/requests/${state}`,
      ttlSeconds: requestTtlSeconds,
      now: new Date(at),
    });
    const expiresAt = at + requestTtlSeconds * 1000;
    const stored = JSON.stringify(created.stored);
    await transactions.create({ id, state, nonce, client: request.ip, request: stored, expiresAt });
    reply.code(201);
    return {
      transaction_id: id,
      client_id: signer.clientId,
      authorization_request: created.byReference,
      authorization_request_by_value: created.byValue,
      request_uri: `${base}/oid4vp/requests/${state}`,
      request: created.stored.requestObject,
      dcql_query: created.stored.payload.dcql_query,
      expires_at: new Date(expiresAt).toISOString(),
    };
  };
}

/** `POST /oid4vp/responses`: the wallet's answer, verified, settles its transaction; audited. */
function receiveResponse(services: GatewayServices) {
  const { verifier, audit } = services;
  const { transactions } = services.oid4vp;
  return async (request: FastifyRequest) => {
    const decided = { holder: null as string | null, credentialId: null as string | null };
    let bound: string | null = null; // the transaction, once the response consumed its nonce
    const record = (decision: AuditOutcome) =>
      audit.append(
        auditEntryOf(request, { route: "/oid4vp/responses", model: null, ...decided, ...decision }),
      );
    try {
      rejectInvalidInput(request, RESPONSE_INPUT);
      const body = request.body as { state: string; vp_token?: unknown; response?: unknown };
      const state = body.state;
      const transaction = await transactions.byState(state);
      if (!transaction) {
        throw new KPartyError("challenge_invalid", "state names no authorization request of this gateway");
      }
      const stored = JSON.parse(transaction.request) as StoredRequest;
      const vp = await presentationOfResponse(body as Record<string, unknown>, stored);
      const verified = await verifier.verifyPresentation(vp, {
        domain: stored.clientId,
        precheckChallenge: (nonce) => transactions.checkNonce(state, nonce),
        consumeChallenge: async (nonce) => {
          await transactions.consumeNonce(state, nonce);
          bound = transaction.id;
        },
      });
      decided.holder = verified.holder;
      decided.credentialId = verified.credential.credentialId;
      checkDcql(verified.credential.jwt, stored);
      const scope = grantScope(
        { actions: stored.scope.actions, models: stored.scope.models },
        verified.credential.claims,
      );
      await record({ outcome: "granted", action: scope.actions.join(" ") });
      await transactions.settle(transaction.id, "granted", JSON.stringify(grantOf(verified, scope)));
      return {};
    } catch (error) {
      if (bound !== null) {
        // what the client is told for this error: its code and the message errorResponse gives
        const { code: shown, message } = errorResponse(error)[1].error;
        // a settlement that cannot be stored leaves the transaction pending until it expires; the
        // refusal is still answered and audited
        await Promise.resolve(
          transactions.settle(bound, "denied", JSON.stringify({ code: shown, message })),
        ).catch((settleError: unknown) =>
          services.operatorLog.failure("POST /oid4vp/responses (settle)", settleError),
        );
      }
      await record({ outcome: "denied", error });
      throw error;
    }
  };
}

/** `GET /oid4vp/transactions/:id`: its status; a granted one hands out its token once; audited. */
function pollTransaction(services: GatewayServices) {
  const { audit, now } = services;
  const { transactions } = services.oid4vp;
  return async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const transaction = await transactions.byId(request.params.id);
    if (!transaction) throw new KPartyError("not_found", "no such transaction");
    const expires_at = new Date(transaction.expiresAt).toISOString();
    if (transaction.outcome === null) {
      return { status: transaction.expiresAt <= now() ? "expired" : "pending", expires_at };
    }
    if (transaction.outcome === "denied") {
      return { status: "denied", error: JSON.parse(transaction.result as string) };
    }
    if (!(await transactions.redeem(transaction.id))) return { status: "redeemed" };
    const grant = JSON.parse(transaction.result as string) as PresentationGrant;
    // the `:id` here is a transaction's, not a model's
    const about = {
      route: "/oid4vp/transactions",
      model: null,
      holder: grant.holder,
      credentialId: grant.credentialId,
    };
    try {
      // the caller that collects the token binds it to its own DPoP key (or gets a bearer token)
      const jkt = await tokenBindingOf(services, request);
      const answer = await handOverToken(services, grant, { checks: [], jkt });
      await audit.append(
        auditEntryOf(request, { ...about, action: grant.actions.join(" "), outcome: "granted" }),
      );
      return { status: "granted", ...answer };
    } catch (error) {
      await audit.append(auditEntryOf(request, { ...about, outcome: "denied", error }));
      throw error;
    }
  };
}
