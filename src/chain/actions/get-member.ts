import type { ChainClient } from "../client.ts";
import { kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";

export interface MemberInfo {
  account: string;
  did: string;
  name: string;
  active: boolean;
}

/**
 * The consortium's record of `account` (empty DID and `active: false` if never a member).
 * @example
 * ```ts
 * const { active } = await getMember(client, "0xabc…");
 * ```
 */
export async function getMember(client: ChainClient, account: string): Promise<MemberInfo> {
  try {
    const [did, name, active] = await client.contracts.consortium.getFunction("memberOf").staticCall(account);
    return { account, did, name, active };
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
