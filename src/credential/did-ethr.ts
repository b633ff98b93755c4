import { computeAddress, getAddress } from "ethers";
import { KPartyError } from "../errors/index.ts";

const DID_ETHR = /^did:ethr:(0x[0-9a-fA-F]+):(0x[0-9a-fA-F]{40}|0x[0-9a-fA-F]{66})$/;

/**
 * The Ethereum account a `did:ethr` identifies (its address, or the address of its public key),
 * and the network part. Throws `malformed` for anything else.
 */
export function parseDidEthr(did: unknown): { network: string; account: string } {
  const cached = typeof did === "string" ? memo.get(did) : undefined;
  if (cached) return cached;
  const parsed = parse(did);
  if (memo.size >= 10_000) memo.delete(memo.keys().next().value as string);
  memo.set(did as string, parsed);
  return parsed;
}

/** The did:ethr network name kparty uses for a chain: its id in hex (`0x7a69` for 31337). */
export function ethrNetworkName(chainId: number): string {
  return `0x${chainId.toString(16)}`;
}

/** Deriving the address of a public-key DID decompresses a curve point (pure JS, ~1 ms): remember it. */
const memo = new Map<string, { network: string; account: string }>();

function parse(did: unknown): { network: string; account: string } {
  const m = typeof did === "string" ? DID_ETHR.exec(did) : null;
  if (!m) throw new KPartyError("malformed", `not a did:ethr DID: ${String(did).slice(0, 120)}`);
  const id = m[2] as string;
  try {
    return { network: m[1] as string, account: id.length === 42 ? getAddress(id) : computeAddress(id) };
  } catch (cause) {
    throw new KPartyError("malformed", `not a valid did:ethr identifier: ${did}`, { cause });
  }
}
