import { execFileSync } from "node:child_process";
import { createHmac, generateKeyPairSync, type KeyObject } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssuedCredential } from "../agent/index.ts";
import { decodeJwt } from "../src/credential/index.ts";
import type { Participant } from "../src/devnet/index.ts";
import {
  createDpopProof,
  createGatewayClient,
  createKPartyProtection,
  dpopPublicJwk,
  errorHeaders,
  errorResponse,
  jwkThumbprint,
  SqliteDpopReplayStore,
} from "../src/gateway/index.ts";
import { postJson } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import {
  clockNow,
  createWorld,
  DOMAIN,
  type KPartyWorld,
  MODEL_ID,
  startGateway,
  type TestClock,
  type TestGateway,
} from "./fixtures/kparty.ts";

/**
 * DPoP-bound access tokens (RFC 9449) over real HTTP: a gateway in the default `dpop` mode, one
 * that requires server nonces, the fixture's gateway in `bearer` mode, and
 * `createKPartyProtection` on another Fastify server.
 */

let world: KPartyWorld;
let gateway: TestGateway; // dpop mode (the default)
let nonceGateway: TestGateway; // dpop mode with server nonces
const clock: TestClock = { offsetMs: 0 };
let cred: IssuedCredential;

const ed25519 = () => generateKeyPairSync("ed25519").privateKey;
const p256 = () => generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
const secp256k1 = () => generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey;
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

interface Answer {
  status: number;
  body: Record<string, any>;
  headers: Headers;
}

async function answer(res: Response): Promise<Answer> {
  return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
}

/** A fresh presentation of `jwt` by `holder` for the gateway at `base`. */
async function presentationAt(base: string, holder: Participant, jwt: string): Promise<string> {
  const challenge = (await postJson(base, "/auth/challenge", {})).body.challenge as string;
  return holder.handle.agent.kpartyCreatePresentation({
    holder: holder.did,
    credentials: [jwt],
    challenge,
    domain: DOMAIN,
  });
}

