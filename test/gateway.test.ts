import { join } from "node:path";
import type { CredentialPayload } from "@veramo/core";
import { computeAddress, keccak256, toUtf8Bytes } from "ethers";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { getAnchor } from "../src/chain/index.ts";
import { credentialIdOf, kpartyCredential } from "../src/credential/index.ts";
import type { ConsortiumMember } from "../src/devnet/index.ts";
import {
  getJson,
  postJson,
  presentation,
  requestToken,
  tamperPayload,
  waitForSync,
} from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import {
  createWorld,
  DOMAIN,
  type KPartyWorld,
  MODEL_ID,
  MODEL_WEIGHTS,
  startGateway,
} from "./fixtures/kparty.ts";

const b64 = (text: string) => Buffer.from(text).toString("base64url");
/** The payload of a JWT (credential, presentation or access token). */
const jwtPayload = (jwt: unknown) =>
  JSON.parse(Buffer.from(String(jwt).split(".")[1] as string, "base64url").toString()) as Record<string, any>;

/** Signs a K-th Party credential with `signer`'s agent directly, bypassing the issuer plugin (no anchoring). */
async function signOutsidePlugin(signer: ConsortiumMember, statusIndex: number): Promise<string> {
  const credential = kpartyCredential({
    issuer: signer.did,
    subject: world.alice.did,
    claims: { role: "participant", models: [MODEL_ID], actions: ["model:read"] },
    statusIndex,
    deployment: world.deployment,
    validFrom: new Date(),
    validUntil: new Date(Date.now() + 86_400_000),
  });
  const vc = await signer.handle.agent.createVerifiableCredential({
    credential: credential as unknown as CredentialPayload,
    proofFormat: "jwt",
  });
  return (vc.proof as { jwt: string }).jwt;
}

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

let world: KPartyWorld;

beforeAll(async () => {
  world = await createWorld();
});
afterAll(async () => {
  await world?.close();
});

function auditRows() {
  return world.db
    .prepare("SELECT route, holder, credential_id, outcome, code FROM audit ORDER BY seq")
    .all() as {
    route: string;
    holder: string | null;
    credential_id: string | null;
    outcome: string;
    code: string | null;
  }[];
}

/** Asserts the JSON error and that no token was handed out. */
function expectDenied(res: { status: number; body: Record<string, any> }, status: number, code: string) {
  expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
  expect(res.body.access_token).toBeUndefined();
}

