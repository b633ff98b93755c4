import type { FastifyRequest } from "fastify";
import { describe, expect, it } from "vitest";
import { KPartyError } from "../errors/index.ts";
import { auditEntryOf } from "./audit-entry.ts";

const request = (fields: Record<string, unknown>) =>
  ({
    ip: "192.0.2.7",
    url: "/models/m1?x=1",
    routeOptions: { url: "/models/:id" },
    params: {},
    ...fields,
  }) as unknown as FastifyRequest;

describe("auditEntryOf", () => {
  it("records a grant with the route pattern, the model of the route and the action", () => {
    expect(
      auditEntryOf(request({ params: { id: "m1" } }), {
        outcome: "granted",
        holder: "did:ethr:0x7a69:0x01",
        credentialId: "0xc1",
        action: "model:read",
      }),
    ).toEqual({
      client: "192.0.2.7",
      route: "/models/:id",
      holder: "did:ethr:0x7a69:0x01",
      credentialId: "0xc1",
      action: "model:read",
      model: "m1",
      outcome: "granted",
      code: null,
    });
  });

  it("records a refusal with the error's code, internal for anything else", () => {
    const denied = (error: unknown) =>
      auditEntryOf(request({ routeOptions: { url: "/auth/token" }, params: undefined }), {
        outcome: "denied",
        error,
      });
    expect(denied(new KPartyError("revoked", "revoked"))).toEqual({
      client: "192.0.2.7",
      route: "/auth/token",
      holder: null,
      credentialId: null,
      action: null,
      model: null,
      outcome: "denied",
      code: "revoked",
    });
    expect(denied(new TypeError("boom")).code).toBe("internal");
  });

  it("a route whose :id is not a model's names its route and model itself", () => {
    const transaction = request({ routeOptions: { url: "/oid4vp/transactions/:id" }, params: { id: "t-1" } });
    expect(
      auditEntryOf(transaction, {
        route: "/oid4vp/transactions",
        model: null,
        outcome: "denied",
        error: new KPartyError("token_invalid", "no"),
        holder: "did:ethr:0x7a69:0x01",
        credentialId: "0xc1",
      }),
    ).toEqual({
      client: "192.0.2.7",
      route: "/oid4vp/transactions",
      holder: "did:ethr:0x7a69:0x01",
      credentialId: "0xc1",
      action: null,
      model: null,
      outcome: "denied",
      code: "token_invalid",
    });
  });

  it("after access was granted, takes the client address and action the guard captured", () => {
    const granted = request({
      ip: undefined,
      kparty: { client: "198.51.100.1", action: "model:contribute" },
    });
    expect(
      auditEntryOf(granted, { outcome: "denied", error: new KPartyError("conflict", "x") }),
    ).toMatchObject({
      client: "198.51.100.1",
      action: "model:contribute",
      code: "conflict",
    });
    const unrouted = request({ ip: undefined, routeOptions: {} });
    expect(auditEntryOf(unrouted, { outcome: "granted" })).toMatchObject({
      client: "unknown",
      route: "/models/m1?x=1",
    });
  });
});
