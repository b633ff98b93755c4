import type { FastifyInstance } from "fastify";
import { collectOpenApi } from "../issuer/openapi.ts";
import { DEFAULT_CLOCK_SKEW_SECONDS } from "./verify/window.ts";

/**
 * The gateway's OpenAPI 3.1 document (served at `GET /openapi.json`) is generated from the
 * schemas of the routes it registers (`collectOpenApi`, shared with the issuer service): the
 * same schemas Fastify validates requests with. What follows is what schemas cannot say: the
 * document's info, its security schemes, its tags, and the description of the error codes.
 */

const tags = [
  { name: "meta", description: "What the gateway says about itself" },
  { name: "auth", description: "Challenges and access tokens (the native path)" },
  { name: "oauth", description: "Token introspection (RFC 7662) and revocation (RFC 7009)" },
  { name: "oid4vp", description: "OpenID for Verifiable Presentations 1.0" },
  { name: "vc-api", description: "W3C VC-API verification" },
  { name: "models", description: "The shared model store behind access tokens" },
];

const securitySchemes = (skew: number) => ({
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
    description: "unbound tokens, only from a gateway run with `--token-binding bearer` (an explicit opt-in)",
  },
});

const errorCodesText = (skew: number) =>
  `Stable codes: every code some route of this gateway answers with (each response lists its own). ` +
  `Times of other parties' clocks are judged with one clock skew of ${skew} s. ` +
  "`expired` (401): the credential or presentation has expired (at /auth/token). " +
  "`credential_expired` (401): the credential behind a live access token has expired — " +
  `refused once the credential's exp is ${skew} s past, checked before the token's own expiry ` +
  "(`token_invalid`), so a token ended by its credential is refused for that reason.";

type Doc = {
  paths: Record<
    string,
    Record<string, { responses?: Record<string, { content?: Record<string, unknown> }> }>
  >;
  components: { schemas?: Record<string, object> };
};

/** Every error code the document's responses list (`error.code`'s enum of each error body). */
export function documentedErrorCodes(document: object): string[] {
  const codes = new Set<string>();
  for (const operations of Object.values((document as Doc).paths))
    for (const operation of Object.values(operations))
      for (const response of Object.values(operation.responses ?? {})) {
        const schema = (response.content?.["application/json"] as { schema?: unknown } | undefined)?.schema as
          | { properties?: { error?: { properties?: { code?: { enum?: string[] } } } } }
          | undefined;
        for (const code of schema?.properties?.error?.properties?.code?.enum ?? []) codes.add(code);
      }
  return [...codes].sort();
}

/**
 * Collects the gateway's routes as they are registered (call on the root instance before any
 * route plugin; a route added by any plugin is picked up by its schemas) and builds the
 * document on first use, with `ErrorCode`: the union of the codes the routes answer with.
 */
export function gatewayOpenApi(app: FastifyInstance, options: { domain: string; clockSkewSeconds?: number }) {
  const skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  const collector = collectOpenApi(app, {
    title: "kparty gateway",
    version: "1",
    description:
      "Verifies presentations of K-th Party tokens against the chain and guards the shared model store. " +
      `Presentations must name the audience ${options.domain}.`,
    securitySchemes: securitySchemes(skew),
    security: [{ dpop: [] }, { bearer: [] }],
    tags,
  });
  let document: Doc | undefined;
  return {
    routes: collector.routes,
    document(): object {
      if (document) return document;
      const built = collector.document() as Doc;
      built.components.schemas = {
        ...built.components.schemas,
        ErrorCode: { type: "string", enum: documentedErrorCodes(built), description: errorCodesText(skew) },
      };
      document = built;
      return document;
    },
  };
}

export type GatewayOpenApi = ReturnType<typeof gatewayOpenApi>;

declare module "fastify" {
  interface FastifyInstance {
    /** The gateway's OpenAPI document, generated from its routes' schemas. */
    kpartyOpenApi: GatewayOpenApi;
  }
}

/**
 * The OpenAPI document of a gateway built with `buildGateway` (what it serves at `GET /openapi.json`).
 * @example
 * ```ts
 * const doc = openApiDocument(await buildGateway(options));
 * ```
 */
export function openApiDocument(gateway: FastifyInstance): object {
  return gateway.kpartyOpenApi.document();
}
