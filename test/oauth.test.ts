import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { IssuedCredential } from "../agent/index.ts";
import type { Participant } from "../src/devnet/index.ts";
import { KPartyError } from "../src/errors/index.ts";
import { createDpopProof, createGatewayClient, dpopPublicJwk, jwkThumbprint } from "../src/gateway/index.ts";
import { createEmbeddedState, type OAuthClient } from "../src/state/index.ts";
import { kparty } from "./fixtures/cli.ts";
import { postJson, tamperPayload, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import {
  createWorld,
  DOMAIN,
  type KPartyWorld,
  MODEL_ID,
  startGateway,
  type TestClock,
  type TestGateway,
} from "./fixtures/kparty.ts";

/**
 * Token introspection (RFC 7662) and revocation (RFC 7009) over real HTTP: a gateway in the
 * default `dpop` mode on a real chain, gateway clients added to its state as
 * `kparty gateway clients add` does, an injected clock for expiry.
 */

let world: KPartyWorld;
let gateway: TestGateway;
const clock: TestClock = { offsetMs: 0 };
let cred: IssuedCredential;
let malloryCred: IssuedCredential;
let resourceServer: { client: OAuthClient; secret: string };
let operator: { client: OAuthClient; secret: string };

interface Answer {
  status: number;
  body: Record<string, any>;
  headers: Headers;
}

const basic = (c: { client: OAuthClient; secret: string }) =>
  `Basic ${Buffer.from(`${c.client.id}:${c.secret}`).toString("base64")}`;

/** A form POST to the gateway with `headers`. */
async function form(path: string, fields: Record<string, string> | string, headers: Record<string, string>) {
  const res = await fetch(`${gateway.base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: typeof fields === "string" ? fields : new URLSearchParams(fields).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
}

const introspect = (token: string, authorization = basic(resourceServer)) =>
  form("/oauth/introspect", { token, token_type_hint: "access_token" }, { authorization });

/** A DPoP-bound token for `holder`'s credential `jwt`, bound to `key`. */
async function boundToken(
  key: KeyObject,
  holder: Participant = world.alice,
  jwt = cred.jwt,
): Promise<string> {
  const challenge = (await postJson(gateway.base, "/auth/challenge", {})).body.challenge as string;
  const presentation = await holder.handle.agent.kpartyCreatePresentation({
    holder: holder.did,
    credentials: [jwt],
    challenge,
    domain: DOMAIN,
  });
  const res = await fetch(`${gateway.base}/auth/token`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      dpop: createDpopProof({ key, htm: "POST", htu: `${gateway.base}/auth/token` }),
    },
    body: JSON.stringify({ presentation }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

/** The headers of a request with `token` and a fresh proof by `key` for `method path`. */
const dpopAuth = (token: string, key: KeyObject, method: string, path: string) => ({
  authorization: `DPoP ${token}`,
  dpop: createDpopProof({ key, htm: method, htu: `${gateway.base}${path}`, accessToken: token }),
});

async function readModel(token: string, key: KeyObject): Promise<Answer> {
  const path = `/models/${MODEL_ID}`;
  const res = await fetch(`${gateway.base}${path}`, { headers: dpopAuth(token, key, "GET", path) });
  return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
}

/** Revocation by the holder of `auth` (its token and key) of `token`. */
const revokeAsHolder = (auth: { token: string; key: KeyObject }, token: string) =>
  form("/oauth/revoke", { token }, dpopAuth(auth.token, auth.key, "POST", "/oauth/revoke"));

const payloadOf = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split(".")[1] as string, "base64url").toString()) as Record<string, any>;

const ed25519 = () => generateKeyPairSync("ed25519").privateKey;

/** The newest audit record of the gateway. */
const lastAudit = async () => (await createEmbeddedState(gateway.db).auditReader().tail(1))[0];

beforeAll(async () => {
  world = await createWorld();
  gateway = await startGateway({
    chain: world.chain,
    deployment: world.deployment,
    models: world.models,
    dir: join(world.dir, "gw-oauth"),
    clock,
    tokenBinding: "dpop",
  });
  cred = await issue(world.orgA, world.alice, { actions: ["model:read"] });
  malloryCred = await issue(world.orgA, world.mallory, { actions: ["model:read"] });
  // as `kparty gateway clients add` does, in the gateway's own state
  const clients = createEmbeddedState(gateway.db).oauthClients();
  resourceServer = await clients.add("model server");
  operator = await clients.add("operator", { canRevoke: true });
});
afterAll(async () => {
  await gateway?.close();
  await world?.close();
});
beforeEach(() => {
  clock.offsetMs = 0;
});

describe("POST /oauth/introspect", () => {
  it("answers a live DPoP-bound token's members", async () => {
    const key = ed25519();
    const token = await boundToken(key);
    const claims = payloadOf(token);
    const res = await introspect(token);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      active: true,
      scope: "model:read",
      models: [MODEL_ID],
      token_type: "DPoP",
      exp: claims.exp,
      iat: claims.iat,
      sub: world.alice.did,
      iss: DOMAIN,
      aud: DOMAIN,
      jti: claims.jti,
      cnf: { jkt: jwkThumbprint(dpopPublicJwk(key)) },
      credential_id: cred.credentialId,
    });
    expect(claims.exp - claims.iat).toBe(300);
  });

  it("answers only active: false for an expired token (injected clock) and a badly signed one", async () => {
    const token = await boundToken(ed25519());
    const forged = tamperPayload(token, (p) => {
      p.models = ["*"];
    });
    expect(await introspect(forged)).toMatchObject({ status: 200, body: { active: false } });
    expect((await introspect(forged)).body).toEqual({ active: false });
    expect((await introspect("not-a-token")).body).toEqual({ active: false });
    clock.offsetMs = 299_000;
    expect((await introspect(token)).body.active).toBe(true);
    clock.offsetMs = (300 + 60 + 1) * 1000; // past exp + the 60 s skew
    const expired = await introspect(token);
    expect([expired.status, expired.body]).toEqual([200, { active: false }]);
  });

  it("refuses a caller that is not a gateway client: 401 invalid_client with WWW-Authenticate: Basic", async () => {
    const token = await boundToken(ed25519());
    const wrongSecret = basic({ client: resourceServer.client, secret: operator.secret });
    const unknownClient = `Basic ${Buffer.from(`0123456789ab:${resourceServer.secret}`).toString("base64")}`;
    for (const headers of [
      {},
      { authorization: wrongSecret },
      { authorization: unknownClient },
      { authorization: `DPoP ${token}` },
    ]) {
      const res = await form("/oauth/introspect", { token }, headers);
      expect([res.status, res.body]).toEqual([
        401,
        {
          error: {
            code: "invalid_client",
            message: "client authentication failed (HTTP Basic client_id:client_secret of a gateway client)",
          },
        },
      ]);
      expect(res.headers.get("www-authenticate")).toBe('Basic realm="kparty", charset="UTF-8"');
    }
  });

  it("refuses a form without a token or with a parameter twice (400 malformed)", async () => {
    const missing = await form(
      "/oauth/introspect",
      { token_type_hint: "access_token" },
      {
        authorization: basic(resourceServer),
      },
    );
    expect([missing.status, missing.body.error.code]).toEqual([400, "malformed"]);
    const twice = await form("/oauth/introspect", "token=a&token=b", {
      authorization: basic(resourceServer),
    });
    expect([twice.status, twice.body.error]).toEqual([
      400,
      { code: "malformed", message: "token is given more than once" },
    ]);
  });

  it("answers active: false for a token whose credential is revoked on chain", async () => {
    const doomed = await issue(world.orgA, world.alice, { actions: ["model:read"] });
    const key = ed25519();
    const token = await boundToken(key, world.alice, doomed.jwt);
    expect((await introspect(token)).body.active).toBe(true);
    const revoked = await world.orgA.handle.agent.kpartyRevokeCredential({
      credentialId: doomed.credentialId,
    });
    await waitForSync(gateway.base, revoked.blockNumber);
    expect((await introspect(token)).body).toEqual({ active: false });
    const refused = await readModel(token, key);
    expect([refused.status, refused.body.error.code]).toEqual([403, "revoked"]);
  });
});

describe("POST /oauth/revoke", () => {
  it("lets a holder revoke its own token: then refused everywhere with 401 token_revoked, and audited", async () => {
    const key = ed25519();
    const token = await boundToken(key);
    const other = { key: ed25519(), token: "" };
    other.token = await boundToken(other.key); // another token of Alice's, which authenticates the request
    expect((await readModel(token, key)).status).toBe(200);
    const res = await revokeAsHolder(other, token);
    expect([res.status, res.body]).toEqual([200, {}]);
    expect(await lastAudit()).toMatchObject({
      route: "/oauth/revoke",
      outcome: "granted",
      holder: world.alice.did,
      credentialId: cred.credentialId,
      action: "token:revoke",
      code: null,
    });
    const refused = await readModel(token, key);
    expect([refused.status, refused.body.error]).toEqual([
      401,
      { code: "token_revoked", message: "the access token has been revoked" },
    ]);
    expect(refused.headers.get("www-authenticate")).toBe(
      'DPoP error="invalid_token", algs="ES256K ES256 EdDSA"',
    );
    expect((await introspect(token)).body).toEqual({ active: false });
    // the other token still works, and revoking again is a no-op (200)
    expect((await readModel(other.token, other.key)).status).toBe(200);
    expect((await revokeAsHolder(other, token)).status).toBe(200);
    expect((await lastAudit())?.action).toBe("token:revoke:already");
  });

  it("lets a holder revoke the token it authenticates with, which then authenticates nothing", async () => {
    const self = { key: ed25519(), token: "" };
    self.token = await boundToken(self.key);
    expect((await revokeAsHolder(self, self.token)).status).toBe(200);
    const again = await revokeAsHolder(self, self.token);
    expect([again.status, again.body.error.code]).toEqual([401, "token_revoked"]);
  });

  it("refuses a holder's revocation of another holder's token with 403 scope_denied (audited)", async () => {
    const alice = { key: ed25519(), token: "" };
    alice.token = await boundToken(alice.key);
    const malloryKey = ed25519();
    const malloryToken = await boundToken(malloryKey, world.mallory, malloryCred.jwt);
    const res = await revokeAsHolder(alice, malloryToken);
    expect([res.status, res.body.error]).toEqual([
      403,
      { code: "scope_denied", message: "a holder may revoke only its own access tokens" },
    ]);
    expect(await lastAudit()).toMatchObject({
      route: "/oauth/revoke",
      outcome: "denied",
      code: "scope_denied",
      holder: world.mallory.did,
      credentialId: malloryCred.credentialId,
    });
    expect((await readModel(malloryToken, malloryKey)).status).toBe(200);
    expect((await introspect(malloryToken)).body.active).toBe(true);
  });

  it("refuses a holder without a valid proof (401 invalid_dpop_proof) and a caller without credentials (401 invalid_client)", async () => {
    const alice = { key: ed25519(), token: "" };
    alice.token = await boundToken(alice.key);
    const noProof = await form(
      "/oauth/revoke",
      { token: alice.token },
      { authorization: `DPoP ${alice.token}` },
    );
    expect([noProof.status, noProof.body.error.code]).toEqual([401, "invalid_dpop_proof"]);
    const anonymous = await form("/oauth/revoke", { token: alice.token }, {});
    expect([anonymous.status, anonymous.body.error.code]).toEqual([401, "invalid_client"]);
    expect(anonymous.headers.get("www-authenticate")).toBe('Basic realm="kparty", charset="UTF-8"');
    expect((await readModel(alice.token, alice.key)).status).toBe(200);
  });

  it("lets an operator client with the revoke permission revoke any token; one without it is refused (403)", async () => {
    const key = ed25519();
    const malloryToken = await boundToken(key, world.mallory, malloryCred.jwt);
    const denied = await form(
      "/oauth/revoke",
      { token: malloryToken },
      { authorization: basic(resourceServer) },
    );
    expect([denied.status, denied.body.error]).toEqual([
      403,
      {
        code: "scope_denied",
        message: `gateway client ${resourceServer.client.id} may introspect but not revoke (add a client with --revoke)`,
      },
    ]);
    expect((await readModel(malloryToken, key)).status).toBe(200);
    const res = await form("/oauth/revoke", { token: malloryToken }, { authorization: basic(operator) });
    expect([res.status, res.body]).toEqual([200, {}]);
    expect(await lastAudit()).toMatchObject({
      route: "/oauth/revoke",
      outcome: "granted",
      holder: world.mallory.did,
      credentialId: malloryCred.credentialId,
      action: `token:revoke:client:${operator.client.id}`,
    });
    const refused = await readModel(malloryToken, key);
    expect([refused.status, refused.body.error.code]).toEqual([401, "token_revoked"]);
  });

  it("answers 200 for a token that is not live (RFC 7009 §2.2), revoking nothing", async () => {
    const res = await form("/oauth/revoke", { token: "not-a-token" }, { authorization: basic(operator) });
    expect([res.status, res.body]).toEqual([200, {}]);
    expect(await lastAudit()).toMatchObject({
      outcome: "granted",
      holder: null,
      action: `token:revoke:inactive:client:${operator.client.id}`,
    });
  });
});

describe("createGatewayClient's introspect and revoke", () => {
  it("introspects its bound token as a gateway client, revokes it as its holder, then is refused (token_revoked)", async () => {
    const gw = createGatewayClient(gateway.base);
    const { challenge } = await gw.challenge();
    const presentation = await world.alice.handle.agent.kpartyCreatePresentation({
      holder: world.alice.did,
      credentials: [cred.jwt],
      challenge,
      domain: DOMAIN,
    });
    const { access_token: token } = await gw.token(presentation);
    const rs = { id: resourceServer.client.id, secret: resourceServer.secret };
    expect(await gw.introspect(token, rs)).toMatchObject({
      active: true,
      sub: world.alice.did,
      token_type: "DPoP",
    });
    await gw.revoke(token);
    expect(await gw.introspect(token, rs)).toEqual({ active: false });
    const refused = await gw.model(MODEL_ID, token).catch((e: KPartyError) => e);
    expect([refused instanceof KPartyError && refused.code, (refused as KPartyError).details.status]).toEqual(
      ["token_revoked", 401],
    );
    const wrong = await gw
      .introspect(token, { id: rs.id, secret: operator.secret })
      .catch((e: KPartyError) => e);
    expect([(wrong as KPartyError).code, (wrong as KPartyError).details.status]).toEqual([
      "invalid_client",
      401,
    ]);
  });
});

describe("kparty gateway clients (the real binary, on the running gateway's database)", () => {
  it("adds a client whose printed id:secret introspects at once, lists it without its secret, removes it", async () => {
    const dbArgs = ["--db", join(world.dir, "gw-oauth", "gateway.sqlite")];
    const added = await kparty(["gateway", "clients", "add", "cli resource server", ...dbArgs], {
      cwd: world.dir,
    });
    expect(added.code).toBe(0);
    const line = added.stdout.trim();
    expect(line).toMatch(/^[0-9a-f]{12}:[A-Za-z0-9_-]{43}$/);
    const [id, secret] = line.split(":") as [string, string];
    const authorization = `Basic ${Buffer.from(line).toString("base64")}`;
    const token = await boundToken(ed25519());
    expect((await introspect(token, authorization)).body.active).toBe(true);
    const listed = await kparty(["gateway", "clients", "list", "--json", ...dbArgs], { cwd: world.dir });
    const clients = JSON.parse(listed.stdout) as OAuthClient[];
    expect(clients.find((c) => c.id === id)).toEqual({
      id,
      name: "cli resource server",
      canRevoke: false,
      createdAt: expect.any(String),
    });
    expect(listed.stdout).not.toContain(secret);
    const removed = await kparty(["gateway", "clients", "remove", id, ...dbArgs], { cwd: world.dir });
    expect([removed.code, removed.stdout]).toEqual([0, `removed cli resource server (${id})\n`]);
    expect((await introspect(token, authorization)).status).toBe(401);
    const again = await kparty(["gateway", "clients", "remove", id, ...dbArgs], { cwd: world.dir });
    expect([again.code, again.stderr]).toEqual([5, `kparty: not_found: no gateway client ${id}\n`]);
  });
});
