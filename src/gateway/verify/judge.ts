import type { CredentialState } from "../../chain/index.ts";
import { decodeJwt } from "../../credential/index.ts";
import type { KPartyErrorCode } from "../../errors/index.ts";
import { fail } from "./checks.ts";
import { numericDate } from "./structure.ts";
import { DEFAULT_CLOCK_SKEW_SECONDS, windowVerdict } from "./window.ts";

/**
 * What to do with a credential whose issuer was a member when it anchored the credential but
 * has been removed since: `deny` (default, fails closed) refuses it with `issuer_not_member`;
 * `honor-issued-while-member` accepts it (unless revoked or suspended) — the consortium can
 * still revoke such credentials by quorum.
 */
export type RemovedIssuerPolicy = "deny" | "honor-issued-while-member";
export const REMOVED_ISSUER_POLICIES: readonly RemovedIssuerPolicy[] = ["deny", "honor-issued-while-member"];

/** Runs one named check (the verifier records it; the access guard just runs it). */
export type CheckRunner = (check: string, fn: () => void) => unknown;

type Failure = [code: KPartyErrorCode, message: string];

/**
 * The checks of a credential's on-chain state, in order, each with what makes it fail: the
 * issuer is a member now (unless the policy honours credentials of removed members), the
 * anchor is the issuer's, the issuer was a member at the anchoring block, not revoked, not
 * suspended. The one source of the verdict: the verifier, the access guard and
 * `kparty credential status` all decide through it.
 */
const STATE_CHECKS: {
  check: string;
  fails(state: CredentialState, issuerAccount: string, policy: RemovedIssuerPolicy): Failure | null;
}[] = [
  {
    check: "credential.issuer_member",
    fails: (state, _issuer, policy) =>
      !state.issuerIsMember && policy === "deny"
        ? ["issuer_not_member", "the issuer is not a consortium member"]
        : null,
  },
  {
    check: "credential.anchored",
    fails: (state, issuerAccount) =>
      state.anchoredBy === null
        ? ["not_anchored", "the credential is not anchored on the registry"]
        : // the registry reports only the claimed issuer's own anchor; kept as a guard
          state.anchoredBy.toLowerCase() !== issuerAccount.toLowerCase()
          ? ["not_anchored", "the credential was anchored by another account than its issuer"]
          : null,
  },
  {
    check: "credential.issued_while_member",
    fails: (state) =>
      state.issuerWasMemberAtAnchor
        ? null
        : ["issuer_not_member", `the issuer was not a consortium member at block ${state.anchoredAt}`],
  },
  {
    check: "credential.revocation",
    fails: (state) => (state.revoked ? ["revoked", "the credential has been revoked"] : null),
  },
  {
    check: "credential.suspension",
    fails: (state) => (state.suspended ? ["suspended", "the credential is suspended"] : null),
  },
];

/** A credential's validity window (`nbf`, `exp`, seconds), the time to judge it at, and the clock skew tolerated. */
export interface CredentialWindow {
  at: number;
  notBefore?: number | undefined;
  expires?: number | undefined;
  skewSeconds: number;
}

/**
 * Why a window (of `what`: a credential, a presentation) does not hold at `window.at`, or
 * null: `not_yet_valid` or `expired`, with the one clock skew (see `windowVerdict`).
 */
export function windowFailure(what: string, window: CredentialWindow): Failure | null {
  const { at, notBefore, expires, skewSeconds } = window;
  const verdict = windowVerdict(at, notBefore, expires, skewSeconds);
  if (verdict === "not_yet_valid") return ["not_yet_valid", `${what} is not valid before ${notBefore}`];
  if (verdict === "expired") return ["expired", `${what} expired at ${expires}`];
  return null;
}

/**
 * The window of a credential JWT (its `nbf` and `exp`) at `nowMs`, with the default clock
 * skew: what {@link credentialVerdict} needs to judge the credential's times as the gateway does.
 * `malformed` when the JWT or its dates are.
 */
export function credentialWindowOf(jwt: string, nowMs: number): CredentialWindow {
  const { payload } = decodeJwt(jwt);
  return {
    at: Math.floor(nowMs / 1000),
    notBefore: numericDate(payload, "nbf", false),
    expires: numericDate(payload, "exp", false),
    skewSeconds: DEFAULT_CLOCK_SKEW_SECONDS,
  };
}

/** What the chain says of a credential: valid, or the first failing check with its code. */
export type CredentialVerdict =
  | { valid: true }
  | { valid: false; check: string; code: KPartyErrorCode; message: string };

/**
 * The verdict on a credential's on-chain state (pure, synchronous): the first of the state
 * checks that fails, or valid. `judgeCredentialState` runs the same checks one by one. With
 * the credential's `window`, its times are judged first (`credential.validity`), as the
 * verifier does before the state checks.
 *
 * @example
 * ```ts
 * const window = credentialWindowOf(jwt, Date.now());
 * const verdict = credentialVerdict(await getCredentialState(chain, key), issuerAccount, "deny", window);
 * if (!verdict.valid) console.log(verdict.code); // "expired", "revoked", "issuer_not_member", …
 * ```
 */
export function credentialVerdict(
  state: CredentialState,
  issuerAccount: string,
  policy: RemovedIssuerPolicy,
  window?: CredentialWindow,
): CredentialVerdict {
  const outside = window ? windowFailure("credential", window) : null;
  if (outside) return { valid: false, check: "credential.validity", code: outside[0], message: outside[1] };
  for (const { check, fails } of STATE_CHECKS) {
    const failure = fails(state, issuerAccount, policy);
    if (failure) return { valid: false, check, code: failure[0], message: failure[1] };
  }
  return { valid: true };
}

/**
 * Judges a credential's on-chain state by {@link credentialVerdict}'s checks, running each
 * through `run` (the verifier records them; the access guard just runs them).
 */
export async function judgeCredentialState(
  state: CredentialState,
  issuerAccount: string,
  policy: RemovedIssuerPolicy,
  run: CheckRunner,
): Promise<void> {
  for (const { check, fails } of STATE_CHECKS) {
    await run(check, () => {
      const failure = fails(state, issuerAccount, policy);
      if (failure) fail(...failure);
    });
  }
}
