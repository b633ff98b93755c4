import type { ChainClient } from "../client.ts";
import { kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";

export interface MemberInfo {
  /** The member's account: the address of its DID, which its credentials name as issuer. */
  account: string;
  did: string;
  name: string;
  active: boolean;
  /**
   * The account that acts for the member on chain (proposes, approves, anchors, changes
   * status): `account` itself until a key rotation; null if never a member.
   */
  operator: string | null;
}

/**
 * The consortium's record of `account` (empty DID, `active: false` and no operator if never a member).
 * @example
 * ```ts
 * const { active } = await getMember(client, "0xabc…");
 * ```
 */
export async function getMember(client: ChainClient, account: string): Promise<MemberInfo> {
  try {
    const c = client.contracts.consortium;
    const [[did, name, active], operator] = await Promise.all([
      c.getFunction("memberOf").staticCall(account),
      c.getFunction("operatorOf").staticCall(account),
    ]);
    const zero = "0x0000000000000000000000000000000000000000";
    return { account, did, name, active, operator: operator === zero ? null : (operator as string) };
  } catch (error) {
    throw toChainError(error, "read member", kpartyInterfaces().consortium);
  }
}

/**
 * All current members.
 * @example
 * ```ts
 * for (const m of await listMembers(client)) console.log(m.name, m.did);
 * ```
 */
export async function listMembers(client: ChainClient): Promise<MemberInfo[]> {
  let accounts: string[];
  try {
    accounts = await client.contracts.consortium.getFunction("members").staticCall();
  } catch (error) {
    throw toChainError(error, "list members", kpartyInterfaces().consortium);
  }
  return Promise.all(accounts.map((account) => getMember(client, account)));
}
