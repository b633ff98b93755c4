import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  scrypt,
  timingSafeEqual,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { KPartyError } from "../src/errors/index.ts";
import { writeFileAtomic } from "../src/util/atomic-file.ts";

/** scrypt's cost parameters. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/**
 * The scrypt parameters of the keyrings this version writes: 128 MiB of memory
 * (128 · N · r bytes) per unlock. A keyring with a smaller N, or in the first format, is
 * re-encrypted with these at its next unlock.
 */
export const KEYRING_KDF: Readonly<ScryptParams> = Object.freeze({ N: 2 ** 17, r: 8, p: 1 });

/**
 * What a keyring file may ask scrypt for. Parameters come from disk, so a damaged or edited
 * file could otherwise make an unlock run for hours, exhaust memory, or pass a weak N on to
 * a re-encryption; anything outside these bounds is refused (`config_invalid`) before scrypt
 * runs.
 */
export const KEYRING_KDF_BOUNDS = Object.freeze({
  /** N is a power of two within [2^15, 2^20]. */
  N: Object.freeze({ min: 2 ** 15, max: 2 ** 20 }),
  r: Object.freeze({ min: 8, max: 16 }),
  p: Object.freeze({ min: 1, max: 4 }),
  /** scrypt's memory, 128 · N · r bytes, at most 1 GiB (so N = 2^20 only with r = 8). */
  maxMemoryBytes: 2 ** 30,
});

const SALT_BYTES = 16;
const NONCE_BYTES = 12;
const KEY_BYTES = 32;
const TAG_BYTES = 16;
const CHECK_BYTES = 32;

/** First format (kparty before issue 35): the data key is scrypt's output itself. */
interface KeyringV1 extends ScryptParams {
  version: 1;
  kdf: "scrypt";
  salt: string;
  /** HMAC-SHA256(key, "kparty keyring check v1"): tells a wrong passphrase apart. */
  check: string;
}

/** Current format: a random data key, wrapped (AES-256-GCM) by a key scrypt derives. */
interface KeyringV2 extends ScryptParams {
  version: 2;
  kdf: "scrypt";
  salt: string;
  cipher: "aes-256-gcm";
  nonce: string;
  wrappedKey: string;
  tag: string;
}

type KeyringFile = KeyringV1 | KeyringV2;

const FIELDS: Record<1 | 2, readonly string[]> = {
  1: ["version", "kdf", "N", "r", "p", "salt", "check"],
  2: ["version", "kdf", "N", "r", "p", "salt", "cipher", "nonce", "wrappedKey", "tag"],
};

function invalid(file: string, message: string, field?: string, cause?: unknown): KPartyError {
  return new KPartyError("config_invalid", `keyring ${file}: ${message}`, {
    details: {
      keyring: file,
      ...(field ? { field } : {}),
      hint: "the keyring file is damaged or was edited; restore this data dir's keyring.json from a backup",
    },
    ...(cause === undefined ? {} : { cause }),
  });
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

function integerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max;
}

function checkHex(file: string, record: Record<string, unknown>, field: string, bytes: number): void {
  const value = record[field];
  if (typeof value !== "string" || value.length !== bytes * 2 || !/^[0-9a-f]+$/i.test(value)) {
    throw invalid(file, `${field} must be ${bytes} bytes as ${bytes * 2} hex digits`, field);
  }
}

/**
 * What is wrong with scrypt parameters, measured against {@link KEYRING_KDF_BOUNDS} (also the
 * bounds of the gateway's token-key encryption, `src/state/sealed.ts`).
 */
export function kdfProblem(
  N: unknown,
  r: unknown,
  p: unknown,
): { field: "N" | "r" | "p"; message: string } | undefined {
  const bounds = KEYRING_KDF_BOUNDS;
  if (!integerIn(N, bounds.N.min, bounds.N.max) || !Number.isInteger(Math.log2(N))) {
    return { field: "N", message: `N must be a power of two within [2^15, 2^20], not ${shown(N)}` };
  }
  if (!integerIn(r, bounds.r.min, bounds.r.max)) {
    return {
      field: "r",
      message: `r must be an integer within [${bounds.r.min}, ${bounds.r.max}], not ${shown(r)}`,
    };
  }
  if (!integerIn(p, bounds.p.min, bounds.p.max)) {
    return {
      field: "p",
      message: `p must be an integer within [${bounds.p.min}, ${bounds.p.max}], not ${shown(p)}`,
    };
  }
  if (128 * N * r > bounds.maxMemoryBytes) {
    return { field: "r", message: `N = ${N} with r = ${r} needs more than 1 GiB (128 · N · r bytes)` };
  }
  return undefined;
}

