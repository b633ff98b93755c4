import type { ChainClient } from "../client.ts";
import { kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";

/**
 * The approvals a governance proposal needs.
 * @example
 * ```ts
 * const quorum = await getQuorum(client);
 * ```
 */
export async function getQuorum(client: ChainClient): Promise<number> {
  try {
    return Number(await client.contracts.consortium.getFunction("quorum").staticCall());
  } catch (error) {
    throw toChainError(error, "read quorum", kpartyInterfaces().consortium);
  }
}
