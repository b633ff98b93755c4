import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { getAddress } from "ethers";
import type { IssuedCredential, IssuedRecord } from "../../agent/index.ts";
import { credentialIdOf, isObject } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import { writeFileAtomic } from "../util/atomic-file.ts";

/**
 * What `credential issue` writes for the holder: the signed credential, the proof of its
 * anchoring and what the holder needs to present it. It holds no secret: presenting it
 * takes the subject DID's key.
 */
export interface CredentialBundle {
  type: "kparty-credential";
  credentialId: string;
  issuer: string;
  issuerAccount: string;
  subject: string;
  statusIndex: number;
  jwt: string;
  anchor: IssuedCredential["anchor"];
}

/** Reads a bundle written by `credential issue`; `invalid_argument` when it is not one. */
export function readBundle(file: string): CredentialBundle {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : "not valid JSON";
    throw new KPartyError("invalid_argument", `credential file ${file}: ${reason}`);
  }
  const b = parsed as Partial<CredentialBundle>;
  if (
    !isObject(parsed) ||
    b.type !== "kparty-credential" ||
    typeof b.jwt !== "string" ||
    typeof b.subject !== "string" ||
    typeof b.issuerAccount !== "string" ||
    !Number.isSafeInteger(b.statusIndex) ||
    !isObject(b.anchor)
  ) {
    throw new KPartyError("invalid_argument", `credential file ${file} is not a kparty credential bundle`);
  }
  let id: string;
  try {
    id = credentialIdOf(b.jwt);
  } catch {
    throw new KPartyError("invalid_argument", `credential file ${file}: the credential is not a JWT`);
  }
  if (id !== b.credentialId) {
    throw new KPartyError(
      "invalid_argument",
      `credential file ${file}: credentialId does not match the credential`,
    );
  }
  return parsed as unknown as CredentialBundle;
}

/** Writes a bundle (mode 0644: it holds no secret), creating its folder. */
export async function writeBundle(file: string, bundle: CredentialBundle): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(bundle, null, 2)}\n`, 0o644);
}

/** The bundle of a credential an issuer's agent recorded; `not_anchored` while it is only signed. */
export function bundleOfRecord(r: IssuedRecord): CredentialBundle {
  if (r.anchoredBlock === null || r.anchorTx === null) {
    throw new KPartyError("not_anchored", `${r.credentialId} is signed but not anchored yet`, {
      details: { hint: "anchor it with `kparty credential resume`" },
    });
  }
  return {
    type: "kparty-credential",
    credentialId: r.credentialId,
    issuer: r.issuer,
    issuerAccount: getAddress(r.issuerAccount),
    subject: r.subject,
    statusIndex: r.statusIndex,
    jwt: r.jwt,
    anchor: {
      blockNumber: r.anchoredBlock,
      transactionHash: r.anchorTx,
      root: r.anchorRoot,
      proof: r.anchorProof,
    },
  };
}

/** A credential id as typed (0x + 64 hex, lower-cased), or the id in the bundle file named. */
export function credentialIdArg(target: string): string {
  if (/^0x[0-9a-fA-F]{64}$/.test(target)) return target.toLowerCase();
  if (target.startsWith("0x"))
    throw new KPartyError("invalid_argument", `not a credential id (0x + 64 hex): ${target}`);
  return readBundle(target).credentialId;
}
