import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  randomBytes,
} from "node:crypto";
import {
  KEYRING_KDF,
  kdfProblem,
  type ScryptParams,
  unwrapDataKey,
  type WrappedKey,
  wrapDataKey,
} from "../../agent/keyring.ts";
import { KPartyError } from "../errors/index.ts";
import { newTokenKey, tokenKeyId } from "./keys.ts";
import type { StoredTokenKey, TokenKeyStore } from "./port.ts";

/**
 * Access-token keys at rest, encrypted. The deployment has one random 32-byte data key, kept
 * wrapped (AES-256-GCM) by a key-encryption key that scrypt derives from the gateway's secret
 * (its passphrase) with {@link KEYRING_KDF} and a random salt: the format and bounds of the
 * agent's `keyring.json` (see `agent/keyring.ts`). Each private key is stored as its PKCS #8
 * encoding encrypted under the data key with AES-256-GCM, a fresh 12-byte nonce, and its `kid`
 * as associated data (a sealed key moved to another `kid` does not open). The public key (`x`)
 * is stored in the clear, so the JWKS needs no secret. A wrong secret fails the data key's
 * authentication and is refused with `wrong_passphrase` before any token key is read.
 */

const SALT_BYTES = 16;
const NONCE_BYTES = 12;
const KEY_BYTES = 32;
const TAG_BYTES = 16;

/** The wrapped data key, stored as JSON in one row. */
interface WrappedDataKey extends ScryptParams {
  version: 1;
  kdf: "scrypt";
  salt: string;
  cipher: "aes-256-gcm";
  nonce: string;
  wrappedKey: string;
  tag: string;
}

const WRAPPED_FIELDS = ["version", "kdf", "N", "r", "p", "salt", "cipher", "nonce", "wrappedKey", "tag"];

/** One stored token key: public half in the clear, private half sealed. */
export interface SealedTokenKeyRow {
  kid: string;
  /** The Ed25519 public key (JWK `x`, base64url). */
  x: string;
  /** AES-256-GCM nonce, hex. */
  nonce: string;
  /** Ciphertext of the PKCS #8 DER followed by the 16-byte tag, hex. */
  sealed: string;
  createdAt: number;
}

/** What the stored token keys look like (read outside any transaction). */
export interface SealedSnapshot {
  /** The wrapped data key's JSON, or null before the first key. */
  kek: string | null;
  keys: SealedTokenKeyRow[];
  /** Keys stored unencrypted by a development build (table `…token_keys_unencrypted`). */
  unencrypted: number;
}

/** The tables of one backend, each method atomic. */
export interface SealedTokenKeyRows {
  read(): Promise<SealedSnapshot>;
  /** Stores the wrapped data key unless one is stored already; the snapshot after. */
  putKekIfAbsent(kek: string): Promise<SealedSnapshot>;
  /** Stores `row` unless a key is stored already (replicas starting together agree on one). */
  insertFirst(row: SealedTokenKeyRow): Promise<void>;
  /** Stores `row` and deletes every key stored unencrypted. */
  insertDiscardingUnencrypted(row: SealedTokenKeyRow): Promise<void>;
}

/** Options of a backend's `tokenKeys`. */
export interface TokenKeyStoreOptions {
  /**
   * The gateway's secret (its passphrase, at least 8 characters; the same on every replica of
   * a deployment): it encrypts the stored private keys. Without it the embedded backend keeps
   * one fresh key in memory (tokens end with the process) and the PostgreSQL backend refuses.
   */
  secret?: string;
  /**
   * scrypt parameters of a new data key (default {@link KEYRING_KDF}), within the keyring's
   * bounds. For test fixtures only: no kparty flag or setting sets it.
   */
  kdf?: ScryptParams;
  /** Clock for `createdAt` (default `Date.now`). */
  now?: () => number;
}

