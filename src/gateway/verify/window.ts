/**
 * The one clock-skew policy of kparty, in seconds: how far apart two parties' clocks may be.
 * It applies whenever a timestamp written by another party's clock is judged — a credential's
 * and a presentation's `nbf`/`exp` (by the verifier), an access token's `exp` and the
 * credential window it carries (by the gateway's guard, its replicas and
 * `createKPartyProtection`). It is never added to a lifetime: a token's `exp` is capped at the
 * credential's `exp` exactly (see `createTokenService`).
 */
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;

/** The configured skew (default {@link DEFAULT_CLOCK_SKEW_SECONDS}); a negative or non-finite one is a `TypeError`. */
export function resolveClockSkew(value: number | undefined): number {
  const skew = value ?? DEFAULT_CLOCK_SKEW_SECONDS;
  if (!Number.isFinite(skew) || skew < 0)
    throw new TypeError("clockSkewSeconds must be a non-negative number");
  return skew;
}

/**
 * Where the time `t` (seconds) falls against a window of another party's clock, tolerating
 * `skew`: `not_yet_valid` while `notBefore > t + skew`, `expired` once `expires <= t - skew`,
 * else `null`. An absent bound is not checked.
 */
export function windowVerdict(
  t: number,
  notBefore: number | undefined,
  expires: number | undefined,
  skew: number,
): "not_yet_valid" | "expired" | null {
  if (notBefore !== undefined && notBefore > t + skew) return "not_yet_valid";
  if (expires !== undefined && expires <= t - skew) return "expired";
  return null;
}
