import { KPartyError } from "../errors/index.ts";
import { VC_CONTEXT } from "./format.ts";
import { decodeJwt } from "./jwt.ts";
import { isObject } from "./status.ts";

/**
 * The JSON form of JWT credentials and presentations (VC Data Model 1.1, §6.3.1 "JWT
 * decoding"): what a VC-API client posts is an object whose `proof.jwt` is the signed JWT and
 * whose other fields repeat, unsigned, what that JWT encodes. Only the JWT is ever verified,
 * so an outer field that says anything else would be believed by the client and never checked.
 * The functions here accept a JSON form only when it is exactly the JWT's decoding and return
 * the JWT; anything else is refused before any verification, with the field that differs.
 */

const JWT_PROOF_TYPE = "JwtProof2020";

/** An XML Schema dateTime with a time zone (VCDM 1.1 dates), e.g. `2026-12-06T20:00:00Z`. */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const DATE_FIELDS = new Set(["issuanceDate", "expirationDate"]);

function malformed(field: string, message: string): never {
  throw new KPartyError("malformed", `${field}: ${message}`, { details: { field } });
}

function mismatch(field: string): never {
  throw new KPartyError(
    "jwt_mismatch",
    `${field} differs from what proof.jwt encodes (only the JWT is signed: post it as it decodes, or the JWT alone)`,
    { details: { field } },
  );
}

/** A NumericDate as an ISO date-time (`decodedPayload` has checked it is a number). */
const isoOf = (seconds: unknown) => new Date((seconds as number) * 1000).toISOString();

/** `value` as a VCDM dateTime's instant in milliseconds, else `malformed`. */
function instant(value: unknown, field: string): number {
  if (typeof value !== "string" || !DATE_TIME.test(value) || Number.isNaN(Date.parse(value))) {
    malformed(field, "must be an XML Schema dateTime with a time zone");
  }
  return Date.parse(value);
}

/** Deep JSON equality; the path of the first difference, or null. Object key order does not matter. */
function difference(a: unknown, b: unknown, path: string): string | null {
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return path;
    for (const [i, item] of a.entries()) {
      const found = difference(item, b[i], `${path}[${i}]`);
      if (found) return found;
    }
    return null;
  }
  if (isObject(a) && isObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const found = difference(a[key], b[key], path ? `${path}.${key}` : key);
      if (found) return found;
    }
    return null;
  }
  return Object.is(a, b) ? null : path;
}

/**
 * Compares a posted JSON form (without `proof`) with the decoding of its JWT: every decoded
 * property must be there and equal; a posted property the decoding lacks is allowed only
 * where it is one of `extras` (a JWT claim repeated as is, or a form some libraries derive
 * from one) with exactly that value. Dates compare as instants; an issuer `{id}` equals its id.
 */
function compare(
  posted: Record<string, unknown>,
  decoded: Record<string, unknown>,
  extras: Record<string, unknown>,
  prefix: string,
): void {
  const at = (key: string) => `${prefix}${key}`;
  for (const [key, expected] of Object.entries(decoded)) {
    if (!Object.hasOwn(posted, key)) mismatch(at(key));
    const value = posted[key];
    if (DATE_FIELDS.has(key)) {
      if (instant(value, at(key)) !== Date.parse(expected as string)) mismatch(at(key));
    } else if (key === "issuer" && typeof expected === "string" && isObject(value)) {
      const found = difference(value, { id: expected }, at(key));
      if (found) mismatch(found);
    } else {
      const found = difference(value, expected, at(key));
      if (found) mismatch(found);
    }
  }
  for (const [key, value] of Object.entries(posted)) {
    if (Object.hasOwn(decoded, key) || key === "proof") continue;
    if (!Object.hasOwn(extras, key)) mismatch(at(key));
    if (DATE_FIELDS.has(key)) {
      if (instant(value, at(key)) !== Date.parse(extras[key] as string)) mismatch(at(key));
    } else {
      const found = difference(value, extras[key], at(key));
      if (found) mismatch(found);
    }
  }
}

/** The JWT claims outside `vc`/`vp` that a JSON form may repeat as they are. */
function repeatedClaims(payload: Record<string, unknown>, wrapper: "vc" | "vp"): Record<string, unknown> {
  const { [wrapper]: _, ...claims } = payload;
  return claims;
}

