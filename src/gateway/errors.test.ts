import Fastify from "fastify";
import { describe, expect, it } from "vitest";
import { KPartyError } from "../errors/index.ts";
import { answerNoRoute, CLIENT_MESSAGES, errorHeaders, errorResponse, isInternalError } from "./errors.ts";

const NODE_TEXT =
  'read credential state: chain unavailable: server response 500 (info={ "requestUrl": "https://u:p@node/v3/key" })';

describe("errorResponse", () => {
  it("answers an infrastructure error with the code's fixed message, never the cause's text", () => {
    const error = new KPartyError("registry_unavailable", NODE_TEXT, { cause: new Error("ECONNREFUSED") });
    expect(errorResponse(error)).toEqual([
      503,
      { error: { code: "registry_unavailable", message: CLIENT_MESSAGES.registry_unavailable } },
    ]);
  });

  it.each([
    ["audit_unavailable", 503],
    ["overloaded", 503],
    ["internal", 500],
    ["did_unresolvable", 401],
  ] as const)("gives %s a fixed message (status %i)", (code, status) => {
    const [s, body] = errorResponse(new KPartyError(code, `details of ${NODE_TEXT}`));
    expect([s, body.error.message]).toEqual([status, CLIENT_MESSAGES[code]]);
    expect(JSON.stringify(body)).not.toContain("node");
  });

  it.each([
    "chain_reverted",
    "chain_rejected",
    "insufficient_funds",
    "config_invalid",
    "wrong_passphrase",
    "passphrase_required",
    "data_dir_in_use",
    "unreachable",
  ] as const)("answers %s, a code of the chain or the CLI, as internal: no service sends it", (code) => {
    expect(errorResponse(new KPartyError(code, `details of ${NODE_TEXT}`))).toEqual([
      500,
      { error: { code: "internal", message: "internal error" } },
    ]);
  });

  it("keeps the specific message of an error about the client's own input, with its checks", () => {
    const checks = [{ check: "credential.validity", passed: false, code: "expired" as const }];
    const error = new KPartyError("expired", "credential expired at 123", { details: { checks } });
    expect(errorResponse(error)).toEqual([
      401,
      { error: { code: "expired", message: "credential expired at 123", checks } },
    ]);
  });

  it("answers anything else, and a code outside the type, as internal without detail", () => {
    expect(errorResponse(new TypeError(NODE_TEXT))).toEqual([
      500,
      { error: { code: "internal", message: "internal error" } },
    ]);
    const alien = new KPartyError("made_up" as never, NODE_TEXT);
    expect(errorResponse(alien)[1].error.message).toBe("internal error");
  });
});

describe("isInternalError", () => {
  it("is true for errors whose cause belongs in the operator's log, false for input errors", () => {
    expect(isInternalError(new KPartyError("registry_unavailable", "x"))).toBe(true);
    expect(isInternalError(new Error("x"))).toBe(true);
    expect(isInternalError(new KPartyError("revoked", "x"))).toBe(false);
  });
});

describe("DPoP refusals (RFC 9449)", () => {
  it("are 400 at the token endpoint and 401 on protected routes, with the DPoP challenge", () => {
    const atToken = new KPartyError("invalid_dpop_proof", "bad proof", { details: { endpoint: "token" } });
    const atResource = new KPartyError("invalid_dpop_proof", "bad proof", {
      details: { endpoint: "resource" },
    });
    expect(errorResponse(atToken)).toEqual([
      400,
      { error: { code: "invalid_dpop_proof", message: "bad proof" } },
    ]);
    expect(errorResponse(atResource)[0]).toBe(401);
    expect(errorHeaders(atResource)).toEqual({
      "www-authenticate": 'DPoP error="invalid_dpop_proof", algs="ES256K ES256 EdDSA"',
    });
    const nonce = new KPartyError("use_dpop_nonce", "nonce", {
      details: { endpoint: "resource", nonce: "n1" },
    });
    expect(errorHeaders(nonce)).toEqual({
      "www-authenticate": 'DPoP error="use_dpop_nonce", algs="ES256K ES256 EdDSA"',
      "dpop-nonce": "n1",
    });
    expect(errorHeaders(new KPartyError("revoked", "revoked"))).toEqual({});
  });

  it("answers a revoked token with 401 token_revoked (a DPoP challenge for a bound one) and a failed client authentication with 401 invalid_client and a Basic challenge", () => {
    const bound = new KPartyError("token_revoked", "the access token has been revoked", {
      details: { holder: "did:ethr:0x1", credentialId: "urn:uuid:1", scheme: "DPoP" },
    });
    expect(errorResponse(bound)).toEqual([
      401,
      { error: { code: "token_revoked", message: "the access token has been revoked" } },
    ]);
    expect(errorHeaders(bound)).toEqual({
      "www-authenticate": 'DPoP error="invalid_token", algs="ES256K ES256 EdDSA"',
    });
    expect(
      errorHeaders(new KPartyError("token_revoked", "revoked", { details: { scheme: "Bearer" } })),
    ).toEqual({});
    const client = new KPartyError("invalid_client", "client 0123456789ab has another secret");
    expect(errorResponse(client)).toEqual([
      401,
      {
        error: {
          code: "invalid_client",
          message: "client authentication failed (HTTP Basic client_id:client_secret of a gateway client)",
        },
      },
    ]);
    expect(errorHeaders(client)).toEqual({ "www-authenticate": 'Basic realm="kparty", charset="UTF-8"' });
  });
});

describe("answerNoRoute", () => {
  it("answers a route the service does not have with 404 not_found naming the method and path", async () => {
    const app = Fastify();
    app.setNotFoundHandler(answerNoRoute);
    try {
      const res = await app.inject({ method: "DELETE", url: "/nowhere?x=1" });
      expect([res.statusCode, res.json()]).toEqual([
        404,
        { error: { code: "not_found", message: "no route DELETE /nowhere?x=1" } },
      ]);
    } finally {
      await app.close();
    }
  });
});
