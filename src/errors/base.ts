/** The codes of a presentation's or credential's verification (see `src/gateway/verify/`). */
export const VERIFICATION_ERROR_CODES = [
  "malformed",
  "jwt_mismatch",
  "unsupported_alg",
  "invalid_signature",
  "expired",
  "not_yet_valid",
  "not_anchored",
  "revoked",
  "suspended",
  "issuer_not_member",
  "holder_mismatch",
  "challenge_invalid",
  "challenge_reused",
  "domain_mismatch",
  "did_unresolvable",
] as const;

/**
 * The codes a kparty HTTP service (the gateway, the issuer service) answers with, each with
 * its status in `src/gateway/errors.ts`. The served OpenAPI's `ErrorCode` lists these.
 */
export const SERVICE_ERROR_CODES = [
  // presentation and credential verification
  ...VERIFICATION_ERROR_CODES,
  // access
  "scope_denied",
  "dcql_unsatisfied",
  "token_invalid",
  "token_revoked",
  "invalid_client",
  "credential_expired",
  "invalid_dpop_proof",
  "use_dpop_nonce",
  "rate_limited",
  "payload_too_large",
  "not_found",
  // models, rounds and other input
  "invalid_update",
  "invalid_argument",
  "conflict",
  // infrastructure
  "registry_unavailable",
  "audit_unavailable",
  "state_unavailable",
  "overloaded",
  "internal",
] as const;

/** What a transaction can meet on chain (the issuer's and the CLI's writes). */
export const CHAIN_ERROR_CODES = ["chain_reverted", "chain_rejected", "insufficient_funds"] as const;

/**
 * Conditions only the `kparty` command and the gateway client meet (its configuration, its data
 * dir, a gateway it calls: `unexpected_response` for an answer that is not the gateway's
 * contract, such as an unknown error code or a body of the wrong type). No service sends these.
 */
export const CLI_ERROR_CODES = [
  "config_invalid",
  "passphrase_required",
  "wrong_passphrase",
  "data_dir_in_use",
  "unreachable",
  "unexpected_response",
] as const;

export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];
export type ChainErrorCode = (typeof CHAIN_ERROR_CODES)[number];
export type CliErrorCode = (typeof CLI_ERROR_CODES)[number];

/**
 * Stable error codes, in three separate groups (what services answer, what the chain refuses,
 * what only the CLI meets). Callers switch on `code`, never on messages; HTTP statuses are
 * mapped in one place (`src/gateway/errors.ts`), exit codes in another (`src/cli/output.ts`).
 */
export type KPartyErrorCode = ServiceErrorCode | ChainErrorCode | CliErrorCode;

export interface KPartyErrorOptions {
  /** Machine-readable context (never secrets). */
  details?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * The one base error of kparty: a stable `code`, a one-line `shortMessage`, optional
 * structured `details` and the underlying `cause`.
 *
 * @example
 * ```ts
 * try { await verifier.verify(jwt) }
 * catch (e) { if (e instanceof KPartyError && e.code === "revoked") deny() }
 * ```
 */
export class KPartyError extends Error {
  override readonly name: string = "KPartyError";
  readonly code: KPartyErrorCode;
  readonly shortMessage: string;
  readonly details: Record<string, unknown>;

  constructor(code: KPartyErrorCode, shortMessage: string, options: KPartyErrorOptions = {}) {
    super(shortMessage, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.shortMessage = shortMessage;
    this.details = options.details ?? {};
  }
}

/** True when `error` is a {@link KPartyError}, optionally with the given code. */
export function isKPartyError(error: unknown, code?: KPartyErrorCode): error is KPartyError {
  return error instanceof KPartyError && (code === undefined || error.code === code);
}
