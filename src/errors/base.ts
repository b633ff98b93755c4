/**
 * Stable error codes. Callers switch on `code`, never on messages; the gateway maps
 * each code to an HTTP status in one place (`src/gateway/errors.ts`).
 */
export type KPartyErrorCode =
  // presentation and credential verification
  | "malformed"
  | "jwt_mismatch"
  | "unsupported_alg"
  | "invalid_signature"
  | "expired"
  | "not_yet_valid"
  | "not_anchored"
  | "revoked"
  | "suspended"
  | "issuer_not_member"
  | "holder_mismatch"
  | "challenge_invalid"
  | "challenge_reused"
  | "domain_mismatch"
  | "did_unresolvable"
  // access
  | "scope_denied"
  | "token_invalid"
  | "credential_expired"
  | "invalid_dpop_proof"
  | "use_dpop_nonce"
  | "rate_limited"
  | "payload_too_large"
  | "not_found"
  // models and rounds
  | "invalid_update"
  | "conflict"
  // infrastructure
  | "registry_unavailable"
  | "audit_unavailable"
  | "overloaded"
  | "chain_reverted"
  | "chain_rejected"
  | "insufficient_funds"
  | "wrong_passphrase"
  | "invalid_argument"
  // command line
  | "config_invalid"
  | "passphrase_required"
  | "unreachable"
  | "internal";

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
