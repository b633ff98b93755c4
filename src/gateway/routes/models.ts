import { Readable } from "node:stream";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { KPartyError } from "../../errors/index.ts";
import type { Aggregation } from "../../models/index.ts";
import { integerHeader, jsonObject } from "../body.ts";
import { grantCoversModel } from "../guard.ts";
import type { GatewayServices } from "../services.ts";

/**
 * The shared model store behind access tokens: list and read models and their weights
 * (`model:read`), submit an update for the open round (`model:contribute`), register a model
 * and close a round (`round:aggregate`). Weights travel as raw float32 bytes, streamed.
 */
export const modelRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  const { models, requireAccess } = services;
  // Weights travel as raw float32 bytes; the handler streams them (never buffered whole).
  app.addContentTypeParser("application/octet-stream", (_request, payload, done) => done(null, payload));

  app.get("/models", { preHandler: requireAccess("model:read") }, async (request) => {
    const claims = request.kparty as NonNullable<FastifyRequest["kparty"]>;
    const all = await models.list();
    return { models: all.filter((m) => grantCoversModel(claims, m.id)) };
  });

  app.get<{ Params: { id: string } }>(
    "/models/:id",
    { preHandler: requireAccess("model:read") },
    async (request) => models.get(request.params.id),
  );

  app.post("/models", { preHandler: requireAccess("round:aggregate") }, async (request, reply) => {
    const claims = request.kparty as NonNullable<FastifyRequest["kparty"]>;
    const body = jsonObject(
      request.body,
      ["id", "description", "shape", "maxSamplesPerUpdate", "aggregation"],
      "{id, description, shape, maxSamplesPerUpdate?, aggregation?}",
    );
    if (typeof body.id !== "string" || !grantCoversModel(claims, body.id)) {
      throw new KPartyError("scope_denied", `the access token does not cover model ${String(body.id)}`);
    }
    const info = await models.register({
      id: body.id,
      description: String(body.description ?? ""),
      shape: body.shape as number[],
      maxSamplesPerUpdate: body.maxSamplesPerUpdate as number, // the store checks both
      aggregation: body.aggregation as Aggregation,
    });
    return reply.code(201).send(info);
  });

  app.post<{ Params: { id: string } }>(
    "/models/:id/updates",
    { preHandler: requireAccess("model:contribute") },
    async (request, reply) => {
      const claims = request.kparty as NonNullable<FastifyRequest["kparty"]>;
      const body = request.body;
      if (!(body instanceof Readable)) {
        throw new KPartyError(
          "malformed",
          "an update is raw float32 bytes (Content-Type: application/octet-stream)",
        );
      }
      const round = integerHeader(request.headers["x-kparty-round"], "x-kparty-round");
      const sampleCount = integerHeader(request.headers["x-kparty-sample-count"], "x-kparty-sample-count");
      const info = await models.get(request.params.id);
      const declared = Number(request.headers["content-length"] ?? Number.NaN);
      if (declared > info.parameterCount * 4) {
        throw new KPartyError(
          "payload_too_large",
          `the update exceeds the model's ${info.parameterCount * 4} bytes`,
        );
      }
      const receipt = await models.submitUpdate(request.params.id, {
        round,
        participant: claims.holder,
        sampleCount,
        body,
      });
      return reply.code(201).send(receipt);
    },
  );

  app.post<{ Params: { id: string; round: string } }>(
    "/models/:id/rounds/:round/close",
    { preHandler: requireAccess("round:aggregate") },
    async (request) => models.closeRound(request.params.id, integerHeader(request.params.round, "round")),
  );

  app.get<{ Params: { id: string } }>(
    "/models/:id/weights",
    { preHandler: requireAccess("model:read") },
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
