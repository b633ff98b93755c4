import { KPartyError } from "../errors/index.ts";

/** The body as a JSON object with only `allowed` keys, else `malformed` (unknown keys never pass silently). */
export function jsonObject(body: unknown, allowed: string[], shape: string): Record<string, unknown> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new KPartyError("malformed", `the body must be a JSON object ${shape}`);
  }
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length) {
    throw new KPartyError(
      "malformed",
      `unknown fields: ${unknown.join(", ")}; nothing in a request changes verification`,
    );
  }
  return body as Record<string, unknown>;
}

/** A positive decimal integer from a header or path segment, else `malformed`. */
export function integerHeader(value: unknown, name: string): number {
  if (typeof value !== "string" || !/^[1-9][0-9]{0,14}$/.test(value)) {
    throw new KPartyError("malformed", `${name} must be a positive integer`);
  }
  return Number(value);
}
