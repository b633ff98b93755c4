import { describe, expect, it } from "vitest";
import { offlineGatewayOptions } from "../../test/fixtures/offline-gateway.ts";
import { buildGateway } from "./app.ts";

const base = offlineGatewayOptions;

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
    const app = await buildGateway(base());
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
