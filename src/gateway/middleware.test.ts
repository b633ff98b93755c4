import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { errorCodeOf } from "../../test/fixtures/errors.ts";
import type { ChainClient } from "../chain/index.ts";
import { freePort } from "../devnet/index.ts";
import { createKPartyProtection } from "./middleware.ts";

/** Only the deployment is read before the gateway's metadata: nothing here reaches a chain. */
const chain = {
  deployment: {
    chainId: 31337,
    contracts: { CredentialRegistry: "0x00000000000000000000000000000000000000c1" },
    deployedAtBlock: 0,
  },
} as unknown as ChainClient;

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

/**
 * A loopback server answering every request with `status` and `body` (a path of `paths`
 * with its own answer); its base URL and the paths asked.
 */
async function gatewayAnswering(status: number, body: string, paths: Record<string, [number, string]> = {}) {
  const asked: string[] = [];
  server = createServer((req, res) => {
    asked.push(req.url ?? "");
    const [code, text] = paths[req.url ?? ""] ?? [status, body];
    res.writeHead(code, { "content-type": "application/json" }).end(text);
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked };
}

describe("createKPartyProtection, when the gateway's metadata cannot be read", () => {
  it("refuses to start with registry_unavailable when nothing answers at the gateway's address", async () => {
    const gateway = `http://127.0.0.1:${await freePort()}`;
    expect(await errorCodeOf(createKPartyProtection({ gateway, chain }))).toBe("registry_unavailable");
  });

  it.each([
    [503, '{"error":{"code":"overloaded","message":"busy"}}'],
    [404, '{"error":{"code":"not_found","message":"no route"}}'],
    [200, "<html>a proxy's page</html>"],
  ])(
    "refuses to start with registry_unavailable when /.well-known/kparty answers %i %s",
    async (status, body) => {
      const { base, asked } = await gatewayAnswering(status, body);
      expect(await errorCodeOf(createKPartyProtection({ gateway: base, chain }))).toBe(
        "registry_unavailable",
      );
      expect(asked).toEqual(["/.well-known/kparty"]);
    },
  );
});

/** A `/.well-known/kparty` naming `chainId` and `registry` (the fields read before the JWKS). */
const wellKnownOf = (chainId: number, registry: string) =>
  JSON.stringify({
    domain: "gw.example",
    chainId,
    contracts: { CredentialRegistry: registry },
    accessToken: { key: { kid: "k1", kty: "OKP", crv: "Ed25519", x: "AA" } },
  });

describe("createKPartyProtection, against a gateway it must not trust", () => {
  it.each([
    ["another chain", 1, "0x00000000000000000000000000000000000000c1"],
    ["another registry", 31337, "0x00000000000000000000000000000000000000c2"],
  ])("refuses to start with config_invalid when the gateway serves %s", async (_, chainId, registry) => {
    const { base, asked } = await gatewayAnswering(404, "{}", {
      "/.well-known/kparty": [200, wellKnownOf(chainId, registry)],
    });
    const refused = await createKPartyProtection({ gateway: base, chain }).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: "config_invalid",
      details: {
        gateway: { chainId, registry },
        configured: { chainId: 31337, registry: "0x00000000000000000000000000000000000000c1" },
      },
    });
    expect(asked).toEqual(["/.well-known/kparty"]);
  });

  it("accepts the registry address in another letter case", async () => {
    const { base, asked } = await gatewayAnswering(503, "{}", {
      "/.well-known/kparty": [200, wellKnownOf(31337, "0x00000000000000000000000000000000000000C1")],
    });
    // past the deployment check: the JWKS read (503 here) is what refuses
    expect(await errorCodeOf(createKPartyProtection({ gateway: base, chain }))).toBe("registry_unavailable");
    expect(asked).toEqual(["/.well-known/kparty", "/.well-known/jwks.json"]);
  });

  it.each([
    [503, '{"error":{"code":"overloaded","message":"busy"}}'],
    [500, "not json"],
  ])("refuses to start with registry_unavailable when the JWKS answers %i %s", async (status, body) => {
    const { base, asked } = await gatewayAnswering(status, body, {
      "/.well-known/kparty": [200, wellKnownOf(31337, "0x00000000000000000000000000000000000000c1")],
    });
    expect(await errorCodeOf(createKPartyProtection({ gateway: base, chain }))).toBe("registry_unavailable");
    expect(asked).toEqual(["/.well-known/kparty", "/.well-known/jwks.json"]);
  });
});
