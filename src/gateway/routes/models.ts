import { Readable } from "node:stream";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { KPartyError, type ServiceErrorCode } from "../../errors/index.ts";
import { type Aggregation, MAX_SAMPLES_LIMIT } from "../../models/index.ts";
import { type InputMessages, rejectInvalidInput } from "../body.ts";
import { grantCoversModel } from "../guard.ts";
import {
  ACCESS_CODES,
  aggregationSchema,
  errorResponses,
  modelSchema,
  positiveInteger,
  receiptSchema,
  roundSchema,
} from "../schemas.ts";
import type { GatewayServices } from "../services.ts";

const doc = (summary: string) => ({ doc: { summary, tags: ["models"] } });
const modelId = { type: "string", description: "a model id: ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$" };
const idParams = { type: "object", required: ["id"], properties: { id: modelId } };
const binary = { type: "string", format: "binary" };
const responses = (ok: Record<string, object>, codes: ServiceErrorCode[]) => ({
  response: { ...ok, ...errorResponses([...ACCESS_CODES, ...codes]) },
});

/** What `POST /models` accepts (the store checks the rest: the parameter count, a free id). */
export const registerModelSchema = {
  type: "object",
  required: ["id", "shape"],
  additionalProperties: false,
  properties: {
    id: { type: "string", description: "a model id within the token's models" },
    description: { type: "string", maxLength: 1000 },
    shape: { type: "array", minItems: 1, maxItems: 8, items: { type: "integer", minimum: 1 } },
    maxSamplesPerUpdate: {
      type: "integer",
      minimum: 1,
      maximum: MAX_SAMPLES_LIMIT,
      description: "an update claiming more samples is refused (400 invalid_update); default 1,000,000",
    },
    aggregation: aggregationSchema,
  },
};

const REGISTER_INPUT: InputMessages = {
  shape: "{id, description, shape, maxSamplesPerUpdate?, aggregation?}",
  fields: {
    "/id": (id) => `the access token does not cover model ${String(id)}`,
    "/description": "description must be a string of at most 1000 characters",
    "/shape": "shape must be 1 to 8 positive integers",
    "/maxSamplesPerUpdate": `maxSamplesPerUpdate must be an integer from 1 to ${MAX_SAMPLES_LIMIT}`,
    "/aggregation": "aggregation: must be {rule: fedavg | median | trimmed-mean, trimFraction?, clipNorm?}",
  },
  codes: {
    "/id": "scope_denied",
    "/description": "invalid_argument",
    "/shape": "invalid_argument",
    "/maxSamplesPerUpdate": "invalid_argument",
    "/aggregation": "invalid_argument",
  },
};

const UPDATE_INPUT: InputMessages = {
  fields: {
    "/x-kparty-round": "x-kparty-round must be a positive integer",
    "/x-kparty-sample-count": "x-kparty-sample-count must be a positive integer",
  },
};

const ROUND_INPUT: InputMessages = { fields: { "/round": "round must be a positive integer" } };

const updateRoute = {
  attachValidation: true,
  config: {
    doc: {
      summary:
        "Submit this participant's update for the open round (model:contribute): exactly the model's float32 values, all finite; x-kparty-sample-count at most the model's maxSamplesPerUpdate",
      tags: ["models"],
      bodyContent: { "application/octet-stream": { schema: binary } },
    },
  },
  schema: {
    params: idParams,
    headers: {
      type: "object",
      required: ["x-kparty-round", "x-kparty-sample-count"],
      properties: { "x-kparty-round": positiveInteger, "x-kparty-sample-count": positiveInteger },
    },
    ...responses({ 201: { description: "accepted", ...receiptSchema } }, [
      "not_found",
      "invalid_update",
      "conflict",
      "payload_too_large",
    ]),
  },
};

const listRoute = {
  config: doc("Models the caller's token covers (model:read)"),
  schema: responses(
    {
      200: {
        description: "ok",
        type: "object",
        required: ["models"],
        additionalProperties: false,
        properties: { models: { type: "array", items: modelSchema } },
      },
    },
    [],
  ),
};

const readRoute = {
  config: doc("Model metadata (model:read)"),
  schema: { params: idParams, ...responses({ 200: { description: "ok", ...modelSchema } }, ["not_found"]) },
};

const registerRoute = {
  attachValidation: true,
  config: doc("Register a model with zero initial weights (round:aggregate, within the token's models)"),
  schema: {
    body: registerModelSchema,
    ...responses({ 201: { description: "registered", ...modelSchema } }, [
      "invalid_argument",
      "conflict",
      "payload_too_large",
    ]),
  },
};

