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

/** 64 bytes, r and s in range, and s in the lower half (the malleable high-s twin is refused). */
function wellFormed(signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  const r = bigintOf(signature.subarray(0, 32));
  const s = bigintOf(signature.subarray(32));
  return r !== 0n && r < N && s !== 0n && s <= HALF_N;
}

/**
 * The public keys to check a signature against, in order: those of `keys`, then those learned
 * earlier for its addresses.
 */
function knownPublicKeys(keys: Es256kKey[]): { key: Es256kKey; publicKeyHex: string }[] {
  const known: { key: Es256kKey; publicKeyHex: string }[] = [];
  for (const key of keys) if ("publicKeyHex" in key) known.push({ key, publicKeyHex: key.publicKeyHex });
  for (const key of keys) {
    const learned = "address" in key ? learnedKeys.get(key.address.toLowerCase()) : undefined;
    if (learned) known.push({ key, publicKeyHex: learned });
  }
  return known;
}

function addressesOf(keys: Es256kKey[]): { address: string }[] {
  return keys.filter((k): k is { address: string } => "address" in k);
}

/**
 * Verifies an ES256K JWS signature (64 bytes, r‖s, over SHA-256 of `signingInput`) against
 * one of `keys`, on this thread. Rejects r or s out of range and high-s signatures (the
 * malleable second form). Public keys are checked with OpenSSL through `node:crypto`; an
 * address is matched through a public key learned for it earlier, else by recovering the
 * public key (pure JS, two curve multiplications per candidate) and learning it.
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
  if (!wellFormed(signature)) return null;
  const data = Buffer.from(signingInput, "utf8");
  for (const { key, publicKeyHex } of knownPublicKeys(keys)) {
    if (verifyWith(publicKeyHex, data, signature)) return key;
  }
  const addresses = addressesOf(keys);
  if (addresses.length === 0) return null;
  const match = recoverEs256k(
    signingInput,
    signature,
    addresses.map((k) => k.address),
  );
  return match ? learn(addresses, match) : null;
}

/** Recovers a signature's public key for `verifyEs256kAsync` (see `createEs256kPool`). */
export type Es256kRecovery = (
  signingInput: string,
  signature: Uint8Array,
  addresses: string[],
) => Promise<Es256kRecoveryMatch | null>;

export interface Es256kRecoveryMatch {
  /** Which of the addresses the recovered key belongs to. */
  index: number;
  publicKeyHex: string;
}

/**
 * `verifyEs256k`'s answer without its work on this thread: the OpenSSL checks run on libuv's
 * thread pool (`node:crypto`'s asynchronous verify), and a recovery runs in `recover` (on this
 * thread if not given).
 */
export async function verifyEs256kAsync(
  signingInput: string,
  signature: Uint8Array,
  keys: Es256kKey[],
  recover?: Es256kRecovery,
): Promise<Es256kKey | null> {
  if (!wellFormed(signature)) return null;
  const data = Buffer.from(signingInput, "utf8");
  for (const { key, publicKeyHex } of knownPublicKeys(keys)) {
    if (await verifyWithAsync(publicKeyHex, data, signature)) return key;
  }
  const addresses = addressesOf(keys);
  if (addresses.length === 0) return null;
  const wanted = addresses.map((k) => k.address);
  const match = recover
    ? await recover(signingInput, signature, wanted)
    : recoverEs256k(signingInput, signature, wanted);
  return match ? learn(addresses, match) : null;
}

/** Public keys recovered from valid signatures and matched to an address (address → key). */
const learnedKeys = new Map<string, string>();

function learn(addresses: { address: string }[], match: Es256kRecoveryMatch): Es256kKey | null {
  const key = addresses[match.index];
  if (!key) return null;
  if (learnedKeys.size > 10_000) learnedKeys.clear();
  learnedKeys.set(key.address.toLowerCase(), match.publicKeyHex);
  return key;
}

function verifyWith(publicKeyHex: string, data: Buffer, signature: Uint8Array): boolean {
  try {
    return verify("sha256", data, { key: keyObject(publicKeyHex), dsaEncoding: "ieee-p1363" }, signature);
  } catch {
    return false; // not a valid secp256k1 public key
  }
}

function verifyWithAsync(publicKeyHex: string, data: Buffer, signature: Uint8Array): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      const key = keyObject(publicKeyHex);
      verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, signature, (error, valid) =>
        resolve(!error && valid),
      );
    } catch {
      resolve(false); // not a valid secp256k1 public key
    }
  });
}

/**
 * Recovers the public key behind an ES256K signature (both recovery ids) and matches it to
 * one of `addresses` (pure JS). The signature must be well formed (see `verifyEs256k`).
 * @returns which address matched and its public key, or null.
 */
export function recoverEs256k(
  signingInput: string,
  signature: Uint8Array,
  addresses: string[],
): Es256kRecoveryMatch | null {
  const digest = createHash("sha256").update(signingInput, "utf8").digest();
  const r = hexlify(signature.subarray(0, 32));
  const s = hexlify(signature.subarray(32));
  const recovered: { address: string; publicKeyHex: string }[] = [];
  for (const v of [27, 28]) {
    try {
      const publicKey = SigningKey.recoverPublicKey(digest, Signature.from({ r, s, v }));
      recovered.push({ address: computeAddress(publicKey).toLowerCase(), publicKeyHex: publicKey.slice(2) });
    } catch {
      // no point for this recovery id
    }
  }
  for (const [index, address] of addresses.entries()) {
    const match = recovered.find((k) => k.address === address.toLowerCase());
    if (match) return { index, publicKeyHex: match.publicKeyHex };
  }
  return null;
}
