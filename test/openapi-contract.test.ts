/**
 * The served OpenAPI document is the gateway's contract: every route is driven on a real gateway
 * (real chain, real agents, HTTP on 127.0.0.1), for a success and at least one refusal, and each
 * answer's status, media type and body are validated (Ajv, JSON Schema 2020-12, as OpenAPI 3.1
 * has it) against what the document says for that path, method and status. An answer the
 * document does not describe fails, so shapes and error codes cannot drift from it.
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeJwt } from "../src/credential/index.ts";
import { SERVICE_ERROR_CODES } from "../src/errors/index.ts";
import { createGatewayClient, type GatewayClient } from "../src/gateway/index.ts";
import { createEmbeddedState } from "../src/state/index.ts";
import { presentation } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, type KPartyWorld, MODEL_ID } from "./fixtures/kparty.ts";

type Operation = { responses: Record<string, { content?: Record<string, { schema?: object }> }> };
type Document = {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: { ErrorCode: { enum: string[] } } };
};

const MODEL = "contract-model";
let world: KPartyWorld;
let doc: Document;
let gw: GatewayClient;
let reader: string;
let coordinator: string;
let credentialJwt: string;
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
/** `METHOD /path` → the statuses seen, each validated. */
const seen = new Map<string, Set<number>>();

/**
 * Sends one request and checks its answer against the document: the operation exists, the status
 * is documented for it, the media type is one it documents, and a JSON body validates.
 */
async function drive(
  method: string,
  template: string,
  url: string,
  init: { body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string>; token?: string } = {},
) {
  const full = `${world.base}${url}`;
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.token) Object.assign(headers, gw.authHeaders(method, full, init.token));
  if (init.body !== undefined) headers["content-type"] ??= "application/json";
  const body = init.body !== undefined ? JSON.stringify(init.body) : init.raw;
  const res = await fetch(full, { method, headers, ...(body !== undefined ? { body } : {}) });
  const operation = doc.paths[template]?.[method.toLowerCase()];
  expect(operation, `${method} ${template} is documented`).toBeDefined();
  const documented = operation?.responses[String(res.status)];
  const bytes = new Uint8Array(await res.arrayBuffer());
  const text = new TextDecoder().decode(bytes);
  expect(
    documented,
    `${method} ${template} ${res.status} is documented (${text.slice(0, 200)})`,
  ).toBeDefined();
  const type = (res.headers.get("content-type") ?? "").split(";")[0] as string;
  const content = documented?.content ?? {};
  expect(Object.keys(content), `${method} ${template} ${res.status} media type`).toContain(type);
  let parsed: unknown = bytes;
  if (type === "application/json") {
    parsed = JSON.parse(text);
    const validate = ajv.compile(content[type]?.schema as object);
    const ok = validate(parsed);
    expect(
      ok,
      `${method} ${template} ${res.status}: ${ajv.errorsText(validate.errors)} in ${text.slice(0, 300)}`,
    ).toBe(true);
  }
  const key = `${method} ${template}`;
  seen.set(key, (seen.get(key) ?? new Set()).add(res.status));
  return { status: res.status, body: parsed as Record<string, any>, headers: res.headers };
}

async function tokenOf(holder: KPartyWorld["alice"], jwt: string): Promise<string> {
  return (await gw.token(await presentation(world, holder, jwt))).access_token;
}

beforeAll(async () => {
  world = await createWorld();
  gw = createGatewayClient(world.base);
  doc = (await (await fetch(`${world.base}/openapi.json`)).json()) as Document;
  const readCred = await issue(world.orgA, world.alice, {
    models: [MODEL_ID, MODEL],
    actions: ["model:read", "model:contribute"],
  });
  credentialJwt = readCred.jwt;
  const coordinatorCred = await issue(world.orgB, world.mallory, {
    role: "coordinator",
    models: [MODEL],
    actions: ["model:read", "round:aggregate"],
  });
  reader = await tokenOf(world.alice, readCred.jwt);
  coordinator = await tokenOf(world.mallory, coordinatorCred.jwt);
}, 120_000);
afterAll(async () => {
  await world?.close();
});

