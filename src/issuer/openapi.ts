import type { FastifyInstance, RouteOptions } from "fastify";

/** What a route tells the OpenAPI document besides its schemas. */
export interface RouteDoc {
  summary: string;
  description?: string;
  /** Whether the route needs an API key (default true). */
  secured?: boolean;
}

declare module "fastify" {
  interface FastifyContextConfig {
    doc?: RouteDoc;
  }
}

interface Collected {
  method: string;
  url: string;
  schema: Record<string, unknown>;
  doc: RouteDoc;
}

/** `/credentials/:id` → `/credentials/{id}`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

/**
 * Collects every route's schema and `config.doc` as it is registered, and builds an OpenAPI
 * 3.1 document from them: the request schemas Fastify validates with are the ones served,
 * so the document cannot drift from what the service accepts. Call before registering routes.
 *
 * @example
 * ```ts
 * const openapi = collectOpenApi(app, { title: "kparty issuer", version: "1" });
 * app.get("/openapi.json", { config: { doc: { summary: "This document", secured: false } } }, async () => openapi.document());
 * ```
 */
export function collectOpenApi(
  app: FastifyInstance,
  info: { title: string; version: string; description?: string },
) {
  const routes: Collected[] = [];
  app.addHook("onRoute", (route: RouteOptions) => {
    const doc = (route.config as { doc?: RouteDoc } | undefined)?.doc;
    if (!doc) return;
    for (const method of [route.method].flat()) {
      if (method === "HEAD") continue;
      routes.push({
        method: method.toLowerCase(),
        url: route.url,
        schema: (route.schema ?? {}) as Record<string, unknown>,
        doc,
      });
    }
  });
  let built: object | undefined;
  return {
    routes,
    document(): object {
      built ??= {
        openapi: "3.1.0",
        info,
        components: {
          securitySchemes: { apiKey: { type: "http", scheme: "bearer", bearerFormat: "kpi_<id>.<secret>" } },
        },
        paths: routes.reduce<Record<string, Record<string, unknown>>>((paths, r) => {
          const path = openApiPath(r.url);
          const params = r.schema.params as { properties?: Record<string, unknown> } | undefined;
          const responses = (r.schema.response ?? {}) as Record<string, object>;
          paths[path] ??= {};
          (paths[path] as Record<string, unknown>)[r.method] = {
            summary: r.doc.summary,
            ...(r.doc.description ? { description: r.doc.description } : {}),
            ...(r.doc.secured === false ? {} : { security: [{ apiKey: [] }] }),
            ...(params?.properties
              ? {
                  parameters: Object.entries(params.properties).map(([name, schema]) => ({
                    name,
                    in: "path",
                    required: true,
                    schema,
                  })),
                }
              : {}),
            ...(r.schema.body
              ? {
                  requestBody: { required: true, content: { "application/json": { schema: r.schema.body } } },
                }
              : {}),
            responses: Object.fromEntries(
              Object.entries(responses).map(([status, schema]) => [
                status,
                {
                  description: (schema as { description?: string }).description ?? status,
                  content: { "application/json": { schema } },
                },
              ]),
            ),
          };
          return paths;
        }, {}),
      };
      return built;
    },
  };
}
