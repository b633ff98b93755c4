import type { Deployment } from "../chain/index.ts";
import { MAX_STATUS_INDEX } from "../chain/index.ts";
import { KPartyError } from "../errors/index.ts";
import { STATUS_PURPOSES, STATUS_TYPE, statusEntry } from "./format.ts";

const INDEX = /^(0|[1-9][0-9]{0,15})$/;

function malformed(message: string): never {
  throw new KPartyError("malformed", message);
}

/** A plain JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses a K-th Party token's `credentialStatus`: exactly one `revocation` and one
 * `suspension` entry of type `KPartyRegistryStatus`, each pointing at this deployment's
 * CredentialRegistry. Throws `malformed` otherwise.
 */
export function parseStatusEntries(
  raw: unknown,
  deployment: Deployment,
): { revocationIndex: number; suspensionIndex: number } {
  if (!Array.isArray(raw) || raw.length !== STATUS_PURPOSES.length) {
    malformed("credentialStatus must list one entry per purpose (revocation, suspension)");
  }
  const indexes = new Map<string, number>();
  for (const entry of raw) {
    if (!isObject(entry)) malformed("credentialStatus entries must be objects");
    const { statusPurpose, statusListIndex, type, id } = entry;
    if (type !== STATUS_TYPE) malformed(`credentialStatus.type must be ${STATUS_TYPE}`);
    if (!STATUS_PURPOSES.includes(statusPurpose as never) || indexes.has(statusPurpose as string)) {
      malformed("credentialStatus must have exactly one revocation and one suspension entry");
    }
    if (
      typeof statusListIndex !== "string" ||
      !INDEX.test(statusListIndex) ||
      Number(statusListIndex) > MAX_STATUS_INDEX
    ) {
      malformed("credentialStatus.statusListIndex must be a decimal index");
    }
    const index = Number(statusListIndex);
    const expected = statusEntry({
      chainId: deployment.chainId,
      registry: deployment.contracts.CredentialRegistry,
      purpose: statusPurpose as (typeof STATUS_PURPOSES)[number],
      index,
    }).id;
    if (typeof id !== "string" || id.toLowerCase() !== expected.toLowerCase()) {
      throw new KPartyError(
        "malformed",
        "credentialStatus does not point at this consortium's CredentialRegistry",
        {
          details: { expected, got: id },
        },
      );
    }
    indexes.set(statusPurpose as string, index);
  }
  return {
    revocationIndex: indexes.get("revocation") as number,
    suspensionIndex: indexes.get("suspension") as number,
  };
}
