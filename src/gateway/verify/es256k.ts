import { createECDH, createHash, createPublicKey, ECDH, type KeyObject, verify } from "node:crypto";
import { hexlify, keccak256, SigningKey } from "ethers";
import { LruCache } from "../../util/lru.ts";
import { threadPoolSize } from "../../util/thread-pool.ts";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_N = N >> 1n;

/** A key a DID document lets sign: a secp256k1 public key, or an Ethereum address to recover and match. */
export type Es256kKey = { publicKeyHex: string } | { address: string };

/** OpenSSL key objects of the public keys seen (least recently used out). */
const keyObjects = new LruCache<string, KeyObject>({ maxEntries: 10_000 });

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
 * public key (`recoverEs256k`, about 1.5 ms) and learning it.
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
  const wanted = addresses.map((k) => k.address);
  const failed = recoveryKey(signingInput, signature, wanted);
  if (failedRecoveries.has(failed)) return null;
  const match = recoverEs256k(signingInput, signature, wanted);
  if (!match) failedRecoveries.set(failed, true);
  return match ? learn(addresses, match) : null;
}

/**
 * Recoveries that matched none of their addresses. A recovery is a pure function of the
 * signing input, the signature and the addresses, so the same forgery presented again costs a
 * hash, not another recovery (least recently used out).
 */
const failedRecoveries = new LruCache<string, true>({ maxEntries: 10_000 });

function recoveryKey(signingInput: string, signature: Uint8Array, addresses: string[]): string {
  const fields = [
    signingInput,
    Buffer.from(signature).toString("base64"),
    addresses.map((a) => a.toLowerCase()),
  ];
  return createHash("sha256").update(JSON.stringify(fields)).digest("base64");
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
  const failed = recoveryKey(signingInput, signature, wanted);
  if (failedRecoveries.has(failed)) return null;
  const match = recover
    ? await recover(signingInput, signature, wanted)
    : recoverEs256k(signingInput, signature, wanted);
  if (!match) failedRecoveries.set(failed, true);
  return match ? learn(addresses, match) : null;
}

/** Public keys recovered from valid signatures and matched to an address (address → key; least recently used out). */
const learnedKeys = new LruCache<string, string>({ maxEntries: 10_000 });

function learn(addresses: { address: string }[], match: Es256kRecoveryMatch): Es256kKey | null {
  const key = addresses[match.index];
  if (!key) return null;
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

/**
 * Checks on libuv's thread pool at once, at most: eight per thread (`UV_THREADPOOL_SIZE`; the
 * kparty command sets one per core, libuv's default is 4); the others wait their turn here.
 * Enough that a thread which ends a check finds the next one queued while the event loop is
 * busy elsewhere (an audit sync, a collection): a thread that runs out sleeps until the loop
 * hands it one, and waking it can take the loop's core. Bounded, because the pool serves first
 * come, first served, and the audit log syncs on it while the disk is slow: a sync then waits
 * for at most eight check times (about 2 ms) rather than for every check the gateway holds.
 * docs/performance.md, 2 threads, sixteen interleaved runs each: c64 at 82-110% of the verify
 * ceiling with eight per thread, 53-77% with two; the price, a longer tail at half the peak
 * rate (p99 4.5-36 ms, median of the runs 6.7, against 3.3-15 ms, median 4.3).
 */
const maxChecks = 8 * threadPoolSize();
let checking = 0;
const waitingChecks: (() => void)[] = [];

async function verifyWithAsync(publicKeyHex: string, data: Buffer, signature: Uint8Array): Promise<boolean> {
  let key: KeyObject;
  try {
    key = keyObject(publicKeyHex);
  } catch {
    return false; // not a valid secp256k1 public key
  }
  // a check that ends hands its place to the next one waiting
  if (checking < maxChecks) checking += 1;
  else await new Promise<void>((resolve) => waitingChecks.push(resolve));
  try {
    return await new Promise<boolean>((resolve) =>
      verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, signature, (error, valid) =>
        resolve(!error && valid),
      ),
    );
  } finally {
    const next = waitingChecks.shift();
    if (next) next();
    else checking -= 1;
  }
}

