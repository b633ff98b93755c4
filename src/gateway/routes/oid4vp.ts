import { randomBytes } from "node:crypto";
import { setGlobalConfig } from "@openid4vc/oauth2";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { ACTIONS, type Action, isModelSelector } from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { auditEntryOf } from "../audit-entry.ts";
import { jsonObject } from "../body.ts";
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
import type { GatewayServices } from "../services.ts";

const random = () => randomBytes(32).toString("base64url");

/** A transaction's audit record names no model: its `:id` is the transaction's. */
const transactionAudit = (grant: PresentationGrant) => ({
  route: "/oid4vp/transactions",
  model: null,
  holder: grant.holder,
  credentialId: grant.credentialId,
});

function parseScope(body: unknown): { actions: Action[]; models: string[] } {
  const { scope, models } = jsonObject(body, ["scope", "models"], "{scope, models}");
  const actions = typeof scope === "string" ? scope.split(" ").filter(Boolean) : [];
  if (actions.length === 0 || !actions.every((a) => ACTIONS.includes(a as Action))) {
    throw new KPartyError(
      "malformed",
      `scope must be a space-separated list of actions among ${ACTIONS.join(", ")}`,
    );
  }
  if (!Array.isArray(models) || models.length === 0 || !models.every(isModelSelector)) {
    throw new KPartyError("malformed", 'models must be a non-empty list of model ids or ["*"]');
  }
  return { actions: [...new Set(actions)] as Action[], models: [...new Set(models as string[])] };
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
  const { limiter, challengesPerMinute, verifier, audit, now } = services;
  const { signer, transactions, requestTtlSeconds } = services.oid4vp;
  const clientOf = (request: FastifyRequest) => request.ip;
  const baseOf = (request: FastifyRequest) => {
    const base = services.oid4vp.publicUrl ?? `${request.protocol}://${request.host}`;
    // the library accepts only https URLs unless told otherwise: a gateway served over http
    // (loopback, behind a TLS-terminating proxy without publicUrl) tells it so
    if (base.startsWith("http:")) setGlobalConfig({ allowInsecureUrls: true });
    return base;
  };

  // direct_post sends application/x-www-form-urlencoded (OID4VP 1.0 §8.2)
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    const params = new URLSearchParams(body as string);
    const fields: Record<string, string> = {};
    for (const key of new Set(params.keys())) {
      const values = params.getAll(key);
      if (values.length !== 1) {
        done(new KPartyError("malformed", `${key} appears more than once`), undefined);
        return;
      }
      fields[key] = values[0] as string;
    }
    done(null, fields);
  });

  app.post("/oid4vp/requests", async (request, reply) => {
    limiter.take(
      `challenge:${rateLimitKey(request.ip)}`,
      challengesPerMinute,
      "challenges from this address",
    );
    const scope = parseScope(request.body);
    const base = baseOf(request);
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
    transactions.create({
      id,
      state,
      nonce,
      client: clientOf(request),
      request: JSON.stringify(created.stored),
      expiresAt,
    });
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
  });

  app.get<{ Params: { state: string } }>("/oid4vp/requests/:state", async (request, reply) => {
    const transaction = transactions.byState(request.params.state);
    if (!transaction || transaction.expiresAt <= now()) {
      throw new KPartyError("not_found", "no open authorization request here");
    }
    reply.type("application/oauth-authz-req+jwt");
    return (JSON.parse(transaction.request) as StoredRequest).requestObject;
  });

  app.post("/oid4vp/responses", async (request) => {
    let holder: string | null = null;
    let credentialId: string | null = null;
    let bound: string | null = null; // the transaction, once the response consumed its nonce
    try {
      const body = jsonObject(request.body, ["vp_token", "state", "response"], "{vp_token, state}");
      if (typeof body.state !== "string" || body.state.length === 0) {
        throw new KPartyError("malformed", "state is required");
      }
      const state = body.state;
      const transaction = transactions.byState(state);
      if (!transaction) {
        throw new KPartyError("challenge_invalid", "state names no authorization request of this gateway");
      }
      const stored = JSON.parse(transaction.request) as StoredRequest;
      const vp = await presentationOfResponse(body, stored);
      const verified = await verifier.verifyPresentation(vp, {
        domain: stored.clientId,
        precheckChallenge: (nonce) => transactions.checkNonce(state, nonce),
        consumeChallenge: (nonce) => {
          transactions.consumeNonce(state, nonce);
          bound = transaction.id;
        },
      });
      holder = verified.holder;
      credentialId = verified.credential.credentialId;
      checkDcql(verified.credential.jwt, stored);
      const scope = grantScope(
        { actions: stored.scope.actions, models: stored.scope.models },
        verified.credential.claims,
      );
      const action = scope.actions.join(" ");
      await audit.append(auditEntryOf(request, { outcome: "granted", holder, credentialId, action }));
      transactions.settle(transaction.id, "granted", JSON.stringify(grantOf(verified, scope)));
      return {};
    } catch (error) {
      if (bound !== null) {
        // what the client is told for this error: its code and the message errorResponse gives
        const { code: shown, message } = errorResponse(error)[1].error;
        transactions.settle(bound, "denied", JSON.stringify({ code: shown, message }));
      }
      await audit.append(auditEntryOf(request, { outcome: "denied", error, holder, credentialId }));
      throw error;
    }
  });

  app.get<{ Params: { id: string } }>("/oid4vp/transactions/:id", async (request) => {
    const transaction = transactions.byId(request.params.id);
    if (!transaction) throw new KPartyError("not_found", "no such transaction");
    const expires_at = new Date(transaction.expiresAt).toISOString();
    if (transaction.outcome === null) {
      return { status: transaction.expiresAt <= now() ? "expired" : "pending", expires_at };
    }
    if (transaction.outcome === "denied") {
      return { status: "denied", error: JSON.parse(transaction.result as string) };
    }
    if (!transactions.redeem(transaction.id)) return { status: "redeemed" };
    const grant = JSON.parse(transaction.result as string) as PresentationGrant;
    try {
      // the caller that collects the token binds it to its own DPoP key (or gets a bearer token)
      const jkt = await tokenBindingOf(services, request);
      const answer = await handOverToken(services, grant, { checks: [], jkt });
      await audit.append(
        auditEntryOf(request, {
          ...transactionAudit(grant),
          action: grant.actions.join(" "),
          outcome: "granted",
        }),
      );
      return { status: "granted", ...answer };
    } catch (error) {
      await audit.append(auditEntryOf(request, { ...transactionAudit(grant), outcome: "denied", error }));
      throw error;
    }
  });
};
