import { createHash, createPublicKey, type KeyObject, verify } from "node:crypto";
import { computeAddress, getAddress, hexlify, Signature, SigningKey } from "ethers";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = N >> 1n;

/** A key a DID document lets sign: a secp256k1 public key, or an Ethereum address to recover and match. */
export type Es256kKey = { publicKeyHex: string } | { address: string };

const keyObjects = new Map<string, KeyObject>();

function keyObject(publicKeyHex: string): KeyObject {
  const hex = publicKeyHex.toLowerCase().replace(/^0x/, "");
  let key = keyObjects.get(hex);
  if (!key) {
    const uncompressed = SigningKey.computePublicKey(`0x${hex}`, false).slice(4); // strip 0x04
    key = createPublicKey({
      format: "jwk",
      key: {
        kty: "EC",
        crv: "secp256k1",
        x: Buffer.from(uncompressed.slice(0, 64), "hex").toString("base64url"),
        y: Buffer.from(uncompressed.slice(64), "hex").toString("base64url"),
      },
    });
    if (keyObjects.size > 10_000) keyObjects.clear();
    keyObjects.set(hex, key);
  }
  return key;
}

function bigintOf(bytes: Uint8Array): bigint {
  return BigInt(hexlify(bytes));
}

/**
 * Verifies an ES256K JWS signature (64 bytes, r‖s, over SHA-256 of `signingInput`) against
 * one of `keys`. Rejects r or s out of range and high-s signatures (the malleable second
 * form). Public keys are checked with OpenSSL through `node:crypto`; an address is matched
 * by recovering the public key.
 *
 * @returns the key that verified, or null.
 * @example
 * ```ts
 * const key = verifyEs256k(jwt.signingInput, jwt.signature, [{ address: "0xabc…" }]);
 * ```
 */
export function verifyEs256k(
  signingInput: string,
  signature: Uint8Array,
  keys: Es256kKey[],
): Es256kKey | null {
  if (signature.length !== 64) return null;
  const r = bigintOf(signature.subarray(0, 32));
  const s = bigintOf(signature.subarray(32));
  if (r === 0n || r >= N || s === 0n || s > HALF_N) return null;
  const data = Buffer.from(signingInput, "utf8");
  let recovered: string[] | undefined;
  for (const key of keys) {
    if ("publicKeyHex" in key) {
      try {
        if (
          verify("sha256", data, { key: keyObject(key.publicKeyHex), dsaEncoding: "ieee-p1363" }, signature)
        ) {
          return key;
        }
      } catch {
        // not a valid secp256k1 public key: try the next one
      }
    } else {
      recovered ??= recoverAddresses(data, signature);
      let wanted: string;
      try {
        wanted = getAddress(key.address);
      } catch {
        continue;
      }
      if (recovered.includes(wanted)) return key;
    }
  }
  return null;
}

function recoverAddresses(data: Buffer, signature: Uint8Array): string[] {
  const digest = createHash("sha256").update(data).digest();
  const r = hexlify(signature.subarray(0, 32));
  const s = hexlify(signature.subarray(32));
  const addresses: string[] = [];
  for (const v of [27, 28]) {
    try {
      addresses.push(computeAddress(SigningKey.recoverPublicKey(digest, Signature.from({ r, s, v }))));
    } catch {
      // no point for this recovery id
    }
  }
  return addresses;
}