/**
 * Checks a keyring file's content against its format and {@link KEYRING_KDF_BOUNDS}; throws
 * `config_invalid` (with `details.field`) for anything else. Runs no KDF.
 */
function parseKeyring(text: string, file: string): KeyringFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw invalid(file, "is not JSON", undefined, cause);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(file, "is not a JSON object");
  }
  const record = value as Record<string, unknown>;
  const version = record.version;
  if (version !== 1 && version !== 2) {
    throw invalid(file, `has an unknown version ${shown(version)}`, "version");
  }
  const unknown = Object.keys(record).find((key) => !FIELDS[version].includes(key));
  if (unknown !== undefined) throw invalid(file, `has an unknown field ${shown(unknown)}`, unknown);
  if (record.kdf !== "scrypt") throw invalid(file, `kdf must be "scrypt", not ${shown(record.kdf)}`, "kdf");
  const problem = kdfProblem(record.N, record.r, record.p);
  if (problem) throw invalid(file, problem.message, problem.field);
  checkHex(file, record, "salt", SALT_BYTES);
  if (version === 1) {
    checkHex(file, record, "check", CHECK_BYTES);
    return record as unknown as KeyringV1;
  }
  if (record.cipher !== "aes-256-gcm") {
    throw invalid(file, `cipher must be "aes-256-gcm", not ${shown(record.cipher)}`, "cipher");
  }
  checkHex(file, record, "nonce", NONCE_BYTES);
  checkHex(file, record, "wrappedKey", KEY_BYTES);
  checkHex(file, record, "tag", TAG_BYTES);
  return record as unknown as KeyringV2;
}

