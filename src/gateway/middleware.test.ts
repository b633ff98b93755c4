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

/** A loopback server answering every request with `status` and `body`; its base URL and the paths asked. */
async function gatewayAnswering(status: number, body: string) {
  const asked: string[] = [];
  server = createServer((req, res) => {
    asked.push(req.url ?? "");
    res.writeHead(status, { "content-type": "application/json" }).end(body);
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
