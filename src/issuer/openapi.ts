import type { FastifyInstance, RouteOptions } from "fastify";

/** What a route tells the OpenAPI document besides its schemas. */
export interface RouteDoc {
  summary: string;
  description?: string;
  /** Whether the route needs the document's default security (default true). */
  secured?: boolean;
  /** The route's own security requirements (instead of the document's default). */
  security?: Record<string, string[]>[];
  /** A request body that is not JSON (raw bytes, a form): its media types and schemas. */
  bodyContent?: Record<string, { schema: object }>;
  tags?: string[];
  /** Left out of the document. */
  hidden?: boolean;
}

declare module "fastify" {
  interface FastifyContextConfig {
    doc?: RouteDoc;
  }
}

/** What the document says besides its routes: info, security schemes, shared schemas, servers, tags. */
export interface OpenApiInfo {
  title: string;
  version: string;
  description?: string;
  securitySchemes?: Record<string, object>;
  /** The requirement of a route whose doc says nothing about security (default: the API key). */
  security?: Record<string, string[]>[];
  schemas?: Record<string, object>;
  servers?: { url: string; description?: string }[];
  tags?: { name: string; description?: string }[];
}

export interface Collected {
  method: string;
  url: string;
  schema: Record<string, unknown>;
  doc: RouteDoc;
}

type ObjectSchema = { properties?: Record<string, object>; required?: string[] };

const API_KEY = { apiKey: { type: "http", scheme: "bearer", bearerFormat: "kpi_<id>.<secret>" } };

/** `/credentials/:id` → `/credentials/{id}`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");

/** Path, header and query parameters of a route, from its `params`, `headers` and `querystring` schemas. */
function parametersOf(schema: Record<string, unknown>) {
  const sources: [string, string][] = [
    ["params", "path"],
    ["headers", "header"],
    ["querystring", "query"],
  ];
  return sources.flatMap(([key, where]) => {
    const s = schema[key] as ObjectSchema | undefined;
    return Object.entries(s?.properties ?? {}).map(([name, p]) => {
      const { description, ...rest } = p as { description?: string };
      return {
        name,
        in: where,
        required: where === "path" || (s?.required ?? []).includes(name),
        ...(description ? { description } : {}),
        schema: rest,
      };
    });
  });
}

/** One response: a plain schema (JSON), or Fastify's `{description, content: {type: {schema}}}` form. */
function responseOf(status: string, schema: Record<string, unknown>) {
  const description = (schema.description as string | undefined) ?? status;
  if (schema.content && typeof schema.content === "object") return { description, content: schema.content };
  return { description, content: { "application/json": { schema } } };
}

/** The document's operation for one collected route. */
function operationOf(r: Collected, defaultSecurity: Record<string, string[]>[]) {
  const parameters = parametersOf(r.schema);
  const responses = (r.schema.response ?? {}) as Record<string, Record<string, unknown>>;
  const security = r.doc.security ?? (r.doc.secured === false ? undefined : defaultSecurity);
  const body =
    r.doc.bodyContent ?? (r.schema.body ? { "application/json": { schema: r.schema.body } } : null);
  return {
    summary: r.doc.summary,
    ...(r.doc.description ? { description: r.doc.description } : {}),
    ...(r.doc.tags ? { tags: r.doc.tags } : {}),
    ...(security?.length ? { security } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(body ? { requestBody: { required: true, content: body } } : {}),
    responses: Object.fromEntries(
      Object.entries(responses).map(([status, schema]) => [status, responseOf(status, schema)]),
    ),
  };
}

/**
 * Collects every route's schema and `config.doc` as it is registered (a route with neither is
 * left out, as is one whose doc says `hidden`), and builds an OpenAPI 3.1 document from them:
 * the request schemas Fastify validates with are the ones served, so the document cannot drift
 * from what the service accepts. Call on the root instance before registering routes. Used by
 * the issuer service and the gateway alike.
 *
 * @example
 * ```ts
 * const openapi = collectOpenApi(app, { title: "kparty issuer", version: "1" });
 * app.get("/openapi.json", { config: { doc: { summary: "This document", secured: false } } }, async () => openapi.document());
 * ```
 */
export function collectOpenApi(app: FastifyInstance, info: OpenApiInfo) {
  const routes: Collected[] = [];
  app.addHook("onRoute", (route: RouteOptions) => {
    const doc = (route.config as { doc?: RouteDoc } | undefined)?.doc;
    if ((!doc && !route.schema) || doc?.hidden) return;
    for (const method of [route.method].flat()) {
      if (method === "HEAD") continue;
      routes.push({
        method: method.toLowerCase(),
        url: route.url,
        schema: (route.schema ?? {}) as Record<string, unknown>,
        doc: doc ?? { summary: `${method} ${route.url}` },
      });
    }
  });
  const { title, version, description, securitySchemes, security, schemas, servers, tags } = info;
  const build = () => {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const r of routes) {
      const path = openApiPath(r.url);
      paths[path] = { ...paths[path], [r.method]: operationOf(r, security ?? [{ apiKey: [] }]) };
    }
    return {
      openapi: "3.1.0",
      info: { title, version, ...(description ? { description } : {}) },
      ...(servers ? { servers } : {}),
      ...(tags ? { tags } : {}),
      components: { securitySchemes: securitySchemes ?? API_KEY, ...(schemas ? { schemas } : {}) },
      paths,
    };
  };
  let built: object | undefined;
  return {
    routes,
    /** The document, built on first use (once every route is registered). */
    document(): object {
      built ??= build();
      return built;
    },
  };
}
