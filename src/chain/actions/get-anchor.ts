import type { ChainClient } from "../client.ts";
import { kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";
import { assertAddress, assertBytes32 } from "./validate.ts";

/**
 * The block at which `issuer` (a member's account, the address of its DID) anchored `key` (a
 * credential id or a batch root); null when that issuer has not anchored it. Anchors are kept
 * per issuer: another member's anchor of the same key is not `issuer`'s.
 * @example
 * ```ts
 * const anchor = await getAnchor(client, { issuer, key: root }); // { blockNumber: 42 } | null
 * ```
 */
export async function getAnchor(
  client: ChainClient,
  args: { issuer: string; key: string },
): Promise<{ blockNumber: number } | null> {
  assertAddress(args.issuer, "issuer");
  assertBytes32(args.key, "key");
  try {
    const [anchored, blockNumber] = await client.contracts.credentials
      .getFunction("anchorOf")
      .staticCall(args.issuer, args.key);
    return anchored ? { blockNumber: Number(blockNumber) } : null;
  } catch (error) {
    throw toChainError(error, "read anchor", kpartyInterfaces().credentials);
  }
}
