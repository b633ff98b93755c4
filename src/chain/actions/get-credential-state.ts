import { latestBlockNumber } from "../block-number.ts";
import type { ChainClient } from "../client.ts";
import { kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";
import { assertAddress, assertBytes32, assertStatusIndex } from "./validate.ts";

/** Anchor, issuer membership and status of one credential, as read from the chain. */
export interface CredentialState {
  /**
   * The claimed issuer's account when that issuer anchored the key, null otherwise (anchors
   * are kept per issuer: another member's anchor of the same key never shows here).
   */
  anchoredBy: string | null;
  /** Block of the issuer's anchoring transaction; null when not anchored by it. */
  anchoredAt: number | null;
  /** Whether the claimed issuer account is a member now. */
  issuerIsMember: boolean;
  /** Whether the claimed issuer account was a member at the anchoring block. */
  issuerWasMemberAtAnchor: boolean;
  /** The claimed issuer's revocation bit. */
  revoked: boolean;
  suspended: boolean;
  /** Block the state was read at. */
  blockNumber: number;
}

/**
 * Reads everything a verifier needs about one credential in one `eth_call`, pinned to
 * one block: `issuer`'s anchor of `anchorKey` (what the issuer anchored: the credential's id,
 * or the root of its batch), and the membership and status bits of `issuer` (the account the
 * credential names as issuer).
 * The block is `blockTag` when given, otherwise the node's latest block less `confirmations`
 * (default 0; never below the deployment block).
 * Throws `registry_unavailable` when the chain cannot be read.
 * @example
 * ```ts
 * const s = await getCredentialState(client, { anchorKey, issuer, revocationIndex: 7, suspensionIndex: 7 });
 * if (s.revoked) deny("revoked");
 * ```
 */
export async function getCredentialState(
  client: ChainClient,
  args: {
    /** What the issuer anchored: the credential's id, or the root of the batch it came in. */
    anchorKey: string;
    issuer: string;
    revocationIndex: number;
    suspensionIndex: number;
    blockTag?: number;
    /** Read this many blocks below the head (ignored with `blockTag`). */
    confirmations?: number;
  },
): Promise<CredentialState> {
  assertBytes32(args.anchorKey, "anchorKey");
  assertAddress(args.issuer, "issuer");
  assertStatusIndex(args.revocationIndex);
  assertStatusIndex(args.suspensionIndex);
  try {
    const blockNumber =
      args.blockTag ??
      (args.confirmations
        ? Math.max(
            client.deployment.deployedAtBlock,
            (await latestBlockNumber(client.provider)) - args.confirmations,
          )
        : await latestBlockNumber(client.provider));
    const state = await client.contracts.credentials
      .getFunction("credentialState")
      .staticCall(args.anchorKey, args.issuer, args.revocationIndex, args.suspensionIndex, {
        blockTag: blockNumber,
      });
    const anchored = state.anchoredBy !== "0x0000000000000000000000000000000000000000";
    return {
      anchoredBy: anchored ? (state.anchoredBy as string) : null,
      anchoredAt: anchored ? Number(state.anchoredAt) : null,
      issuerIsMember: state.issuerIsMember as boolean,
      issuerWasMemberAtAnchor: state.issuerWasMemberAtAnchor as boolean,
      revoked: state.revoked as boolean,
      suspended: state.suspended as boolean,
      blockNumber,
    };
  } catch (error) {
    throw toChainError(error, "read credential state", kpartyInterfaces().credentials);
  }
}
