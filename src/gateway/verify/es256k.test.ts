import { createHash } from "node:crypto";
import { SigningKey, Wallet } from "ethers";
import { describe, expect, it, vi } from "vitest";
import { highS, other, sign, verificationCases, wallet } from "../../../test/fixtures/es256k.ts";
import { recoverEs256k, verifyEs256k, verifyEs256kAsync } from "./es256k.ts";

const input = "eyJhbGciOiJFUzI1NksifQ.eyJpc3MiOiJ0ZXN0In0";

describe("verifyEs256k", () => {
  const sig = sign(wallet.signingKey, input);
  const pub = { publicKeyHex: wallet.signingKey.compressedPublicKey.slice(2) };
  const address = { address: wallet.address };

  it("accepts a signature by the public key, and by the address through recovery", () => {
    expect(verifyEs256k(input, sig, [pub])).toEqual(pub);
    expect(verifyEs256k(input, sig, [address])).toEqual(address);
  });

  it("returns the first key that verifies", () => {
    const wrong = { address: other.address };
    expect(verifyEs256k(input, sig, [wrong, pub])).toEqual(pub);
  });

  it("refuses another key, another input, a wrong length and zero r or s", () => {
    expect(
      verifyEs256k(input, sig, [
        { publicKeyHex: other.signingKey.publicKey.slice(2) },
        { address: other.address },
      ]),
    ).toBeNull();
    expect(verifyEs256k(`${input}x`, sig, [pub, address])).toBeNull();
    expect(verifyEs256k(input, sig.subarray(0, 63), [pub])).toBeNull();
    expect(verifyEs256k(input, new Uint8Array(64), [pub, address])).toBeNull();
  });

  it("refuses the high-s twin of a valid signature", () => {
    expect(verifyEs256k(input, highS(sig), [pub, address])).toBeNull();
  });

  it("ignores keys that are not secp256k1 points", () => {
    expect(verifyEs256k(input, sig, [{ publicKeyHex: `02${"00".repeat(32)}` }, address])).toEqual(address);
  });

  it("learns an address's public key from a recovered signature, and never accepts another signer through it", () => {
    const signer = new Wallet("0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba");
    const target = [{ address: signer.address }];
    const first = sign(signer.signingKey, "first");
    expect(verifyEs256k("first", first, target)).toEqual(target[0]); // recovered, then learned
    expect(verifyEs256k("second", sign(signer.signingKey, "second"), target)).toEqual(target[0]); // plain verify
    expect(verifyEs256k("second", sign(other.signingKey, "second"), target)).toBeNull();
    expect(verifyEs256k("third", first, target)).toBeNull();
  });
});

describe("verifyEs256kAsync", () => {
  const sig = sign(wallet.signingKey, input);
  const pub = { publicKeyHex: wallet.signingKey.compressedPublicKey.slice(2) };

  it("answers what verifyEs256k answers", async () => {
    const { cases, verifies } = verificationCases(input);
    const answers = await Promise.all(
      cases.map(([data, signature, keys]) => verifyEs256kAsync(data, signature, keys)),
    );
    expect(answers).toEqual(cases.map(([data, signature, keys]) => verifyEs256k(data, signature, keys)));
    expect(answers.map((a) => a !== null)).toEqual(verifies);
  });

  it("recovers through the given function only for an address it has no key for, and learns the key", async () => {
    const signer = new Wallet("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318");
    const target = [{ address: signer.address }];
    const recover = vi.fn(async (data: string, signature: Uint8Array, addresses: string[]) =>
      recoverEs256k(data, signature, addresses),
    );
    expect(await verifyEs256kAsync("one", sign(signer.signingKey, "one"), target, recover)).toBe(target[0]);
    expect(recover.mock.calls.map((c) => c[2])).toEqual([[signer.address]]);
    expect(await verifyEs256kAsync("two", sign(signer.signingKey, "two"), target, recover)).toBe(target[0]);
    expect(
      await verifyEs256kAsync("two", sign(other.signingKey, "two"), [pub, ...target], recover),
    ).toBeNull();
    expect(recover).toHaveBeenCalledTimes(2); // the other signer's signature: recovered, matched nothing
    expect(await verifyEs256kAsync(input, sig, [pub], recover)).toBe(pub);
    expect(recover).toHaveBeenCalledTimes(2);
  });

  it("recovers a forgery once: the same signature, input and addresses again cost no recovery", async () => {
    const target = [{ address: Wallet.createRandom().address }];
    const signer = Wallet.createRandom(); // its key is learned nowhere else
    const forged = sign(signer.signingKey, "forged");
    const recover = vi.fn(async (data: string, signature: Uint8Array, addresses: string[]) =>
      recoverEs256k(data, signature, addresses),
    );
    for (let i = 0; i < 3; i++) expect(await verifyEs256kAsync("forged", forged, target, recover)).toBeNull();
    expect(verifyEs256k("forged", forged, target)).toBeNull(); // the same answer on this thread
    expect(recover).toHaveBeenCalledTimes(1);
    // another input, signature or address is another recovery
    expect(await verifyEs256kAsync("forged!", forged, target, recover)).toBeNull();
    expect(await verifyEs256kAsync("forged", forged, [{ address: signer.address }], recover)).toEqual({
      address: signer.address,
    });
    expect(recover).toHaveBeenCalledTimes(3);
  });

  it("does not learn what a recovery answers for an index outside the addresses", async () => {
    const signer = Wallet.createRandom();
    const target = [{ address: signer.address }];
    const wrong = async () => ({ index: 1, publicKeyHex: signer.signingKey.compressedPublicKey.slice(2) });
    expect(await verifyEs256kAsync("one", sign(signer.signingKey, "one"), target, wrong)).toBeNull();
    const none = vi.fn(async () => null);
    expect(await verifyEs256kAsync("two", sign(signer.signingKey, "two"), target, none)).toBeNull();
    expect(none).toHaveBeenCalledTimes(1);
  });
});

describe("recoverEs256k", () => {
  it("finds the key ethers recovers, for both recovery ids, over 64 random keys", () => {
    const parities = new Set<number>();
    for (let i = 0; i < 64; i++) {
      const signer = Wallet.createRandom();
      const data = `message ${i}`;
      const digest = createHash("sha256").update(data).digest();
      const sig = signer.signingKey.sign(digest);
      parities.add(sig.yParity);
      const signature = sign(signer.signingKey, data);
      const expected = SigningKey.recoverPublicKey(digest, sig).slice(2);
      expect(recoverEs256k(data, signature, [other.address, signer.address])).toEqual({
        index: 1,
        publicKeyHex: expected,
      });
    }
    expect([...parities].sort()).toEqual([0, 1]);
  });

  it("finds nothing when r is not the x of a curve point", () => {
    // x = 5: 5³ + 7 = 132 is not a square modulo p
    const signature = Buffer.concat([Buffer.alloc(31), Buffer.from([5]), Buffer.alloc(31), Buffer.from([1])]);
    expect(recoverEs256k(input, signature, [wallet.address])).toBeNull();
  });

  it("names the address whose key signed, with that key, and nothing for other addresses", () => {
    const sig = sign(wallet.signingKey, input);
    expect(recoverEs256k(input, sig, [other.address, wallet.address.toLowerCase()])).toEqual({
      index: 1,
      publicKeyHex: wallet.signingKey.publicKey.slice(2),
    });
    expect(recoverEs256k(input, sig, [other.address])).toBeNull();
    expect(recoverEs256k(`${input}x`, sig, [wallet.address])).toBeNull();
  });
});
