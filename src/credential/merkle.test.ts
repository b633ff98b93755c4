import { concat, keccak256 } from "ethers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import { buildMerkleTree, merkleLeaf, merkleNode, merkleRootOf } from "./merkle.ts";

const id = (n: number) => keccak256(`0x${n.toString(16).padStart(8, "0")}`);
const hash32 = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((b) => `0x${Buffer.from(b).toString("hex")}`);

describe("batch Merkle tree", () => {
  it("hashes leaves and sorted pairs with distinct domain prefixes", () => {
    const [a, b] = [id(1), id(2)];
    expect(merkleLeaf(a)).toBe(keccak256(concat(["0x00", a])));
    const [lo, hi] =
      merkleLeaf(a) < merkleLeaf(b) ? [merkleLeaf(a), merkleLeaf(b)] : [merkleLeaf(b), merkleLeaf(a)];
    expect(merkleNode(merkleLeaf(a), merkleLeaf(b))).toBe(keccak256(concat(["0x01", lo, hi])));
    expect(merkleNode(merkleLeaf(b), merkleLeaf(a))).toBe(merkleNode(merkleLeaf(a), merkleLeaf(b)));
  });

  it("has the leaf as root for a batch of one, and promotes an odd last node unchanged", () => {
    expect(buildMerkleTree([id(1)])).toEqual({ root: merkleLeaf(id(1)), proofs: new Map([[id(1), []]]) });
    const three = buildMerkleTree([id(1), id(2), id(3)]);
    expect(three.root).toBe(merkleNode(merkleNode(merkleLeaf(id(1)), merkleLeaf(id(2))), merkleLeaf(id(3))));
    expect(three.proofs.get(id(3))).toEqual([merkleNode(merkleLeaf(id(1)), merkleLeaf(id(2)))]);
  });

  it("gives every member a proof that leads to the root (property)", () => {
    fc.assert(
      fc.property(fc.uniqueArray(hash32, { minLength: 1, maxLength: 300 }), (ids) => {
        const { root, proofs } = buildMerkleTree(ids);
        for (const x of ids) expect(merkleRootOf(x, proofs.get(x))).toBe(root);
        expect(Math.max(...[...proofs.values()].map((p) => p.length))).toBeLessThanOrEqual(
          Math.ceil(Math.log2(ids.length)),
        );
      }),
      { numRuns: 60 },
    );
  });

  it("never leads a non-member, or a member with a tampered proof, to the root (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(hash32, { minLength: 2, maxLength: 64 }),
        hash32,
        fc.nat(),
        (ids, outsider, k) => {
          fc.pre(!ids.includes(outsider));
          const { root, proofs } = buildMerkleTree(ids);
          const member = ids[k % ids.length] as string;
          const proof = proofs.get(member) as string[];
          expect(merkleRootOf(outsider, proof)).not.toBe(root);
          const tampered = [...proof];
          tampered[k % tampered.length] = outsider;
          expect(merkleRootOf(member, tampered)).not.toBe(root);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("refuses malformed proofs and batches", () => {
    expect(errorCode(() => merkleRootOf(id(1), "0x00"))).toBe("malformed");
    expect(errorCode(() => merkleRootOf(id(1), ["0x1234"]))).toBe("malformed");
    expect(errorCode(() => merkleRootOf(id(1), Array(65).fill(id(2))))).toBe("malformed");
    expect(errorCode(() => buildMerkleTree([]))).toBe("invalid_argument");
    expect(errorCode(() => buildMerkleTree([id(1), id(1)]))).toBe("invalid_argument");
  });
});
