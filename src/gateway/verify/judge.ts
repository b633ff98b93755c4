import type { CredentialState } from "../../chain/index.ts";
import { fail } from "./checks.ts";

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

/**
 * Judges a credential's on-chain state, in this order: the issuer is a member now (unless
 * the policy honours credentials of removed members), the anchor is the issuer's, the
 * issuer was a member at the anchoring block, not revoked, not suspended.
 */
export async function judgeCredentialState(
  state: CredentialState,
  issuerAccount: string,
  policy: RemovedIssuerPolicy,
  run: CheckRunner,
): Promise<void> {
  await run("credential.issuer_member", () => {
    if (!state.issuerIsMember && policy === "deny")
      fail("issuer_not_member", "the issuer is not a consortium member");
  });
  await run("credential.anchored", () => {
    if (state.anchoredBy === null) fail("not_anchored", "the credential is not anchored on the registry");
    // the registry reports only the claimed issuer's own anchor; kept as a guard
    if (state.anchoredBy.toLowerCase() !== issuerAccount.toLowerCase()) {
      fail("not_anchored", "the credential was anchored by another account than its issuer");
    }
  });
  await run("credential.issued_while_member", () => {
    if (!state.issuerWasMemberAtAnchor) {
      fail("issuer_not_member", `the issuer was not a consortium member at block ${state.anchoredAt}`);
    }
  });
  await run("credential.revocation", () => {
    if (state.revoked) fail("revoked", "the credential has been revoked");
  });
  await run("credential.suspension", () => {
    if (state.suspended) fail("suspended", "the credential is suspended");
  });
}
