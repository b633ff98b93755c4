import { normalizeCredential } from "did-jwt-vc";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from "fastify";
import type { IssuedCredential, IssuedRecord, IssuerAgent } from "../../agent/index.ts";
import { MAX_BATCH } from "../../agent/index.ts";
import type { Deployment } from "../chain/index.ts";
import { STATUS_PURPOSES, STATUS_TYPE } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import { answerNoRoute, errorResponse, isInternalError } from "../gateway/errors.ts";
import { redactSecrets } from "../util/redact.ts";
import type { IssuerClientStore } from "./clients.ts";
import { collectOpenApi } from "./openapi.ts";
import { type CredentialRequest, credentialSchema, issueItemOf, issueOptionsSchema } from "./request.ts";

export interface IssuerServiceOptions {
  /** The member's issuer agent (its keys unlocked). */
  agent: IssuerAgent;
  /** The member DID this service issues as (managed by `agent`). */
  issuer: string;
  deployment: Deployment;
  clients: IssuerClientStore;
  /** Clock (default `() => new Date()`). */
  now?: () => Date;
  /** Largest JSON request body (default 4 MiB: room for a batch). */
  bodyLimitBytes?: number;
  /** Operator log for unexpected errors (default: stderr). Never receives request bodies or keys. */
  log?: (line: string) => void;
}

const errorSchema = {
  description: "error",
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: { code: { type: "string" }, message: { type: "string" }, field: { type: "string" } },
    },
  },
};

const anchorSchema = {
  type: "object",
  properties: {
    credentialId: {
      type: "string",
      description: "keccak256 of the JWT's signing input: the id on the registry",
    },
    statusIndex: { type: "integer" },
    anchor: {
      type: "object",
      properties: {
        blockNumber: { type: "integer" },
        transactionHash: { type: "string" },
        root: { type: ["string", "null"] },
        proof: { type: "array", items: { type: "string" } },
      },
    },
  },
};

const issuedSchema = {
  type: "object",
  required: ["verifiableCredential", "kparty"],
  properties: {
    verifiableCredential: {
      type: "object",
      additionalProperties: true,
      description: "the credential in its VCDM 1.1 JSON form, proof {type: JwtProof2020, jwt}",
    },
    kparty: anchorSchema,
  },
};

const credentialIdParam = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", minLength: 1, maxLength: 256 } },
};

const errors = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 503: errorSchema };

/** The JSON form of an issued credential and kparty's record of its anchoring. */
function issuedBody(issued: Pick<IssuedCredential, "jwt" | "credentialId" | "statusIndex" | "anchor">) {
  return {
    verifiableCredential: normalizeCredential(issued.jwt),
    kparty: { credentialId: issued.credentialId, statusIndex: issued.statusIndex, anchor: issued.anchor },
  };
}

const recordBody = (r: IssuedRecord) =>
  issuedBody({
    ...r,
    anchor: {
      blockNumber: r.anchoredBlock ?? 0,
      transactionHash: r.anchorTx ?? "",
      root: r.anchorRoot,
      proof: r.anchorProof,
    },
  });

/**
 * A consortium member's issuer agent over HTTP (VC-API): `POST /credentials/issue` signs and
 * anchors one credential, `POST /credentials/issue/batch` up to 10,000 under one anchored
 * Merkle root, `POST /credentials/status` revokes, suspends or reinstates, `GET
 * /credentials/:id` returns one it issued. Every route but `/openapi.json` needs an API key
 * (`Authorization: Bearer kpi_…`, see {@link IssuerClientStore}). Listen on loopback unless
 * a proxy with TLS stands in front.
 *
 * @example
 * ```ts
 * const app = await buildIssuerService({ agent, issuer: orgA.did, deployment, clients });
 * await app.listen({ host: "127.0.0.1", port: 0 });
 * ```
 */