/** The field prime of secp256k1. */
const P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/** a⁻¹ mod m (m prime, a not a multiple of m), by the extended Euclidean algorithm. */
function invert(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0, m);
}

function bytes32(x: bigint): Buffer {
  return Buffer.from(x.toString(16).padStart(64, "0"), "hex");
}

/** Curve arithmetic in OpenSSL: only ever used here, synchronously, on one thread at a time. */
const ecdh = createECDH("secp256k1");

/**
 * The public keys an ES256K signature (r, s) over `digest` can come from, one per recovery id
 * (uncompressed, 65 bytes): Q = r⁻¹(s·R − e·G) = u1·G + u2·R with u1 = −e/r and u2 = s/r
 * (mod n), where R is a curve point with x = r. OpenSSL computes both scalar multiplications:
 * u1·G in full (the ECDH public key of u1), u2·R as its x alone (the ECDH secret of u2 and R),
 * which decompresses to u2·R or its negation, so the two keys are u1·G ± u2·R, added here in
 * affine coordinates. The other candidate R (−R) gives the same two keys.
 */
function candidateKeys(digest: Buffer, r: bigint, s: bigint): Buffer[] {
  const e = mod(bigintOf(digest), N);
  const rInverse = invert(r, N);
  const u1 = mod(-e * rInverse, N);
  const u2 = mod(s * rInverse, N);
  let x2: bigint;
  let y2: bigint;
  try {
    ecdh.setPrivateKey(bytes32(u2));
    const x = ecdh.computeSecret(Buffer.concat([Buffer.from([2]), bytes32(r)]));
    const point = ECDH.convertKey(
      Buffer.concat([Buffer.from([2]), x]),
      "secp256k1",
      undefined,
      undefined,
      "uncompressed",
    ) as Buffer;
    [x2, y2] = [bigintOf(point.subarray(1, 33)), bigintOf(point.subarray(33))];
  } catch {
    return []; // r is not the x of a curve point: no key signed this
  }
  const uncompressed = (x: bigint, y: bigint) => Buffer.concat([Buffer.from([4]), bytes32(x), bytes32(y)]);
  if (u1 === 0n) return [uncompressed(x2, y2), uncompressed(x2, P - y2)];
  ecdh.setPrivateKey(bytes32(u1));
  const g = ecdh.getPublicKey();
  const [x1, y1] = [bigintOf(g.subarray(1, 33)), bigintOf(g.subarray(33))];
  if (x1 === x2) return []; // u1·G = ±u2·R: a key at infinity or a doubling, for no real signature
  const dxInverse = invert(x2 - x1, P);
  return [y2, P - y2].map((y) => {
    const slope = mod((y - y1) * dxInverse, P);
    const x3 = mod(slope * slope - x1 - x2, P);
    return uncompressed(x3, mod(slope * (x1 - x3) - y1, P));
  });
}

/**
 * Recovers the public key behind an ES256K signature and matches it to one of `addresses`
 * (see `candidateKeys`; about 1.5 ms, most of it OpenSSL's constant-time scalar
 * multiplications). A key that matches is only returned once OpenSSL has verified the
 * signature with it, so a mistake in the recovery can refuse a signature, never accept one.
 * The signature must be well formed (see `verifyEs256k`).
 * @returns which address matched and its public key, or null.
 */
export function recoverEs256k(
  signingInput: string,
  signature: Uint8Array,
  addresses: string[],
): Es256kRecoveryMatch | null {
  const data = Buffer.from(signingInput, "utf8");
  const digest = createHash("sha256").update(data).digest();
  const wanted = addresses.map((a) => a.toLowerCase());
  const r = bigintOf(signature.subarray(0, 32));
  const s = bigintOf(signature.subarray(32));
  for (const key of candidateKeys(digest, r, s)) {
    const index = wanted.indexOf(`0x${keccak256(key.subarray(1)).slice(-40)}`);
    const publicKeyHex = key.toString("hex");
    if (index >= 0 && verifyWith(publicKeyHex, data, signature)) return { index, publicKeyHex };
  }
  return null;
}
