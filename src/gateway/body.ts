import type { FastifyRequest } from "fastify";
import { KPartyError, type ServiceErrorCode } from "../errors/index.ts";

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: { missingProperty?: string };
}

/** How a route words the refusal of an input its schema rejects, by the JSON pointer of the failing value. */
export interface InputMessages {
  /** `{presentation, scope?, models?}`: how the body must look (for a body that is no object). */
  shape?: string;
  /** The message for a value at (or under) a pointer: `/scope`, `/options/checks`, `/x-kparty-round`. */
  fields: Record<string, string | ((value: unknown, keyword: string) => string)>;
  /** The message for unknown keys of the object at a pointer (default: the body's unknown fields). */
  unknown?: Record<string, (names: string[]) => string>;
  /** The code of a refusal at a pointer, when not `malformed` (e.g. `/id` → `scope_denied`). */
  codes?: Record<string, ServiceErrorCode>;
}

const at = (value: unknown, pointer: string): unknown =>
  pointer
    .split("/")
    .slice(1)
    .reduce<unknown>(
      (v, key) => (v && typeof v === "object" ? (v as Record<string, unknown>)[key] : undefined),
      value,
    );

/** The schema of the value at `pointer` (through `properties`). */
const schemaAt = (schema: unknown, pointer: string) =>
  pointer
    .split("/")
    .slice(1)
    .reduce<unknown>((s, key) => (s as { properties?: Record<string, unknown> })?.properties?.[key], schema);

/** The longest key of `table` that is `pointer` or a parent of it, with its entry. */
function nearest<T>(table: Record<string, T> | undefined, pointer: string): [string, T] | undefined {
  let p = pointer;
  for (;;) {
    if (table && p in table) return [p, table[p] as T];
    if (p === "") return undefined;
    p = p.slice(0, p.lastIndexOf("/"));
  }
}

const bodyUnknown = (names: string[]) =>
  `unknown fields: ${names.join(", ")}; nothing in a request changes verification`;

/**
 * Turns the verdict of the route's schemas (Fastify validates with them; routes use
 * `attachValidation` so the refusal happens here, in the handler's own order: after the rate
 * limit, inside the audited part) into kparty's error: `malformed` (or the pointer's code in
 * `messages.codes`) with the route's message. Unknown keys never pass silently.
 */
export function rejectInvalidInput(request: FastifyRequest, messages: InputMessages): void {
  const failure = request.validationError as
    | (Error & { validation?: SchemaError[]; validationContext?: string })
    | undefined;
  if (!failure) return;
  const first = failure.validation?.[0];
  const context = failure.validationContext ?? "body";
  const data = (request as unknown as Record<string, unknown>)[context === "querystring" ? "query" : context];
  const schema = (request.routeOptions.schema as Record<string, unknown> | undefined)?.[context];
  if (!first) throw new KPartyError("malformed", "the request is malformed");
  const parent = first.instancePath;
  const pointer = first.params.missingProperty ? `${parent}/${first.params.missingProperty}` : parent;
  const [codeAt, code] = nearest(messages.codes, pointer) ?? [pointer, "malformed" as const];
  if (context === "body" && parent === "" && first.keyword === "type") {
    throw new KPartyError("malformed", `the body must be a JSON object ${messages.shape ?? ""}`.trim());
  }
  if (first.keyword === "additionalProperties") {
    const known = Object.keys((schemaAt(schema, parent) as { properties?: object })?.properties ?? {});
    const names = Object.keys((at(data, parent) as object) ?? {}).filter((k) => !known.includes(k));
    throw new KPartyError(code, (messages.unknown?.[parent] ?? bodyUnknown)(names));
  }
  const [key, message] = nearest(messages.fields, pointer) ?? [pointer, undefined];
  const text = typeof message === "function" ? message(at(data, key), first.keyword) : message;
  // a code other than malformed is a domain refusal, which names its field (as the model store does)
  const field = codeAt.slice(1).replaceAll("/", ".");
  const details = code === "malformed" || field === "" ? {} : { details: { field } };
  throw new KPartyError(
    code,
    text ?? `${pointer.slice(1).replaceAll("/", ".") || context} is invalid`,
    details,
  );
}
