/**
 * OID4VP 1.0 against a real gateway on 127.0.0.1. The wallet here is the OpenWallet Foundation's
 * holder side (`@openid4vc/openid4vp`) plus did-jwt-vc, with its own secp256k1 key: no kparty
 * wallet code.
 */
import { createHash, createPublicKey, randomBytes, verify } from "node:crypto";
import {
  createOpenid4vpAuthorizationResponse,
  parseOpenid4vpAuthorizationRequest,
  resolveOpenid4vpAuthorizationRequest,
  submitOpenid4vpAuthorizationResponse,
} from "@openid4vc/openid4vp";
import type { CredentialPayload } from "@veramo/core";
import { createVerifiablePresentationJwt } from "did-jwt-vc";
import { getBytes, Wallet } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssuedCredential } from "../agent/index.ts";
import { kpartyCredential } from "../src/credential/index.ts";
import { getJson, postJson, tamperPayload, waitForSync } from "./fixtures/http.ts";
import { createWorld, DOMAIN, type KPartyWorld, MODEL_ID } from "./fixtures/kparty.ts";

let world: KPartyWorld;
const holderKey = new Wallet(`0x${randomBytes(32).toString("hex")}`);
const otherKey = new Wallet(`0x${randomBytes(32).toString("hex")}`);
const didOf = (key: Wallet) => `did:ethr:0x7a69:${key.signingKey.compressedPublicKey}`;
const holderDid = didOf(holderKey);
let credential: IssuedCredential;

/** did-jwt's ES256K signer contract (r ‖ s, base64url) over SHA-256, with ethers' low-s signatures. */
const es256kSigner = (key: Wallet) => async (data: string | Uint8Array) => {
  const digest = createHash("sha256").update(data).digest();
  const signature = key.signingKey.sign(digest);
  return Buffer.concat([getBytes(signature.r), getBytes(signature.s)]).toString("base64url");
};

/** The wallet's verification of signed request objects: `did:jwk` only, EdDSA or ES256. */
const callbacks = {
  fetch,
  hash: (data: Uint8Array) => new Uint8Array(createHash("sha256").update(data).digest()),
  verifyJwt: async (
    signer: { method: string; didUrl?: string; alg: string },
    jwt: { compact: string },
  ): Promise<{ verified: true; signerJwk: Record<string, unknown> } | { verified: false }> => {
    if (signer.method !== "did" || !signer.didUrl?.startsWith("did:jwk:")) return { verified: false };
    const [did] = signer.didUrl.split("#") as [string];
    const jwk = JSON.parse(Buffer.from(did.slice("did:jwk:".length), "base64url").toString());
    const [h, p, s] = jwt.compact.split(".") as [string, string, string];
    const ok = verify(
      signer.alg === "ES256" ? "sha256" : null,
      Buffer.from(`${h}.${p}`),
      { key: createPublicKey({ key: jwk, format: "jwk" }), dsaEncoding: "ieee-p1363" },
      Buffer.from(s, "base64url"),
    );
    return ok ? { verified: true, signerJwk: jwk } : { verified: false };
  },
} as never;

async function openRequest(scope = "model:read", models = [MODEL_ID]) {
  const res = await postJson(world.base, "/oid4vp/requests", { scope, models });
  expect(res.status).toBe(201);
  return res.body as {
    transaction_id: string;
    client_id: string;
    authorization_request: string;
    authorization_request_by_value: string;
    request_uri: string;
    request: string;
  };
}

/** The library's wallet side: parse the openid4vp:// URL, fetch and verify the request object. */
async function resolve(url: string) {
  const parsed = parseOpenid4vpAuthorizationRequest({ authorizationRequest: url });
  return resolveOpenid4vpAuthorizationRequest({ authorizationRequestPayload: parsed.params, callbacks });
}

type Resolved = Awaited<ReturnType<typeof resolve>>;