/** The common structure of both forms: `@context`, `type` and a `JwtProof2020` proof; returns the JWT. */
function checkEnvelope(value: Record<string, unknown>, type: string, prefix: string): string {
  const context = value["@context"];
  if (!Array.isArray(context) || context[0] !== VC_CONTEXT) {
    malformed(`${prefix}@context`, `must be an array whose first entry is ${VC_CONTEXT}`);
  }
  const types = Array.isArray(value.type) ? value.type : [value.type];
  if (types.length === 0 || !types.every((t) => typeof t === "string")) {
    malformed(`${prefix}type`, "must be a string or an array of strings");
  }
  if (!types.includes(type)) malformed(`${prefix}type`, `must include ${type}`);
  if (value.id !== undefined && typeof value.id !== "string") malformed(`${prefix}id`, "must be a string");
  const { proof } = value;
  if (!isObject(proof)) malformed(`${prefix}proof`, `is required: {type: "${JWT_PROOF_TYPE}", jwt}`);
  if (proof.type !== JWT_PROOF_TYPE) malformed(`${prefix}proof.type`, `must be ${JWT_PROOF_TYPE}`);
  const unknown = Object.keys(proof).find((k) => k !== "type" && k !== "jwt");
  if (unknown) malformed(`${prefix}proof.${unknown}`, "is not part of a JwtProof2020 proof");
  if (typeof proof.jwt !== "string" || proof.jwt.length === 0)
    malformed(`${prefix}proof.jwt`, "must be a JWT");
  return proof.jwt;
}

/** The signed payload of `jwt` and its `wrapper` claim, else `malformed` naming `field`. */
function decodedPayload(jwt: string, wrapper: "vc" | "vp", field: string) {
  let payload: Record<string, unknown>;
  try {
    payload = decodeJwt(jwt).payload;
  } catch (error) {
    malformed(field, (error as KPartyError).shortMessage);
  }
  const claim = payload[wrapper];
  if (!isObject(claim)) malformed(field, `is not a JWT with a ${wrapper} claim`);
  for (const date of ["nbf", "exp", "iat"]) {
    const v = payload[date];
    // the range of a JavaScript Date, so that every NumericDate here has an ISO form
    if (v !== undefined && (typeof v !== "number" || !(Math.abs(v) <= 8.64e12)))
      malformed(field, `its ${date} claim must be a NumericDate`);
  }
  return { payload, claim };
}

/**
 * VCDM 1.1 §6.3.1 decoding of a credential JWT payload: the `vc` claim, with `iss` as
 * `issuer` (its `id` when `vc.issuer` is an object), `nbf` as `issuanceDate`, `exp` as
 * `expirationDate`, `sub` as `credentialSubject.id` and `jti` as `id`.
 */
function credentialJsonOf(payload: Record<string, unknown>, vc: Record<string, unknown>) {
  const decoded: Record<string, unknown> = structuredClone(vc);
  const { iss, sub, jti, nbf, exp } = payload;
  if (iss !== undefined) decoded.issuer = isObject(vc.issuer) ? { ...vc.issuer, id: iss } : iss;
  if (nbf !== undefined) decoded.issuanceDate = isoOf(nbf);
  if (exp !== undefined) decoded.expirationDate = isoOf(exp);
  if (jti !== undefined) decoded.id = jti;
  if (sub !== undefined && isObject(decoded.credentialSubject)) {
    decoded.credentialSubject = { ...decoded.credentialSubject, id: sub };
  }
  return decoded;
}

function checkCredentialStructure(value: Record<string, unknown>, prefix: string) {
  const { issuer, credentialSubject, issuanceDate, expirationDate } = value;
  const issuerId = isObject(issuer) ? issuer.id : issuer;
  if (typeof issuerId !== "string" || issuerId.length === 0) {
    malformed(`${prefix}issuer`, "is required: a DID, or an object with an id");
  }
  const subjects = Array.isArray(credentialSubject) ? credentialSubject : [credentialSubject];
  if (subjects.length === 0 || !subjects.every(isObject)) {
    malformed(`${prefix}credentialSubject`, "is required: an object (or a non-empty array of objects)");
  }
  if (issuanceDate === undefined) malformed(`${prefix}issuanceDate`, "is required");
  instant(issuanceDate, `${prefix}issuanceDate`);
  if (expirationDate !== undefined) instant(expirationDate, `${prefix}expirationDate`);
}

