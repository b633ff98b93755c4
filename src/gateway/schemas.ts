/**
 * The gateway's HTTP contract as JSON Schemas: what each route accepts (Fastify validates with
 * these) and answers (the served OpenAPI is generated from them, and a test checks real
 * responses against it). Each response's TypeScript type is derived from its schema
 * (`SchemaType`), and the client (`client.ts`) uses those: one definition of each answer. Where
 * a module of its own defines the same value (`ModelInfo`, `RoundResult`, `UpdateReceipt`), tsc
 * proves the two types equal (`TypesEqual` below).
 */
import { ACTIONS, MODEL_ID } from "../credential/index.ts";
import { VERIFICATION_ERROR_CODES } from "../errors/base.ts";
import { SERVICE_ERROR_CODES, type ServiceErrorCode } from "../errors/index.ts";
import { AGGREGATION_RULES, type ModelInfo, type RoundResult, type UpdateReceipt } from "../models/index.ts";
import type { SchemaType, TypesEqual } from "../util/schema-type.ts";
import { HTTP_STATUS } from "./errors.ts";

const str = { type: "string" } as const;
const int = { type: "integer" } as const;
const strings = { type: "array", items: str } as const;
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** A space-separated list of at least one of the actions (repeats and extra spaces allowed). */
const ACTION = `(?:${ACTIONS.map(escapeRegExp).join("|")})`;
export const scopeSchema = {
  type: "string",
  pattern: `^ *${ACTION}(?: +${ACTION})* *$`,
  description: `space-separated actions among ${ACTIONS.join(", ")}`,
};

/** Model ids, or `["*"]`. */
export const modelsSchema = {
  type: "array",
  minItems: 1,
  items: { type: "string", anyOf: [{ const: "*" }, { pattern: MODEL_ID.source }] },
  description: 'model ids (or ["*"])',
};

/** A positive decimal integer in a header or path segment (no coercion: exactly these digits). */
export const positiveInteger = { type: "string", pattern: "^[1-9][0-9]{0,14}$" };

/** An error body whose code is one of `codes`. */
export function errorBody(codes: readonly ServiceErrorCode[]) {
  return {
    type: "object",
    required: ["error"],
    additionalProperties: false,
    properties: {
      error: {
        type: "object",
        required: ["code", "message"],
        additionalProperties: false,
        properties: {
          code: { type: "string", enum: [...new Set(codes)] },
          message: str,
          field: {
            type: "string",
            description: "the request field that is malformed or differs from what its JWT encodes",
          },
          checks: { type: "array", items: checkSchema },
        },
      },
    },
  };
}

const STATUS_TEXT: Record<number, string> = {
  400: "malformed request",
  401: "not authenticated (token, proof or presentation invalid)",
  403: "not allowed (scope, status, membership)",
  404: "not found",
  409: "conflict with the model's state",
  413: "payload too large",
  429: "rate limited (see Retry-After)",
  500: "internal error",
  503: "unavailable: chain, audit log, state or capacity (see Retry-After)",
};

/** Codes every route can answer: a request the HTTP layer refuses, load shedding, a crash. */
export const ANY_ROUTE: ServiceErrorCode[] = ["malformed", "overloaded", "internal"];

/**
 * The error responses of a route that can answer `codes` (and {@link ANY_ROUTE}), by status,
 * each listing exactly its codes. `dpopAt400`: the DPoP codes are 400 here (a token endpoint).
 */
export function errorResponses(codes: readonly ServiceErrorCode[], options: { dpopAt400?: boolean } = {}) {
  const byStatus = new Map<number, ServiceErrorCode[]>();
  for (const code of [...ANY_ROUTE, ...codes]) {
    const dpop = code === "invalid_dpop_proof" || code === "use_dpop_nonce";
    const status = dpop && options.dpopAt400 ? 400 : HTTP_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => [
      String(status),
      { description: STATUS_TEXT[status] ?? "error", ...errorBody(list) },
    ]),
  );
}

/** Codes of a presentation's or credential's verification (see `verify/`). */
export const VERIFICATION_CODES: ServiceErrorCode[] = [...VERIFICATION_ERROR_CODES];

/** What can make a check impossible to run (answered 5xx, never a verdict). */
export const UNAVAILABLE: ServiceErrorCode[] = [
  "registry_unavailable",
  "audit_unavailable",
  "state_unavailable",
];

/** Codes of a protected route's access check (`requireAccess`). */
export const ACCESS_CODES: ServiceErrorCode[] = [
  "token_invalid",
  "token_revoked",
  "credential_expired",
  "invalid_dpop_proof",
  "use_dpop_nonce",
  "not_anchored",
  "revoked",
  "suspended",
  "issuer_not_member",
  "scope_denied",
  "rate_limited",
  ...UNAVAILABLE,
];

export const checkSchema = {
  type: "object",
  required: ["check", "passed"],
  additionalProperties: false,
  properties: { check: str, passed: { type: "boolean" }, code: str },
} as const;

