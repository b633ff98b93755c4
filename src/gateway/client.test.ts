import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KPartyError } from "../errors/index.ts";
import { createGatewayClient } from "./client.ts";

/** What the loopback server answers next: status, content type, body. */
let next: { status: number; type: string | null; body: string } = { status: 200, type: null, body: "" };
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((_request, response) => {
    _request.resume();
    response.statusCode = next.status;
    if (next.type) response.setHeader("content-type", next.type);
    response.end(next.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** The error a call throws, as `{code, status, message}`. */
async function refusal(call: Promise<unknown>) {
  const error = await call.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(KPartyError);
  const { code, details, shortMessage } = error as KPartyError;
  return { code, status: details.status, message: shortMessage };
}

const json = (status: number, body: unknown) => ({
  status,
  type: "application/json; charset=utf-8",
  body: JSON.stringify(body),
});

describe("gateway client: answers outside the gateway's contract", () => {
  it("passes on a code of the gateway's vocabulary, with its status and message", async () => {
    next = json(403, { error: { code: "revoked", message: "the credential has been revoked" } });
    expect(await refusal(createGatewayClient(base, { dpopKey: null }).models("t"))).toEqual({
      code: "revoked",
      status: 403,
      message: "the credential has been revoked",
    });
  });

  it("refuses an error code the gateway does not have: unexpected_response", async () => {
    next = json(403, { error: { code: "teapot_refused", message: "no" } });
    expect(await refusal(createGatewayClient(base, { dpopKey: null }).models("t"))).toEqual({
      code: "unexpected_response",
      status: 403,
      message: `the gateway's answer is not its contract: 403 Forbidden with error code "teapot_refused"`,
    });
    // a code only the CLI uses is not the gateway's either
    next = json(500, { error: { code: "wrong_passphrase", message: "no" } });
    expect((await refusal(createGatewayClient(base, { dpopKey: null }).models("t"))).code).toBe(
      "unexpected_response",
    );
  });

  it("refuses a refusal that is not JSON, and one without an error object", async () => {
    next = { status: 502, type: "text/html", body: "<h1>Bad gateway</h1>" };
    expect(await refusal(createGatewayClient(base, { dpopKey: null }).challenge())).toEqual({
      code: "unexpected_response",
      status: 502,
      message: "the gateway's answer is not its contract: 502 Bad Gateway with text/html",
    });
    next = json(400, { message: "no error object" });
    expect(await refusal(createGatewayClient(base, { dpopKey: null }).challenge())).toEqual({
      code: "unexpected_response",
      status: 400,
      message: "the gateway's answer is not its contract: 400 Bad Request with error code null",
    });
  });

  it("refuses a success of the wrong media type or a JSON body that does not parse", async () => {
    next = { status: 200, type: "text/plain", body: "ok" };
    expect(await refusal(createGatewayClient(base, { dpopKey: null }).challenge())).toEqual({
      code: "unexpected_response",
      status: 200,
      message: "the gateway's answer is not its contract: 200 with text/plain, not application/json",
    });
    next = { status: 200, type: "application/json", body: "{" };
    expect((await refusal(createGatewayClient(base, { dpopKey: null }).challenge())).code).toBe(
      "unexpected_response",
    );
    next = json(200, { weights: [1, 2] });
    expect(await refusal(createGatewayClient(base, { dpopKey: null }).weights("m", "t"))).toEqual({
      code: "unexpected_response",
      status: 200,
      message:
        "the gateway's answer is not its contract: 200 with application/json; charset=utf-8, not application/octet-stream",
    });
  });
});