/** scrypt with `maxmem` at twice its 128 · N · r bytes (256 MiB for {@link KEYRING_KDF}); 32 bytes. */
export function derive(passphrase: string, salt: Buffer, { N, r, p }: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(passphrase, salt, KEY_BYTES, { N, r, p, maxmem: 2 * 128 * N * r }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

function wrongPassphrase(file: string): KPartyError {
  return new KPartyError("wrong_passphrase", "the passphrase does not unlock this agent's keys", {
    details: { keyring: file },
  });
}

/** The parts of a data key wrapped under a passphrase (see {@link wrapDataKey}), hex. */
export interface WrappedKey extends ScryptParams {
  salt: string;
  nonce: string;
  wrappedKey: string;
  tag: string;
}

/** The wrapped key's additional data: what it is (`label`) and the KDF input, bound to the ciphertext. */
function additionalData(label: string, { N, r, p }: ScryptParams, salt: string): Buffer {
  return Buffer.from(`${label} scrypt N=${N} r=${r} p=${p} salt=${salt.toLowerCase()}`);
}

/**
 * Wraps `dataKey` (AES-256-GCM) under a key scrypt derives from `passphrase` with `kdf`, a fresh
 * salt and nonce; `label` names what is wrapped and is authenticated with it. The keyring and
 * the gateway's token keys both keep their data key this way.
 */
export async function wrapDataKey(
  passphrase: string,
  dataKey: Buffer,
  kdf: ScryptParams,
  label: string,
): Promise<WrappedKey> {
  const salt = randomBytes(SALT_BYTES).toString("hex");
  const kek = await derive(passphrase, Buffer.from(salt, "hex"), kdf);
  try {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv("aes-256-gcm", kek, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(additionalData(label, kdf, salt));
    const wrappedKey = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    return {
      N: kdf.N,
      r: kdf.r,
      p: kdf.p,
      salt,
      nonce: nonce.toString("hex"),
      wrappedKey: wrappedKey.toString("hex"),
      tag: cipher.getAuthTag().toString("hex"),
    };
  } finally {
    kek.fill(0);
  }
}

/**
 * The data key {@link wrapDataKey} wrapped, or null when the tag does not verify (another
 * passphrase, or edited data). Its parameters must have been checked (`kdfProblem`, lengths).
 */
export async function unwrapDataKey(
  passphrase: string,
  wrapped: WrappedKey,
  label: string,
): Promise<Buffer | null> {
  const kek = await derive(passphrase, Buffer.from(wrapped.salt, "hex"), wrapped);
  try {
    const decipher = createDecipheriv("aes-256-gcm", kek, Buffer.from(wrapped.nonce, "hex"), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(additionalData(label, wrapped, wrapped.salt));
    decipher.setAuthTag(Buffer.from(wrapped.tag, "hex"));
    return Buffer.concat([decipher.update(Buffer.from(wrapped.wrappedKey, "hex")), decipher.final()]);
  } catch {
    return null;
  } finally {
    kek.fill(0);
  }
}

const KEYRING_LABEL = "kparty keyring v2";

async function unlockV1(file: string, record: KeyringV1, passphrase: string): Promise<Buffer> {
  const key = await derive(passphrase, Buffer.from(record.salt, "hex"), record);
  const check = createHmac("sha256", key).update("kparty keyring check v1").digest();
  if (!timingSafeEqual(check, Buffer.from(record.check, "hex"))) throw wrongPassphrase(file);
  return key;
}

async function unlockV2(file: string, record: KeyringV2, passphrase: string): Promise<Buffer> {
  const dataKey = await unwrapDataKey(passphrase, record, KEYRING_LABEL);
  // the tag does not verify: another passphrase (or an edited file)
  if (dataKey === null) throw wrongPassphrase(file);
  return dataKey;
}

/** `dataKey` wrapped under `passphrase` with a fresh salt and nonce and scrypt with `kdf`. */
async function wrap(passphrase: string, dataKey: Buffer, kdf: ScryptParams): Promise<KeyringV2> {
  const { N, r, p, salt, nonce, wrappedKey, tag } = await wrapDataKey(
    passphrase,
    dataKey,
    kdf,
    KEYRING_LABEL,
  );
  return { version: 2, kdf: "scrypt", N, r, p, salt, cipher: "aes-256-gcm", nonce, wrappedKey, tag };
}

function serialize(record: KeyringV2): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

export interface KeyringOptions {
  /**
   * The scrypt parameters a new keyring gets and a weaker one is raised to (default
   * {@link KEYRING_KDF}), within {@link KEYRING_KDF_BOUNDS} (else `TypeError`). For test
   * fixtures that create many agents only: a lower N makes a stolen keyring cheaper to
   * attack. No configuration file, environment variable or flag of kparty sets it, and a
   * keyring written with a lower N is raised to {@link KEYRING_KDF} at its first unlock
   * without it.
   */
  kdf?: ScryptParams;
}

/**
 * Unlocks the 32-byte key that encrypts the agent's private keys at rest (Veramo
 * `SecretBox`), or creates it. The key is random and kept in `file` wrapped (AES-256-GCM) by
 * a key that scrypt derives from the passphrase with {@link KEYRING_KDF} and a random salt;
 * a wrong passphrase fails the wrap's authentication and is refused with `wrong_passphrase`
 * before any private key is touched. The passphrase and the keys are never written anywhere.
 *
 * The scrypt parameters read from `file` are checked against {@link KEYRING_KDF_BOUNDS}
 * before scrypt runs, and a file that breaks the format or a bound is refused with
 * `config_invalid`. A keyring written with weaker parameters (N below {@link KEYRING_KDF}'s)
 * or in the first format (the key derived directly) is re-encrypted with the current ones
 * at this unlock: the same key, wrapped anew, written to a temporary file and renamed over
 * `file`, so an interruption leaves the old file, which still unlocks.
 *
 * @returns the key as 64 hex characters.
 * @example
 * ```ts
 * const secretKey = await openKeyring(".kparty/issuer/keyring.json", process.env.KPARTY_PASSPHRASE!);
 * ```
 */
export async function openKeyring(
  file: string,
  passphrase: string,
  options: KeyringOptions = {},
): Promise<string> {
  if (typeof passphrase !== "string" || passphrase.length < 8) {
    throw new TypeError("the key passphrase must be a string of at least 8 characters");
  }
  const kdf = options.kdf ?? KEYRING_KDF;
  const problem = kdfProblem(kdf.N, kdf.r, kdf.p);
  if (problem) throw new TypeError(`keyring kdf: ${problem.message}`);
  let text: string | undefined;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  if (text === undefined) {
    const dataKey = randomBytes(KEY_BYTES);
    await writeFileAtomic(file, serialize(await wrap(passphrase, dataKey, kdf)), 0o600);
    return dataKey.toString("hex");
  }
  const record = parseKeyring(text, file);
  const dataKey =
    record.version === 1
      ? await unlockV1(file, record, passphrase)
      : await unlockV2(file, record, passphrase);
  if (record.version === 1 || record.N < kdf.N) {
    await writeFileAtomic(file, serialize(await wrap(passphrase, dataKey, kdf)), 0o600);
  }
  return dataKey.toString("hex");
}
