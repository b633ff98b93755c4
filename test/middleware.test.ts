import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKPartyProtection, errorResponse } from "../src/gateway/index.ts";
import { createEmbeddedState } from "../src/state/index.ts";
import { errorCodeOf } from "./fixtures/errors.ts";
import { getJson, requestToken, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { clockNow, createWorld, type KPartyWorld, MODEL_ID, TOKEN_KEY_SECRET } from "./fixtures/kparty.ts";

let world: KPartyWorld;
let server: FastifyInstance;
let base: string;
let protection: Awaited<ReturnType<typeof createKPartyProtection>>;

beforeAll(async () => {
  world = await createWorld();
  // An existing inference server, protected by kparty without adopting the gateway.
  // on the gateway's clock, so the tests can move both
  protection = await createKPartyProtection({
    gateway: world.base,
    chain: world.client,
    now: () => clockNow(world.clock),
  });
  server = Fastify();
  server.setErrorHandler((error, _request, reply) => {
    const [status, body] = errorResponse(error);
    return reply.code(status).send(body);
  });
  server.post<{ Params: { id: string } }>(
    "/infer/:id",
    { preHandler: protection.requireAccess("model:infer") },
    async (request) => ({ model: request.params.id, holder: request.kparty?.holder, prediction: 1 }),
  );
  server.addHook("onClose", async () => protection.close());
  base = await server.listen({ host: "127.0.0.1", port: 0 });
});
afterAll(async () => {
  await server?.close();
  await world?.close();
});

/** Waits (a bound, not a measure) until the protection's own poll has synced to `block`. */
async function waitForProtection(block: number) {
  for (let i = 0; i < 500 && protection.syncedBlock < block; i++) await new Promise((r) => setTimeout(r, 10));
  expect(protection.syncedBlock).toBeGreaterThanOrEqual(block);
}

const infer = async (model: string, token?: string) => {
  const res = await fetch(`${base}/infer/${model}`, {
    method: "POST",
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

describe("kparty protection mounted on another Fastify server", () => {
  it("accepts tokens under a key rotated in after it started, and still those under the old key", async () => {
    const cred = await issue(world.orgA, world.alice, { actions: ["model:read", "model:infer"] });
    const old = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    const added = await createEmbeddedState(world.db).tokenKeys({ secret: TOKEN_KEY_SECRET }).add(); // `kparty gateway keys rotate`
    world.clock.offsetMs += 10_000; // past the gateway's key refresh time (10 s): it signs with the new key
    try {
      const fresh = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
      const kid = JSON.parse(Buffer.from(fresh.split(".")[0] as string, "base64url").toString()).kid;
      expect(kid).toBe(added.kid);
      for (const token of [fresh, old]) expect((await infer(MODEL_ID, token)).status).toBe(200);
    } finally {
      world.clock.offsetMs -= 10_000;
    }
  });

  it("admits the gateway's tokens for the granted action and model only", async () => {
    const cred = await issue(world.orgA, world.alice, { actions: ["model:read", "model:infer"] });
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    expect(await infer(MODEL_ID, token)).toEqual({
      status: 200,
      body: { model: MODEL_ID, holder: world.alice.did, prediction: 1 },
    });
    const other = await infer("another-model", token);
    expect([other.status, other.body.error.code]).toEqual([403, "scope_denied"]);
    const none = await infer(MODEL_ID);
    expect([none.status, none.body.error.code]).toEqual([401, "token_invalid"]);
    const readOnly = await issue(world.orgA, world.alice, { actions: ["model:read"] });
    const readToken = (await requestToken(world, world.alice, readOnly.jwt)).body.access_token as string;
    const noInfer = await infer(MODEL_ID, readToken);
    expect([noInfer.status, noInfer.body.error.code]).toEqual([403, "scope_denied"]);
  });

  it("refuses a live token once the credential is revoked on chain", async () => {
    const cred = await issue(world.orgA, world.alice, { actions: ["model:infer"] });
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    expect((await infer(MODEL_ID, token)).status).toBe(200);
    const revoked = await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    await waitForProtection(revoked.blockNumber);
    const refused = await infer(MODEL_ID, token);
    expect([refused.status, refused.body.error.code]).toEqual([403, "revoked"]);
    // the gateway itself agrees once it has seen the block too
    await waitForSync(world.base, revoked.blockNumber);
    const atGateway = await getJson(world.base, `/models/${MODEL_ID}`, token);
    expect(atGateway.status).toBe(403);
  });

  it("refuses a live token with 401 credential_expired once the credential's exp + 60 s skew has passed, within the token's TTL", async () => {
    const cred = await issue(world.orgA, world.alice, {
      actions: ["model:infer"],
      validUntil: new Date(Date.now() + 120_000),
    });
    const exp = JSON.parse(Buffer.from(cred.jwt.split(".")[1] as string, "base64url").toString())
      .exp as number;
    try {
      world.clock.atMs = (exp - 90) * 1000 + 400; // the 300 s TTL would run to exp + 210
      const res = await requestToken(world, world.alice, cred.jwt);
      expect(res.body.expires_in).toBe(90);
      const token = res.body.access_token as string;
      world.clock.atMs = (exp + 59) * 1000;
      expect((await infer(MODEL_ID, token)).status).toBe(200);
      world.clock.atMs = (exp + 60) * 1000;
      const refused = await infer(MODEL_ID, token);
      expect([refused.status, refused.body.error.code]).toEqual([401, "credential_expired"]);
    } finally {
      delete world.clock.atMs;
    }
  });

  it("refuses a negative clock skew with TypeError before asking the gateway anything", async () => {
    const asked: string[] = [];
    const recording: typeof fetch = (input, init) => {
      asked.push(String(input));
      return fetch(input, init);
    };
    await expect(
      createKPartyProtection({
        gateway: world.base,
        chain: world.client,
        clockSkewSeconds: -1,
        fetch: recording,
      }),
    ).rejects.toThrow(TypeError);
    expect(asked).toEqual([]);
  });

  it("refuses to start with config_invalid against a gateway on another deployment", async () => {
    const wrong = { ...world.client, deployment: { ...world.deployment, chainId: 1 } };
    expect(await errorCodeOf(createKPartyProtection({ gateway: world.base, chain: wrong }))).toBe(
      "config_invalid",
    );
  });

  it("starts with the key of /.well-known/kparty alone against a gateway without JWKS (404)", async () => {
    const asked: string[] = [];
    const withoutJwks: typeof fetch = (input, init) => {
      asked.push(new URL(String(input)).pathname);
      return String(input).endsWith("/.well-known/jwks.json")
        ? Promise.resolve(
            new Response('{"error":{"code":"not_found","message":"no route"}}', { status: 404 }),
          )
        : fetch(input, init);
    };
    const old = await createKPartyProtection({
      gateway: world.base,
      chain: world.client,
      fetch: withoutJwks,
    });
    try {
      const wellKnown = (await getJson(world.base, "/.well-known/kparty")).body as { domain: string };
      expect([old.domain, asked]).toEqual([
        wellKnown.domain,
        ["/.well-known/kparty", "/.well-known/jwks.json"],
      ]);
    } finally {
      await old.close();
    }
  });
});
