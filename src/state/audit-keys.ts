import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from "node:crypto";
import {
  KEYRING_KDF,
  kdfProblem,
  type ScryptParams,
  unwrapDataKey,
  type WrappedKey,
  wrapDataKey,
} from "../../agent/keyring.ts";
import { addressOfKey } from "../chain/actions/audit-anchors.ts";
import { KPartyError } from "../errors/index.ts";
import { tokenKeyId } from "./keys.ts";

/**
 * The gateway's audit keys: one Ed25519 key that signs every audit record (so an auditor holding
 * only its public half can check records, and cannot forge them) and one secp256k1 account that
 * anchors the chain's head on chain (contracts/AuditAnchors.sol; its address must hold a little
 * ether). One pair per deployment, created by the first gateway that needs it and shared by
 * every replica through the state (embedded file or PostgreSQL). The private halves are stored
 * encrypted: the 64 bytes (Ed25519 seed, then the secp256k1 key) wrapped with AES-256-GCM under
 * scrypt of the gateway's passphrase (`wrapDataKey`, the keyring's format and bounds), the label
 * naming the key id and the account as associated data (a sealed pair moved under another key id
 * does not open). The public halves are stored in the clear: verification needs no secret.
 *
 * The log id on chain is the key id's 32 bytes (`0x…`): a chain that is re-signed under another
 * key lands in another log, which `kparty audit verify` reports.
 */

/** The public half of the audit keys (what an auditor needs). */
export interface AuditPublicKey {
  /** RFC 7638 thumbprint of the Ed25519 key (base64url): records name it. */
  kid: string;
  /** The Ed25519 public key (JWK `x`, base64url). */
  x: string;
  /** The anchoring account (0x address). */
  anchorer: string;
  /** The log id on chain: the kid's 32 bytes as 0x hex. */
  log: string;
}

/** The audit keys, unlocked. */
export interface AuditKeys extends AuditPublicKey {
  signingKey: KeyObject;
  publicKey: KeyObject;
  /** The anchoring account's private key (0x hex): never logged. */
  anchorKey: string;
}

/** The stored row (public halves, and the wrapped private ones as JSON). */
export interface AuditKeyRow {
  kid: string;
  x: string;
  anchorer: string;
  /** {@link WrappedKey} as JSON. */
  sealed: string;
  createdAt: number;
}

/** The audit-key table of a backend. */
export interface AuditKeyRows {
  read(): Promise<AuditKeyRow | null>;
  /** Stores `row` unless a row is stored (replicas starting together agree on one); the stored row. */
  insertIfAbsent(row: AuditKeyRow): Promise<AuditKeyRow>;
}

export interface AuditKeyStore {
  /** The deployment's audit keys, created on first use (once, whatever the replicas). */
  load(): Promise<AuditKeys>;
}

export interface AuditKeyStoreOptions {
  /** The gateway's passphrase (at least 8 characters, the same on every replica). */
  secret: string;
  /** scrypt parameters of a new pair (default the keyring's); tests only. */
  kdf?: ScryptParams;
  now?: () => number;
}

const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const WRAPPED_HEX: readonly (readonly [keyof WrappedKey, number])[] = [
  ["salt", 16],
  ["nonce", 12],
  ["wrappedKey", 64],
  ["tag", 16],
];

const labelOf = (kid: string, anchorer: string) => `kparty audit keys v1 ${kid} ${anchorer.toLowerCase()}`;

/** The 0x log id of a key id (its 32 bytes). */
export function auditLogId(kid: string): string {
  return `0x${Buffer.from(kid, "base64url").toString("hex")}`;
}

/** The public key of a stored row, checked. */
export function auditPublicKeyOf(row: { kid: string; x: string; anchorer: string }): AuditPublicKey {
  return { kid: row.kid, x: row.x, anchorer: row.anchorer, log: auditLogId(row.kid) };
}

function damaged(where: string, message: string): KPartyError {
  return new KPartyError("config_invalid", `the audit keys in ${where}: ${message}`, {
    details: { hint: "the stored audit keys are damaged or were edited; restore them from a backup" },
  });
}