/** Checks a secret and the KDF parameters (misconfiguration: `TypeError`). */
export function checkSecret(options: TokenKeyStoreOptions): { secret: string; kdf: ScryptParams } {
  if (typeof options.secret !== "string" || options.secret.length < 8)
    throw new TypeError("tokenKeySecret must be a string of at least 8 characters");
  const kdf = options.kdf ?? KEYRING_KDF;
  const problem = kdfProblem(kdf.N, kdf.r, kdf.p);
  if (problem) throw new TypeError(`token key kdf: ${problem.message}`);
  return { secret: options.secret, kdf };
}

function damaged(where: string, message: string, cause?: unknown): KPartyError {
  return new KPartyError("config_invalid", `the access-token keys in ${where}: ${message}`, {
    details: { hint: "the stored token keys are damaged or were edited; restore them from a backup" },
    ...(cause === undefined ? {} : { cause }),
  });
}

const TOKEN_KEYS_LABEL = "kparty token keys v1";

/** A fresh data key, wrapped under `secret` (as the agent's keyring wraps its own). */
async function newDataKey(secret: string, kdf: ScryptParams): Promise<{ text: string; dataKey: Buffer }> {
  const dataKey = randomBytes(KEY_BYTES);
  const { N, r, p, salt, nonce, wrappedKey, tag } = await wrapDataKey(secret, dataKey, kdf, TOKEN_KEYS_LABEL);
  const record: WrappedDataKey = {
    version: 1,
    kdf: "scrypt",
    N,
    r,
    p,
    salt,
    cipher: "aes-256-gcm",
    nonce,
    wrappedKey,
    tag,
  };
  return { text: JSON.stringify(record), dataKey };
}

function hexOf(record: Record<string, unknown>, field: string, bytes: number, where: string): Buffer {
  const value = record[field];
  if (typeof value !== "string" || value.length !== bytes * 2 || !/^[0-9a-f]+$/i.test(value))
    throw damaged(where, `${field} must be ${bytes} bytes as hex`);
  return Buffer.from(value, "hex");
}

/** Unwraps the data key: `config_invalid` for a damaged record, `wrong_passphrase` for another secret. */
async function openDataKey(text: string, secret: string, where: string): Promise<Buffer> {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(text) as Record<string, unknown>;
  } catch (cause) {
    throw damaged(where, "the wrapped data key is not JSON", cause);
  }
  if (typeof record !== "object" || record === null || Array.isArray(record))
    throw damaged(where, "the wrapped data key is not a JSON object");
  const unknown = Object.keys(record).find((k) => !WRAPPED_FIELDS.includes(k));
  if (unknown !== undefined) throw damaged(where, `the wrapped data key has an unknown field ${unknown}`);
  if (record.version !== 1 || record.kdf !== "scrypt" || record.cipher !== "aes-256-gcm")
    throw damaged(where, "the wrapped data key has an unknown version, kdf or cipher");
  const problem = kdfProblem(record.N, record.r, record.p);
  if (problem) throw damaged(where, problem.message); // checked before scrypt runs
  for (const [field, bytes] of [
    ["salt", SALT_BYTES],
    ["nonce", NONCE_BYTES],
    ["wrappedKey", KEY_BYTES],
    ["tag", TAG_BYTES],
  ] as const) {
    hexOf(record, field, bytes, where);
  }
  const dataKey = await unwrapDataKey(secret, record as unknown as WrappedKey, TOKEN_KEYS_LABEL);
  if (dataKey === null) {
    throw new KPartyError(
      "wrong_passphrase",
      `the passphrase does not unlock the access-token keys in ${where}`,
      {
        details: {
          hint: "every gateway replica of a deployment must use the same passphrase (KPARTY_PASSPHRASE)",
        },
      },
    );
  }
  return dataKey;
}