export const aggregationSchema = {
  type: "object",
  required: ["rule"],
  additionalProperties: false,
  description:
    "How rounds aggregate: fedavg (sample-weighted mean), median or trimmed-mean (coordinate-wise, every update once; trimFraction β drops ⌊β·n⌋ at each end); clipNorm scales each update's delta from the current weights to an L2 norm ≤ C first",
  properties: {
    rule: { enum: [...AGGREGATION_RULES] },
    trimFraction: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 0.5 },
    clipNorm: { type: "number", exclusiveMinimum: 0 },
  },
} as const;

const modelProperties = {
  id: str,
  description: str,
  version: int,
  shape: { type: "array", items: int },
  parameterCount: int,
  dtype: { const: "float32" },
  openRound: int,
  updates: int,
  maxSamplesPerUpdate: int,
  aggregation: aggregationSchema,
  updatedAt: { type: "string", format: "date-time" },
} as const;

/** A model's metadata ({@link ModelInfo}): every field, always (the store fills defaults). */
export const modelSchema = {
  type: "object",
  required: [
    "id",
    "description",
    "version",
    "shape",
    "parameterCount",
    "dtype",
    "openRound",
    "updates",
    "maxSamplesPerUpdate",
    "aggregation",
    "updatedAt",
  ],
  additionalProperties: false,
  properties: modelProperties,
} as const;
/** `GET /models/:id`, `POST /models` (and each of `GET /models`). */
export type ModelResponse = SchemaType<typeof modelSchema>;

/** A closed round: the model's new metadata and what was aggregated (`RoundResult`). */
export const roundSchema = {
  ...modelSchema,
  required: [...modelSchema.required, "aggregated", "samples", "clipped"],
  properties: { ...modelProperties, aggregated: int, samples: int, clipped: int },
} as const;
/** `POST /models/:id/rounds/:round/close`. */
export type RoundResponse = SchemaType<typeof roundSchema>;

export const receiptSchema = {
  type: "object",
  required: ["model", "round", "participant", "sampleCount", "bytes", "receivedAt"],
  additionalProperties: false,
  properties: {
    model: str,
    round: int,
    participant: str,
    sampleCount: int,
    bytes: int,
    receivedAt: { type: "string", format: "date-time" },
  },
} as const;
/** `POST /models/:id/updates`. */
export type ReceiptResponse = SchemaType<typeof receiptSchema>;

// The store's types and the answers' are one: tsc fails here when a field is added to one only.
const _modelTypes: [
  TypesEqual<ModelResponse, ModelInfo>,
  TypesEqual<RoundResponse, RoundResult>,
  TypesEqual<ReceiptResponse, UpdateReceipt>,
] = [true, true, true];

/** `POST /auth/challenge`, `POST /challenges`. */
export const challengeSchema = {
  type: "object",
  required: ["challenge", "domain", "expiresAt"],
  additionalProperties: false,
  properties: {
    challenge: str,
    domain: str,
    expiresAt: { type: "string", format: "date-time" },
  },
} as const;
export type ChallengeResponse = SchemaType<typeof challengeSchema>;

const tokenProperties = {
  access_token: str,
  /** `DPoP` for a token bound to the proof key (RFC 9449 §5), `Bearer` otherwise. */
  token_type: { enum: ["DPoP", "Bearer"] },
  expires_in: int,
  scope: str,
  holder: str,
  models: strings,
  credential_id: str,
} as const;

/** `POST /auth/token` (and a granted OID4VP transaction): the token response, RFC 6749 §5.1 with kparty's fields. */
export const tokenSchema = {
  type: "object",
  required: ["access_token", "token_type", "expires_in", "scope", "holder", "models", "credential_id"],
  additionalProperties: false,
  properties: tokenProperties,
} as const;
export type AccessTokenResponse = SchemaType<typeof tokenSchema>;

/** `GET /oid4vp/transactions/:id`. */
export const transactionSchema = {
  type: "object",
  required: ["status"],
  additionalProperties: false,
  properties: {
    status: { enum: ["pending", "expired", "denied", "granted", "redeemed"] },
    expires_at: { type: "string", format: "date-time" },
    error: {
      type: "object",
      required: ["code", "message"],
      additionalProperties: false,
      properties: { code: { enum: SERVICE_ERROR_CODES }, message: str },
    },
    ...tokenProperties,
  },
} as const;
export type TransactionResponse = SchemaType<typeof transactionSchema>;

/** A VC-API verification result. */
export const verificationSchema = {
  type: "object",
  required: ["verified", "checks", "warnings", "errors"],
  properties: {
    verified: { type: "boolean" },
    checks: { type: "array", items: checkSchema },
    warnings: {
      type: "array",
      items: { type: "object", required: ["code", "message"], properties: { code: str, message: str } },
    },
    errors: {
      type: "array",
      items: {
        type: "object",
        required: ["code", "message"],
        properties: { code: { enum: VERIFICATION_CODES }, message: str },
      },
    },
    holder: str,
    credential: { type: "object" },
  },
};