export async function buildIssuerService(options: IssuerServiceOptions): Promise<FastifyInstance> {
  const { agent, issuer, deployment, clients } = options;
  if (!agent || !deployment || !clients) throw new TypeError("agent, deployment and clients are required");
  if (typeof issuer !== "string" || !issuer.startsWith("did:")) throw new TypeError("issuer must be a DID");
  const now = options.now ?? (() => new Date());
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const app = Fastify({
    bodyLimit: options.bodyLimitBytes ?? 4 * 1024 * 1024,
    logger: false,
    // validation only: nothing removed, nothing coerced, so what is signed is what was posted
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
  });
  const openapi = collectOpenApi(app, {
    title: "kparty issuer",
    version: "1",
    description: `VC-API issuance and status for ${issuer}. K-th Party tokens (type KPartyCredential) are checked by the registry's rules; other W3C credentials are signed as drafted. Every credential is anchored on the CredentialRegistry and carries revocation and suspension entries.`,
  });

  app.setErrorHandler(async (error: FastifyError, _request, reply) => {
    const mapped = issuerError(error);
    // the client gets a fixed message; the operator the cause, redacted
    if (isInternalError(mapped))
      log(redactSecrets(`kparty issuer: ${String((error as Error).message ?? error)}`));
    const [status, body] = errorResponse(mapped);
    if (status === 401) reply.header("www-authenticate", 'Bearer realm="kparty issuer"');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler(answerNoRoute);

  const authenticate = async (request: FastifyRequest) => {
    if (!clients.authenticate(request.headers.authorization)) {
      throw new KPartyError("token_invalid", "an API key is required: Authorization: Bearer kpi_…");
    }
  };
  const secured = { onRequest: authenticate };

  app.get("/openapi.json", { config: { doc: { summary: "This document", secured: false } } }, async () =>
    openapi.document(),
  );
  const routes: IssuerRoutes = { agent, issuer, deployment, now, secured };
  registerIssueRoutes(app, routes);
  registerStatusRoute(app, routes);
  app.get<{ Params: { id: string } }>(
    "/credentials/:id",
    {
      ...secured,
      config: {
        doc: { summary: "A credential this service issued, by its id (urn:uuid:…) or registry id (0x…)" },
      },
      schema: { params: credentialIdParam, response: { 200: issuedSchema, 404: errorSchema, ...errors } },
    },
    async (request) => recordBody(await agent.kpartyGetIssuedCredential({ credentialId: request.params.id })),
  );
  return app;
}

/** What the issuer's routes work with. */
interface IssuerRoutes {
  agent: IssuerAgent;
  issuer: string;
  deployment: Deployment;
  now: () => Date;
  /** The route options that require an API key. */
  secured: { onRequest: (request: FastifyRequest) => Promise<void> };
}

/** `POST /credentials/issue` and `POST /credentials/issue/batch`. */
function registerIssueRoutes(
  app: FastifyInstance,
  { agent, issuer, deployment, now, secured }: IssuerRoutes,
) {
  app.post<{ Body: { credential: CredentialRequest; options?: { credentialId?: string } } }>(
    "/credentials/issue",
    {
      ...secured,
      config: {
        doc: {
          summary: "Sign and anchor one credential (VC-API issue)",
          description:
            "201 with the credential's JSON form (proof.jwt is the JWT VC) and its anchoring. 400 for a missing or wrongly typed property, an issuer other than this service's DID, a window that ends before it starts, K-th Party claims the registry's rules refuse, or an unknown option.",
        },
      },
      schema: {
        body: {
          type: "object",
          required: ["credential"],
          additionalProperties: false,
          properties: { credential: credentialSchema, options: issueOptionsSchema },
        },
        response: { 201: { ...issuedSchema, description: "issued and anchored" }, ...errors },
      },
    },
    async (request, reply) => {
      const { credential, options: opts = {} } = request.body;
      const item = issueItemOf(credential, opts, { issuer, deployment, now: now() });
      const issued = await agent.kpartyIssueCredential({ issuer, ...item } as never);
      return reply.code(201).send(issuedBody(issued));
    },
  );

  app.post<{ Body: { credentials: CredentialRequest[]; options?: { credentialId?: string } } }>(
    "/credentials/issue/batch",
    {
      ...secured,
      config: {
        doc: {
          summary: `Sign up to ${MAX_BATCH} credentials and anchor their Merkle root in one transaction`,
          description:
            "Each credential is validated as for /credentials/issue; one invalid credential refuses the batch (its index is in the field). Each result carries its inclusion proof, which the holder presents with it.",
        },
      },
      schema: {
        body: {
          type: "object",
          required: ["credentials"],
          additionalProperties: false,
          properties: {
            credentials: { type: "array", minItems: 1, maxItems: MAX_BATCH, items: credentialSchema },
            options: { type: "object", additionalProperties: false, properties: {} },
          },
        },
        response: {
          201: {
            description: "issued and anchored under one root",
            type: "object",
            properties: { issued: { type: "array", items: issuedSchema } },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const at = now();
      const items = request.body.credentials.map((credential, i) =>
        issueItemOf(credential, {}, { issuer, deployment, now: at, field: `credentials.${i}` }),
      );
      const issued = await agent.kpartyIssueCredentials({ issuer, credentials: items });
      return reply.code(201).send({ issued: issued.map(issuedBody) });
    },
  );
}

/** `POST /credentials/status`. */
function registerStatusRoute(app: FastifyInstance, { agent, secured }: IssuerRoutes) {
  app.post<{
    Body: {
      credentialId: string;
      credentialStatus: { type: string; statusPurpose: string };
      status: boolean;
    };
  }>(
    "/credentials/status",
    {
      ...secured,
      config: {
        doc: {
          summary: "Revoke (final), suspend or reinstate a credential this service issued (VC-API status)",
          description:
            "status true sets the bit of statusPurpose (revocation or suspension), false clears it; a revocation cannot be cleared (400). credentialId is the credential's id (urn:uuid:…) or its registry id (0x…).",
        },
      },
      schema: {
        body: {
          type: "object",
          required: ["credentialId", "credentialStatus", "status"],
          additionalProperties: false,
          properties: {
            credentialId: { type: "string", minLength: 1, maxLength: 256 },
            credentialStatus: {
              type: "object",
              required: ["type", "statusPurpose"],
              additionalProperties: false,
              properties: { type: { const: STATUS_TYPE }, statusPurpose: { enum: [...STATUS_PURPOSES] } },
            },
            status: { type: "boolean" },
          },
        },
        response: {
          200: {
            description: "the status changed on chain",
            type: "object",
            properties: {
              credentialId: { type: "string" },
              statusPurpose: { type: "string" },
              status: { type: "boolean" },
              statusIndex: { type: "integer" },
              transactionHash: { type: "string" },
              blockNumber: { type: "integer" },
            },
          },
          404: errorSchema,
          409: errorSchema,
          ...errors,
        },
      },
    },
    async (request) => changeStatus(agent, request.body),
  );
}

/** What `POST /credentials/status` asks. */
interface StatusChange {
  credentialId: string;
  credentialStatus: { type: string; statusPurpose: string };
  status: boolean;
}

/**
 * Sets or clears the credential's bit of the purpose on chain: `malformed` for clearing a
 * revocation, `conflict` when the bit already is as asked (the registry says which).
 */
async function changeStatus(agent: IssuerAgent, { credentialId, credentialStatus, status }: StatusChange) {
  const { statusPurpose } = credentialStatus;
  if (statusPurpose === "revocation" && !status) {
    throw new KPartyError("malformed", "a revocation is final: it cannot be cleared", {
      details: { field: "status" },
    });
  }
  const record = await agent.kpartyGetIssuedCredential({ credentialId });
  const args = { credentialId: record.credentialId };
  try {
    const change =
      statusPurpose === "revocation"
        ? await agent.kpartyRevokeCredential(args)
        : status
          ? await agent.kpartySuspendCredential(args)
          : await agent.kpartyReinstateCredential(args);
    return { ...change, statusPurpose, status };
  } catch (error) {
    // the bit is already as asked: the registry says which (AlreadyRevoked, AlreadySuspended, NotSuspended)
    const reverted =
      error instanceof KPartyError && error.code === "chain_reverted" ? error.details.error : null;
    if (typeof reverted === "string" && /Already|NotSuspended/.test(reverted)) {
      throw new KPartyError("conflict", `the credential's ${statusPurpose} is already ${status}`, {
        details: { error: reverted },
      });
    }
    throw error;
  }
}

/** The error a request's failure is answered with: validation, body and argument errors as `malformed` (with the field), a too large body as `payload_too_large`. */
function issuerError(error: FastifyError): unknown {
  let mapped: unknown = error;
  if (error.validation) {
    const first = error.validation[0];
    const path = `${error.validationContext ?? "body"}${(first?.instancePath ?? "").replaceAll("/", ".")}`;
    const missing = (first?.params as { missingProperty?: string } | undefined)?.missingProperty;
    const extra = (first?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
    const field = (missing ? `${path}.${missing}` : extra ? `${path}.${extra}` : path).replace(/^body\./, "");
    mapped = new KPartyError(
      "malformed",
      extra ? `${field} is not allowed` : `${field} ${first?.message ?? "is invalid"}`,
      { details: { field } },
    );
  } else if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
    mapped = new KPartyError("payload_too_large", "the body is too large");
  } else if (error.statusCode === 400 || error instanceof SyntaxError) {
    mapped = new KPartyError("malformed", "the body must be JSON (Content-Type: application/json)");
  } else if (error instanceof KPartyError && error.code === "invalid_argument") {
    mapped = new KPartyError("malformed", error.shortMessage, { details: error.details });
  }
  return mapped;
}
