import { generateKeyPairSync } from "node:crypto";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKPartyAgent, type IssuedCredential } from "../agent/index.ts";
import { createChainClient } from "../src/chain/index.ts";
import type { KPartyError } from "../src/errors/index.ts";
import {
  buildGateway,
  createDpopProof,
  createGatewayClient,
  createTokenVerifier,
} from "../src/gateway/index.ts";
import { FileModelStore } from "../src/models/index.ts";
import { type GatewayState, openPostgresState } from "../src/state/index.ts";
import { getJson, presentation, tokenAt } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import {
  clockNow,
  createWorld,
  DOMAIN,
  type KPartyWorld,
  MODEL_ID,
  MODEL_WEIGHTS,
  startGateway,
  TOKEN_KEY_SECRET,
} from "./fixtures/kparty.ts";
import { startTestPostgres, type TestPostgres } from "./fixtures/postgres.ts";

/**
 * Two gateway replicas (two `buildGateway` instances on two loopback ports) on one real
 * PostgreSQL database and one model store, over a real chain: whatever replica a client
 * reaches, challenges are single use, tokens verify, quotas and the audit chain are shared.
 */
const postgres = await startTestPostgres();
if ("unavailable" in postgres) console.warn(`replica tests skipped: ${postgres.unavailable}`);

interface Replica {
  name: "A" | "B";
  app: FastifyInstance;
  state: GatewayState;
  base: string;
  /** The client address this test sends to this replica (X-Forwarded-For, believed from 127.0.0.1). */
  client: string;
}

/** The URL both replicas are reached at behind their load balancer (what DPoP proofs name). */
const PUBLIC_URL = "https://gw.replicas.example";

let world: KPartyWorld;
let replicas: [Replica, Replica];
let cred: IssuedCredential;

const payloadOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split(".")[1] as string, "base64url").toString()) as Record<string, unknown>;
const headerOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split(".")[0] as string, "base64url").toString()) as Record<string, unknown>;

