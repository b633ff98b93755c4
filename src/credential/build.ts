import { randomUUID } from "node:crypto";
import type { Deployment } from "../chain/index.ts";
import { pickGrant } from "./claims.ts";
import { CREDENTIAL_TYPE, caip10, type KPartyClaims, statusEntry, VC_CONTEXT } from "./format.ts";

export interface CredentialPayloadArgs {
  issuer: string;
  subject: string;
  claims: Omit<KPartyClaims, "consortium">;
  statusIndex: number;
  deployment: Deployment;
  validFrom: Date;
  validUntil: Date;
}

/**
 * The W3C credential (VCDM 1.1) of a K-th Party token, before signing: Veramo's JWT
 * proof turns `issuer` into `iss`, `credentialSubject.id` into `sub`, `issuanceDate` into
 * `nbf`, `expirationDate` into `exp` and `id` into `jti`.
 * @example
 * ```ts
 * const credential = kpartyCredential({ issuer, subject, claims, statusIndex: 7, deployment, validFrom, validUntil });
 * ```
 */
export function kpartyCredential(args: CredentialPayloadArgs) {
  const { chainId, contracts } = args.deployment;
  const pointer = { chainId, registry: contracts.CredentialRegistry, index: args.statusIndex };
  const kParty: KPartyClaims = {
    consortium: caip10(chainId, contracts.ConsortiumRegistry),
    ...pickGrant(args.claims),
  };
  return {
    "@context": [VC_CONTEXT],
    type: ["VerifiableCredential", CREDENTIAL_TYPE],
    id: `urn:uuid:${randomUUID()}`,
    issuer: { id: args.issuer },
    issuanceDate: args.validFrom.toISOString(),
    expirationDate: args.validUntil.toISOString(),
    credentialSubject: { id: args.subject, kParty },
    credentialStatus: [
      statusEntry({ ...pointer, purpose: "revocation" }),
      statusEntry({ ...pointer, purpose: "suspension" }),
    ],
  };
}
