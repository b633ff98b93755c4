import { Ajv2020 } from "ajv/dist/2020.js";
import type { FastifyInstance } from "fastify";
import { describe, expect, it } from "vitest";
import { offlineGatewayOptions } from "../../test/fixtures/offline-gateway.ts";
import { SERVICE_ERROR_CODES } from "../errors/index.ts";
import { buildGateway } from "./app.ts";
import { HTTP_STATUS } from "./errors.ts";
import { documentedErrorCodes, openApiDocument } from "./openapi.ts";

/** The gateway app without a chain: enough to list its routes and serve its document. */
const app = () => buildGateway(offlineGatewayOptions());

type Response = { description: string; content?: Record<string, { schema?: Record<string, any> }> };
type Doc = {
  paths: Record<string, Record<string, { responses: Record<string, Response>; requestBody?: unknown }>>;
  components: { schemas: { ErrorCode: { enum: string[]; description: string } } };
};

async function served(gateway: FastifyInstance): Promise<Doc> {
  const res = await gateway.inject({ method: "GET", url: "/openapi.json" });
  expect(res.statusCode).toBe(200);
  return res.json() as Doc;
}

/** Every `[operation, status, response]` of the document. */
const responsesOf = (doc: Doc) =>
  Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).flatMap(([method, op]) =>
      Object.entries(op.responses).map(
        ([status, r]) => [`${method.toUpperCase()} ${path}`, status, r] as const,
      ),
    ),
  );

describe("OpenAPI document", () => {
  it("documents exactly the routes the gateway registers", async () => {
    const gateway = await app();
    await gateway.ready();
    const registered = gateway.kpartyRoutes
      .map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, "{$1}")}`)
      .sort();
    const doc = await served(gateway);
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(registered);
    expect(openApiDocument(gateway)).toEqual(doc);
    await gateway.close();
  });

  it("gives every response of every operation a content schema that compiles", async () => {
    const gateway = await app();
    const doc = await served(gateway);
    const ajv = new Ajv2020({ strict: false, validateFormats: false });
    const missing: string[] = [];
    for (const [operation, status, response] of responsesOf(doc)) {
      const schemas = Object.values(response.content ?? {}).map((c) => c.schema);
      if (schemas.length === 0 || schemas.some((s) => !s)) missing.push(`${operation} ${status}`);
      for (const schema of schemas) if (schema) ajv.compile(schema);
    }
    expect(missing).toEqual([]);
    await gateway.close();
  });

  it("lists in each error response exactly the codes of that status, and all of them in ErrorCode", async () => {
    const gateway = await app();
    const doc = await served(gateway);
    const wrong: string[] = [];
    for (const [operation, status, response] of responsesOf(doc)) {
      if (Number(status) < 400) continue;
      const schema = response.content?.["application/json"]?.schema;
      const codes: string[] = schema?.properties?.error?.properties?.code?.enum ?? [];
      if (codes.length === 0) wrong.push(`${operation} ${status}: no codes`);
      for (const code of codes) {
        const expected = HTTP_STATUS[code as keyof typeof HTTP_STATUS];
        const dpopAt400 = (code === "invalid_dpop_proof" || code === "use_dpop_nonce") && status === "400";
        // the health check answers every failure with 503, an internal one included
        const health = operation === "GET /healthz" && status === "503";
        if (String(expected) !== status && !dpopAt400 && !health)
          wrong.push(`${operation} ${status}: ${code} is ${expected}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(doc.components.schemas.ErrorCode.enum).toEqual(documentedErrorCodes(doc));
    const service: readonly string[] = SERVICE_ERROR_CODES;
    expect(doc.components.schemas.ErrorCode.enum.filter((c) => !service.includes(c))).toEqual([]);
    await gateway.close();
  });

  it("documents the request bodies the routes validate (unknown keys refused)", async () => {
    const gateway = await app();
    const doc = await served(gateway);
    const token = doc.paths["/auth/token"]?.post?.requestBody as {
      content: { "application/json": { schema: { required: string[]; additionalProperties: boolean } } };
    };
    expect(token.content["application/json"].schema).toMatchObject({
      required: ["presentation"],
      additionalProperties: false,
    });
    const refused = await gateway.inject({
      method: "POST",
      url: "/auth/token",
      payload: { presentation: "x.y.z", switchOff: "everything" },
    });
    expect([refused.statusCode, refused.json()]).toEqual([
      400,
      {
        error: {
          code: "malformed",
          message: "unknown fields: switchOff; nothing in a request changes verification",
        },
      },
    ]);
    await gateway.close();
  });

  it("states the token lifetime rule and the gateway's one clock skew, and publishes the skew", async () => {
    for (const [clockSkewSeconds, expected] of [
      [undefined, 60],
      [30, 30],
    ] as const) {
      const gateway = await buildGateway({
        ...offlineGatewayOptions(),
        ...(clockSkewSeconds !== undefined ? { clockSkewSeconds } : {}),
      });
      const doc = (await gateway.inject({ method: "GET", url: "/openapi.json" })).json() as {
        paths: { "/auth/token": { post: { description: string } } };
        components: { schemas: { ErrorCode: { description: string } } };
      };
      const token = doc.paths["/auth/token"].post.description;
      expect(token).toContain("the earliest of grant time + the gateway's TTL, the credential's exp and the");
      expect(token).toContain(`the same ${expected} s skew`);
      expect(doc.components.schemas.ErrorCode.description).toContain(
        `refused once the credential's exp is ${expected} s past`,
      );
      const wellKnown = (await gateway.inject({ method: "GET", url: "/.well-known/kparty" })).json();
      expect(wellKnown.accessToken.clockSkewSeconds).toBe(expected);
      await gateway.close();
    }
  });
});