async function post(r: Replica, path: string, body: unknown) {
  const res = await fetch(`${r.base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-forwarded-for": r.client },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function get(r: Replica, path: string, token?: string) {
  const res = await fetch(`${r.base}${path}`, {
    headers: { "x-forwarded-for": r.client, ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** A presentation of `jwt` by Alice for a challenge minted at `at`. */
async function presentAt(at: Replica, jwt = cred.jwt): Promise<string> {
  const minted = await post(at, "/auth/challenge", {});
  expect(minted.status).toBe(200);
  return presentation(world, world.alice, jwt, { challenge: minted.body.challenge as string });
}

/** An access token from replica `at`. */
async function tokenFrom(at: Replica, jwt = cred.jwt): Promise<string> {
  const res = await post(at, "/auth/token", { presentation: await presentAt(at, jwt) });
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

describe.skipIf("unavailable" in postgres)("two gateway replicas on one PostgreSQL", () => {
  const pg = postgres as TestPostgres;

  let url: string;

  /** A replica on the deployment's database, its token keys under `tokenKeySecret` (null: none). */
  const start = async (
    name: "A" | "B",
    client: string,
    tokenKeySecret: string | null = TOKEN_KEY_SECRET,
  ): Promise<Replica> => {
    const state = await openPostgresState({ url, maxConnections: 4 });
    try {
      const verifier = await createKPartyAgent({
        role: "verifier",
        chain: { provider: world.chain.provider, deployment: world.deployment },
      });
      const app = await buildGateway({
        agent: verifier.agent,
        chain: createChainClient({ provider: world.chain.provider, deployment: world.deployment }),
        // one store: weights in a directory both reach, metadata and the per-model lock in the database
        models: new FileModelStore(join(world.dir, "replica-models"), { state }),
        state,
        ...(tokenKeySecret !== null ? { tokenKeySecret } : {}),
        domain: DOMAIN,
        now: () => clockNow(world.clock),
        trustProxy: "127.0.0.1",
        challengesPerMinute: 10_000,
        tokenKeyRefreshMs: 0, // a rotation reaches new tokens at once (the default is 10 s)
        // bearer tokens, as the other fixture gateways; a token asked for with a DPoP proof is
        // bound all the same, and its proofs name the replicas' one public URL
        tokenBinding: "bearer",
        publicUrl: PUBLIC_URL,
      });
      return { name, app, state, base: await app.listen({ host: "127.0.0.1", port: 0 }), client };
    } catch (error) {
      await state.close();
      throw error;
    }
  };

  beforeAll(async () => {
    world = await createWorld();
    url = await pg.database();
    replicas = [await start("A", "198.51.100.1"), await start("B", "198.51.100.2")];
    // the world's model, registered in the replicas' store (its metadata in the database)
    const shared = new FileModelStore(join(world.dir, "replica-models"), { state: replicas[0].state });
    await shared.register({
      id: MODEL_ID,
      description: "test model",
      shape: [785, 10],
      weights: MODEL_WEIGHTS,
    });
    cred = await issue(world.orgA, world.alice);
  });

  afterAll(async () => {
    for (const r of replicas ?? []) {
      await r.app.close();
      await r.state.close();
    }
    await world?.close();
    await pg.stop();
  });

  it("redeems a challenge minted at A once at B, and refuses it the second time at either", async () => {
    const [a, b] = replicas;
    const vp = await presentAt(a);
    const first = await post(b, "/auth/token", { presentation: vp });
    expect([first.status, first.body.holder]).toEqual([200, world.alice.did]);
    for (const r of [b, a]) {
      const again = await post(r, "/auth/token", { presentation: vp });
      expect([again.status, again.body.error?.code]).toEqual([401, "challenge_reused"]);
    }
  });

  it("grants exactly one token for 20 concurrent redemptions of one challenge split over A and B", async () => {
    const vp = await presentAt(replicas[0]);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        post(replicas[i % 2] as Replica, "/auth/token", { presentation: vp }),
      ),
    );
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    expect(answers.filter((r) => r.status === 401 && r.body.error?.code === "challenge_reused")).toHaveLength(
      19,
    );
  });

  it("accepts a token from A at B (and from B at A)", async () => {
    const [a, b] = replicas;
    const fromA = await tokenFrom(a);
    const fromB = await tokenFrom(b);
    expect(headerOf(fromA).kid).toBe(headerOf(fromB).kid);
    expect((await get(b, `/models/${MODEL_ID}`, fromA)).status).toBe(200);
    expect((await get(a, `/models/${MODEL_ID}`, fromB)).status).toBe(200);
  });

  it("refuses to start a replica with another passphrase (wrong_passphrase) or with none (TypeError)", async () => {
    const wrong = await start("A", "198.51.100.3", "not the deployment's passphrase").catch(
      (e: unknown) => e,
    );
    expect([(wrong as KPartyError).code, (wrong as KPartyError).shortMessage]).toEqual([
      "wrong_passphrase",
      "the passphrase does not unlock the access-token keys in the PostgreSQL database",
    ]);
    const none = await start("A", "198.51.100.3", null).catch((e: unknown) => e);
    expect(none).toEqual(
      new TypeError(
        "tokenKeySecret is required on PostgreSQL: replicas share the token keys, stored encrypted under it",
      ),
    );
    // neither added a key: the deployment still has the one its replicas sign with
    const keys = await replicas[0].state.tokenKeys({ secret: TOKEN_KEY_SECRET }).load();
    expect(keys.map((k) => k.kid)).toEqual([headerOf(await tokenFrom(replicas[0])).kid]);
  });

  it("counts a credential's quota once across replicas", async () => {
    const limited = await issue(world.orgA, world.alice, { quota: { requestsPerMinute: 4 } });
    const token = await tokenFrom(replicas[0], limited.jwt);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++)
      statuses.push((await get(replicas[i % 2] as Replica, `/models/${MODEL_ID}`, token)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  });

  it("appends concurrent decisions of both replicas to one audit chain without a fork", async () => {
    const reader = replicas[0].state.auditReader();
    const before = await reader.verify();
    expect(before.valid).toBe(true);
    // 40 refused token requests at once, half at each replica: each is audited before its answer
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        post(replicas[i % 2] as Replica, "/auth/token", { presentation: "" }),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(40).fill(400));
    const after = await reader.verify();
    expect(after).toMatchObject({ valid: true, records: before.records + 40 });
    const tail = await replicas[1].state.auditReader().tail(40);
    expect(tail.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => before.records + 1 + i));
    expect(tail[0]?.prevHash).toBe(before.head);
    const byClient = (client: string) =>
      tail.filter((r) => r.client === client && r.code === "malformed").length;
    expect([byClient("198.51.100.1"), byClient("198.51.100.2")]).toEqual([20, 20]);
  });

  it("rotates keys: old tokens stay valid at both replicas, new ones carry the new kid, JWKS lists both", async () => {
    const [a, b] = replicas;
    const old = await tokenFrom(a);
    const oldKid = headerOf(old).kid;
    const added = await b.state.tokenKeys({ secret: TOKEN_KEY_SECRET }).add(); // what `kparty gateway keys rotate` does
    const fresh = [await tokenFrom(a), await tokenFrom(b)];
    expect(fresh.map((t) => headerOf(t).kid)).toEqual([added.kid, added.kid]);
    for (const r of replicas) {
      for (const token of [old, ...fresh])
        expect((await get(r, `/models/${MODEL_ID}`, token)).status).toBe(200);
      const jwks = await get(r, "/.well-known/jwks.json");
      expect(jwks.status).toBe(200);
      expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).toEqual([oldKid, added.kid]);
      expect(jwks.body.keys.every((k: Record<string, unknown>) => k.kty === "OKP" && k.alg === "EdDSA")).toBe(
        true,
      );
    }
    // a resource server verifies both generations with the JWKS alone
    const { keys } = (await get(b, "/.well-known/jwks.json")).body;
    const verifier = createTokenVerifier({ domain: DOMAIN, keys, now: () => clockNow(world.clock) });
    expect([old, ...fresh].map((t) => verifier.verify(t).holder)).toEqual(Array(3).fill(world.alice.did));
    expect(payloadOf(old).sub).toBe(world.alice.did);
  });

  it("refuses at B a DPoP proof already used at A (401 invalid_dpop_proof): a jti is single-use across replicas", async () => {
    const [a, b] = replicas;
    const key = generateKeyPairSync("ed25519").privateKey;
    const granted = await fetch(`${a.base}/auth/token`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-forwarded-for": a.client,
        dpop: createDpopProof({ key, htm: "POST", htu: `${PUBLIC_URL}/auth/token` }),
      },
      body: JSON.stringify({ presentation: await presentAt(a) }),
    });
    const answer = (await granted.json()) as { access_token: string; token_type: string };
    expect([granted.status, answer.token_type]).toEqual([200, "DPoP"]);
    const token = answer.access_token;
    const path = `/models/${MODEL_ID}`;
    const headers = () => ({
      authorization: `DPoP ${token}`,
      dpop: createDpopProof({ key, htm: "GET", htu: `${PUBLIC_URL}${path}`, accessToken: token }),
    });
    const once = headers();
    const at = async (r: Replica, h: Record<string, string>) => {
      const res = await fetch(`${r.base}${path}`, { headers: { ...h, "x-forwarded-for": r.client } });
      return {
        status: res.status,
        body: (await res.json()) as Record<string, any>,
        www: res.headers.get("www-authenticate"),
      };
    };
    expect((await at(a, once)).status).toBe(200);
    expect(await at(b, once)).toEqual({
      status: 401,
      body: {
        error: { code: "invalid_dpop_proof", message: "the DPoP proof has been used before (jti replayed)" },
      },
      www: 'DPoP error="invalid_dpop_proof", algs="ES256K ES256 EdDSA"',
    });
    expect((await at(b, headers())).status).toBe(200); // a fresh proof is fine at either
  });

  it("honours at B a token revoked at A: 401 token_revoked there, active: false at B's introspection", async () => {
    const [a, b] = replicas;
    const token = await tokenFrom(a);
    const { client, secret } = await b.state.oauthClients().add("replica test resource server");
    const introspectAt = async (r: Replica) => {
      const res = await fetch(`${r.base}/oauth/introspect`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${client.id}:${secret}`).toString("base64")}`,
        },
        body: new URLSearchParams({ token }).toString(),
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    expect((await introspectAt(b)).body).toMatchObject({
      active: true,
      sub: world.alice.did,
      token_type: "Bearer",
    });
    // the holder revokes its bearer token at A, authenticated with it
    const revoked = await fetch(`${a.base}/oauth/revoke`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `Bearer ${token}`,
        "x-forwarded-for": a.client,
      },
      body: new URLSearchParams({ token }).toString(),
    });
    expect([revoked.status, await revoked.json()]).toEqual([200, {}]);
    const atB = await get(b, `/models/${MODEL_ID}`, token);
    expect([atB.status, atB.body]).toEqual([
      401,
      { error: { code: "token_revoked", message: "the access token has been revoked" } },
    ]);
    expect(await introspectAt(b)).toEqual({ status: 200, body: { active: false } });
    expect((await get(a, `/models/${MODEL_ID}`, token)).status).toBe(401);
  });

  it("runs an OID4VP request opened at A, answered at B and collected at A (once, at either)", async () => {
    const [a, b] = replicas;
    const opened = await post(a, "/oid4vp/requests", { scope: "model:read", models: [MODEL_ID] });
    expect(opened.status).toBe(201);
    const state = String(opened.body.request_uri).split("/").at(-1) as string;
    const fetched = await fetch(`${b.base}/oid4vp/requests/${state}`);
    expect([fetched.status, await fetched.text()]).toEqual([200, opened.body.request]);
    const { nonce, client_id: clientId } = payloadOf(opened.body.request as string) as {
      nonce: string;
      client_id: string;
    };
    const vp = await world.alice.handle.agent.kpartyCreatePresentation({
      holder: world.alice.did,
      credentials: [cred.jwt],
      challenge: nonce,
      domain: clientId,
    });
    const response = await fetch(`${b.base}/oid4vp/responses`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ vp_token: JSON.stringify({ kparty: [vp] }), state }).toString(),
    });
    expect([response.status, await response.json()]).toEqual([200, {}]);
    const again = await fetch(`${a.base}/oid4vp/responses`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ vp_token: JSON.stringify({ kparty: [vp] }), state }).toString(),
    });
    expect([again.status, ((await again.json()) as { error: { code: string } }).error.code]).toEqual([
      401,
      "challenge_reused",
    ]);
    const collected = await get(a, `/oid4vp/transactions/${opened.body.transaction_id}`);
    expect(collected.body).toMatchObject({
      status: "granted",
      holder: world.alice.did,
      token_type: "Bearer",
    });
    expect((await get(b, `/models/${MODEL_ID}`, collected.body.access_token as string)).status).toBe(200);
    expect((await get(b, `/oid4vp/transactions/${opened.body.transaction_id}`)).body).toEqual({
      status: "redeemed",
    });
  });

  it("aggregates at B an update submitted at A", async () => {
    const [a, b] = replicas;
    const model = "replicated-model";
    const coordinatorCred = await issue(world.orgB, world.mallory, {
      role: "coordinator",
      models: [model],
      actions: ["model:read", "round:aggregate"],
    });
    const minted = await post(b, "/auth/challenge", {});
    const coordinatorVp = await presentation(world, world.mallory, coordinatorCred.jwt, {
      challenge: minted.body.challenge as string,
    });
    const coordinator = (await post(b, "/auth/token", { presentation: coordinatorVp })).body
      .access_token as string;
    await createGatewayClient(b.base, { dpopKey: null }).register(
      { id: model, description: "replicas", shape: [2, 2] },
      coordinator,
    );
    const participant = await tokenFrom(
      a,
      (await issue(world.orgA, world.alice, { models: [model], actions: ["model:read", "model:contribute"] }))
        .jwt,
    );
    const receipt = await createGatewayClient(a.base, { dpopKey: null }).submitUpdate(
      model,
      { round: 1, sampleCount: 10, weights: Float32Array.from([1, 2, 3, 4]) },
      participant,
    );
    expect(receipt).toMatchObject({ model, round: 1, participant: world.alice.did, sampleCount: 10 });
    const closed = await createGatewayClient(b.base, { dpopKey: null }).closeRound(model, 1, coordinator);
    expect(closed).toMatchObject({ version: 2, openRound: 2, aggregated: 1, samples: 10 });
    const { weights } = await createGatewayClient(a.base, { dpopKey: null }).weights(model, participant);
    expect([...weights]).toEqual([1, 2, 3, 4]);
  });
});

describe("two gateways on one embedded gateway.sqlite", () => {
  let local: KPartyWorld;
  beforeAll(async () => {
    local = await createWorld();
  });
  afterAll(async () => {
    await local?.close();
  });

  const gatewayOn = (dir: string, tokenKeySecret: string | null) =>
    startGateway({
      chain: local.chain,
      deployment: local.deployment,
      models: local.models,
      dir: join(local.dir, dir),
      clock: local.clock,
      tokenKeySecret,
    });

  it("with the same passphrase each signs with the stored key and verifies the other's tokens", async () => {
    const credential = await issue(local.orgA, local.alice);
    const [x, y] = [await gatewayOn("shared", TOKEN_KEY_SECRET), await gatewayOn("shared", TOKEN_KEY_SECRET)];
    try {
      const fromX = (await tokenAt(x.base, local.alice, credential.jwt)).body.access_token as string;
      const fromY = (await tokenAt(y.base, local.alice, credential.jwt)).body.access_token as string;
      expect(headerOf(fromY).kid).toBe(headerOf(fromX).kid);
      expect((await getJson(y.base, `/models/${MODEL_ID}`, fromX)).status).toBe(200);
      expect((await getJson(x.base, `/models/${MODEL_ID}`, fromY)).status).toBe(200);
    } finally {
      await x.close();
      await y.close();
    }
  });

  it("refuses to start with another passphrase: wrong_passphrase, and no key added", async () => {
    const first = await gatewayOn("guarded", TOKEN_KEY_SECRET);
    await first.close();
    const refused = await gatewayOn("guarded", "not the gateway's passphrase").catch((e: unknown) => e);
    expect([(refused as KPartyError).code, (refused as KPartyError).shortMessage]).toEqual([
      "wrong_passphrase",
      `the passphrase does not unlock the access-token keys in ${join(local.dir, "guarded", "gateway.sqlite")}`,
    ]);
    const db = new DatabaseSync(join(local.dir, "guarded", "gateway.sqlite"));
    expect(db.prepare("SELECT count(*) AS n FROM token_keys").get()).toEqual({ n: 1 });
    db.close();
  });

  it("without a passphrase each keeps a fresh key in memory: neither accepts the other's tokens", async () => {
    const credential = await issue(local.orgA, local.alice);
    const [x, y] = [await gatewayOn("memory", null), await gatewayOn("memory", null)];
    try {
      const fromX = (await tokenAt(x.base, local.alice, credential.jwt)).body.access_token as string;
      const fromY = (await tokenAt(y.base, local.alice, credential.jwt)).body.access_token as string;
      expect(headerOf(fromY).kid).not.toBe(headerOf(fromX).kid);
      const refused = await getJson(y.base, `/models/${MODEL_ID}`, fromX);
      expect([refused.status, refused.body.error.code]).toEqual([401, "token_invalid"]);
      expect((await getJson(x.base, `/models/${MODEL_ID}`, fromX)).status).toBe(200);
      const stored = x.db
        .prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE 'token_key%'")
        .get();
      expect(stored).toEqual({ n: 0 }); // nothing of the key reached the file
    } finally {
      await x.close();
      await y.close();
    }
  });
});