describe("gateway discovery", () => {
  it("GET /healthz reports the chain id, the latest block and the block it has synced to", async () => {
    const block = Number(await world.chain.provider.send("eth_blockNumber", []));
    await waitForSync(world.base, block); // nothing is mined meanwhile: it then stays at block
    const res = await getJson(world.base, "/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "ok", chainId: 31337, blockNumber: block, syncedBlock: block });
  });

  it("GET /.well-known/kparty publishes the domain, chain, contracts, types and actions", async () => {
    const res = await getJson(world.base, "/.well-known/kparty");
    expect(res.status).toBe(200);
    expect(res.body.domain).toBe(DOMAIN);
    expect(res.body.chainId).toBe(31337);
    expect(res.body.contracts).toEqual(world.deployment.contracts);
    expect(res.body.credentialTypes).toEqual(["VerifiableCredential", "KPartyCredential"]);
    expect(res.body.statusType).toBe("KPartyRegistryStatus");
    expect(res.body.actions).toEqual(["model:read", "model:infer", "model:contribute", "round:aggregate"]);
    expect(res.body.accessToken.key).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA" });
    expect(res.body.accessToken).toMatchObject({ expiresIn: 300, clockSkewSeconds: 60 });
  });

  it("POST /auth/challenge returns a 256-bit challenge for this domain that expires in 60 s", async () => {
    const at = Math.floor(Date.now() / 1000) * 1000 + 123;
    world.clock.atMs = at;
    try {
      const res = await postJson(world.base, "/auth/challenge", {});
      expect(res.status).toBe(200);
      expect(res.body.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(res.body.domain).toBe(DOMAIN);
      expect(res.body.expiresAt).toBe(new Date(at + 60_000).toISOString());
    } finally {
      delete world.clock.atMs;
    }
  });
});

describe("a valid token", () => {
  it("is exchanged for an access token, which downloads the model's exact weights", async () => {
    const cred = await issue(world.orgA, world.alice);
    const res = await requestToken(world, world.alice, cred.jwt);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      token_type: "Bearer",
      expires_in: 300,
      scope: "model:read model:contribute",
      holder: world.alice.did,
      models: [MODEL_ID],
      credential_id: cred.credentialId,
    });
    const token = res.body.access_token as string;

    const list = await getJson(world.base, "/models", token);
    expect(list.status).toBe(200);
    expect(list.body.models.map((m: { id: string }) => m.id)).toEqual([MODEL_ID]);

    const meta = await getJson(world.base, `/models/${MODEL_ID}`, token);
    expect(meta.body).toMatchObject({ id: MODEL_ID, version: 1, parameterCount: 7850, shape: [785, 10] });

    const weights = await fetch(`${world.base}/models/${MODEL_ID}/weights`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(weights.status).toBe(200);
    expect(weights.headers.get("x-kparty-model-version")).toBe("1");
    const bytes = Buffer.from(await weights.arrayBuffer());
    expect(bytes.equals(Buffer.from(MODEL_WEIGHTS.buffer))).toBe(true);

    const last = auditRows().at(-1);
    expect(last).toEqual({
      route: "/models/:id/weights",
      holder: world.alice.did,
      credential_id: cred.credentialId,
      outcome: "granted",
      code: null,
    });
  });

  it("grants only the requested subset of its actions", async () => {
    const cred = await issue(world.orgA, world.alice);
    const res = await requestToken(world, world.alice, cred.jwt, "model:read");
    expect(res.status).toBe(200);
    expect(res.body.scope).toBe("model:read");
  });
});

describe("credential checks", () => {
  it("refuses a tampered credential payload: invalid_signature", async () => {
    const cred = await issue(world.orgA, world.alice);
    const forged = tamperPayload(cred.jwt, (p) => {
      p.vc.credentialSubject.kParty.actions.push("round:aggregate");
    });
    expectDenied(await requestToken(world, world.alice, forged), 401, "invalid_signature");
  });

  it("refuses a tampered signature: invalid_signature", async () => {
    const cred = await issue(world.orgA, world.alice);
    const [h, p, s] = cred.jwt.split(".") as [string, string, string];
    const sig = Buffer.from(s, "base64url");
    sig[10] = (sig[10] as number) ^ 0x01;
    expectDenied(
      await requestToken(world, world.alice, `${h}.${p}.${sig.toString("base64url")}`),
      401,
      "invalid_signature",
    );
  });

  it("refuses the malleable high-s form of a valid signature: invalid_signature", async () => {
    const cred = await issue(world.orgA, world.alice);
    const [h, p, s] = cred.jwt.split(".") as [string, string, string];
    const sig = Buffer.from(s, "base64url");
    const highS = N - BigInt(`0x${sig.subarray(32).toString("hex")}`);
    const twin = Buffer.concat([
      sig.subarray(0, 32),
      Buffer.from(highS.toString(16).padStart(64, "0"), "hex"),
    ]);
    expectDenied(
      await requestToken(world, world.alice, `${h}.${p}.${twin.toString("base64url")}`),
      401,
      "invalid_signature",
    );
  });

  it("refuses a credential with alg none: unsupported_alg", async () => {
    const cred = await issue(world.orgA, world.alice);
    const [, p, sig] = cred.jwt.split(".") as [string, string, string];
    const none = `${b64(JSON.stringify({ alg: "none", typ: "JWT" }))}.${p}.${sig}`;
    expectDenied(await requestToken(world, world.alice, none), 400, "unsupported_alg");
  });

  it("refuses a presentation with alg none: unsupported_alg", async () => {
    const cred = await issue(world.orgA, world.alice);
    const payload = {
      iss: world.alice.did,
      aud: DOMAIN,
      nonce: (await postJson(world.base, "/auth/challenge", {})).body.challenge,
      vp: {
        "@context": ["https://www.w3.org/2018/credentials/v1"],
        type: ["VerifiablePresentation"],
        verifiableCredential: [cred.jwt],
      },
    };
    const vp = `${b64(JSON.stringify({ alg: "none" }))}.${b64(JSON.stringify(payload))}.`;
    expectDenied(await postJson(world.base, "/auth/token", { presentation: vp }), 400, "unsupported_alg");
  });

  it("refuses an expired credential: expired", async () => {
    const cred = await issue(world.orgA, world.alice, {
      validFrom: new Date(Date.now() - 3_600_000),
      validUntil: new Date(Date.now() + 3_600_000),
    });
    world.clock.offsetMs = 2 * 3_600_000;
    try {
      expectDenied(await requestToken(world, world.alice, cred.jwt), 401, "expired");
    } finally {
      world.clock.offsetMs = 0;
    }
  });

  it("refuses a credential that is not valid yet: not_yet_valid", async () => {
    const cred = await issue(world.orgA, world.alice, { validFrom: new Date(Date.now() + 86_400_000) });
    expectDenied(await requestToken(world, world.alice, cred.jwt), 401, "not_yet_valid");
  });

  it("refuses a credential from an issuer outside the consortium: issuer_not_member", async () => {
    const res = await requestToken(world, world.alice, await signOutsidePlugin(world.outsider, 0));
    expectDenied(res, 403, "issuer_not_member");
    expect(res.body.error.checks.at(-1)).toEqual({
      check: "credential.issuer_member",
      passed: false,
      code: "issuer_not_member",
    });
  });

  it("refuses a member's credential that was never anchored: not_anchored", async () => {
    expectDenied(
      await requestToken(world, world.alice, await signOutsidePlugin(world.orgB, 999)),
      403,
      "not_anchored",
    );
  });
});

describe("presentation checks", () => {
  it("refuses a presentation signed by someone other than the subject: holder_mismatch", async () => {
    const cred = await issue(world.orgA, world.alice);
    const res = await requestToken(world, world.mallory, cred.jwt);
    expectDenied(res, 401, "holder_mismatch");
  });

  it("refuses a presentation claiming the subject's DID but signed with another key: invalid_signature", async () => {
    const cred = await issue(world.orgA, world.alice);
    const vp = await presentation(world, world.mallory, cred.jwt);
    const forged = tamperPayload(vp, (p) => {
      p.iss = world.alice.did;
    });
    expectDenied(
      await postJson(world.base, "/auth/token", { presentation: forged }),
      401,
      "invalid_signature",
    );
  });

  it("refuses a presentation for another audience: domain_mismatch", async () => {
    const cred = await issue(world.orgA, world.alice);
    const vp = await presentation(world, world.alice, cred.jwt, { domain: "evil.example" });
    expectDenied(await postJson(world.base, "/auth/token", { presentation: vp }), 401, "domain_mismatch");
  });

  it("refuses a challenge the gateway never issued: challenge_invalid", async () => {
    const cred = await issue(world.orgA, world.alice);
    const vp = await presentation(world, world.alice, cred.jwt, {
      challenge: "not-a-challenge-from-this-gateway",
    });
    const res = await postJson(world.base, "/auth/token", { presentation: vp });
    expectDenied(res, 401, "challenge_invalid");
    // refused before any DID resolution or signature check: made-up nonces cost nothing
    expect(res.body.error.checks.map((c: { check: string }) => c.check)).toEqual([
      "presentation.format",
      "presentation.claims",
      "presentation.audience",
      "presentation.challenge_known",
    ]);
  });

  it("refuses a reused challenge: challenge_reused", async () => {
    const cred = await issue(world.orgA, world.alice);
    const vp = await presentation(world, world.alice, cred.jwt);
    expect((await postJson(world.base, "/auth/token", { presentation: vp })).status).toBe(200);
    expectDenied(await postJson(world.base, "/auth/token", { presentation: vp }), 401, "challenge_reused");
  });

  it("refuses an expired challenge: challenge_invalid", async () => {
    const cred = await issue(world.orgA, world.alice);
    const vp = await presentation(world, world.alice, cred.jwt);
    world.clock.offsetMs = 61_000;
    try {
      expectDenied(await postJson(world.base, "/auth/token", { presentation: vp }), 401, "challenge_invalid");
    } finally {
      world.clock.offsetMs = 0;
    }
  });
});

describe("request handling", () => {
  it("refuses options in the body, so nothing can switch a check off: malformed", async () => {
    const cred = await issue(world.orgA, world.alice);
    await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    const vp = await presentation(world, world.alice, cred.jwt);
    const res = await postJson(world.base, "/auth/token", {
      presentation: vp,
      options: { checkStatus: false },
      policies: { credentialStatus: false },
    });
    expectDenied(res, 400, "malformed");
  });

  it("grants the intersection of the asked and allowed scope; an empty grant is scope_denied", async () => {
    const cred = await issue(world.orgA, world.alice, { actions: ["model:read"] });
    const narrowed = await requestToken(world, world.alice, cred.jwt, "model:read round:aggregate");
    expect([narrowed.status, narrowed.body.scope, narrowed.body.models]).toEqual([
      200,
      "model:read",
      [MODEL_ID],
    ]);
    expectDenied(await requestToken(world, world.alice, cred.jwt, "round:aggregate"), 403, "scope_denied");
    const vp = await presentation(world, world.alice, cred.jwt);
    const otherModel = await postJson(world.base, "/auth/token", {
      presentation: vp,
      models: ["another-model"],
    });
    expectDenied(otherModel, 403, "scope_denied");
  });

  it("refuses a body over the limit: payload_too_large", async () => {
    const res = await postJson(world.base, "/auth/token", { presentation: "x".repeat(70 * 1024) });
    expectDenied(res, 413, "payload_too_large");
  });

  it("refuses a body that is not JSON: malformed", async () => {
    expectDenied(await postJson(world.base, "/auth/token", "{not json"), 400, "malformed");
  });

  it("refuses model routes without a token, with a forged token, or outside the token's models", async () => {
    expect((await getJson(world.base, `/models/${MODEL_ID}`)).body.error.code).toBe("token_invalid");
    const cred = await issue(world.orgA, world.alice);
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    const forged = tamperPayload(token, (p) => {
      p.models = ["*"];
    });
    const forgedRes = await getJson(world.base, "/models/other-model", forged);
    expect({ status: forgedRes.status, code: forgedRes.body.error.code }).toEqual({
      status: 401,
      code: "token_invalid",
    });
    const other = await getJson(world.base, "/models/other-model", token);
    expect({ status: other.status, code: other.body.error.code }).toEqual({
      status: 403,
      code: "scope_denied",
    });
  });

  it("refuses an access token past its lifetime and the 60 s clock skew: token_invalid", async () => {
    const cred = await issue(world.orgA, world.alice);
    const granted = Math.floor(Date.now() / 1000);
    world.clock.atMs = granted * 1000 + 400;
    try {
      const res = await requestToken(world, world.alice, cred.jwt);
      expect([res.body.expires_in, jwtPayload(res.body.access_token).exp]).toEqual([300, granted + 300]);
      const token = res.body.access_token as string;
      world.clock.atMs = (granted + 300 + 59) * 1000;
      expect((await getJson(world.base, `/models/${MODEL_ID}`, token)).status).toBe(200);
      world.clock.atMs = (granted + 300 + 60) * 1000;
      const refused = await getJson(world.base, `/models/${MODEL_ID}`, token);
      expect({ status: refused.status, code: refused.body.error.code }).toEqual({
        status: 401,
        code: "token_invalid",
      });
    } finally {
      delete world.clock.atMs;
    }
  });

  it("refuses a presentation that is not a JWT, or has no challenge", async () => {
    for (const presentation of ["not-a-jwt", "a.b.c", `${"x".repeat(10)}..`]) {
      expectDenied(await postJson(world.base, "/auth/token", { presentation }), 400, "malformed");
    }
    const cred = await issue(world.orgA, world.alice);
    const noNonce = await world.alice.handle.agent.createVerifiablePresentation({
      presentation: { holder: world.alice.did, verifiableCredential: [cred.jwt] },
      proofFormat: "jwt",
      domain: DOMAIN,
    });
    const res = await postJson(world.base, "/auth/token", {
      presentation: (noNonce.proof as { jwt: string }).jwt,
    });
    expectDenied(res, 401, "challenge_invalid");
  });

  it("mints no token on any refusal: each refusal is one denied audit entry with its code, none granted", async () => {
    const rowsAfter = (seq: number) =>
      world.db
        .prepare("SELECT outcome, code FROM audit WHERE route = '/auth/token' AND seq > ? ORDER BY seq")
        .all(seq)
        .map((r) => ({ ...r }));
    const last = world.db.prepare("SELECT COALESCE(MAX(seq), 0) AS seq FROM audit").get() as { seq: number };
    const cred = await issue(world.orgA, world.alice);
    const refusals = [
      await postJson(world.base, "/auth/token", { presentation: "not-a-jwt" }),
      await requestToken(world, world.mallory, cred.jwt),
      await postJson(world.base, "/auth/token", {
        presentation: await presentation(world, world.alice, cred.jwt, { domain: "other.example" }),
      }),
    ];
    expect(refusals.map((r) => [r.status, r.body.error.code, r.body.access_token])).toEqual([
      [400, "malformed", undefined],
      [401, "holder_mismatch", undefined],
      [401, "domain_mismatch", undefined],
    ]);
    expect(rowsAfter(Number(last.seq))).toEqual([
      { outcome: "denied", code: "malformed" },
      { outcome: "denied", code: "holder_mismatch" },
      { outcome: "denied", code: "domain_mismatch" },
    ]);
    const all = world.db.prepare("SELECT outcome, code FROM audit WHERE route = '/auth/token'").all() as {
      outcome: string;
      code: string | null;
    }[];
    expect(all.filter((r) => (r.outcome === "granted") !== (r.code === null))).toEqual([]);
  });

  it("audits refusals with their code", async () => {
    const cred = await issue(world.orgA, world.alice);
    await requestToken(world, world.mallory, cred.jwt);
    expect(auditRows().at(-1)).toEqual({
      route: "/auth/token",
      holder: null,
      credential_id: null,
      outcome: "denied",
      code: "holder_mismatch",
    });
  });
});

describe("access token lifetime: never past the credential", () => {
  /** A credential of Alice's valid for two more minutes, and its exp (seconds). */
  async function shortCredential() {
    const cred = await issue(world.orgA, world.alice, { validUntil: new Date(Date.now() + 120_000) });
    return { cred, exp: jwtPayload(cred.jwt).exp as number };
  }
  /** Freezes the gateway's clock 400 ms into second `seconds`. */
  const at = (seconds: number) => {
    world.clock.atMs = seconds * 1000 + 400;
  };
  const weights = (token: string) => getJson(world.base, `/models/${MODEL_ID}`, token);

  afterEach(() => {
    delete world.clock.atMs;
  });

  it("caps a token at the credential's exp when the TTL (300 s) outlives it; expires_in is exact", async () => {
    const { cred, exp } = await shortCredential();
    at(exp - 90);
    const res = await requestToken(world, world.alice, cred.jwt);
    expect(res.status).toBe(200);
    expect(res.body.expires_in).toBe(90);
    expect(jwtPayload(res.body.access_token)).toMatchObject({ iat: exp - 90, exp, cexp: exp });
  });

  it("refuses a live token with 401 credential_expired once the credential's exp + 60 s skew has passed, within the token's TTL", async () => {
    const { cred, exp } = await shortCredential();
    at(exp - 90); // the TTL would run to exp + 210
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    at(exp + 59);
    expect((await weights(token)).status).toBe(200);
    at(exp + 60);
    const refused = await weights(token);
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({
      status: 401,
      code: "credential_expired",
    });
    expect(auditRows().at(-1)).toEqual({
      route: "/models/:id",
      holder: world.alice.did,
      credential_id: cred.credentialId,
      outcome: "denied",
      code: "credential_expired",
    });
    // past the token's own TTL as well, the reason given is still the credential
    at(exp + 211);
    expect((await weights(token)).body.error.code).toBe("credential_expired");
  });

  it("caps a token at the presentation's exp when it comes first", async () => {
    const { cred, exp } = await shortCredential();
    at(exp - 90);
    const challenge = (await postJson(world.base, "/auth/challenge", {})).body.challenge as string;
    const vp = await world.alice.handle.agent.createVerifiablePresentation({
      presentation: {
        holder: world.alice.did,
        verifiableCredential: [cred.jwt],
        expirationDate: new Date((exp - 60) * 1000).toISOString(),
      },
      proofFormat: "jwt",
      challenge,
      domain: DOMAIN,
    });
    const vpJwt = (vp.proof as { jwt: string }).jwt;
    expect(jwtPayload(vpJwt).exp).toBe(exp - 60);
    const res = await postJson(world.base, "/auth/token", { presentation: vpJwt });
    expect(res.status).toBe(200);
    expect(res.body.expires_in).toBe(30);
    expect(jwtPayload(res.body.access_token)).toMatchObject({ exp: exp - 60, cexp: exp });
    // the token ends with the presentation (+ skew); the credential is still valid, so: token_invalid
    at(exp - 60 + 59);
    expect((await weights(res.body.access_token)).status).toBe(200);
    at(exp);
    const refused = await weights(res.body.access_token);
    expect({ status: refused.status, code: refused.body.error.code }).toEqual({
      status: 401,
      code: "token_invalid",
    });
  });

  it("grants a credential expiring within the skew only its remaining life, and refuses one already expired: expired", async () => {
    const { cred, exp } = await shortCredential();
    // 30 s left: a 30 s token
    at(exp - 30);
    const res = await requestToken(world, world.alice, cred.jwt);
    expect([res.status, res.body.expires_in, jwtPayload(res.body.access_token).exp]).toEqual([200, 30, exp]);
    // expired 30 s ago: within the 60 s the verifier tolerates, but no token may outlive it
    at(exp + 30);
    const late = await requestToken(world, world.alice, cred.jwt);
    expectDenied(late, 401, "expired");
    expect(late.body.error.message).toBe(
      `the credential expired at ${new Date(exp * 1000).toISOString()}: no access token outlives it`,
    );
    const checks = late.body.error.checks as { check: string; passed: boolean; code?: string }[];
    expect(checks.find((c) => c.check === "credential.validity")).toEqual({
      check: "credential.validity",
      passed: true,
    });
    expect(checks.at(-1)).toEqual({ check: "token.lifetime", passed: false, code: "expired" });
    // the same instant, VC-API verification still judges the credential valid (within the skew)
    const verified = await postJson(world.base, "/credentials/verify", { verifiableCredential: cred.jwt });
    expect([verified.status, verified.body.verified]).toEqual([200, true]);
    expect(auditRows().at(-1)).toMatchObject({ route: "/auth/token", outcome: "denied", code: "expired" });
    // past the skew, the verifier itself refuses it
    at(exp + 60);
    const past = await requestToken(world, world.alice, cred.jwt);
    expectDenied(past, 401, "expired");
    expect((past.body.error.checks as { check: string }[]).at(-1)).toEqual({
      check: "credential.validity",
      passed: false,
      code: "expired",
    });
  });
});

describe("status on chain", () => {
  it("revocation refuses the live access token and new presentations: revoked", async () => {
    const cred = await issue(world.orgA, world.alice);
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    expect((await getJson(world.base, `/models/${MODEL_ID}`, token)).status).toBe(200);
    const revoked = await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    await waitForSync(world.base, revoked.blockNumber);
    const live = await getJson(world.base, `/models/${MODEL_ID}`, token);
    expect({ status: live.status, code: live.body.error.code }).toEqual({ status: 403, code: "revoked" });
    expectDenied(await requestToken(world, world.alice, cred.jwt), 403, "revoked");
  });

  it("suspension refuses, reinstatement grants again: suspended, then 200", async () => {
    const cred = await issue(world.orgA, world.alice);
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    const suspended = await world.orgA.handle.agent.kpartySuspendCredential({
      credentialId: cred.credentialId,
    });
    await waitForSync(world.base, suspended.blockNumber);
    const live = await getJson(world.base, `/models/${MODEL_ID}`, token);
    expect({ status: live.status, code: live.body.error.code }).toEqual({ status: 403, code: "suspended" });
    expectDenied(await requestToken(world, world.alice, cred.jwt), 403, "suspended");
    const reinstated = await world.orgA.handle.agent.kpartyReinstateCredential({
      credentialId: cred.credentialId,
    });
    await waitForSync(world.base, reinstated.blockNumber);
    expect((await getJson(world.base, `/models/${MODEL_ID}`, token)).status).toBe(200);
    expect((await requestToken(world, world.alice, cred.jwt)).status).toBe(200);
  });

  it("the credential id is keccak256 of the signing input and anchored by the issuer's account", async () => {
    const cred = await issue(world.orgB, world.alice);
    const signingInput = cred.jwt.slice(0, cred.jwt.lastIndexOf("."));
    expect(cred.credentialId).toBe(keccak256(toUtf8Bytes(signingInput)));
    expect(credentialIdOf(cred.jwt)).toBe(cred.credentialId);
    expect(await getAnchor(world.client, { issuer: world.orgB.account, key: cred.credentialId })).toEqual({
      blockNumber: cred.anchor.blockNumber,
    });
    // anchors are the issuer's: the same id is not anchored for another member
    expect(await getAnchor(world.client, { issuer: world.orgA.account, key: cred.credentialId })).toBeNull();
    expect(computeAddress(`0x${world.orgB.did.split(":").at(-1)?.slice(2)}`)).toBe(world.orgB.account);
  });
});

describe("rate limits", () => {
  it("limits requests per credential to its quota: rate_limited with Retry-After", async () => {
    const cred = await issue(world.orgA, world.alice, { quota: { requestsPerMinute: 2 } });
    // the gateway's clock stands still: two requests spend the burst, the next token comes in 30 s
    world.clock.atMs = Math.floor(Date.now() / 1000) * 1000;
    try {
      const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
      expect((await getJson(world.base, `/models/${MODEL_ID}`, token)).status).toBe(200);
      expect((await getJson(world.base, `/models/${MODEL_ID}`, token)).status).toBe(200);
      const limited = await getJson(world.base, `/models/${MODEL_ID}`, token);
      expect({ status: limited.status, code: limited.body.error.code }).toEqual({
        status: 429,
        code: "rate_limited",
      });
      expect(limited.headers.get("retry-after")).toBe("30");
      expect(auditRows().at(-1)).toMatchObject({
        outcome: "denied",
        code: "rate_limited",
        credential_id: cred.credentialId,
      });
    } finally {
      delete world.clock.atMs;
    }
  });

  it("limits challenge minting per client address: rate_limited", async () => {
    const gw = await startGateway({
      chain: world.chain,
      deployment: world.deployment,
      models: world.models,
      dir: join(world.dir, "strict-gateway"),
      challengesPerMinute: 3,
    });
    try {
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await postJson(gw.base, "/auth/challenge", {})).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const count = gw.db.prepare("SELECT COUNT(*) AS n FROM challenges").get() as { n: number };
      expect(Number(count.n)).toBe(3);
    } finally {
      await gw.close();
    }
  });
});

