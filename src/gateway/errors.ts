import { KPartyError, type KPartyErrorCode } from "../errors/index.ts";
import type { CheckResult } from "./verify/checks.ts";

/** The one place error codes become HTTP statuses. */
export const HTTP_STATUS: Record<KPartyErrorCode, number> = {
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
  credential_expired: 401,
  not_anchored: 403,
  revoked: 403,
  suspended: 403,
  issuer_not_member: 403,
  scope_denied: 403,
  not_found: 404,
  invalid_update: 400,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  registry_unavailable: 503,
  audit_unavailable: 503,
  overloaded: 503,
  chain_reverted: 500,
  chain_rejected: 500,
  insufficient_funds: 500,
  wrong_passphrase: 500,
  config_invalid: 500,
  passphrase_required: 500,
  unreachable: 502,
  internal: 500,
};

export interface ErrorBody {
  error: { code: KPartyErrorCode; message: string; field?: string; checks?: CheckResult[] };
}

/** Any thrown value as `[status, body]`; unexpected errors become `internal` without detail. */
export function errorResponse(error: unknown): [number, ErrorBody] {
  if (error instanceof KPartyError) {
    const checks = error.details.checks as CheckResult[] | undefined;
    const field = error.details.field;
    return [
      HTTP_STATUS[error.code] ?? 500,
      {
        error: {
          code: error.code,
          message: error.shortMessage,
          ...(typeof field === "string" ? { field } : {}),
          ...(checks ? { checks } : {}),
        },
      },
    ];
  }
  return [500, { error: { code: "internal", message: "internal error" } }];
}
