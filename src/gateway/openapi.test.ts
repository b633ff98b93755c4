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

  it("lists every error code the gateway maps to a status", async () => {
    const gateway = await app();
    const doc = (await gateway.inject({ method: "GET", url: "/openapi.json" })).json() as {
      components: { schemas: { ErrorCode: { enum: string[] } } };
    };
    expect(doc.components.schemas.ErrorCode.enum.sort()).toEqual(Object.keys(HTTP_STATUS).sort());
    await gateway.close();
  });
});