/** A VP JWT by did-jwt-vc, for the request's nonce and client_id unless told otherwise. */
function vpFor(
  resolved: Resolved,
  options: { nonce?: string; aud?: string; jwt?: string; key?: Wallet } = {},
): Promise<string> {
  const payload = resolved.authorizationRequestPayload as { nonce: string; client_id: string };
  const key = options.key ?? holderKey;
  return createVerifiablePresentationJwt(
    {
      vp: {
        "@context": ["https://www.w3.org/2018/credentials/v1"],
        type: ["VerifiablePresentation"],
        verifiableCredential: [options.jwt ?? credential.jwt],
      },
      nonce: options.nonce ?? payload.nonce,
      aud: options.aud ?? payload.client_id,
    },
    { did: didOf(key), signer: es256kSigner(key), alg: "ES256K" },
  );
}

/** The library creates and submits the direct_post response. */
async function submit(resolved: Resolved, vp: string) {
  const { authorizationResponsePayload } = await createOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: resolved.authorizationRequestPayload,
    authorizationResponsePayload: { vp_token: { kparty: [vp] } },
    callbacks,
  });
  const { response } = await submitOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: resolved.authorizationRequestPayload as { response_uri: string },
    authorizationResponsePayload,
    callbacks,
  });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** A direct_post by hand (form-encoded), for responses the library would not build. */
