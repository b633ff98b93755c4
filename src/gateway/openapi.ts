import { ACTIONS } from "../credential/index.ts";
import { SERVICE_ERROR_CODES } from "../errors/index.ts";
import { INTROSPECTION_SCHEMA, OAUTH_BODY_SCHEMA } from "./routes/oauth.ts";
import { VC_API_CHECKS } from "./routes/vc-api.ts";
import { DEFAULT_CLOCK_SKEW_SECONDS } from "./verify/window.ts";

const json = (schema: object) => ({ "application/json": { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const error = (description: string) => ({ description, content: json(ref("Error")) });

/** Error responses every route may give, by status. */
function errors(...statuses: number[]) {
  const texts: Record<number, string> = {
    400: "malformed request",
    401: "not authenticated (token or presentation invalid)",
    403: "not allowed (scope, status, membership)",
    404: "not found",
    409: "conflict with the model's state",
    413: "payload too large",
    429: "rate limited (see Retry-After)",
    503: "the chain cannot be read (see Retry-After)",
  };
  return Object.fromEntries(statuses.map((s) => [String(s), error(texts[s] ?? "error")]));
}

/** Protected routes: a DPoP-bound token with its proof (the default), or a bearer token in bearer mode. */
const bearer = [{ dpop: [] }, { bearer: [] }];

/** `POST /auth/challenge` and its VC-API name `POST /challenges`: one operation, two paths. */
function challengeOperation(summary: string) {
  return {
    summary,
    responses: {
      "200": {
        description: "ok",
        content: json({
          type: "object",
          required: ["challenge", "domain", "expiresAt"],
          properties: {
            challenge: { type: "string" },
            domain: { type: "string" },
            expiresAt: { type: "string", format: "date-time" },
          },
        }),
      },
      ...errors(429),
    },
  };
}

/** The 400/200 split of the VC-API verify endpoints. */
const VERIFY_SPLIT =
  "Structurally invalid input (a missing or wrongly typed @context, type, issuer, credentialSubject, " +
  "issuanceDate or proof; an unknown option or check) is 400 malformed, and a JSON form whose unsigned " +
  "fields differ from what its proof.jwt encodes is 400 jwt_mismatch, each with the field; neither is a " +
  "verdict. A well-formed credential or presentation that fails a check (signature, window, anchoring, " +
  "membership, status, challenge, audience) is 200 with verified: false and the failing check's code.";
const modelId = {
  name: "id",
  in: "path",
  required: true,
  schema: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$" },
};

/**
 * The gateway's OpenAPI 3.1 document (served at `GET /openapi.json`). A test keeps it equal
 * to the routes the gateway registers and to its error codes.
 */
export function openApiDocument(options: { domain: string; clockSkewSeconds?: number }) {
  const skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  return {
    openapi: "3.1.0",
    info: {
      title: "kparty gateway",
      version: "1",
      description:
        "Verifies presentations of K-th Party tokens against the chain and guards the shared model store. " +
        `Presentations must name the audience ${options.domain}.`,
    },
    components: {
      securitySchemes: {
        dpop: {
          type: "http",
          scheme: "dpop",
          bearerFormat: "JWT (EdDSA, typ at+jwt, cnf.jkt)",
          description:
            "RFC 9449 (the default, `--token-binding dpop`): `Authorization: DPoP <token>` and a `DPoP` header " +
            "holding a fresh proof (typ dpop+jwt; alg ES256K, ES256 or EdDSA; a public jwk whose thumbprint " +
            "is the token's cnf.jkt; htm and htu of this request, without query; ath = base64url(SHA-256(token)); " +
            `iat within ${skew} s; a jti never used before; the server nonce when the gateway requires one). ` +
            'Refusals: 401 `invalid_dpop_proof` or `use_dpop_nonce` with `WWW-Authenticate: DPoP error="…"` ' +
            "(and `DPoP-Nonce`); a bound token sent as bearer is 401 `token_invalid`.",
        },
        client: {
          type: "http",
          scheme: "basic",
          description:
            "a gateway client (`kparty gateway clients add`): HTTP Basic `client_id:client_secret` (RFC 6749 " +
            "§2.3.1); refused with 401 `invalid_client` and `WWW-Authenticate: Basic`",
        },
        bearer: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT (EdDSA, typ at+jwt)",
          description:
            "unbound tokens, only from a gateway run with `--token-binding bearer` (an explicit opt-in)",
        },
      },
      schemas: {
        ErrorCode: {
          type: "string",
          enum: [...SERVICE_ERROR_CODES],
          description:
            `Stable codes. Times of other parties' clocks are judged with one clock skew of ${skew} s. ` +
            `\`expired\` (401): the credential or presentation has expired (at /auth/token). ` +
            `\`credential_expired\` (401): the credential behind a live access token has expired — ` +
            `refused once the credential's exp is ${skew} s past, checked before the token's own expiry ` +
            "(`token_invalid`), so a token ended by its credential is refused for that reason.",
        },
        Check: {
          type: "object",
          required: ["check", "passed"],
          properties: { check: { type: "string" }, passed: { type: "boolean" }, code: ref("ErrorCode") },
        },
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: {
                code: ref("ErrorCode"),
                message: { type: "string" },
                field: {
                  type: "string",
                  description:
                    "the request field that is malformed or differs from what its JWT encodes (e.g. credentialSubject.id)",
                },
                checks: { type: "array", items: ref("Check") },
              },
            },
          },
        },
        Model: {
          type: "object",
          required: ["id", "version", "shape", "parameterCount", "dtype", "openRound", "updates"],
          properties: {
            id: { type: "string" },
            description: { type: "string" },
            version: { type: "integer" },
            shape: { type: "array", items: { type: "integer" } },
            parameterCount: { type: "integer" },
            dtype: { const: "float32" },
            openRound: { type: "integer" },
            updates: { type: "integer" },
            maxSamplesPerUpdate: { type: "integer" },
            aggregation: ref("Aggregation"),
            updatedAt: { type: "string", format: "date-time" },
          },
        },
        Aggregation: {
          description:
            "How rounds aggregate: fedavg (sample-weighted mean), median or trimmed-mean (coordinate-wise, every update once; trimFraction β drops ⌊β·n⌋ at each end); clipNorm scales each update's delta from the current weights to an L2 norm ≤ C first",
          type: "object",
          required: ["rule"],
          additionalProperties: false,
          properties: {
            rule: { enum: ["fedavg", "median", "trimmed-mean"] },
            trimFraction: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 0.5, default: 0.2 },
            clipNorm: { type: "number", exclusiveMinimum: 0 },
          },
        },
        JwtOrJsonForm: {
          description:
            "A JWT (compact JWS, ES256K), or its VCDM 1.1 JSON form with proof {type: JwtProof2020, jwt}: " +
            "the JSON form must be exactly what proof.jwt decodes to (VC Data Model 1.1 §6.3.1), else 400.",
          oneOf: [
            { type: "string" },
            {
              type: "object",
              required: ["@context", "type", "proof"],
              properties: { proof: { type: "object" } },
            },
          ],
        },
        ChecksOption: {
          type: "array",
          items: { enum: VC_API_CHECKS },
          description:
            "Checks kparty runs on every verification anyway; listing one changes nothing. Others: 400.",
        },
        Verification: {
          type: "object",
          required: ["verified", "checks", "errors"],
          properties: {
            verified: { type: "boolean" },
            checks: { type: "array", items: ref("Check") },
            warnings: {
              type: "array",
              items: {
                type: "object",
                properties: { code: { type: "string" }, message: { type: "string" } },
              },
            },
            errors: {
              type: "array",
              items: { type: "object", properties: { code: ref("ErrorCode"), message: { type: "string" } } },
            },
          },
        },
      },
    },
    paths: {
      "/healthz": {
        get: {
          summary: "Chain reachability and the last block whose registry events were applied",
          responses: {
            "200": {
              description: "ok",
              content: json({
                type: "object",
                properties: {
                  status: { const: "ok" },
                  chainId: { type: "integer" },
                  blockNumber: { type: "integer" },
                  syncedBlock: { type: "integer" },
                },
              }),
            },
            "503": { description: "the chain is unreachable", content: json({ type: "object" }) },
          },
        },
      },
      "/.well-known/kparty": {
        get: {
          summary: "Domain, chain, contracts, credential types, actions, access-token key",
          responses: { "200": { description: "ok", content: json({ type: "object" }) } },
        },
      },
      "/.well-known/jwks.json": {
        get: {
          summary: "The access-token keys (JWKS): every key a live token may be signed with",
          description:
            "Ed25519 public keys (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`) with their `kid`s, oldest first; the newest signs new tokens. After `kparty gateway keys rotate` the older keys stay listed, so their tokens verify until they expire. A resource server verifies a token with the key its header's `kid` names, and fetches this again when it meets a `kid` it does not know.",
          responses: {
            "200": {
              description: "ok",
              content: json({
                type: "object",
                required: ["keys"],
                properties: {
                  keys: {
                    type: "array",
                    items: {
                      type: "object",
                      required: ["kty", "crv", "x", "kid", "alg", "use"],
                      properties: {
                        kty: { const: "OKP" },
                        crv: { const: "Ed25519" },
                        x: { type: "string" },
                        kid: { type: "string" },
                        alg: { const: "EdDSA" },
                        use: { const: "sig" },
                      },
                    },
                  },
                },
              }),
            },
            ...errors(503),
          },
        },
      },
      "/openapi.json": {
        get: {
          summary: "This document",
          responses: { "200": { description: "ok", content: json({ type: "object" }) } },
        },
      },
      "/auth/challenge": { post: challengeOperation("A single-use challenge (60 s) for one presentation") },
      "/challenges": {
        post: challengeOperation(
          "VC-API: the same single-use challenge as /auth/challenge (one pool, one rate limit)",
        ),
      },
      "/auth/token": {
        post: {
          summary: "Exchange a presentation (VP JWT) of a K-th Party token for an access token",
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
          parameters: [
            {
              name: "DPoP",
              in: "header",
              required: false,
              schema: { type: "string" },
              description: "a DPoP proof JWT (RFC 9449); required unless the gateway runs in bearer mode",
            },
          ],
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["presentation"],
              additionalProperties: false,
              properties: {
                presentation: { type: "string" },
                scope: {
                  type: "string",
                  description: `space-separated actions among ${ACTIONS.join(", ")}; the grant is this ∩ what the credential allows`,
                },
                models: {
                  type: "array",
                  items: { type: "string" },
                  description: 'model ids (or ["*"]); the grant is this ∩ the credential\'s models',
                },
              },
            }),
          },
          responses: {
            "200": {
              description: "granted",
              content: json({
                type: "object",
                required: ["access_token", "token_type", "expires_in", "scope", "holder"],
                properties: {
                  access_token: { type: "string" },
                  token_type: { enum: ["DPoP", "Bearer"] },
                  expires_in: { type: "integer" },
                  scope: { type: "string" },
                  holder: { type: "string" },
                  models: { type: "array", items: { type: "string" } },
                  credential_id: { type: "string" },
                },
              }),
            },
            ...errors(400, 401, 403, 413, 503),
          },
        },
      },
      "/oauth/introspect": {
        post: {
          summary: "Token introspection (RFC 7662) for resource servers",
          description:
            "Authenticated as a gateway client. Answers a live token's members — scope, models, token_type, " +
            "exp, iat, sub (the holder DID), iss, aud, jti, cnf.jkt (DPoP-bound tokens) and the extension " +
            "credential_id — after the same per-use checks as every protected request (signature, the " +
            `credential's window and the token's exp with the ${skew} s skew, revocation at /oauth/revoke, the ` +
            "credential's on-chain status and its issuer's membership), without a DPoP proof. Otherwise only " +
            '`{"active": false}`. 503 when the check cannot run (fail closed).',
          security: [{ client: [] }],
          requestBody: {
            required: true,
            content: { "application/x-www-form-urlencoded": { schema: OAUTH_BODY_SCHEMA } },
          },
          responses: {
            "200": { description: "the token's state", content: json(INTROSPECTION_SCHEMA) },
            ...errors(400, 401, 503),
          },
        },
      },
      "/oauth/revoke": {
        post: {
          summary: "Token revocation (RFC 7009): a holder its own tokens, a client with --revoke any token",
          description:
            "A holder authenticates with one of its own access tokens (as on protected routes: " +
            "`Authorization: DPoP` and a proof for POST at this URL, or Bearer in bearer mode) and may revoke " +
            "any token whose sub is itself; another holder's token is 403 `scope_denied`. A gateway client " +
            "added with `--revoke` (HTTP Basic) may revoke any token; one without it gets 403 `scope_denied`. " +
            "The token is refused at every replica (401 `token_revoked`) and by introspection until its exp. " +
            "A token that is invalid, expired or no longer live is answered 200 too (RFC 7009 §2.2). Audited.",
          security: [{ client: [] }, ...bearer],
          requestBody: {
            required: true,
            content: { "application/x-www-form-urlencoded": { schema: OAUTH_BODY_SCHEMA } },
          },
          responses: {
            "200": { description: "revoked (or nothing to revoke)", content: json({ type: "object" }) },
            ...errors(400, 401, 403, 503),
          },
        },
      },
      "/oid4vp/requests": {
        post: {
          summary:
            "OID4VP 1.0: open a transaction — a signed authorization request for a scope (models × actions)",
          description:
            "Builds an OpenID for Verifiable Presentations 1.0 authorization request: a DCQL query for one " +
            "`jwt_vc_json` KPartyCredential whose kParty.actions contain every requested action and whose " +
            'kParty.models contain every requested model (or "*"), `response_mode: direct_post` to ' +
            "`/oid4vp/responses`, a single-use `nonce`, a `state`, and the client identifier " +
            "`decentralized_identifier:did:jwk:…` (the gateway's OID4VP key). The request object is a JAR " +
            "(`typ: oauth-authz-req+jwt`, EdDSA, `kid` = the did:jwk's key) delivered by value " +
            "(`authorization_request_by_value`) and by reference (`authorization_request`, `request_uri`, GET). " +
            "`transaction_id` is the caller's secret: whoever holds it collects the access token at " +
            "`GET /oid4vp/transactions/{id}`. Rate-limited with the challenges.",
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["scope", "models"],
              additionalProperties: false,
              properties: {
                scope: { type: "string", description: `space-separated actions among ${ACTIONS.join(", ")}` },
                models: {
                  type: "array",
                  minItems: 1,
                  items: { type: "string" },
                  description: 'model ids or ["*"]',
                },
              },
            }),
          },
          responses: {
            "201": {
              description: "the transaction and its authorization request",
              content: json({
                type: "object",
                required: [
                  "transaction_id",
                  "client_id",
                  "authorization_request",
                  "request_uri",
                  "expires_at",
                ],
                properties: {
                  transaction_id: { type: "string" },
                  client_id: { type: "string" },
                  authorization_request: {
                    type: "string",
                    description: "openid4vp://?client_id=…&request_uri=…",
                  },
                  authorization_request_by_value: {
                    type: "string",
                    description: "openid4vp://?client_id=…&request=…",
                  },
                  request_uri: { type: "string" },
                  request: { type: "string", description: "the signed request object (JAR)" },
                  dcql_query: { type: "object" },
                  expires_at: { type: "string", format: "date-time" },
                },
              }),
            },
            ...errors(400, 413, 429),
          },
        },
      },
      "/oid4vp/requests/{state}": {
        get: {
          summary: "OID4VP 1.0: the request object of an open request (request_uri, GET)",
          parameters: [{ name: "state", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": {
              description: "the signed request object",
              content: { "application/oauth-authz-req+jwt": { schema: { type: "string" } } },
            },
            ...errors(404),
          },
        },
      },
      "/oid4vp/responses": {
        post: {
          summary: "OID4VP 1.0: the response URI (direct_post) — the wallet posts vp_token and state",
          description:
            "Form-encoded (or JSON) `vp_token` and `state`. `vp_token` must be OID4VP 1.0's shape: a JSON object " +
            'whose only key is the credential query id "kparty", holding an array of exactly one VP JWT; anything ' +
            "else (a bare JWT, an array, pre-1.0 shapes, `direct_post.jwt`'s `response`) is 400 malformed. The VP " +
            "goes through the same verifier as /auth/token with the request's nonce as the single-use challenge " +
            "and its full client_id (prefix included) as the audience: 401 challenge_invalid (unknown state, " +
            "another request's nonce, expired request), 401 challenge_reused (already answered), 401 " +
            "domain_mismatch, and every credential-level code of /auth/token. Then 403 dcql_unsatisfied when the " +
            "verified credential does not satisfy the DCQL query. Failures before the nonce is consumed leave " +
            "the request open; after, the transaction is denied with that code.",
          requestBody: {
            required: true,
            content: {
              "application/x-www-form-urlencoded": {
                schema: {
                  type: "object",
                  required: ["vp_token", "state"],
                  properties: { vp_token: { type: "string" }, state: { type: "string" } },
                },
              },
              ...json({
                type: "object",
                required: ["vp_token", "state"],
                additionalProperties: false,
                properties: { vp_token: { type: "object" }, state: { type: "string" } },
              }),
            },
          },
          responses: {
            "200": {
              description: "accepted: the caller collects the token",
              content: json({ type: "object" }),
            },
            ...errors(400, 401, 403, 413, 503),
          },
        },
      },
      "/oid4vp/transactions/{id}": {
        get: {
          summary: "OID4VP 1.0: the caller polls its transaction and collects the access token (once)",
          description:
            "`pending` until the wallet answers (or `expired`); `denied` with the refusal's code; `granted` " +
            "with the access token — through the same grant → token step as /auth/token (lifetime capped at " +
            "the credential's and the presentation's exp) — exactly once, `redeemed` afterwards.",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": {
              description: "the transaction's status (with the token when granted)",
              content: json({
                type: "object",
                required: ["status"],
                properties: {
                  status: { enum: ["pending", "expired", "denied", "granted", "redeemed"] },
                  expires_at: { type: "string", format: "date-time" },
                  error: {
                    type: "object",
                    properties: { code: ref("ErrorCode"), message: { type: "string" } },
                  },
                  access_token: { type: "string" },
                  token_type: { const: "Bearer" },
                  expires_in: { type: "integer" },
                  scope: { type: "string" },
                  holder: { type: "string" },
                  models: { type: "array", items: { type: "string" } },
                  credential_id: { type: "string" },
                },
              }),
            },
            ...errors(401, 404),
          },
        },
      },
      "/credentials/verify": {
        post: {
          summary: "VC-API: verify one K-th Party token (options may add checks, never remove them)",
          description: VERIFY_SPLIT,
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["verifiableCredential"],
              additionalProperties: false,
              properties: {
                verifiableCredential: ref("JwtOrJsonForm"),
                options: {
                  type: "object",
                  additionalProperties: false,
                  properties: {
                    checks: ref("ChecksOption"),
                    anchorProof: { type: "array", items: { type: "string" } },
                  },
                },
              },
            }),
          },
          responses: {
            "200": { description: "the verdict", content: json(ref("Verification")) },
            ...errors(400, 413, 429, 503),
          },
        },
      },
      "/presentations/verify": {
        post: {
          summary: "VC-API: verify a presentation and its token (options may add checks, never remove them)",
          description:
            `${VERIFY_SPLIT} A nonce that this gateway issued (POST /challenges or /auth/challenge) is ` +
            "single-use on every endpoint: verifying it here consumes it, named in options.challenge or not. " +
            "An options.challenge this gateway did not issue is only compared with the presentation's nonce " +
            "(the caller must keep it single-use), and the result carries the warning challenge_not_issued_here.",
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["verifiablePresentation"],
              additionalProperties: false,
              properties: {
                verifiablePresentation: ref("JwtOrJsonForm"),
                options: {
                  type: "object",
                  additionalProperties: false,
                  properties: {
                    checks: ref("ChecksOption"),
                    challenge: { type: "string" },
                    domain: { type: "string" },
                  },
                },
              },
            }),
          },
          responses: {
            "200": { description: "the verdict", content: json(ref("Verification")) },
            ...errors(400, 413, 429, 503),
          },
        },
      },
      "/models": {
        get: {
          summary: "Models the caller's token covers (model:read)",
          security: bearer,
          responses: {
            "200": {
              description: "ok",
              content: json({
                type: "object",
                properties: { models: { type: "array", items: ref("Model") } },
              }),
            },
            ...errors(401, 403, 429, 503),
          },
        },
        post: {
          summary: "Register a model with zero initial weights (round:aggregate, within the token's models)",
          security: bearer,
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["id", "shape"],
              additionalProperties: false,
              properties: {
                id: { type: "string" },
                description: { type: "string" },
                shape: { type: "array", items: { type: "integer" } },
                maxSamplesPerUpdate: {
                  type: "integer",
                  minimum: 1,
                  maximum: 1e12,
                  default: 1_000_000,
                  description: "an update claiming more samples is refused (400 invalid_update)",
                },
                aggregation: ref("Aggregation"),
              },
            }),
          },
          responses: {
            "201": { description: "registered", content: json(ref("Model")) },
            ...errors(400, 401, 403, 409, 429, 503),
          },
        },
      },
      "/models/{id}": {
        get: {
          summary: "Model metadata (model:read)",
          security: bearer,
          parameters: [modelId],
          responses: {
            "200": { description: "ok", content: json(ref("Model")) },
            ...errors(401, 403, 404, 429, 503),
          },
        },
      },
      "/models/{id}/weights": {
        get: {
          summary:
            "Current global weights, little-endian float32 (model:read); version in x-kparty-model-version",
          security: bearer,
          parameters: [modelId],
          responses: {
            "200": {
              description: "weights",
              content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
            },
            ...errors(401, 403, 404, 429, 503),
          },
        },
      },
      "/models/{id}/updates": {
        post: {
          summary:
            "Submit this participant's update for the open round (model:contribute): exactly the model's float32 values, all finite; x-kparty-sample-count at most the model's maxSamplesPerUpdate",
          security: bearer,
          parameters: [
            modelId,
            { name: "x-kparty-round", in: "header", required: true, schema: { type: "integer", minimum: 1 } },
            {
              name: "x-kparty-sample-count",
              in: "header",
              required: true,
              schema: { type: "integer", minimum: 1 },
            },
          ],
          requestBody: {
            required: true,
            content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
          },
          responses: {
            "201": { description: "accepted", content: json({ type: "object" }) },
            ...errors(400, 401, 403, 404, 409, 413, 429, 503),
          },
        },
      },
      "/models/{id}/rounds/{round}/close": {
        post: {
          summary:
            "Close the open round: its updates, aggregated under the model's rule (FedAvg by default), become the next version (round:aggregate)",
          security: bearer,
          parameters: [
            modelId,
            { name: "round", in: "path", required: true, schema: { type: "integer", minimum: 1 } },
          ],
          responses: {
            "200": { description: "aggregated", content: json(ref("Model")) },
            ...errors(400, 401, 403, 404, 409, 429, 503),
          },
        },
      },
    },
  };
}
