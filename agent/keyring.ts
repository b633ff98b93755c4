import { createHmac, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { KPartyError } from "../src/errors/index.ts";
import { writeFileAtomic } from "../src/util/atomic-file.ts";

interface KeyringFile {
  version: 1;
  kdf: "scrypt";
  N: number;
  r: number;
  p: number;
  salt: string;
  check: string;
}

const PARAMS = { N: 2 ** 15, r: 8, p: 1 } as const;

function derive(
  passphrase: string,
  salt: Buffer,
  params: { N: number; r: number; p: number },
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(passphrase, salt, 32, { ...params, maxmem: 128 * params.N * params.r * 2 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

function checkValue(key: Buffer): Buffer {
  return createHmac("sha256", key).update("kparty keyring check v1").digest();
}

/**
 * Derives the 32-byte key that encrypts the agent's private keys at rest (Veramo
 * `SecretBox`) from a passphrase, with scrypt and a random salt kept in `file`. The file
 * also holds a check value so a wrong passphrase is refused with `wrong_passphrase`
 * before any key is touched. The passphrase and the key are never written anywhere.
 *
 * @returns the key as 64 hex characters.
 * @example
 * ```ts
 * const secretKey = await openKeyring(".kparty/issuer/keyring.json", process.env.KPARTY_PASSPHRASE!);
 * ```
 */
export async function openKeyring(file: string, passphrase: string): Promise<string> {
  if (typeof passphrase !== "string" || passphrase.length < 8) {
    throw new TypeError("the key passphrase must be a string of at least 8 characters");
  }
  let existing: KeyringFile | undefined;
  try {
    existing = JSON.parse(await readFile(file, "utf8")) as KeyringFile;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  if (existing) {
    const key = await derive(passphrase, Buffer.from(existing.salt, "hex"), existing);
    const expected = Buffer.from(existing.check, "hex");
    const actual = checkValue(key);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
      throw new KPartyError("wrong_passphrase", "the passphrase does not unlock this agent's keys", {
        details: { keyring: file },
      });
    }
    return key.toString("hex");
  }
  const salt = randomBytes(16);
  const key = await derive(passphrase, salt, PARAMS);
  const record: KeyringFile = {
    version: 1,
    kdf: "scrypt",
    ...PARAMS,
    salt: salt.toString("hex"),
    check: checkValue(key).toString("hex"),
  };
  await writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`, 0o600);
  return key.toString("hex");
}