describe("chain unreachable", () => {
  it("refuses new tokens with 503 past the token freshness bound, honours live tokens within the staleness bound, then 503", async () => {
    // the gateway's clock stands still: every sync it makes, a late one included, is at `frozen`
    const frozen = Date.now();
    world.clock.atMs = frozen;
    const cred = await issue(world.orgA, world.alice);
    await waitForSync(world.base, cred.anchor.blockNumber); // no event in flight while the state is cached
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    /** The status of a weights download with the live token, and the error code of a refusal. */
    const weights = async () => {
      const res = await fetch(`${world.base}/models/${MODEL_ID}/weights`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (res.status === 200) return { status: 200, code: null, bytes: (await res.arrayBuffer()).byteLength };
      return { status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code };
    };
    const downloaded = { status: 200, code: null, bytes: MODEL_WEIGHTS.byteLength };
    expect(await weights()).toEqual(downloaded); // the credential's state is now cached
    const vp = await presentation(world, world.alice, cred.jwt);
    await world.chain.stop();
    // A new token needs chain state confirmed within tokenFreshnessMs (1 s): past it, 503.
    world.clock.atMs = frozen + 1_001;
    const res = await postJson(world.base, "/auth/token", { presentation: vp });
    expectDenied(res, 503, "registry_unavailable");
    expect(res.headers.get("retry-after")).toBe("5");
    // A live token is honoured within maxStalenessMs (5 s) of the last sync, then refused.
    world.clock.atMs = frozen + 5_000;
    expect(await weights()).toEqual(downloaded);
    world.clock.atMs = frozen + 5_001; // past the gateway's default 5000 ms staleness bound
    expect(await weights()).toEqual({ status: 503, code: "registry_unavailable" });
    const health = await getJson(world.base, "/healthz");
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: "unavailable", chainId: 31337, blockNumber: null });
    expect(health.body.error.code).toBe("registry_unavailable");
  });
});
