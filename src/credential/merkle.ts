import { concat, keccak256 } from "ethers";
import { KPartyError } from "../errors/index.ts";

const LEAF_PREFIX = "0x00";
const NODE_PREFIX = "0x01";
const BYTES32 = /^0x[0-9a-f]{64}$/;

/** `keccak256(0x00 ‖ credentialId)`: leaves are domain-separated from nodes (and from ids). */
export function merkleLeaf(credentialId: string): string {
  return keccak256(concat([LEAF_PREFIX, credentialId]));
}

/** `keccak256(0x01 ‖ min(a, b) ‖ max(a, b))`: pairs are sorted, so a proof needs no left/right flags. */
export function merkleNode(a: string, b: string): string {
  const [lo, hi] = a.toLowerCase() <= b.toLowerCase() ? [a, b] : [b, a];
  return keccak256(concat([NODE_PREFIX, lo, hi]));
}

export interface MerkleTree {
  root: string;
  /** Inclusion proof per credential id: sibling hashes from the leaf up. */
  proofs: Map<string, string[]>;
}

/**
 * Builds kparty's batch tree over credential ids: leaves in the given order, pairs hashed
 * level by level; an odd node at the end of a level moves up unchanged. A batch of one has
 * the leaf hash as root and an empty proof.
 *
 * @example
 * ```ts
 * const { root, proofs } = buildMerkleTree(ids);
 * merkleRootOf(ids[0], proofs.get(ids[0])!) === root; // true
 * ```
 */
export function buildMerkleTree(credentialIds: string[]): MerkleTree {
  if (credentialIds.length === 0)
    throw new KPartyError("invalid_argument", "a batch needs at least one credential");
  const ids = credentialIds.map((id) => id.toLowerCase());
  if (!ids.every((id) => BYTES32.test(id))) {
    throw new KPartyError("invalid_argument", "credential ids must be 32 bytes of 0x-prefixed hex");
  }
  if (new Set(ids).size !== ids.length)
    throw new KPartyError("invalid_argument", "credential ids must be distinct");
  const proofs = new Map<string, string[]>(ids.map((id) => [id, []]));
  // members[i] lists the ids under node i of the current level
  let level = ids.map(merkleLeaf);
  let members = ids.map((id) => [id]);
  while (level.length > 1) {
    const next: string[] = [];
    const nextMembers: string[][] = [];
    for (let i = 0; i < level.length; i += 2) {
      const left = level[i] as string;
      const right = level[i + 1];
      if (right === undefined) {
        next.push(left);
        nextMembers.push(members[i] as string[]);
        continue;
      }
      for (const id of members[i] as string[]) proofs.get(id)?.push(right);
      for (const id of members[i + 1] as string[]) proofs.get(id)?.push(left);
      next.push(merkleNode(left, right));
      nextMembers.push([...(members[i] as string[]), ...(members[i + 1] as string[])]);
    }
    level = next;
    members = nextMembers;
  }
  return { root: level[0] as string, proofs };
}

/**
 * The root an inclusion proof leads to; throws `malformed` for a proof that is not a list
 * of at most 64 32-byte hex hashes.
 */
export function merkleRootOf(credentialId: string, proof: unknown): string {
  if (!Array.isArray(proof) || proof.length > 64) {
    throw new KPartyError("malformed", "an anchor proof is a list of at most 64 hashes");
  }
  let hash = merkleLeaf(credentialId);
  for (const sibling of proof) {
    if (typeof sibling !== "string" || !BYTES32.test(sibling.toLowerCase())) {
      throw new KPartyError("malformed", "anchor proof entries must be 32 bytes of 0x-prefixed hex");
    }
    hash = merkleNode(hash, sibling);
  }
  return hash;
}
