import { randomUUID } from "node:crypto";
import type { Deployment } from "../chain/index.ts";
import { pickGrant } from "./claims.ts";
import { CREDENTIAL_TYPE, caip10, type KPartyClaims, statusEntry, VC_CONTEXT } from "./format.ts";

/** What every credential kparty issues has: an issuer, a status index on the registry and a validity window. */
interface IssuanceArgs {
  issuer: string;
  statusIndex: number;
  deployment: Deployment;
  validFrom: Date;
  validUntil: Date;
  /** The credential's id (default: a fresh `urn:uuid:`). */
  id?: string;
}

export interface CredentialPayloadArgs extends IssuanceArgs {
  subject: string;
  claims: Omit<KPartyClaims, "consortium">;
}

/** A W3C credential as a VC-API client drafts it: the issuer adds its DID, the window and the status entries. */
export interface CredentialDraft {
  /** `@context`: starts with the VCDM 1.1 context. */
  context: string[];
  type: string[];
  credentialSubject: Record<string, unknown>;
}

/**
 * A W3C credential (VCDM 1.1) before signing, with the issuer's revocation and suspension
 * entries on the registry: the JWT proof turns `issuer` into `iss`, `credentialSubject.id`
 * into `sub`, `issuanceDate` into `nbf`, `expirationDate` into `exp` and `id` into `jti`.
 * @example
 * ```ts
 * const credential = w3cCredential({ context: [VC_CONTEXT], type: ["VerifiableCredential"],
 *   credentialSubject: { id: holder }, issuer, statusIndex: 8, deployment, validFrom, validUntil });
 * ```
 */
export function w3cCredential(args: CredentialDraft & IssuanceArgs) {
  const { chainId, contracts } = args.deployment;
  const pointer = { chainId, registry: contracts.CredentialRegistry, index: args.statusIndex };
  return {
    "@context": args.context,
    type: args.type,
    id: args.id ?? `urn:uuid:${randomUUID()}`,
    issuer: { id: args.issuer },
    issuanceDate: args.validFrom.toISOString(),
    expirationDate: args.validUntil.toISOString(),
    credentialSubject: args.credentialSubject,
    credentialStatus: [
      statusEntry({ ...pointer, purpose: "revocation" }),
      statusEntry({ ...pointer, purpose: "suspension" }),
    ],
  };
}

/**
 * The W3C credential (VCDM 1.1) of a K-th Party token, before signing (see {@link w3cCredential}).
 * @example
 * ```ts
 * const credential = kpartyCredential({ issuer, subject, claims, statusIndex: 7, deployment, validFrom, validUntil });
 * ```
 */
export function kpartyCredential(args: CredentialPayloadArgs) {
  const { chainId, contracts } = args.deployment;
  const kParty: KPartyClaims = {
    consortium: caip10(chainId, contracts.ConsortiumRegistry),
    ...pickGrant(args.claims),
  };
  return w3cCredential({
    ...args,
    context: [VC_CONTEXT],
    type: ["VerifiableCredential", CREDENTIAL_TYPE],
    credentialSubject: { id: args.subject, kParty },
  });
}
