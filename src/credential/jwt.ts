import { keccak256, toUtf8Bytes } from "ethers";
import { KPartyError } from "../errors/index.ts";

/** A compact JWS split into its parts, with the header and payload parsed. */
export interface DecodedJwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** `base64url(header) + "." + base64url(payload)`, the bytes the signature covers. */
  signingInput: string;
  signature: Uint8Array;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

function decodeSegment(segment: string, what: string): Buffer {
  if (!B64URL.test(segment)) throw new KPartyError("malformed", `${what} is not base64url`);
  const bytes = Buffer.from(segment, "base64url");
  // Reject non-canonical encodings (trailing bits set), so one JWT has one byte form.
  if (bytes.toString("base64url") !== segment)
    throw new KPartyError("malformed", `${what} is not canonical base64url`);
  return bytes;
}

function parseObject(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new KPartyError("malformed", `${what} is not UTF-8 JSON`, { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new KPartyError("malformed", `${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Splits and parses a compact JWS without verifying it. Throws `malformed` for anything
 * that is not three canonical base64url segments with JSON-object header and payload.
 * @example
 * ```ts
 * const { header, payload, signingInput } = decodeJwt(jwt);
 * ```
 */
export function decodeJwt(jwt: unknown): DecodedJwt {
  if (typeof jwt !== "string") throw new KPartyError("malformed", "a JWT must be a string");
  const parts = jwt.split(".");
  if (parts.length !== 3) throw new KPartyError("malformed", "a JWT has three dot-separated segments");
  const [h, p, s] = parts as [string, string, string];
  const header = parseObject(decodeSegment(h, "JWT header"), "JWT header");
  const payload = parseObject(decodeSegment(p, "JWT payload"), "JWT payload");
  const signature = new Uint8Array(decodeSegment(s, "JWT signature"));
  return { header, payload, signingInput: `${h}.${p}`, signature };
}

/**
 * The credential id: `keccak256` of the JWT signing input (header and payload, not the
 * signature, which has a second valid form). 0x-prefixed, 32 bytes.
 * @example
 * ```ts
 * const id = credentialIdOf(vcJwt); // "0x5c…"
 * ```
 */
export function credentialIdOf(jwt: string): string {
  const dot = jwt.lastIndexOf(".");
  if (dot < 0) throw new KPartyError("malformed", "a JWT has three dot-separated segments");
  return keccak256(toUtf8Bytes(jwt.slice(0, dot)));
}