const closeRoute = {
  attachValidation: true,
  config: doc(
    "Close the open round: its updates, aggregated under the model's rule (FedAvg by default), become the next version (round:aggregate)",
  ),
  schema: {
    params: {
      type: "object",
      required: ["id", "round"],
      properties: { id: modelId, round: positiveInteger },
    },
    ...responses({ 200: { description: "aggregated", ...roundSchema } }, [
      "not_found",
      "invalid_argument",
      "conflict",
    ]),
  },
};

const weightsRoute = {
  config: doc(
    "Current global weights, little-endian float32 (model:read); version in x-kparty-model-version",
  ),
  schema: {
    params: idParams,
    ...responses(
      { 200: { description: "weights", content: { "application/octet-stream": { schema: binary } } } },
      ["not_found"],
    ),
  },
};

type Claims = NonNullable<FastifyRequest["kparty"]>;
type RegisterBody = {
  id: string;
  description?: string;
  shape: number[];
  maxSamplesPerUpdate?: number;
  aggregation?: Aggregation;
};

/** `POST /models`: a model within the token's models, with zero weights. */
function registerModel(services: GatewayServices) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    rejectInvalidInput(request, REGISTER_INPUT);
    const body = request.body as RegisterBody;
    if (!grantCoversModel(request.kparty as Claims, body.id)) {
      throw new KPartyError("scope_denied", `the access token does not cover model ${body.id}`);
    }
    const info = await services.models.register({
      id: body.id,
      description: body.description ?? "",
      shape: body.shape,
      ...(body.maxSamplesPerUpdate !== undefined ? { maxSamplesPerUpdate: body.maxSamplesPerUpdate } : {}),
      ...(body.aggregation !== undefined ? { aggregation: body.aggregation } : {}),
    });
    return reply.code(201).send(info);
  };
}

/** `POST /models/:id/updates`: this participant's update for the open round, streamed to the store. */
function submitUpdate(services: GatewayServices) {
  return async (request: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
    rejectInvalidInput(request, UPDATE_INPUT);
    const body = request.body;
    if (!(body instanceof Readable)) {
      throw new KPartyError(
        "malformed",
        "an update is raw float32 bytes (Content-Type: application/octet-stream)",
      );
    }
    const info = await services.models.get(request.params.id);
    const declared = Number(request.headers["content-length"] ?? Number.NaN);
    if (declared > info.parameterCount * 4) {
      throw new KPartyError(
        "payload_too_large",
        `the update exceeds the model's ${info.parameterCount * 4} bytes`,
      );
    }
    const receipt = await services.models.submitUpdate(request.params.id, {
      round: Number(request.headers["x-kparty-round"]),
      participant: (request.kparty as Claims).holder,
      sampleCount: Number(request.headers["x-kparty-sample-count"]),
      body,
    });
    return reply.code(201).send(receipt);
  };
}

/**
 * The shared model store behind access tokens: list and read models and their weights
 * (`model:read`), submit an update for the open round (`model:contribute`), register a model
 * and close a round (`round:aggregate`). Weights travel as raw float32 bytes, streamed.
 */
export const modelRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  const { models, requireAccess } = services;
  // Weights travel as raw float32 bytes; the handler streams them (never buffered whole).
  app.addContentTypeParser("application/octet-stream", (_request, payload, done) => done(null, payload));
  const read = requireAccess("model:read");
  const aggregate = requireAccess("round:aggregate");

  app.get("/models", { ...listRoute, preHandler: read }, async (request) => {
    const all = await models.list();
    return { models: all.filter((m) => grantCoversModel(request.kparty as Claims, m.id)) };
  });
  app.get<{ Params: { id: string } }>("/models/:id", { ...readRoute, preHandler: read }, async (request) =>
    models.get(request.params.id),
  );
  app.post("/models", { ...registerRoute, preHandler: aggregate }, registerModel(services));
  const contribute = requireAccess("model:contribute");
  app.post<{ Params: { id: string } }>(
    "/models/:id/updates",
    { ...updateRoute, preHandler: contribute },
    submitUpdate(services),
  );
  app.post<{ Params: { id: string; round: string } }>(
    "/models/:id/rounds/:round/close",
    { ...closeRoute, preHandler: aggregate },
    async (request) => {
      rejectInvalidInput(request, ROUND_INPUT);
      return models.closeRound(request.params.id, Number(request.params.round));
    },
  );
  app.get<{ Params: { id: string } }>(
    "/models/:id/weights",
    { ...weightsRoute, preHandler: read },
    async (request, reply) => {
      const { info, size, stream } = await models.openWeights(request.params.id);
      return reply
        .header("content-type", "application/octet-stream")
        .header("content-length", String(size))
        .header("x-kparty-model-version", String(info.version))
        .header("x-kparty-model-shape", info.shape.join(","))
        .header("x-kparty-model-dtype", info.dtype)
        .send(stream);
    },
  );
};
