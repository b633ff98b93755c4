import type { FastifyReply, FastifyRequest } from "fastify";
import { KPartyError, SERVICE_ERROR_CODES, type ServiceErrorCode } from "../errors/index.ts";
import type { CheckResult } from "./verify/checks.ts";

/**
 * The one place error codes become HTTP statuses: the codes a service answers with. A chain's
 * or the CLI's code reaching a response (a bug, or a write that failed inside the issuer
 * service) is answered as `internal` (see {@link errorResponse}).
 */
export const HTTP_STATUS: Record<ServiceErrorCode, number> = {
  malformed: 400,
  jwt_mismatch: 400,
  unsupported_alg: 400,
  invalid_argument: 400,
  invalid_signature: 401,
  expired: 401,
  not_yet_valid: 401,
  holder_mismatch: 401,
  challenge_invalid: 401,
  challenge_reused: 401,
  domain_mismatch: 401,
  did_unresolvable: 401,
  token_invalid: 401,
  token_revoked: 401,
  // client authentication at /oauth/introspect and /oauth/revoke (RFC 6749 §5.2): with WWW-Authenticate: Basic
  invalid_client: 401,
  credential_expired: 401,
  // 400 at the token endpoint instead (RFC 9449 §5, §8): see `errorResponse`
  invalid_dpop_proof: 401,
  use_dpop_nonce: 401,
  not_anchored: 403,
  revoked: 403,
  suspended: 403,
  issuer_not_member: 403,
  scope_denied: 403,
  dcql_unsatisfied: 403,
  not_found: 404,
  invalid_update: 400,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  registry_unavailable: 503,
  audit_unavailable: 503,
  state_unavailable: 503,
  overloaded: 503,
  internal: 500,
};

/**
 * What a client is told for each code. A fixed message for every code whose error could carry
 * a cause from inside the gateway (a node's message, the RPC URL, a file path, a stack): that
 * cause goes to the operator's log only. `null` for codes that describe the client's own input
 * (its JWT, its token, its request): their specific message is sent. A new code must be placed
 * on one side or the other.
 */
export const CLIENT_MESSAGES: Record<ServiceErrorCode, string | null> = {
  malformed: null,
  jwt_mismatch: null,
  unsupported_alg: null,
  invalid_argument: null,
  invalid_signature: null,
  expired: null,
  not_yet_valid: null,
  holder_mismatch: null,
  challenge_invalid: null,
  challenge_reused: null,
  domain_mismatch: null,
  did_unresolvable: "a DID in the request does not resolve on the consortium's chain",
  token_invalid: null,
  token_revoked: null,
  invalid_client: "client authentication failed (HTTP Basic client_id:client_secret of a gateway client)",
  credential_expired: null,
  invalid_dpop_proof: null,
  use_dpop_nonce: null,
  not_anchored: null,
  revoked: null,
  suspended: null,
  issuer_not_member: null,
  scope_denied: null,
  dcql_unsatisfied: null,
  not_found: null,
  invalid_update: null,
  conflict: null,
  payload_too_large: null,
  rate_limited: null,
  registry_unavailable: "the consortium's registry cannot be read right now; retry later",
  audit_unavailable:
    "the audit log could not be synced to disk, so no decision is recorded until the gateway restarts",
  state_unavailable: "the gateway's shared state cannot be reached right now; retry later",
  overloaded: "the gateway is at capacity; retry shortly",
  internal: "internal error",
};

const isServiceCode = (code: string): code is ServiceErrorCode =>
  (SERVICE_ERROR_CODES as readonly string[]).includes(code);

/** The message a client may see for `error` (see {@link CLIENT_MESSAGES}). */
export function clientMessage(error: KPartyError): string {
  const fixed = isServiceCode(error.code) ? CLIENT_MESSAGES[error.code] : undefined;
  // a code missing from the map (a value from outside the type) is treated as internal
  return fixed === null ? error.shortMessage : (fixed ?? "internal error");
}

/** Whether `error` gets a fixed client message, so its cause belongs in the operator's log. */
export function isInternalError(error: unknown): boolean {
  return (
    !(error instanceof KPartyError) || !isServiceCode(error.code) || CLIENT_MESSAGES[error.code] !== null
  );
}

export interface ErrorBody {
  error: { code: ServiceErrorCode; message: string; field?: string; checks?: CheckResult[] };
}

/** Whether `error` is a DPoP refusal at the token endpoint (400 there, RFC 9449 §5 and §8). */
function atTokenEndpoint(error: KPartyError): boolean {
  return (
    (error.code === "invalid_dpop_proof" || error.code === "use_dpop_nonce") &&
    error.details.endpoint === "token"
  );
}

/**
 * The headers that go with a refusal (RFC 9449 §7.1, §8, §9): `WWW-Authenticate: DPoP
 * error="…"` for `invalid_dpop_proof` and `use_dpop_nonce`, with the server's fresh nonce in
 * `DPoP-Nonce` for the latter; `WWW-Authenticate: DPoP error="invalid_token"` for a refused
 * DPoP-bound token (`token_invalid`, `token_revoked`); `WWW-Authenticate: Basic` for
 * `invalid_client` (RFC 6749 §5.2). Empty for other errors. `createKPartyProtection`'s users send them too.
 * @example
 * ```ts
 * app.setErrorHandler((error, _request, reply) => {
 *   const [status, body] = errorResponse(error);
 *   return reply.code(status).headers(errorHeaders(error)).send(body);
 * });
 * ```
 */
export function errorHeaders(error: unknown): Record<string, string> {
  if (!(error instanceof KPartyError)) return {};
  const algs = 'algs="ES256K ES256 EdDSA"';
  if (error.code === "invalid_dpop_proof" || error.code === "use_dpop_nonce") {
    const nonce = error.details.nonce;
    return {
      "www-authenticate": `DPoP error="${error.code}", ${algs}`,
      ...(error.code === "use_dpop_nonce" && typeof nonce === "string" ? { "dpop-nonce": nonce } : {}),
    };
  }
  if ((error.code === "token_invalid" || error.code === "token_revoked") && error.details.scheme === "DPoP")
    return { "www-authenticate": `DPoP error="invalid_token", ${algs}` };
  if (error.code === "invalid_client") return { "www-authenticate": 'Basic realm="kparty", charset="UTF-8"' };
  return {};
}

/**
 * Any thrown value as `[status, body]`: a `KPartyError` with its code and the message of
 * {@link clientMessage}; anything else (a chain's or the CLI's code included) as `internal`. No cause, URL or stack is ever in the body.
 * The status is the code's ({@link HTTP_STATUS}), except for the DPoP codes at the token
 * endpoint (`details.endpoint: "token"`), which are 400 as RFC 9449 has them.
 */
export function errorResponse(error: unknown): [number, ErrorBody] {
  if (error instanceof KPartyError && isServiceCode(error.code)) {
    const checks = error.details.checks as CheckResult[] | undefined;
    const field = error.details.field;
    return [
      atTokenEndpoint(error) ? 400 : HTTP_STATUS[error.code],
      {
        error: {
          code: error.code,
          message: clientMessage(error),
          ...(typeof field === "string" ? { field } : {}),
          ...(checks ? { checks } : {}),
        },
      },
    ];
  }
  return [500, { error: { code: "internal", message: CLIENT_MESSAGES.internal as string } }];
}

/** The answer of a kparty service (the gateway, the issuer service) to a route it does not have: 404 `not_found`. */
export function answerNoRoute(request: FastifyRequest, reply: FastifyReply) {
  return reply
    .code(404)
    .send({ error: { code: "not_found", message: `no route ${request.method} ${request.url}` } });
}
