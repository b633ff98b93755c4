import type { Deployment } from "../../chain/index.ts";
import {
  CREDENTIAL_TYPE,
  caip10,
  type DecodedJwt,
  grantProblem,
  isObject,
  type KPartyClaims,
  parseStatusEntries,
  pickGrant,
  VC_CONTEXT,
} from "../../credential/index.ts";
import { fail } from "./checks.ts";

/** The protected header must say ES256K and ask for nothing kparty does not implement. */
export function checkHeader(jwt: DecodedJwt, what: string): void {
  const { alg, crit, typ } = jwt.header;
  if (alg !== "ES256K") fail("unsupported_alg", `${what} alg must be ES256K, got ${JSON.stringify(alg)}`);
  if (crit !== undefined)
    fail("malformed", `${what} header has critical extensions kparty does not understand`);
  if (typ !== undefined && typ !== "JWT") fail("malformed", `${what} typ must be JWT`);
}

/** A NumericDate (seconds), when present. */
export function numericDate(
  payload: Record<string, unknown>,
  claim: string,
  required: boolean,
): number | undefined {
  const v = payload[claim];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
    fail("malformed", `${claim} must be a NumericDate`);
  return v;
}

/** What the gateway decides on in any credential a consortium member signs (JWT VC, VCDM 1.1). */
export interface CredentialClaims {
  issuer: string;
  /** `sub`: the subject's DID; null for a credential without one. */
  subject: string | null;
  notBefore: number;
  expires: number;
  /** `vc.type`. */
  types: string[];
  /** The K-th Party claims of a `KPartyCredential`; null for any other credential. */
  claims: KPartyClaims | null;
  revocationIndex: number;
  suspensionIndex: number;
}

/** The parts of a K-th Party token payload the gateway decides on. */
export interface TokenClaims extends CredentialClaims {
  subject: string;
  claims: KPartyClaims;
}

function parseClaims(raw: unknown): KPartyClaims {
  if (!isObject(raw)) fail("malformed", "credentialSubject.kParty is missing");
  if (typeof raw.consortium !== "string") fail("malformed", "kParty.consortium must be a string");
  const problem = grantProblem(raw);
  if (problem) fail("malformed", `kParty.${problem}`);
  return { consortium: raw.consortium, ...pickGrant(raw as Parameters<typeof pickGrant>[0]) };
}

/**
 * Validates the payload of a credential a consortium member signed (JWT VC, VCDM 1.1 as
 * Veramo and kparty's issuer emit it) and extracts what the gateway decides on: issuer,
 * subject, window, types, the registry status entries, and for a `KPartyCredential` its
 * K-th Party claims (checked by the registry's rules, for this consortium). Wrappers inside
 * `vc` that repeat `iss`/`sub` must agree with them (decisions use the signed JWT claims only).
 */
export function parseCredentialPayload(
  payload: Record<string, unknown>,
  deployment: Deployment,
): CredentialClaims {
  const { iss, sub, vc } = payload;
  if (typeof iss !== "string") fail("malformed", "credential iss must be a DID");
  if (sub !== undefined && typeof sub !== "string") fail("malformed", "credential sub must be a DID");
  const notBefore = numericDate(payload, "nbf", true) as number;
  const expires = numericDate(payload, "exp", true) as number;
  if (!isObject(vc)) fail("malformed", "credential vc claim is missing");
  const context = vc["@context"];
  if (!Array.isArray(context) || context[0] !== VC_CONTEXT)
    fail("malformed", `vc @context must start with ${VC_CONTEXT}`);
  const type = vc.type;
  if (
    !Array.isArray(type) ||
    !type.every((t) => typeof t === "string") ||
    !type.includes("VerifiableCredential")
  ) {
    fail("malformed", "vc type must be a list of strings that includes VerifiableCredential");
  }
  if (vc.issuer !== undefined) {
    const wrapped = isObject(vc.issuer) ? vc.issuer.id : vc.issuer;
    if (wrapped !== iss) fail("malformed", "vc.issuer differs from iss");
  }
  const subject = vc.credentialSubject;
  if (!isObject(subject)) fail("malformed", "vc.credentialSubject must be one object");
  if (subject.id !== undefined && subject.id !== sub)
    fail("malformed", "credentialSubject.id differs from sub");
  let claims: KPartyClaims | null = null;
  if (type.includes(CREDENTIAL_TYPE)) {
    claims = parseClaims(subject.kParty);
    const expectedConsortium = caip10(deployment.chainId, deployment.contracts.ConsortiumRegistry);
    if (claims.consortium.toLowerCase() !== expectedConsortium.toLowerCase()) {
      fail("issuer_not_member", "the credential was issued for another consortium", {
        expected: expectedConsortium,
        got: claims.consortium,
      });
    }
  } else if (subject.kParty !== undefined) {
    fail("malformed", `K-th Party claims belong in a ${CREDENTIAL_TYPE}`);
  }
  return {
    issuer: iss,
    subject: (sub as string | undefined) ?? null,
    notBefore,
    expires,
    types: type as string[],
    claims,
    ...parseStatusEntries(vc.credentialStatus, deployment),
  };
}

/** The credential as a K-th Party token (what grants access), else `malformed`. */
export function asToken(credential: CredentialClaims): TokenClaims {
  if (credential.subject === null) fail("malformed", "credential sub must be the holder's DID");
  if (credential.claims === null) {
    fail("malformed", `vc type must include VerifiableCredential and ${CREDENTIAL_TYPE}`);
  }
  return credential as TokenClaims;
}

/** {@link parseCredentialPayload} of a K-th Party token: its type, subject and claims required. */
export function parseTokenPayload(payload: Record<string, unknown>, deployment: Deployment): TokenClaims {
  return asToken(parseCredentialPayload(payload, deployment));
}
