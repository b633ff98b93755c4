import { describe, expect, it } from "vitest";
import { offlineGatewayOptions } from "../../test/fixtures/offline-gateway.ts";
import { buildGateway } from "./app.ts";
import { HTTP_STATUS } from "./errors.ts";

/** The gateway app without a chain: enough to list its routes and serve its document. */
const app = () => buildGateway(offlineGatewayOptions());

describe("OpenAPI document", () => {
  it("documents exactly the routes the gateway registers", async () => {
    const gateway = await app();
    await gateway.ready();
    const registered = gateway.kpartyRoutes
      .map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, "{$1}")}`)
      .sort();
    const res = await gateway.inject({ method: "GET", url: "/openapi.json" });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(registered);
    await gateway.close();
  });

  it("lists every error code the gateway maps to a status", async () => {
    const gateway = await app();
    const doc = (await gateway.inject({ method: "GET", url: "/openapi.json" })).json() as {
      components: { schemas: { ErrorCode: { enum: string[] } } };
    };
    expect(doc.components.schemas.ErrorCode.enum.sort()).toEqual(Object.keys(HTTP_STATUS).sort());
    await gateway.close();
  });
});
