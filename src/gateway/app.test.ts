import { describe, expect, it } from "vitest";
import type { ChainClient } from "../chain/index.ts";
import { FileModelStore } from "../models/index.ts";
import { buildGateway, type GatewayOptions } from "./app.ts";
import { openGatewayDatabase } from "./state.ts";

const base = (): GatewayOptions => ({
  agent: { resolveDid: async () => ({}) as never },
  chain: {
    deployment: {
      chainId: 31337,
      contracts: { CredentialRegistry: "0x1", ConsortiumRegistry: "0x2", EthereumDIDRegistry: "0x3" },
      deployedAtBlock: 0,
    },
    provider: {},
    contracts: {},
  } as unknown as ChainClient,
  models: new FileModelStore("/nonexistent-kparty-models"),
  db: openGatewayDatabase(":memory:"),
  domain: "gw.test",
});

describe("buildGateway misconfiguration", () => {
  it.each([
    ["no domain", { domain: "" }],
    ["a negative staleness bound", { maxStalenessMs: -1 }],
    ["a zero token freshness", { tokenFreshnessMs: 0 }],
    ["a non-finite polling interval", { statusPollingIntervalMs: Number.POSITIVE_INFINITY }],
    ["a token lifetime of zero", { tokenTtlSeconds: 0 }],
    ["a challenge lifetime below zero", { challengeTtlSeconds: -5 }],
    ["an unknown removed-issuer policy", { removedIssuerPolicy: "trust-everyone" as never }],
    ["a negative clock skew", { clockSkewSeconds: -1 }],
  ])("throws TypeError for %s", async (_what, patch) => {
    await expect(buildGateway({ ...base(), ...patch })).rejects.toThrow(TypeError);
  });
});

describe("client errors from the HTTP layer", () => {
  it("maps a body that does not match its Content-Length to 400 malformed, not a 500", async () => {
    const app = await buildGateway({ ...base(), statusPollingIntervalMs: 3_600_000 });
    const res = await app.inject({
      method: "POST",
      url: "/auth/token",
      payload: '{"presentation":"x"}',
      headers: { "content-type": "application/json", "content-length": "5" },
    });
    expect({ status: res.statusCode, code: res.json().error?.code }).toEqual({
      status: 400,
      code: "malformed",
    });
    await app.close();
  });
});
