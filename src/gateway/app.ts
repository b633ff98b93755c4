import Fastify, { type FastifyInstance } from "fastify";
import { redactSecrets } from "../util/redact.ts";
import type { AuditAnchorer } from "./audit-anchor.ts";
import { fastifyTrustProxy } from "./client-address.ts";
import { installErrorHandling, installLoadShedding } from "./http.ts";
import { gatewayOpenApi } from "./openapi.ts";
import type { GatewayOptions } from "./options.ts";
import { authRoutes } from "./routes/auth.ts";
import { metaRoutes } from "./routes/meta.ts";
import { modelRoutes } from "./routes/models.ts";
import { oauthRoutes } from "./routes/oauth.ts";
import { oid4vpRoutes } from "./routes/oid4vp.ts";
import { vcApiRoutes } from "./routes/vc-api.ts";
import { createGatewayServices, type GatewayCacheSizes } from "./services.ts";

export type { GatewayOptions } from "./options.ts";

declare module "fastify" {
  interface FastifyInstance {
    /** Every route the gateway registered (method, Fastify URL pattern). */
    kpartyRoutes: { method: string; url: string }[];
    /** The last block whose registry events the gateway has applied (what /healthz reports, without HTTP). */
    kpartySyncedBlock(): number;
    /** How many entries each of the gateway's caches holds (see `cacheBounds`). */
    kpartyCacheSizes(): GatewayCacheSizes;
    /** Anchors the audit chain's head (null: off); `tick()` runs a round now. */
    kpartyAuditAnchorer: AuditAnchorer | null;
  }
}

/**
 * Builds the kparty gateway (Fastify): its services from the options (`createGatewayServices`),
 * load shedding and error handling on the root instance, then one plugin per route group,
 * serving these 21 routes (test/docs.test.ts checks this list against the routes served):
 * - `routes/meta.ts`: `GET /healthz`, `/.well-known/kparty`, `/.well-known/jwks.json`,
 *   `/openapi.json`;
 * - `routes/auth.ts`: `POST /auth/challenge`, `/challenges`, `/auth/token`;
 * - `routes/oauth.ts`: `POST /oauth/introspect`, `/oauth/revoke`;
 * - `routes/oid4vp.ts` (OID4VP 1.0): `POST /oid4vp/requests`, `GET /oid4vp/requests/:state`,
 *   `POST /oid4vp/responses`, `GET /oid4vp/transactions/:id`;
 * - `routes/vc-api.ts`: `POST /credentials/verify`, `/presentations/verify`;
 * - `routes/models.ts`: `GET /models`, `/models/:id`, `/models/:id/weights`, `POST /models`,
 *   `/models/:id/updates`, `/models/:id/rounds/:round/close`.
 *
 * Errors are JSON `{error: {code, message, field?, checks?}}`.
 *
 * @example
 * ```ts
 * const app = await buildGateway({ agent, chain, models, db: openGatewayDatabase(":memory:"), domain: "gw.local" });
 * await app.listen({ host: "127.0.0.1", port: 0 });
 * ```
 */
export async function buildGateway(options: GatewayOptions): Promise<FastifyInstance> {
  const trustProxy = fastifyTrustProxy(options.trustProxy);
  const services = await createGatewayServices(options);
  const app = Fastify({
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    trustProxy,
    // the route schemas validate only: nothing removed, coerced or defaulted (see body.ts)
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    logger: options.logger
      ? {
          redact: ["req.headers.authorization"],
          serializers: {
            err: (e: Error) => ({
              type: e.name,
              message: redactSecrets(e.message),
              stack: redactSecrets(e.stack ?? ""),
            }),
          },
        }
      : false,
  });
  app.addHook("onClose", () => services.close());
  installLoadShedding(app, services);
  const routes: { method: string; url: string }[] = [];
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat())
      if (method !== "HEAD") routes.push({ method, url: route.url });
  });
  app.decorate("kpartyRoutes", routes);
  app.decorate("kpartyOpenApi", gatewayOpenApi(app, services));
  // response schemas document and are tested (test/openapi-contract.test.ts); bodies are sent as they are
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.decorate("kpartySyncedBlock", () => services.watcher.syncedBlock);
  app.decorate("kpartyCacheSizes", () => services.cacheSizes());
  app.decorate("kpartyAuditAnchorer", services.auditAnchorer);
  installErrorHandling(app, services);
  for (const plugin of [metaRoutes, authRoutes, oauthRoutes, oid4vpRoutes, vcApiRoutes, modelRoutes]) {
    await app.register(plugin, { services });
  }
  return app;
}
