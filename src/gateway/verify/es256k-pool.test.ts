import { Wallet } from "ethers";
import { afterAll, describe, expect, it } from "vitest";
import { other, sign, verificationCases, wallet } from "../../../test/fixtures/es256k.ts";
import { verifyEs256k, verifyEs256kAsync } from "./es256k.ts";
import { createEs256kPool } from "./es256k-pool.ts";

const input = "eyJhbGciOiJFUzI1NksifQ.eyJpc3MiOiJwb29sIn0";

const pool = createEs256kPool(2);
afterAll(() => pool.close());

describe("createEs256kPool", () => {
  const sig = sign(wallet.signingKey, input);
  const pub = { publicKeyHex: wallet.signingKey.compressedPublicKey.slice(2) };
  const otherPub = { publicKeyHex: other.signingKey.compressedPublicKey.slice(2) };

  it("answers what verifyEs256k answers, returning the caller's own key object", async () => {
    const { cases, verifies } = verificationCases(input);
    const answers = [];
    for (const [data, signature, keys] of cases) {
      const got = await pool.verify(data, signature, keys); // first: the address is recovered on a worker
      const expected = verifyEs256k(data, signature, keys);
      expect(got).toBe(expected === null ? null : keys[keys.indexOf(expected)]);
      answers.push(got !== null);
    }
    expect(answers).toEqual(verifies);
  });

  it("keeps answers apart under concurrency", async () => {
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => pool.verify(input, sig, i % 2 === 0 ? [pub] : [otherPub])),
    );
    expect(answers).toEqual(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? pub : null)));
  });

  it("recovers an address's key on a worker, and the event loop learns it", async () => {
    const signer = Wallet.createRandom();
    const target = [{ address: signer.address }];
    expect(await pool.verify("one", sign(signer.signingKey, "one"), target)).toBe(target[0]);
    expect(await pool.verify("one", sign(other.signingKey, "one"), target)).toBeNull();
    const noRecovery = async () => {
      throw new Error("no recovery expected");
    };
    expect(await verifyEs256kAsync("two", sign(signer.signingKey, "two"), target, noRecovery)).toBe(
      target[0],
    );
  });

  it("throws once closed, rather than wait for a thread that is gone", async () => {
    const closing = createEs256kPool(1);
    await closing.close();
    const signer = Wallet.createRandom();
    await expect(
      closing.verify("one", sign(signer.signingKey, "one"), [{ address: signer.address }]),
    ).rejects.toThrow("the verification pool is closed");
  });

  it("refuses a thread count that is not a positive integer", () => {
    expect(() => createEs256kPool(0)).toThrow(TypeError);
  });
});
