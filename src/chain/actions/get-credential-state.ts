import { latestBlockNumber } from "../block-number.ts";
import type { ChainClient } from "../client.ts";
import { kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";
import { assertBytes32, assertStatusIndex } from "./validate.ts";

/** Anchor, issuer membership and status of one credential, as read from the chain. */
export interface CredentialState {
  /** Account that anchored the credential id; null when not anchored. */
  issuer: string | null;
  /** Block of the anchoring transaction; null when not anchored. */
  anchoredAt: number | null;
  issuerIsMember: boolean;
  revoked: boolean;
  suspended: boolean;
  /** Block the state was read at. */
  blockNumber: number;
}

/**
 * Reads everything a verifier needs about one credential in one `eth_call`, pinned to
 * one block. Throws `registry_unavailable` when the chain cannot be read.
 * @example
 * ```ts
 * const s = await getCredentialState(client, { credentialId, revocationIndex: 7, suspensionIndex: 7 });
 * if (s.revoked) deny("revoked");
 * ```
 */
export async function getCredentialState(
  client: ChainClient,
  args: { credentialId: string; revocationIndex: number; suspensionIndex: number; blockTag?: number },
): Promise<CredentialState> {
  assertBytes32(args.credentialId, "credentialId");
  assertStatusIndex(args.revocationIndex);
  assertStatusIndex(args.suspensionIndex);
  try {
    const blockNumber = args.blockTag ?? (await latestBlockNumber(client.provider));
    const state = await client.contracts.credentials.getFunction("credentialState").staticCall(
      args.credentialId,
      args.revocationIndex,
      args.suspensionIndex,
      { blockTag: blockNumber },
    );
    const anchored = state.issuer !== "0x0000000000000000000000000000000000000000";
    return {
      issuer: anchored ? (state.issuer as string) : null,
      anchoredAt: anchored ? Number(state.anchoredAt) : null,
      issuerIsMember: state.issuerIsMember as boolean,
      revoked: state.revoked as boolean,
      suspended: state.suspended as boolean,
      blockNumber,
    };
  } catch (error) {
    throw toChainError(error, "read credential state", kpartyInterfaces().credentials);
  }
}