describe("the served OpenAPI document against real answers", () => {
  it("meta: health, well-known, JWKS and the document itself", async () => {
    expect((await drive("GET", "/healthz", "/healthz")).status).toBe(200);
    expect((await drive("GET", "/.well-known/kparty", "/.well-known/kparty")).status).toBe(200);
    expect((await drive("GET", "/.well-known/jwks.json", "/.well-known/jwks.json")).status).toBe(200);
    expect((await drive("GET", "/openapi.json", "/openapi.json")).status).toBe(200);
  });

  it("auth: challenges and tokens, granted and refused", async () => {
    for (const path of ["/auth/challenge", "/challenges"]) {
      const ok = await drive("POST", path, path, { body: {} });
      expect(ok.status).toBe(200);
      const bad = await drive("POST", path, path, {
        raw: "{",
        headers: { "content-type": "application/json" },
      });
      expect([bad.status, bad.body.error.code]).toEqual([400, "malformed"]);
    }
    const vp = await presentation(world, world.alice, credentialJwt);
    const granted = await drive("POST", "/auth/token", "/auth/token", { body: { presentation: vp } });
    expect([granted.status, granted.body.token_type]).toEqual([200, "Bearer"]);
    const reused = await drive("POST", "/auth/token", "/auth/token", { body: { presentation: vp } });
    expect([reused.status, reused.body.error.code]).toEqual([401, "challenge_reused"]);
    const unknown = await drive("POST", "/auth/token", "/auth/token", {
      body: { presentation: vp, extra: 1 },
    });
    expect([unknown.status, unknown.body.error]).toEqual([
      400,
      { code: "malformed", message: "unknown fields: extra; nothing in a request changes verification" },
    ]);
    const scope = await drive("POST", "/auth/token", "/auth/token", {
      body: { presentation: vp, scope: "fly" },
    });
    expect([scope.status, scope.body.error.code]).toEqual([400, "malformed"]);
    const other = await presentation(world, world.alice, credentialJwt);
    const denied = await drive("POST", "/auth/token", "/auth/token", {
      body: { presentation: other, scope: "round:aggregate" },
    });
    expect([denied.status, denied.body.error.code]).toEqual([403, "scope_denied"]);
  });

  it("VC-API: verdicts (200) and refusals (400)", async () => {
    const cred = await drive("POST", "/credentials/verify", "/credentials/verify", {
      body: { verifiableCredential: credentialJwt },
    });
    expect([cred.status, cred.body.verified]).toEqual([200, true]);
    const forged = await drive("POST", "/credentials/verify", "/credentials/verify", {
      body: { verifiableCredential: `${credentialJwt.slice(0, -4)}AAAA` },
    });
    expect([forged.status, forged.body.verified, forged.body.errors[0].code]).toEqual([
      200,
      false,
      "invalid_signature",
    ]);
    const option = await drive("POST", "/credentials/verify", "/credentials/verify", {
      body: { verifiableCredential: credentialJwt, options: { skip: true } },
    });
    expect([option.status, option.body.error.code]).toEqual([400, "malformed"]);
    const vp = await presentation(world, world.alice, credentialJwt);
    const pres = await drive("POST", "/presentations/verify", "/presentations/verify", {
      body: { verifiablePresentation: vp },
    });
    expect([pres.status, pres.body.verified]).toEqual([200, true]);
    const checks = await drive("POST", "/presentations/verify", "/presentations/verify", {
      body: { verifiablePresentation: vp, options: { checks: ["nothing"] } },
    });
    expect([checks.status, checks.body.error.code]).toEqual([400, "malformed"]);
  });

  it("OID4VP: a transaction opened, answered, collected; and refused", async () => {
    const opened = await drive("POST", "/oid4vp/requests", "/oid4vp/requests", {
      body: { scope: "model:read", models: [MODEL_ID] },
    });
    expect(opened.status).toBe(201);
    const bad = await drive("POST", "/oid4vp/requests", "/oid4vp/requests", {
      body: { scope: "model:read" },
    });
    expect([bad.status, bad.body.error.code]).toEqual([400, "malformed"]);
    const state = new URL(opened.body.request_uri).pathname.split("/").pop() as string;
    const object = await drive("GET", "/oid4vp/requests/{state}", `/oid4vp/requests/${state}`);
    expect(object.status).toBe(200);
    const missing = await drive("GET", "/oid4vp/requests/{state}", "/oid4vp/requests/nope");
    expect([missing.status, missing.body.error.code]).toEqual([404, "not_found"]);
    const txPath = `/oid4vp/transactions/${opened.body.transaction_id}`;
    const pending = await drive("GET", "/oid4vp/transactions/{id}", txPath);
    expect([pending.status, pending.body.status]).toEqual([200, "pending"]);
    const { nonce, client_id } = decodeJwt(opened.body.request).payload as {
      nonce: string;
      client_id: string;
    };
    const vp = await presentation(world, world.alice, credentialJwt, { challenge: nonce, domain: client_id });
    const noState = await drive("POST", "/oid4vp/responses", "/oid4vp/responses", { body: { vp_token: {} } });
    expect([noState.status, noState.body.error.code]).toEqual([400, "malformed"]);
    const stranger = await drive("POST", "/oid4vp/responses", "/oid4vp/responses", {
      body: { vp_token: { kparty: [vp] }, state: "not-a-state" },
    });
    expect([stranger.status, stranger.body.error.code]).toEqual([401, "challenge_invalid"]);
    const answered = await drive("POST", "/oid4vp/responses", "/oid4vp/responses", {
      body: { vp_token: { kparty: [vp] }, state },
    });
    expect(answered.status).toBe(200);
    const granted = await drive("GET", "/oid4vp/transactions/{id}", txPath);
    expect([granted.status, granted.body.status]).toEqual([200, "granted"]);
    const redeemed = await drive("GET", "/oid4vp/transactions/{id}", txPath);
    expect([redeemed.status, redeemed.body.status]).toEqual([200, "redeemed"]);
    const none = await drive("GET", "/oid4vp/transactions/{id}", "/oid4vp/transactions/none");
    expect([none.status, none.body.error.code]).toEqual([404, "not_found"]);
  });

  it("models: register, list, read, weights, update, close; and refusals", async () => {
    const registered = await drive("POST", "/models", "/models", {
      token: coordinator,
      body: { id: MODEL, description: "contract", shape: [2, 2] },
    });
    expect(registered.status).toBe(201);
    const outside = await drive("POST", "/models", "/models", {
      token: coordinator,
      body: { id: "elsewhere", description: "x", shape: [1] },
    });
    expect([outside.status, outside.body.error.code]).toEqual([403, "scope_denied"]);
    const shape = await drive("POST", "/models", "/models", {
      token: coordinator,
      body: { id: MODEL, description: "x", shape: [0] },
    });
    expect([shape.status, shape.body.error]).toEqual([
      400,
      { code: "invalid_argument", message: "shape must be 1 to 8 positive integers", field: "shape" },
    ]);
    expect((await drive("GET", "/models", "/models", { token: reader })).status).toBe(200);
    const anonymous = await drive("GET", "/models", "/models");
    expect([anonymous.status, anonymous.body.error.code]).toEqual([401, "token_invalid"]);
    expect((await drive("GET", "/models/{id}", `/models/${MODEL}`, { token: reader })).status).toBe(200);
    const absent = await drive("GET", "/models/{id}", "/models/absent", { token: reader });
    expect([absent.status, absent.body.error.code]).toEqual([403, "scope_denied"]);
    const weights = await drive("GET", "/models/{id}/weights", `/models/${MODEL}/weights`, { token: reader });
    expect([weights.status, (weights.body as unknown as Uint8Array).length]).toEqual([200, 16]);
    const noWeights = await drive("GET", "/models/{id}/weights", "/models/absent/weights");
    expect([noWeights.status, noWeights.body.error.code]).toEqual([401, "token_invalid"]);
    const update = (round: string) => ({
      token: reader,
      raw: new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer),
      headers: {
        "content-type": "application/octet-stream",
        "x-kparty-round": round,
        "x-kparty-sample-count": "5",
      },
    });
    const accepted = await drive("POST", "/models/{id}/updates", `/models/${MODEL}/updates`, update("1"));
    expect(accepted.status).toBe(201);
    const badRound = await drive("POST", "/models/{id}/updates", `/models/${MODEL}/updates`, update("one"));
    expect([badRound.status, badRound.body.error.code]).toEqual([400, "malformed"]);
    const again = await drive("POST", "/models/{id}/updates", `/models/${MODEL}/updates`, update("1"));
    expect([again.status, again.body.error.code]).toEqual([409, "conflict"]);
    const close = "/models/{id}/rounds/{round}/close";
    const closed = await drive("POST", close, `/models/${MODEL}/rounds/1/close`, { token: coordinator });
    expect([closed.status, closed.body.version]).toEqual([200, 2]);
    const zero = await drive("POST", close, `/models/${MODEL}/rounds/0/close`, { token: coordinator });
    expect([zero.status, zero.body.error.code]).toEqual([400, "malformed"]);
  });

  it("oauth: introspection and revocation, answered and refused", async () => {
    const client = await createEmbeddedState(world.db).oauthClients().add("contract");
    const basic = `Basic ${Buffer.from(`${client.client.id}:${client.secret}`).toString("base64")}`;
    const token = await tokenOf(world.alice, credentialJwt);
    const form = (fields: Record<string, string>, headers: Record<string, string> = {}) => ({
      raw: new URLSearchParams(fields).toString(),
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    });
    const live = await drive(
      "POST",
      "/oauth/introspect",
      "/oauth/introspect",
      form({ token }, { authorization: basic }),
    );
    expect([live.status, live.body.active, live.body.sub]).toEqual([200, true, world.alice.did]);
    const anonymous = await drive("POST", "/oauth/introspect", "/oauth/introspect", form({ token }));
    expect([anonymous.status, anonymous.body.error.code]).toEqual([401, "invalid_client"]);
    const revoked = await drive("POST", "/oauth/revoke", "/oauth/revoke", { ...form({ token }), token });
    expect([revoked.status, revoked.body]).toEqual([200, {}]);
    const noAuth = await drive("POST", "/oauth/revoke", "/oauth/revoke", form({ token }));
    expect([noAuth.status, noAuth.body.error.code]).toEqual([401, "invalid_client"]);
    const dead = await drive(
      "POST",
      "/oauth/introspect",
      "/oauth/introspect",
      form({ token }, { authorization: basic }),
    );
    expect([dead.status, dead.body]).toEqual([200, { active: false }]);
  });

  it("health: 503 with its reason once the chain cannot be read (run last: it stops the chain)", async () => {
    await world.chain.stop();
    const down = await drive("GET", "/healthz", "/healthz");
    expect([down.status, down.body.status, down.body.error.code]).toEqual([
      503,
      "unavailable",
      "registry_unavailable",
    ]);
  });

  it("every documented operation was driven, and for a success and a refusal where one can be caused here", () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect([...seen.keys()].sort()).toEqual(documented.sort());
    const withoutRefusal = [...seen]
      .filter(([, statuses]) => ![...statuses].some((s) => s >= 400))
      .map(([k]) => k);
    // their refusals (503 with the state backend down, load shedding) need a broken gateway:
    // test/outage.test.ts and test/security cover those statuses; here they are only listed
    expect(withoutRefusal.sort()).toEqual([
      "GET /.well-known/jwks.json",
      "GET /.well-known/kparty",
      "GET /openapi.json",
    ]);
  });

  it("ErrorCode lists exactly the codes the routes document, all of them the gateway's own", () => {
    const codes = doc.components.schemas.ErrorCode.enum;
    const service: readonly string[] = SERVICE_ERROR_CODES;
    expect(codes.filter((c) => !service.includes(c))).toEqual([]);
    // and every service code is one some gateway route answers with (none listed that it never sends)
    expect(service.filter((c) => !codes.includes(c))).toEqual([]);
  });
});
