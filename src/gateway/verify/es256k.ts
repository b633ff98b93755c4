import { createHash, createPublicKey, type KeyObject, verify } from "node:crypto";
import { computeAddress, hexlify, Signature, SigningKey } from "ethers";

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
  // Public keys first (one OpenSSL verify each); then addresses through a public key learned
  // earlier for them; recovery (pure JS, two curve multiplications per candidate) last.
  for (const key of keys) {
    if ("publicKeyHex" in key && verifyWith(key.publicKeyHex, data, signature)) return key;
  }
  const addresses = keys.filter((k): k is { address: string } => "address" in k);
  for (const key of addresses) {
    const learned = learnedKeys.get(key.address.toLowerCase());
    if (learned && verifyWith(learned, data, signature)) return key;
  }
  if (addresses.length === 0) return null;
  const recovered = recoverKeys(data, signature);
  for (const key of addresses) {
    const wanted = key.address.toLowerCase();
    const match = recovered.find((k) => k.address.toLowerCase() === wanted);
    if (match) {
      if (learnedKeys.size > 10_000) learnedKeys.clear();
      learnedKeys.set(wanted, match.publicKeyHex);
      return key;
    }
  }
  return null;
}

/** Public keys recovered from valid signatures and matched to an address (address → key). */
const learnedKeys = new Map<string, string>();

function verifyWith(publicKeyHex: string, data: Buffer, signature: Uint8Array): boolean {
  try {
    return verify("sha256", data, { key: keyObject(publicKeyHex), dsaEncoding: "ieee-p1363" }, signature);
  } catch {
    return false; // not a valid secp256k1 public key
  }
}

function recoverKeys(data: Buffer, signature: Uint8Array): { address: string; publicKeyHex: string }[] {
  const digest = createHash("sha256").update(data).digest();
  const r = hexlify(signature.subarray(0, 32));
  const s = hexlify(signature.subarray(32));
  const keys: { address: string; publicKeyHex: string }[] = [];
  for (const v of [27, 28]) {
    try {
      const publicKey = SigningKey.recoverPublicKey(digest, Signature.from({ r, s, v }));
      keys.push({ address: computeAddress(publicKey), publicKeyHex: publicKey.slice(2) });
    } catch {
      // no point for this recovery id
    }
  }
  return keys;
}