/** Seals a private key under the data key (fresh nonce, `kid` as associated data). */
export function sealTokenKey(dataKey: Buffer, key: StoredTokenKey): SealedTokenKeyRow {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", dataKey, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(key.kid, "utf8"));
  const der = key.privateKey.export({ format: "der", type: "pkcs8" });
  const sealed = Buffer.concat([cipher.update(der), cipher.final(), cipher.getAuthTag()]);
  der.fill(0);
  const { x } = createPublicKey(key.privateKey).export({ format: "jwk" });
  return {
    kid: key.kid,
    x: x as string,
    nonce: nonce.toString("hex"),
    sealed: sealed.toString("hex"),
    createdAt: key.createdAt,
  };
}

function unseal(dataKey: Buffer, row: SealedTokenKeyRow, where: string): StoredTokenKey {
  let privateKey: KeyObject;
  try {
    const sealed = Buffer.from(row.sealed, "hex");
    const decipher = createDecipheriv("aes-256-gcm", dataKey, Buffer.from(row.nonce, "hex"), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(Buffer.from(row.kid, "utf8"));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    const der = Buffer.concat([
      decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]);
    privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    der.fill(0);
  } catch (cause) {
    throw damaged(where, `key ${row.kid} does not decrypt`, cause);
  }
  if (privateKey.asymmetricKeyType !== "ed25519" || tokenKeyId(privateKey) !== row.kid)
    throw damaged(where, `key ${row.kid} is not the Ed25519 key its kid names`);
  return { kid: row.kid, privateKey, createdAt: row.createdAt };
}

/**
 * The token-key store of a backend whose tables hold sealed keys (see the top of this file).
 * The data key is unwrapped once per store (scrypt runs once per process), then each load only
 * decrypts the rows. Keys stored unencrypted by a development build are refused until
 * `kparty gateway keys rotate` (`add`) discards them: they may have been read, so they are not
 * kept.
 */
export function sealedTokenKeys(
  rows: SealedTokenKeyRows,
  options: TokenKeyStoreOptions & { where: string },
): TokenKeyStore {
  const { secret, kdf } = checkSecret(options);
  const now = options.now ?? Date.now;
  const where = options.where;
  let unlocked: { text: string; dataKey: Buffer } | null = null;

  /** The snapshot with a data key (created with the first key), and the data key. */
  async function unlock(): Promise<{ snap: SealedSnapshot; dataKey: Buffer }> {
    let snap = await rows.read();
    if (snap.kek === null) {
      const fresh = await newDataKey(secret, kdf);
      snap = await rows.putKekIfAbsent(fresh.text);
      if (snap.kek === fresh.text) unlocked = fresh;
    }
    const text = snap.kek;
    if (text === null) throw damaged(where, "the wrapped data key was not stored");
    if (unlocked?.text !== text) unlocked = { text, dataKey: await openDataKey(text, secret, where) };
    return { snap, dataKey: unlocked.dataKey };
  }

  return {
    async load() {
      let { snap, dataKey } = await unlock();
      if (snap.unencrypted > 0) {
        throw new KPartyError(
          "config_invalid",
          `${where} holds ${snap.unencrypted} access-token key(s) stored unencrypted by a development build of kparty`,
          {
            details: { hint: "run `kparty gateway keys rotate`: it discards them and adds an encrypted key" },
          },
        );
      }
      if (snap.keys.length === 0) {
        await rows.insertFirst(sealTokenKey(dataKey, newTokenKey(now())));
        snap = await rows.read();
      }
      return snap.keys.map((row) => unseal(dataKey, row, where));
    },
    async add() {
      const { snap, dataKey } = await unlock();
      const newest = snap.keys.at(-1)?.createdAt ?? 0;
      const key = newTokenKey(Math.max(now(), newest + 1));
      await rows.insertDiscardingUnencrypted(sealTokenKey(dataKey, key));
      return key;
    },
  };
}

/** Rows as the backends read them (`x` checked against the sealed key when it is opened). */
export function rowOf(r: {
  kid: string;
  x: string;
  nonce: string;
  sealed: string;
  created_at: unknown;
}): SealedTokenKeyRow {
  return { kid: r.kid, x: r.x, nonce: r.nonce, sealed: r.sealed, createdAt: Number(r.created_at) };
}
