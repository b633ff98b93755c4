import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { KPartyError } from "../errors/index.ts";
import { type DpopAlgorithm, dpopAlgorithmOf, dpopPublicJwk, jwkThumbprint } from "../gateway/dpop.ts";
import { writeFileAtomic } from "../util/atomic-file.ts";

/** The session's DPoP proof key at rest (`session-key.json`, mode 0600): the private half encrypted. */
interface SessionKeyFile {
  version: 1;
  alg: DpopAlgorithm;
  /** The key's JWK thumbprint: the `cnf.jkt` of the session's token. */
  jkt: string;
  publicJwk: Record<string, unknown>;
  /** The private JWK, encrypted like the agent's keys (Veramo `SecretBox` under the keyring's key). */
  encryptedPrivateJwk: string;
}

/** Proof-key algorithms `kparty present --dpop-alg` offers. */
export const SESSION_KEY_ALGS = ["EdDSA", "ES256"] as const;

export function sessionKeyFile(dataDir: string): string {
  return join(dataDir, "session-key.json");
}

async function secretBox(secretKey: string) {
  const { SecretBox } = await import("@veramo/kms-local");
  return new SecretBox(secretKey);
}

/**
 * Makes a fresh DPoP key for a session. `save` keeps it beside the session — call it once the
 * token bound to it has been granted, so a refused attempt leaves the previous session whole —
 * its private half encrypted with the data dir's keyring key (`secretKey`, from
 * `CliContext.keyringKey`) the way the agent's keys are.
 */
export function createSessionKey(
  dataDir: string,
  secretKey: string,
  alg: (typeof SESSION_KEY_ALGS)[number],
): { key: KeyObject; jkt: string; file: string; save(): Promise<void> } {
  const { privateKey } =
    alg === "EdDSA" ? generateKeyPairSync("ed25519") : generateKeyPairSync("ec", { namedCurve: "P-256" });
  const publicJwk = dpopPublicJwk(privateKey);
  const jkt = jwkThumbprint(publicJwk);
  const file = sessionKeyFile(dataDir);
  return {
    key: privateKey,
    jkt,
    file,
    async save() {
      const box = await secretBox(secretKey);
      const record: SessionKeyFile = {
        version: 1,
        alg: dpopAlgorithmOf(privateKey),
        jkt,
        publicJwk: publicJwk as Record<string, unknown>,
        encryptedPrivateJwk: await box.encrypt(JSON.stringify(privateKey.export({ format: "jwk" }))),
      };
      await writeFileAtomic(file, `${JSON.stringify(record)}\n`, 0o600);
    },
  };
}

/**
 * The session's DPoP key, decrypted; `token_invalid` when there is none or it is not the key
 * the session's token is bound to (`jkt`). A wrong passphrase fails before, in the keyring.
 */
export async function loadSessionKey(dataDir: string, secretKey: string, jkt: string): Promise<KeyObject> {
  let record: SessionKeyFile;
  try {
    record = JSON.parse(await readFile(sessionKeyFile(dataDir), "utf8")) as SessionKeyFile;
  } catch (cause) {
    throw new KPartyError("token_invalid", `no DPoP key for the access token in ${dataDir}`, { cause });
  }
  if (record.jkt !== jkt) {
    throw new KPartyError("token_invalid", `the DPoP key in ${dataDir} is not the access token's`);
  }
  const box = await secretBox(secretKey);
  let key: KeyObject;
  try {
    key = createPrivateKey({ format: "jwk", key: JSON.parse(await box.decrypt(record.encryptedPrivateJwk)) });
  } catch (cause) {
    throw new KPartyError("token_invalid", `the DPoP key in ${dataDir} cannot be decrypted`, { cause });
  }
  if (jwkThumbprint(dpopPublicJwk(key)) !== jkt) {
    throw new KPartyError("token_invalid", `the DPoP key in ${dataDir} is not the access token's`);
  }
  return key;
}