/**
 * The credential JWT a VC-API request names: a JWT string as it is, or the JSON form of a JWT
 * credential whose outer fields are exactly what its `proof.jwt` decodes to. Throws
 * `malformed` for structurally invalid input and `jwt_mismatch` for a field that differs,
 * each with `details.field`.
 * @example
 * ```ts
 * const jwt = credentialJwtOf(normalizeCredential(vcJwt)); // === vcJwt
 * ```
 */
export function credentialJwtOf(value: unknown, prefix = ""): string {
  if (typeof value === "string" && value.length > 0) return value;
  if (!isObject(value)) malformed(prefix || "verifiableCredential", "must be a JWT or a credential object");
  const jwt = checkEnvelope(value, "VerifiableCredential", prefix);
  checkCredentialStructure(value, prefix);
  const { payload, claim } = decodedPayload(jwt, "vc", `${prefix}proof.jwt`);
  const extras = repeatedClaims(payload, "vc");
  compare(value, credentialJsonOf(payload, claim), extras, prefix);
  return jwt;
}

/**
 * VCDM 1.1 decoding of a presentation JWT payload: the `vp` claim, with `iss` as `holder`,
 * `jti` as `id`, `nbf` as `issuanceDate` and `exp` as `expirationDate`; the credentials stay
 * as the JWTs it carries.
 */
function presentationJsonOf(payload: Record<string, unknown>, vp: Record<string, unknown>) {
  const { verifiableCredential: _, ...decoded } = structuredClone(vp);
  const { iss, jti, nbf, exp } = payload;
  if (iss !== undefined) decoded.holder = iss;
  if (jti !== undefined) decoded.id = jti;
  if (nbf !== undefined) decoded.issuanceDate = isoOf(nbf);
  if (exp !== undefined) decoded.expirationDate = isoOf(exp);
  return decoded;
}

/** Each posted credential must be the JWT the presentation carries at that place, or its exact JSON form. */
function checkEmbedded(posted: unknown, signed: unknown): void {
  const postedList = Array.isArray(posted) ? posted : posted === undefined ? [] : [posted];
  const signedList = Array.isArray(signed) ? signed : signed === undefined ? [] : [signed];
  if (postedList.length !== signedList.length) mismatch("verifiableCredential");
  for (const [i, entry] of postedList.entries()) {
    const field = `verifiableCredential[${i}]`;
    if (typeof entry !== "string" && !isObject(entry))
      malformed(field, "must be a JWT or a credential object");
    const jwt = credentialJwtOf(entry, `${field}.`);
    if (jwt !== signedList[i]) mismatch(typeof entry === "string" ? field : `${field}.proof.jwt`);
  }
}

/**
 * The presentation JWT a VC-API request names: a JWT string as it is, or the JSON form of a
 * JWT presentation whose outer fields, and every credential in it, are exactly what the JWTs
 * decode to (as {@link credentialJwtOf}). `verifier` (the `aud` claim as a list) and an
 * `issuanceDate` from `iat`, which some libraries add, are accepted when they say exactly that.
 */
export function presentationJwtOf(value: unknown): string {
  if (typeof value === "string" && value.length > 0) return value;
  if (!isObject(value)) malformed("verifiablePresentation", "must be a JWT or a presentation object");
  const jwt = checkEnvelope(value, "VerifiablePresentation", "");
  if (value.holder !== undefined && typeof value.holder !== "string") malformed("holder", "must be a DID");
  const { payload, claim } = decodedPayload(jwt, "vp", "proof.jwt");
  const { verifiableCredential: posted, ...outer } = value;
  checkEmbedded(posted, claim.verifiableCredential);
  const extras: Record<string, unknown> = { ...repeatedClaims(payload, "vp") };
  if (payload.aud !== undefined) extras.verifier = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (payload.nbf === undefined && typeof payload.iat === "number") extras.issuanceDate = isoOf(payload.iat);
  compare(outer, presentationJsonOf(payload, claim), extras, "");
  return jwt;
}
