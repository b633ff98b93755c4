import { Wallet } from "ethers";
import { describe, expect, it } from "vitest";
import { other, sign, wallet } from "../../../test/fixtures/es256k.ts";
import { verifyEs256k } from "./es256k.ts";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
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
    const s = BigInt(`0x${Buffer.from(sig.subarray(32)).toString("hex")}`);
    const twin = Buffer.concat([
      sig.subarray(0, 32),
      Buffer.from((N - s).toString(16).padStart(64, "0"), "hex"),
    ]);
    expect(verifyEs256k(input, twin, [pub, address])).toBeNull();
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