async function post(fields: Record<string, string>) {
  const res = await fetch(`${world.base}/oid4vp/responses`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

const refusal = (res: { status: number; body: Record<string, any> }) => ({
  status: res.status,
  code: res.body.error?.code,
});

beforeAll(async () => {
  world = await createWorld();
  credential = await world.orgA.handle.agent.kpartyIssueCredential({
    issuer: world.orgA.did,
    subject: holderDid,
    role: "participant",
    models: [MODEL_ID],
    actions: ["model:read", "model:contribute"],
  });
});
afterAll(async () => {
  await world?.close();
});

describe("OID4VP 1.0 verifier (library wallet + did-jwt-vc)", () => {
  it("round trip: signed request by reference, direct_post, the caller collects the token once", async () => {
    const opened = await openRequest("model:read", [MODEL_ID]);
    expect(opened.client_id).toMatch(/^decentralized_identifier:did:jwk:/);
    expect(opened.authorization_request).toMatch(/^openid4vp:\/\/\?client_id=.*&request_uri=/);
    const resolved = await resolve(opened.authorization_request);
    expect(resolved.client.prefix).toBe("decentralized_identifier");
    expect(resolved.jar?.sendBy).toBe("reference");
    expect(resolved.version).toBe(100);
    const payload = resolved.authorizationRequestPayload as Record<string, any>;
    expect(payload.response_mode).toBe("direct_post");
    expect(payload.response_uri).toBe(`${world.base}/oid4vp/responses`);
    expect(payload.dcql_query.credentials[0]).toMatchObject({ id: "kparty", format: "jwt_vc_json" });

    expect(await getJson(world.base, `/oid4vp/transactions/${opened.transaction_id}`)).toMatchObject({
      status: 200,
      body: { status: "pending" },
    });
    expect(await submit(resolved, await vpFor(resolved))).toEqual({ status: 200, body: {} });

    const collected = await getJson(world.base, `/oid4vp/transactions/${opened.transaction_id}`);
    expect(collected.status).toBe(200);
    expect(collected.body).toMatchObject({
      status: "granted",
      token_type: "Bearer",
      scope: "model:read",
      holder: holderDid,
      models: [MODEL_ID],
      credential_id: credential.credentialId,
    });
    const model = await getJson(world.base, `/models/${MODEL_ID}`, collected.body.access_token);
    expect(model.status).toBe(200);
    expect(await getJson(world.base, `/oid4vp/transactions/${opened.transaction_id}`)).toMatchObject({
      status: 200,
      body: { status: "redeemed" },
    });
    const audit = world.db
      .prepare("SELECT route, outcome, holder FROM audit ORDER BY seq DESC LIMIT 3")
      .all()
      .map((r) => ({ ...r }));
    expect(audit).toEqual([
      { route: "/models/:id", outcome: "granted", holder: holderDid },
      { route: "/oid4vp/transactions", outcome: "granted", holder: holderDid },
      { route: "/oid4vp/responses", outcome: "granted", holder: holderDid },
    ]);
  });

  it("the request by value resolves to the same signed request (JAR: EdDSA, typ oauth-authz-req+jwt, kid of the did:jwk)", async () => {
    const opened = await openRequest();
    const [header, payload] = opened.request
      .split(".")
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, "base64url").toString()));
    expect(header).toEqual({
      alg: "EdDSA",
      typ: "oauth-authz-req+jwt",
      kid: `${opened.client_id.slice("decentralized_identifier:".length)}#0`,
    });
    expect(payload.exp - payload.iat).toBe(300);
    expect(payload.aud).toBe("https://self-issued.me/v2");
    const byValue = await resolve(opened.authorization_request_by_value);
    const byReference = await resolve(opened.authorization_request);
    expect(byValue.jar?.sendBy).toBe("value");
    expect(byValue.authorizationRequestPayload).toEqual(byReference.authorizationRequestPayload);
  });

  it("refuses a wrong nonce (401 challenge_invalid) and leaves the request open", async () => {
    const opened = await openRequest();
    const resolved = await resolve(opened.authorization_request);
    const vp = await vpFor(resolved, { nonce: randomBytes(32).toString("base64url") });
    expect(refusal(await submit(resolved, vp))).toEqual({ status: 401, code: "challenge_invalid" });
    expect((await getJson(world.base, `/oid4vp/transactions/${opened.transaction_id}`)).body.status).toBe(
      "pending",
    );
    expect((await submit(resolved, await vpFor(resolved))).status).toBe(200);
  });

  it("refuses a reused nonce: the same response twice is 401 challenge_reused", async () => {
    const resolved = await resolve((await openRequest()).authorization_request);
    const vp = await vpFor(resolved);
    expect((await submit(resolved, vp)).status).toBe(200);
    expect(refusal(await submit(resolved, vp))).toEqual({ status: 401, code: "challenge_reused" });
  });

  it("refuses a wrong audience: the gateway's domain or the bare DID instead of the client_id (401 domain_mismatch)", async () => {
    const resolved = await resolve((await openRequest()).authorization_request);
    const clientId = (resolved.authorizationRequestPayload as { client_id: string }).client_id;
    for (const aud of [DOMAIN, clientId.slice("decentralized_identifier:".length)]) {
      expect(refusal(await submit(resolved, await vpFor(resolved, { aud })))).toEqual({
        status: 401,
        code: "domain_mismatch",
      });
    }
  });

  it("refuses an expired request (401 challenge_invalid); its request_uri is gone (404) and the caller sees expired", async () => {
    const opened = await openRequest();
    const resolved = await resolve(opened.authorization_request);
    const vp = await vpFor(resolved);
    world.clock.offsetMs = 301_000;
    try {
      expect(refusal(await submit(resolved, vp))).toEqual({ status: 401, code: "challenge_invalid" });
      expect(refusal(await getJson(world.base, new URL(opened.request_uri).pathname))).toEqual({
        status: 404,
        code: "not_found",
      });
      expect((await getJson(world.base, `/oid4vp/transactions/${opened.transaction_id}`)).body.status).toBe(
        "expired",
      );
    } finally {
      world.clock.offsetMs = 0;
    }
  });

  it("refuses a vp_token that does not satisfy the DCQL query (403 dcql_unsatisfied); the caller sees denied", async () => {
    const opened = await openRequest("model:read round:aggregate", [MODEL_ID]);
    const resolved = await resolve(opened.authorization_request);
    expect(refusal(await submit(resolved, await vpFor(resolved)))).toEqual({
      status: 403,
      code: "dcql_unsatisfied",
    });
    const other = await resolve((await openRequest("model:read", ["another-model"])).authorization_request);
    expect(refusal(await submit(other, await vpFor(other)))).toEqual({
      status: 403,
      code: "dcql_unsatisfied",
    });
    expect(await getJson(world.base, `/oid4vp/transactions/${opened.transaction_id}`)).toMatchObject({
      status: 200,
      body: { status: "denied", error: { code: "dcql_unsatisfied" } },
    });
  });

  it("refuses a presentation posted with another request's state (401 challenge_invalid) and vp_token shapes other than 1.0's (400 malformed)", async () => {
    const a = await resolve((await openRequest()).authorization_request);
    const b = await resolve((await openRequest()).authorization_request);
    const vpA = await vpFor(a);
    const stateB = (b.authorizationRequestPayload as { state: string }).state;
    const stateA = (a.authorizationRequestPayload as { state: string }).state;
    expect(refusal(await post({ vp_token: JSON.stringify({ kparty: [vpA] }), state: stateB }))).toEqual({
      status: 401,
      code: "challenge_invalid",
    });
    expect(refusal(await post({ vp_token: JSON.stringify({ kparty: [vpA] }), state: "unknown" }))).toEqual({
      status: 401,
      code: "challenge_invalid",
    });
    for (const vp_token of [
      vpA,
      JSON.stringify([vpA]),
      JSON.stringify({ kparty: vpA }),
      JSON.stringify({ other: [vpA] }),
    ]) {
      expect(refusal(await post({ vp_token, state: stateA }))).toEqual({ status: 400, code: "malformed" });
    }
    expect((await submit(a, vpA)).status).toBe(200);
  });

  it("refuses what the native path refuses: a forged signature, another holder's signature, an outsider's credential, a revoked credential", async () => {
    const resolved = await resolve((await openRequest()).authorization_request);
    const forged = tamperPayload(await vpFor(resolved), (p) => {
      p.exp = 4_000_000_000;
    });
    expect(refusal(await submit(resolved, forged))).toEqual({ status: 401, code: "invalid_signature" });
    expect(refusal(await submit(resolved, await vpFor(resolved, { key: otherKey })))).toEqual({
      status: 401,
      code: "holder_mismatch",
    });
    const outsiders = await resolve((await openRequest()).authorization_request);
    // signed by an issuer outside the consortium, straight through Veramo (its issuer plugin would refuse)
    const fromOutsider = await world.outsider.handle.agent.createVerifiableCredential({
      credential: kpartyCredential({
        issuer: world.outsider.did,
        subject: holderDid,
        claims: { role: "participant", models: [MODEL_ID], actions: ["model:read"] },
        statusIndex: 0,
        deployment: world.deployment,
        validFrom: new Date(),
        validUntil: new Date(Date.now() + 86_400_000),
      }) as unknown as CredentialPayload,
      proofFormat: "jwt",
    });
    const outsiderJwt = (fromOutsider.proof as { jwt: string }).jwt;
    expect(refusal(await submit(outsiders, await vpFor(outsiders, { jwt: outsiderJwt })))).toEqual({
      status: 403,
      code: "issuer_not_member",
    });
    const revokedCredential = await world.orgA.handle.agent.kpartyIssueCredential({
      issuer: world.orgA.did,
      subject: holderDid,
      role: "participant",
      models: [MODEL_ID],
      actions: ["model:read"],
    });
    const revocation = await world.orgA.handle.agent.kpartyRevokeCredential({
      credentialId: revokedCredential.credentialId,
    });
    await waitForSync(world.base, revocation.blockNumber);
    const opened = await openRequest();
    const again = await resolve(opened.authorization_request);
    expect(refusal(await submit(again, await vpFor(again, { jwt: revokedCredential.jwt })))).toEqual({
      status: 403,
      code: "revoked",
    });
    expect(await getJson(world.base, `/oid4vp/transactions/${opened.transaction_id}`)).toMatchObject({
      body: { status: "denied", error: { code: "revoked" } },
    });
  });

  it("refuses a creation without a scope or models (400 malformed) and an unknown transaction (404 not_found)", async () => {
    expect(refusal(await postJson(world.base, "/oid4vp/requests", { models: [MODEL_ID] }))).toEqual({
      status: 400,
      code: "malformed",
    });
    expect(refusal(await postJson(world.base, "/oid4vp/requests", { scope: "model:read" }))).toEqual({
      status: 400,
      code: "malformed",
    });
    expect(refusal(await getJson(world.base, "/oid4vp/transactions/nope"))).toEqual({
      status: 404,
      code: "not_found",
    });
  });
});