async function newRow(secret: string, kdf: ScryptParams, now: number): Promise<AuditKeyRow> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32);
  const anchorKey = randomBytes(32);
  const kid = tokenKeyId(privateKey);
  const anchorer = addressOfKey(`0x${anchorKey.toString("hex")}`);
  const secretBytes = Buffer.concat([seed, anchorKey]);
  const wrapped = await wrapDataKey(secret, secretBytes, kdf, labelOf(kid, anchorer));
  secretBytes.fill(0);
  anchorKey.fill(0);
  const { x } = createPublicKey(privateKey).export({ format: "jwk" });
  return { kid, x: x as string, anchorer, sealed: JSON.stringify(wrapped), createdAt: now };
}

/** The wrapped record of a row, its parameters and lengths checked before scrypt runs. */
function wrappedOf(row: AuditKeyRow, where: string): WrappedKey {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(row.sealed) as Record<string, unknown>;
  } catch {
    throw damaged(where, "the sealed keys are not JSON");
  }
  if (typeof record !== "object" || record === null)
    throw damaged(where, "the sealed keys are not an object");
  const problem = kdfProblem(record.N, record.r, record.p);
  if (problem) throw damaged(where, problem.message);
  for (const [field, bytes] of WRAPPED_HEX) {
    const value = record[field];
    if (typeof value !== "string" || !new RegExp(`^[0-9a-f]{${bytes * 2}}$`, "i").test(value))
      throw damaged(where, `${field} must be ${bytes} bytes as hex`);
  }
  return record as unknown as WrappedKey;
}

async function unlock(row: AuditKeyRow, secret: string, where: string): Promise<AuditKeys> {
  const bytes = await unwrapDataKey(secret, wrappedOf(row, where), labelOf(row.kid, row.anchorer));
  if (bytes === null) {
    throw new KPartyError("wrong_passphrase", `the passphrase does not unlock the audit keys in ${where}`, {
      details: {
        hint: "every gateway replica of a deployment must use the same passphrase (KPARTY_PASSPHRASE)",
      },
    });
  }
  const signingKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, bytes.subarray(0, 32)]),
    format: "der",
    type: "pkcs8",
  });
  const anchorKey = `0x${bytes.subarray(32).toString("hex")}`;
  bytes.fill(0);
  if (tokenKeyId(signingKey) !== row.kid || addressOfKey(anchorKey) !== row.anchorer)
    throw damaged(where, "the sealed keys are not the ones their kid and address name");
  return { ...auditPublicKeyOf(row), signingKey, publicKey: createPublicKey(signingKey), anchorKey };
}

/** The audit-key store of a backend's table (created on the first `load`). */
export function auditKeyStore(
  rows: AuditKeyRows,
  options: AuditKeyStoreOptions & { where: string },
): AuditKeyStore {
  if (typeof options.secret !== "string" || options.secret.length < 8)
    throw new TypeError("the audit keys' secret must be a string of at least 8 characters");
  const kdf = options.kdf ?? KEYRING_KDF;
  const problem = kdfProblem(kdf.N, kdf.r, kdf.p);
  if (problem) throw new TypeError(`audit key kdf: ${problem.message}`);
  const now = options.now ?? Date.now;
  let loaded: Promise<AuditKeys> | null = null;
  return {
    load() {
      loaded ??= (async () => {
        const row =
          (await rows.read()) ?? (await rows.insertIfAbsent(await newRow(options.secret, kdf, now())));
        return unlock(row, options.secret, options.where);
      })().catch((error: unknown) => {
        loaded = null;
        throw error;
      });
      return loaded;
    },
  };
}

/** What a record's signature covers: its hash, domain-separated. */
function signedBytes(hash: string): Buffer {
  return Buffer.from(`kparty audit record v1 ${hash}`, "utf8");
}

/** Signs a record hash (Ed25519, base64url). */
export function signAuditHash(key: KeyObject, hash: string): string {
  return sign(null, signedBytes(hash), key).toString("base64url");
}

/** Whether `sig` is `key`'s signature of `hash`. */
export function verifyAuditHash(key: KeyObject, hash: string, sig: string): boolean {
  try {
    return verify(null, signedBytes(hash), key, Buffer.from(sig, "base64url"));
  } catch {
    return false;
  }
}

/** The public key object of a stored `x`. */
export function auditVerifyKey(x: string): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
}
