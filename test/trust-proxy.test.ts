import type { FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { buildGateway, type GatewayOptions } from "../src/gateway/index.ts";
import { offlineGatewayOptions } from "./fixtures/offline-gateway.ts";

/**
 * Which address is the client's, over real HTTP on 127.0.0.1: the socket's, unless the gateway
 * was told to believe the proxy it comes through (`trustProxy`, `kparty gateway serve --trust-proxy`).
 */

let app: FastifyInstance | undefined;
let options: GatewayOptions | undefined;
afterEach(async () => {
  await app?.close();
  options?.db?.close();
  app = undefined;
  options = undefined;
});

async function gateway(patch: Partial<GatewayOptions>): Promise<string> {
  const built = { ...offlineGatewayOptions(), challengesPerMinute: 1, ...patch };
  options = built;
  app = await buildGateway(built);
  return app.listen({ host: "127.0.0.1", port: 0 });
}

async function challenge(base: string, forwardedFor?: string): Promise<[number, string | null]> {
  const res = await fetch(`${base}/auth/challenge`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(forwardedFor ? { "x-forwarded-for": forwardedFor } : {}),
    },
    body: "{}",
  });
  const body = (await res.json()) as { error?: { code: string } };
  return [res.status, body.error?.code ?? null];
}

/** The audit log's `client` of a refused POST /auth/token sent with `forwardedFor`. */
async function auditedClient(base: string, forwardedFor: string): Promise<unknown> {
  const res = await fetch(`${base}/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-forwarded-for": forwardedFor },
    body: JSON.stringify({ presentation: "" }),
  });
  expect(res.status).toBe(400);
  const rows = ((options as GatewayOptions).db as NonNullable<GatewayOptions["db"]>)
    .prepare("SELECT client, code FROM audit ORDER BY seq DESC LIMIT 1")
    .all();
  return rows[0];
}

describe("with trustProxy 127.0.0.1 (a proxy on this host)", () => {
  it("gives clients with different X-Forwarded-For their own challenge buckets, and audits their address", async () => {
    const base = await gateway({ trustProxy: "127.0.0.1" });
    expect(await challenge(base, "203.0.113.1")).toEqual([200, null]);
    expect(await challenge(base, "203.0.113.1")).toEqual([429, "rate_limited"]);
    expect(await challenge(base, "203.0.113.2")).toEqual([200, null]);
    // a client-supplied entry before the proxy's own is not believed: the proxy appends the real one
    expect(await challenge(base, "198.51.100.9, 203.0.113.2")).toEqual([429, "rate_limited"]);
    expect(await auditedClient(base, "203.0.113.77")).toEqual({ client: "203.0.113.77", code: "malformed" });
  });

  it("counts IPv6 clients by their /64", async () => {
    const base = await gateway({ trustProxy: "127.0.0.1" });
    expect(await challenge(base, "2001:db8:1:2::1")).toEqual([200, null]);
    expect(await challenge(base, "2001:db8:1:2:ffff::9")).toEqual([429, "rate_limited"]);
    expect(await challenge(base, "2001:db8:1:3::1")).toEqual([200, null]);
  });
});

describe("with trustProxy 1 (one hop)", () => {
  it("takes the address the nearest proxy appended", async () => {
    const base = await gateway({ trustProxy: 1 });
    expect(await challenge(base, "198.51.100.9, 203.0.113.1")).toEqual([200, null]);
    expect(await challenge(base, "203.0.113.1")).toEqual([429, "rate_limited"]);
    expect(await challenge(base, "203.0.113.2")).toEqual([200, null]);
  });
});

describe("without trustProxy (the default)", () => {
  it("ignores X-Forwarded-For: every request from this socket address shares one bucket and is audited as it", async () => {
    const base = await gateway({});
    expect(await challenge(base, "203.0.113.1")).toEqual([200, null]);
    expect(await challenge(base, "203.0.113.2")).toEqual([429, "rate_limited"]);
    expect(await auditedClient(base, "203.0.113.77")).toEqual({ client: "127.0.0.1", code: "malformed" });
  });

  it("ignores it too when the proxy's address is not the socket's", async () => {
    const base = await gateway({ trustProxy: "10.0.0.0/8" });
    expect(await challenge(base, "203.0.113.1")).toEqual([200, null]);
    expect(await challenge(base, "203.0.113.2")).toEqual([429, "rate_limited"]);
  });
});

describe("a misconfigured trustProxy", () => {
  it("is refused when the gateway is built", async () => {
    options = offlineGatewayOptions();
    await expect(buildGateway({ ...options, trustProxy: "everyone" })).rejects.toThrow(TypeError);
  });
});
