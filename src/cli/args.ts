import { getAddress, isAddress, parseEther } from "ethers";
import { parseDidEthr } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import { integerIn } from "../util/integer.ts";

/** An account from a did:ethr or an address; `invalid_argument` otherwise. */
export function accountOf(value: string): string {
  if (isAddress(value)) return getAddress(value);
  try {
    return parseDidEthr(value).account;
  } catch {
    throw new KPartyError("invalid_argument", `not a did:ethr DID or an address: ${value}`);
  }
}

/** A did:ethr DID's network and account; `invalid_argument` when it is not one. */
export function didEthrArg(did: string): { network: string; account: string } {
  try {
    return parseDidEthr(did);
  } catch {
    throw new KPartyError("invalid_argument", `not a did:ethr DID: ${did}`);
  }
}

/** An integer argument ≥ `min`; `invalid_argument` naming it otherwise. */
export function integerArg(name: string, value: string, min = 1): number {
  const n = integerIn(value, min);
  if (n === null)
    throw new KPartyError("invalid_argument", `${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

/** A positive amount of ETH, in wei; `invalid_argument` otherwise. */
export function ethAmountArg(eth: string): bigint {
  try {
    const value = parseEther(eth);
    if (value <= 0n) throw new Error("not positive");
    return value;
  } catch {
    throw new KPartyError("invalid_argument", `not an ETH amount: ${eth}`);
  }
}
