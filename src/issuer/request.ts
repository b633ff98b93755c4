import type { DraftItem, IssueItem } from "../../agent/index.ts";
import type { Deployment } from "../chain/index.ts";
import {
  type Action,
  CREDENTIAL_TYPE,
  caip10,
  grantProblem,
  isObject,
  type Role,
  VC_CONTEXT,
} from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";

/**
 * JSON Schema of a credential a VC-API client asks the issuer to sign (VCDM 1.1). Fastify
 * validates every request against it (nothing removed, nothing coerced), so a missing or
 * wrongly typed property is a 400 naming it; what the schema cannot say is checked in
 * {@link issueItemOf}. The issuer adds the status entries and the proof: a credential that
 * brings its own is refused.
 */
export const credentialSchema = {
  type: "object",
  required: ["@context", "type", "issuer", "credentialSubject"],
  additionalProperties: false,
  properties: {
    "@context": { type: "array", minItems: 1, items: { type: "string", minLength: 1 } },
    type: { type: "array", minItems: 1, items: { type: "string", minLength: 1 } },
    id: { type: "string", pattern: "^[A-Za-z][A-Za-z0-9+.-]*:\\S+$" },
    issuer: {
      oneOf: [
        { type: "string", minLength: 1 },
        {
          type: "object",
          required: ["id"],
          additionalProperties: false,
          properties: { id: { type: "string", minLength: 1 } },
        },
      ],
    },
    issuanceDate: { type: "string", format: "date-time" },
    expirationDate: { type: "string", format: "date-time" },
    credentialSubject: { type: "object", minProperties: 1 },
  },
} as const;

/** VC-API issue options kparty understands; any other is refused (VC-API: unknown options are errors). */
export const issueOptionsSchema = {
  type: "object",
  additionalProperties: false,
  properties: { credentialId: { type: "string", pattern: "^[A-Za-z][A-Za-z0-9+.-]*:\\S+$" } },
} as const;

/** A credential as the schema above lets it through. */
export interface CredentialRequest {
  "@context": string[];
  type: string[];
  id?: string;
  issuer: string | { id: string };
  issuanceDate?: string;
  expirationDate?: string;
  credentialSubject: Record<string, unknown>;
}

const DEFAULT_VALIDITY_DAYS = 30;

function invalid(field: string, message: string): never {
  throw new KPartyError("malformed", `${field} ${message}`, { details: { field } });
}

/** The K-th Party claims of a `KPartyCredential` request, checked by the registry's rules. */
function kpartyItem(subject: Record<string, unknown>, deployment: Deployment, field: string) {
  const { id, kParty, ...other } = subject;
  if (typeof id !== "string" || !/^did:ethr:\S+$/.test(id)) {
    invalid(`${field}.id`, "must be the participant's did:ethr (a K-th Party token is bound to it)");
  }
  if (Object.keys(other).length > 0) {
    invalid(`${field}.${Object.keys(other)[0]}`, "is not a K-th Party claim (id and kParty only)");
  }
  if (!isObject(kParty)) invalid(`${field}.kParty`, "is required for a KPartyCredential");
  const { consortium, ...grant } = kParty;
  const ours = caip10(deployment.chainId, deployment.contracts.ConsortiumRegistry);
  if (consortium !== undefined && String(consortium).toLowerCase() !== ours.toLowerCase()) {
    invalid(`${field}.kParty.consortium`, `must be this consortium, ${ours}`);
  }
  const known = new Set(["role", "models", "actions", "quota"]);
  const unknown = Object.keys(grant).find((k) => !known.has(k));
  if (unknown) invalid(`${field}.kParty.${unknown}`, "is not a K-th Party claim");
  const problem = grantProblem(grant);
  if (problem) invalid(`${field}.kParty`, problem);
  const g = grant as {
    role: Role;
    models: string[];
    actions: Action[];
    quota?: { requestsPerMinute: number };
  };
  return {
    subject: id,
    role: g.role,
    models: g.models,
    actions: g.actions,
    ...(g.quota ? { quota: g.quota } : {}),
  };
}

/**
 * What the issuer signs for one VC-API request: a K-th Party token (type `KPartyCredential`,
 * claims checked by the registry's rules) or any other W3C credential, drafted as posted.
 * The issuer must be this service's DID; dates must make a window (default: now, 30 days).
 */
export function issueItemOf(
  credential: CredentialRequest,
  options: { credentialId?: string },
  ctx: { issuer: string; deployment: Deployment; now: Date; field?: string },
): IssueItem | DraftItem {
  const field = ctx.field ?? "credential";
  if (credential["@context"][0] !== VC_CONTEXT) invalid(`${field}.@context`, `must start with ${VC_CONTEXT}`);
  if (!credential.type.includes("VerifiableCredential"))
    invalid(`${field}.type`, "must include VerifiableCredential");
  const issuer = typeof credential.issuer === "string" ? credential.issuer : credential.issuer.id;
  if (issuer !== ctx.issuer) invalid(`${field}.issuer`, `must be this issuer service's DID, ${ctx.issuer}`);
  const validFrom = credential.issuanceDate ? new Date(credential.issuanceDate) : ctx.now;
  const validUntil = credential.expirationDate
    ? new Date(credential.expirationDate)
    : new Date(validFrom.getTime() + DEFAULT_VALIDITY_DAYS * 86_400_000);
  if (!(validUntil > validFrom)) invalid(`${field}.expirationDate`, "must be after issuanceDate");
  if (
    credential.id !== undefined &&
    options.credentialId !== undefined &&
    credential.id !== options.credentialId
  ) {
    invalid("options.credentialId", "differs from the credential's id");
  }
  const id = credential.id ?? options.credentialId;
  const common = { validFrom, validUntil, ...(id !== undefined ? { id } : {}) };
  if (credential.type.includes(CREDENTIAL_TYPE)) {
    const extra = credential.type.find((t) => t !== "VerifiableCredential" && t !== CREDENTIAL_TYPE);
    if (extra || credential["@context"].length > 1) {
      invalid(
        `${field}.type`,
        `of a ${CREDENTIAL_TYPE} is exactly VerifiableCredential and ${CREDENTIAL_TYPE}, in the VC context alone`,
      );
    }
    return {
      ...kpartyItem(credential.credentialSubject, ctx.deployment, `${field}.credentialSubject`),
      ...common,
    };
  }
  return {
    draft: {
      context: credential["@context"],
      type: credential.type,
      credentialSubject: credential.credentialSubject,
    },
    ...common,
  };
}