/** POST /auth/token at `base` with `dpop` as the DPoP header (none when null). */
async function tokenRequest(base: string, presentation: string, dpop: string | null): Promise<Answer> {
  return answer(
    await fetch(`${base}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(dpop !== null ? { dpop } : {}) },
      body: JSON.stringify({ presentation }),
    }),
  );
}

/** A token bound to `key` from the gateway at `base` (for `holder`'s credential `jwt`). */
async function boundToken(
  base: string,
  key: KeyObject,
  holder = world.alice,
  jwt = cred.jwt,
): Promise<string> {
  const proof = createDpopProof({ key, htm: "POST", htu: `${base}/auth/token` });
  const res = await tokenRequest(base, await presentationAt(base, holder, jwt), proof);
  expect(res.status).toBe(200);
  return res.body.access_token as string;
}

/** A request to `base + path` with the given headers. */
async function call(
  base: string,
  path: string,
  headers: Record<string, string>,
  method = "GET",
): Promise<Answer> {
  return answer(await fetch(`${base}${path}`, { method, headers }));
}

const modelPath = `/models/${MODEL_ID}`;

/** `Authorization: DPoP` and a proof by `key` for GET of the model at `base`, with `options`. */
function dpopHeaders(
  base: string,
  token: string,
  key: KeyObject,
  options: { htm?: string; path?: string; now?: () => number; accessToken?: string; nonce?: string } = {},
): Record<string, string> {
  const proof = createDpopProof({
    key,
    htm: options.htm ?? "GET",
    htu: `${base}${options.path ?? modelPath}`,
    accessToken: options.accessToken ?? token,
    ...(options.now ? { now: options.now } : {}),
    ...(options.nonce !== undefined ? { nonce: options.nonce } : {}),
  });
  return { authorization: `DPoP ${token}`, dpop: proof };
}

/** Expects the RFC 9449 refusal of a protected request: 401, the code and the challenge header. */
function expectRefusal(res: Answer, code: "invalid_dpop_proof" | "use_dpop_nonce", message?: string) {
  expect([res.status, res.body.error.code]).toEqual([401, code]);
  expect(res.headers.get("www-authenticate")).toBe(`DPoP error="${code}", algs="ES256K ES256 EdDSA"`);
  if (message !== undefined) expect(res.body.error.message).toBe(message);
}

beforeAll(async () => {
  world = await createWorld();
  const common = { chain: world.chain, deployment: world.deployment, models: world.models };
  gateway = await startGateway({ ...common, dir: join(world.dir, "gw-dpop"), clock, tokenBinding: "dpop" });
  nonceGateway = await startGateway({
    ...common,
    dir: join(world.dir, "gw-nonce"),
    clock,
    tokenBinding: "dpop",
    requireDpopNonce: true,
  });
  cred = await issue(world.orgA, world.alice, { actions: ["model:read", "model:infer"] });
});
afterAll(async () => {
  await nonceGateway?.close();
  await gateway?.close();
  await world?.close();
});

describe("POST /auth/token in dpop mode", () => {
  it("binds the token to the proof's key: cnf.jkt, token_type DPoP", async () => {
    const key = ed25519();
    const proof = createDpopProof({ key, htm: "POST", htu: `${gateway.base}/auth/token` });
    const res = await tokenRequest(
      gateway.base,
      await presentationAt(gateway.base, world.alice, cred.jwt),
      proof,
    );
    expect(res.status).toBe(200);
    expect(res.body.token_type).toBe("DPoP");
    const payload = decodeJwt(res.body.access_token).payload;
    expect(payload.cnf).toEqual({ jkt: jwkThumbprint(dpopPublicJwk(key)) });
  });

  it("refuses a token request without a proof with 400 invalid_dpop_proof, before using the challenge", async () => {
    const presentation = await presentationAt(gateway.base, world.alice, cred.jwt);
    const res = await tokenRequest(gateway.base, presentation, null);
    expect([res.status, res.body.error]).toEqual([
      400,
      { code: "invalid_dpop_proof", message: "a DPoP proof is required (DPoP header)" },
    ]);
    expect(res.headers.get("www-authenticate")).toBe(
      'DPoP error="invalid_dpop_proof", algs="ES256K ES256 EdDSA"',
    );
    // the challenge was not used up: the same presentation with a proof succeeds
    const key = ed25519();
    const proof = createDpopProof({ key, htm: "POST", htu: `${gateway.base}/auth/token` });
    expect((await tokenRequest(gateway.base, presentation, proof)).status).toBe(200);
  });

  it("refuses a proof for another URL or method, and a replayed one, at the token endpoint", async () => {
    const key = ed25519();
    const wrongUrl = createDpopProof({ key, htm: "POST", htu: `${gateway.base}/auth/challenge` });
    const presentation = await presentationAt(gateway.base, world.alice, cred.jwt);
    const url = await tokenRequest(gateway.base, presentation, wrongUrl);
    expect([url.status, url.body.error.code, url.body.error.message]).toEqual([
      400,
      "invalid_dpop_proof",
      `the DPoP proof is for another URL (htu must be ${gateway.base}/auth/token)`,
    ]);
    const wrongMethod = createDpopProof({ key, htm: "GET", htu: `${gateway.base}/auth/token` });
    const method = await tokenRequest(gateway.base, presentation, wrongMethod);
    expect([method.status, method.body.error.message]).toEqual([
      400,
      "the DPoP proof is for another method (htm must be POST)",
    ]);
    const good = createDpopProof({ key, htm: "POST", htu: `${gateway.base}/auth/token` });
    expect((await tokenRequest(gateway.base, presentation, good)).status).toBe(200);
    const again = await tokenRequest(
      gateway.base,
      await presentationAt(gateway.base, world.alice, cred.jwt),
      good,
    );
    expect([again.status, again.body.error.code, again.body.error.message]).toEqual([
      400,
      "invalid_dpop_proof",
      "the DPoP proof has been used before (jti replayed)",
    ]);
  });

  it.each([
    ["EdDSA (Ed25519)", ed25519],
    ["ES256 (P-256)", p256],
    ["ES256K (secp256k1)", secp256k1],
  ])("accepts %s proofs, at the token endpoint and on a protected route", async (_alg, make) => {
    const key = make();
    const token = await boundToken(gateway.base, key);
    const res = await call(gateway.base, modelPath, dpopHeaders(gateway.base, token, key));
    expect([res.status, res.body.id]).toEqual([200, MODEL_ID]);
  });
});

describe("protected requests with a DPoP-bound token", () => {
  let key: KeyObject;
  let token: string;
  beforeAll(async () => {
    key = ed25519();
    token = await boundToken(gateway.base, key);
  });

  it("refuses the token sent as a bearer token (401 token_invalid, DPoP challenge)", async () => {
    const res = await call(gateway.base, modelPath, { authorization: `Bearer ${token}` });
    expect([res.status, res.body.error]).toEqual([
      401,
      {
        code: "token_invalid",
        message: "the access token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof",
      },
    ]);
    expect(res.headers.get("www-authenticate")).toBe('DPoP error="invalid_token", algs="ES256K ES256 EdDSA"');
    // and with the DPoP scheme but no proof
    const noProof = await call(gateway.base, modelPath, { authorization: `DPoP ${token}` });
    expectRefusal(noProof, "invalid_dpop_proof", "a DPoP proof is required (DPoP header)");
  });

  it("refuses a proof for another method or another URL", async () => {
    const method = await call(
      gateway.base,
      modelPath,
      dpopHeaders(gateway.base, token, key, { htm: "POST" }),
    );
    expectRefusal(method, "invalid_dpop_proof", "the DPoP proof is for another method (htm must be GET)");
    const url = await call(
      gateway.base,
      modelPath,
      dpopHeaders(gateway.base, token, key, { path: "/models" }),
    );
    expectRefusal(
      url,
      "invalid_dpop_proof",
      `the DPoP proof is for another URL (htu must be ${gateway.base}${modelPath})`,
    );
    // the query is not part of htu: a proof for the path serves the path with a query
    const query = await call(gateway.base, `${modelPath}?x=1`, dpopHeaders(gateway.base, token, key));
    expect(query.status).toBe(200);
  });

  it("refuses a replayed proof (its jti has been seen)", async () => {
    const headers = dpopHeaders(gateway.base, token, key);
    expect((await call(gateway.base, modelPath, headers)).status).toBe(200);
    expectRefusal(
      await call(gateway.base, modelPath, headers),
      "invalid_dpop_proof",
      "the DPoP proof has been used before (jti replayed)",
    );
  });

  it("refuses a proof whose iat is more than the 60 s skew from the gateway's clock, either way; accepts one 60 s off", async () => {
    const stale = "the DPoP proof's iat must be within 60 s of the gateway's clock";
    const s = Math.floor(Date.now() / 1000);
    /** Headers whose proof was made in second `seconds` (its iat). */
    const madeAt = (seconds: number) => dpopHeaders(gateway.base, token, key, { now: () => seconds * 1000 });
    clock.atMs = s * 1000 + 400; // the gateway's clock stands still, 400 ms into second s
    try {
      for (const iat of [s - 61, s + 61])
        expectRefusal(await call(gateway.base, modelPath, madeAt(iat)), "invalid_dpop_proof", stale);
      for (const iat of [s - 60, s + 60])
        expect((await call(gateway.base, modelPath, madeAt(iat))).status).toBe(200);
      // the gateway's clock moves 2 minutes on: a proof made at s is stale to it (the token is not)
      clock.atMs = (s + 120) * 1000 + 400;
      expectRefusal(await call(gateway.base, modelPath, madeAt(s)), "invalid_dpop_proof", stale);
      expect((await call(gateway.base, modelPath, madeAt(s + 120))).status).toBe(200);
    } finally {
      delete clock.atMs;
    }
  });

  it("refuses alg none and HS256 proofs (and a jwk with a private key)", async () => {
    const jwk = dpopPublicJwk(key);
    const payload = (extra: Record<string, unknown> = {}) =>
      b64({
        jti: `jti-${Math.random()}`,
        htm: "GET",
        htu: `${gateway.base}${modelPath}`,
        iat: Math.floor(Date.now() / 1000),
        ...extra,
      });
    const none = `${b64({ typ: "dpop+jwt", alg: "none", jwk })}.${payload()}.`;
    expectRefusal(
      await call(gateway.base, modelPath, { authorization: `DPoP ${token}`, dpop: none }),
      "invalid_dpop_proof",
      "the DPoP proof is not a compact JWS",
    );
    const noneSigned = `${b64({ typ: "dpop+jwt", alg: "none", jwk })}.${payload()}.AA`;
    expectRefusal(
      await call(gateway.base, modelPath, { authorization: `DPoP ${token}`, dpop: noneSigned }),
      "invalid_dpop_proof",
      "the DPoP proof's alg must be one of ES256K, ES256, EdDSA",
    );
    // HS256 keyed with the public key's bytes (key confusion)
    const input = `${b64({ typ: "dpop+jwt", alg: "HS256", jwk })}.${payload()}`;
    const hs = `${input}.${createHmac("sha256", Buffer.from(jwk.x as string, "base64url"))
      .update(input)
      .digest("base64url")}`;
    expectRefusal(
      await call(gateway.base, modelPath, { authorization: `DPoP ${token}`, dpop: hs }),
      "invalid_dpop_proof",
      "the DPoP proof's alg must be one of ES256K, ES256, EdDSA",
    );
    const privateJwk = key.export({ format: "jwk" });
    const leaky = `${b64({ typ: "dpop+jwt", alg: "EdDSA", jwk: privateJwk })}.${payload()}.AA`;
    expectRefusal(
      await call(gateway.base, modelPath, { authorization: `DPoP ${token}`, dpop: leaky }),
      "invalid_dpop_proof",
      "the DPoP proof's jwk holds a private key",
    );
  });

  it("audits a refused proof with the token's holder and credential", async () => {
    await call(gateway.base, modelPath, dpopHeaders(gateway.base, token, ed25519()));
    const row = gateway.db
      .prepare("SELECT holder, credential_id, outcome, code FROM audit ORDER BY seq DESC LIMIT 1")
      .get();
    expect({ ...row }).toEqual({
      holder: world.alice.did,
      credential_id: cred.credentialId,
      outcome: "denied",
      code: "invalid_dpop_proof",
    });
  });
});

describe("scripts/dpop-proof.ts (the docs' curl example: node:crypto alone)", () => {
  const script = fileURLToPath(new URL("../scripts/dpop-proof.ts", import.meta.url));
  const run = (...args: string[]) =>
    execFileSync(process.execPath, ["--disable-warning=ExperimentalWarning", script, ...args], {
      encoding: "utf8",
    }).trim();

  it.each(["EdDSA", "ES256", "ES256K"])(
    "makes %s proofs the gateway accepts, and the key's jkt",
    async (alg) => {
      const keyFile = join(world.dir, `dpop-key-${alg}.json`);
      writeFileSync(keyFile, run("keygen", alg), { mode: 0o600 });
      const proof = run("proof", keyFile, "POST", `${gateway.base}/auth/token`);
      const res = await tokenRequest(
        gateway.base,
        await presentationAt(gateway.base, world.alice, cred.jwt),
        proof,
      );
      expect([res.status, res.body.token_type]).toEqual([200, "DPoP"]);
      const token = res.body.access_token as string;
      expect(decodeJwt(token).payload.cnf).toEqual({ jkt: run("jkt", keyFile) });
      const read = run("proof", keyFile, "GET", `${gateway.base}${modelPath}`, token);
      const ok = await call(gateway.base, modelPath, { authorization: `DPoP ${token}`, dpop: read });
      expect(ok.status).toBe(200);
    },
  );
});

describe("two replicas sharing the token key and the replay store", () => {
  it("refuse at one a proof already used at the other", async () => {
    const tokenKey = generateKeyPairSync("ed25519").privateKey;
    const shared = new SqliteDpopReplayStore(gateway.db, { now: () => clockNow(clock) });
    const common = {
      chain: world.chain,
      deployment: world.deployment,
      models: world.models,
      clock,
      tokenKey,
    };
    // both behind one public URL, as replicas behind a load balancer are
    const publicUrl = "https://gw.replicas.example";
    const a = await startGateway({
      ...common,
      dir: join(world.dir, "replica-a"),
      dpopReplay: shared,
      publicUrl,
    });
    const b = await startGateway({
      ...common,
      dir: join(world.dir, "replica-b"),
      dpopReplay: shared,
      publicUrl,
    });
    try {
      const key = ed25519();
      const tokenProof = createDpopProof({ key, htm: "POST", htu: `${publicUrl}/auth/token` });
      const granted = await tokenRequest(
        a.base,
        await presentationAt(a.base, world.alice, cred.jwt),
        tokenProof,
      );
      expect(granted.status).toBe(200);
      const token = granted.body.access_token as string;
      const headers = dpopHeaders(publicUrl, token, key);
      expect((await call(a.base, modelPath, headers)).status).toBe(200);
      expectRefusal(
        await call(b.base, modelPath, headers),
        "invalid_dpop_proof",
        "the DPoP proof has been used before (jti replayed)",
      );
      expect((await call(b.base, modelPath, dpopHeaders(publicUrl, token, key))).status).toBe(200);
      // the public URL is what proofs must name, not the address the request came in on
      expectRefusal(
        await call(b.base, modelPath, dpopHeaders(b.base, token, key)),
        "invalid_dpop_proof",
        `the DPoP proof is for another URL (htu must be ${publicUrl}${modelPath})`,
      );
    } finally {
      await b.close();
      await a.close();
    }
  });
});

describe("server nonces (requireDpopNonce)", () => {
  it("asks for a nonce with use_dpop_nonce and DPoP-Nonce, then accepts the proof that carries it", async () => {
    const key = ed25519();
    const base = nonceGateway.base;
    const presentation = await presentationAt(base, world.alice, cred.jwt);
    const first = await tokenRequest(
      base,
      presentation,
      createDpopProof({ key, htm: "POST", htu: `${base}/auth/token` }),
    );
    expect([first.status, first.body.error.code]).toEqual([400, "use_dpop_nonce"]);
    expect(first.headers.get("www-authenticate")).toBe(
      'DPoP error="use_dpop_nonce", algs="ES256K ES256 EdDSA"',
    );
    const nonce = first.headers.get("dpop-nonce") as string;
    expect(nonce).toMatch(/^[0-9a-z]+\.[A-Za-z0-9_-]{22}$/);
    const second = await tokenRequest(
      base,
      presentation,
      createDpopProof({ key, htm: "POST", htu: `${base}/auth/token`, nonce }),
    );
    expect([second.status, second.body.token_type]).toEqual([200, "DPoP"]);
    const token = second.body.access_token as string;
    const without = await call(base, modelPath, dpopHeaders(base, token, key));
    expectRefusal(without, "use_dpop_nonce", "the gateway requires a DPoP nonce");
    expect(without.headers.get("dpop-nonce")).toBe(nonce);
    const forged = await call(
      base,
      modelPath,
      dpopHeaders(base, token, key, { nonce: "0.AAAAAAAAAAAAAAAAAAAAAA" }),
    );
    expectRefusal(forged, "use_dpop_nonce", "the DPoP nonce is stale or invalid");
    const ok = await call(base, modelPath, dpopHeaders(base, token, key, { nonce }));
    expect([ok.status, ok.headers.get("dpop-nonce")]).toEqual([200, nonce]);
  });

  it("createGatewayClient retries once with the nonce it is given", async () => {
    const gw = createGatewayClient(nonceGateway.base);
    const { access_token } = await gw.token(await presentationAt(nonceGateway.base, world.alice, cred.jwt));
    expect((await gw.model(MODEL_ID, access_token)).id).toBe(MODEL_ID);
  });
});

describe("bearer mode (the fixture's gateway, an explicit opt-in)", () => {
  it("gives a bearer token without a proof and a bound one with a proof, which it never takes as bearer", async () => {
    const bearer = await tokenRequest(
      world.base,
      await presentationAt(world.base, world.alice, cred.jwt),
      null,
    );
    expect([bearer.status, bearer.body.token_type]).toEqual([200, "Bearer"]);
    expect(decodeJwt(bearer.body.access_token).payload.cnf).toBeUndefined();
    const read = await call(world.base, modelPath, { authorization: `Bearer ${bearer.body.access_token}` });
    expect(read.status).toBe(200);
    const key = p256();
    const bound = await boundToken(world.base, key);
    expect(decodeJwt(bound).payload.cnf).toEqual({ jkt: jwkThumbprint(dpopPublicJwk(key)) });
    const asBearer = await call(world.base, modelPath, { authorization: `Bearer ${bound}` });
    expect([asBearer.status, asBearer.body.error.code]).toEqual([401, "token_invalid"]);
    expect((await call(world.base, modelPath, dpopHeaders(world.base, bound, key))).status).toBe(200);
  });

  it("in dpop mode a bearer token request is refused, so no unbound token exists", async () => {
    const res = await tokenRequest(
      gateway.base,
      await presentationAt(gateway.base, world.alice, cred.jwt),
      null,
    );
    expect([res.status, res.body.error.code]).toEqual([400, "invalid_dpop_proof"]);
  });
});

describe("createKPartyProtection on another Fastify server (the gateway's dpop mode)", () => {
  let server: FastifyInstance;
  let base: string;
  let protection: Awaited<ReturnType<typeof createKPartyProtection>>;
  beforeAll(async () => {
    protection = await createKPartyProtection({
      gateway: gateway.base,
      chain: world.client,
      now: () => clockNow(clock),
    });
    server = Fastify();
    server.setErrorHandler((error, _request, reply) => {
      const [status, body] = errorResponse(error);
      return reply.code(status).headers(errorHeaders(error)).send(body);
    });
    server.post<{ Params: { id: string } }>(
      "/infer/:id",
      { preHandler: protection.requireAccess("model:infer") },
      async (request) => ({ holder: request.kparty?.holder }),
    );
    server.addHook("onClose", async () => protection.close());
    base = await server.listen({ host: "127.0.0.1", port: 0 });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("admits a bound token with a fresh proof for this server's URL; refuses bearer use, replays and other URLs", async () => {
    const key = secp256k1();
    const token = await boundToken(gateway.base, key);
    const path = `/infer/${MODEL_ID}`;
    const headers = dpopHeaders(base, token, key, { htm: "POST", path });
    const ok = await call(base, path, headers, "POST");
    expect([ok.status, ok.body]).toEqual([200, { holder: world.alice.did }]);
    expectRefusal(
      await call(base, path, headers, "POST"),
      "invalid_dpop_proof",
      "the DPoP proof has been used before (jti replayed)",
    );
    const asBearer = await call(base, path, { authorization: `Bearer ${token}` }, "POST");
    expect([asBearer.status, asBearer.body.error.code]).toEqual([401, "token_invalid"]);
    expect(asBearer.headers.get("www-authenticate")).toBe(
      'DPoP error="invalid_token", algs="ES256K ES256 EdDSA"',
    );
    // a proof for the gateway's URL is not one for this server
    const forGateway = dpopHeaders(gateway.base, token, key, { htm: "POST", path });
    expectRefusal(
      await call(base, path, forGateway, "POST"),
      "invalid_dpop_proof",
      `the DPoP proof is for another URL (htu must be ${base}${path})`,
    );
    expectRefusal(
      await call(base, path, dpopHeaders(base, token, ed25519(), { htm: "POST", path }), "POST"),
      "invalid_dpop_proof",
      "the DPoP proof is signed by another key than the one the access token is bound to",
    );
  });
});
