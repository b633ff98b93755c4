import { normalizeCredential, normalizePresentation } from "did-jwt-vc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson, presentation as presentationFor } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, DOMAIN, type KPartyWorld, MODEL_ID } from "./fixtures/kparty.ts";

let world: KPartyWorld;
beforeAll(async () => {
  world = await createWorld();
});
afterAll(async () => {
  await world?.close();
});

const CREDENTIAL_CHECKS = [
  "credential.format",
  "credential.claims",
  "credential.issuer_did",
  "credential.anchor_proof",
  "credential.registry",
  "credential.signature",
  "credential.validity",
  "credential.issuer_member",
  "credential.anchored",
  "credential.issued_while_member",
  "credential.revocation",
  "credential.suspension",
];

describe("POST /credentials/verify", () => {
  it("verifies a token, reporting every check", async () => {
    const cred = await issue(world.orgA, world.alice);
    const res = await postJson(world.base, "/credentials/verify", { verifiableCredential: cred.jwt });
    expect(res.status).toBe(200);
    expect(res.body.verified).toBe(true);
    expect(res.body.errors).toEqual([]);
    expect(res.body.checks).toEqual(CREDENTIAL_CHECKS.map((check) => ({ check, passed: true })));
    expect(res.body.credential).toMatchObject({
      id: cred.credentialId,
      issuer: world.orgA.did,
      subject: world.alice.did,
      anchoredAt: cred.anchor.blockNumber,
    });
  });

  it("verifies the JSON form did-jwt-vc makes of the token, with the checks VC-API clients list", async () => {
    const cred = await issue(world.orgA, world.alice);
    const res = await postJson(world.base, "/credentials/verify", {
      verifiableCredential: normalizeCredential(cred.jwt),
      options: { checks: ["proof", "credentialStatus", "expirationDate"] },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ verified: true, warnings: [], errors: [] });
    expect(res.body.checks).toEqual(CREDENTIAL_CHECKS.map((check) => ({ check, passed: true })));
  });

  it("refuses a JSON form whose unsigned fields differ from its JWT: 400 jwt_mismatch with the field", async () => {
    const cred = await issue(world.orgA, world.alice);
    const form = normalizeCredential(cred.jwt) as unknown as Record<string, any>;
    const cases: [Record<string, unknown>, string][] = [
      [{ ...form, issuer: world.orgB.did }, "issuer"],
      [
        { ...form, credentialSubject: { ...form.credentialSubject, actions: ["round:aggregate"] } },
        "credentialSubject.actions",
      ],
      [
        { ...form, credentialSubject: { ...form.credentialSubject, id: world.orgA.did } },
        "credentialSubject.id",
      ],
      [{ ...form, type: ["VerifiableCredential"] }, "type"],
      [{ ...form, expirationDate: "2099-01-01T00:00:00Z" }, "expirationDate"],
    ];
    for (const [body, field] of cases) {
      const res = await postJson(world.base, "/credentials/verify", { verifiableCredential: body });
      expect({ status: res.status, code: res.body.error?.code, field: res.body.error?.field }).toEqual({
        status: 400,
        code: "jwt_mismatch",
        field,
      });
    }
    const { credentialSubject: _, ...noSubject } = form;
    const res = await postJson(world.base, "/credentials/verify", { verifiableCredential: noSubject });
    expect({ status: res.status, code: res.body.error?.code, field: res.body.error?.field }).toEqual({
      status: 400,
      code: "malformed",
      field: "credentialSubject",
    });
  });

  it("reports a revoked token in JSON form as not verified with its code", async () => {
    const cred = await issue(world.orgA, world.alice);
    await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    const res = await postJson(world.base, "/credentials/verify", {
      verifiableCredential: normalizeCredential(cred.jwt),
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ verified: false, errors: [{ code: "revoked" }] });
    expect(res.body.checks.at(-1)).toEqual({
      check: "credential.revocation",
      passed: false,
      code: "revoked",
    });
  });

  it("lets the anchor proof option add the batch check", async () => {
    const [cred] = await world.orgB.handle.agent.kpartyIssueCredentials({
      issuer: world.orgB.did,
      credentials: [1, 2].map(() => ({
        subject: world.alice.did,
        role: "participant" as const,
        models: [MODEL_ID],
        actions: ["model:read" as const],
      })),
    });
    const jwt = cred?.jwt as string;
    const without = await postJson(world.base, "/credentials/verify", { verifiableCredential: jwt });
    expect(without.body).toMatchObject({ verified: false, errors: [{ code: "not_anchored" }] });
    const withProof = await postJson(world.base, "/credentials/verify", {
      verifiableCredential: jwt,
      options: { anchorProof: cred?.anchor.proof },
    });
    expect(withProof.body.verified).toBe(true);
  });

  it("refuses options that are not checks it can add, and malformed requests: 400 malformed", async () => {
    const cred = await issue(world.orgA, world.alice);
    for (const body of [
      { verifiableCredential: cred.jwt, options: { checkStatus: false } },
      { verifiableCredential: cred.jwt, options: { policies: { credentialStatus: false } } },
      { verifiableCredential: cred.jwt, extra: 1 },
      { verifiableCredential: 42 },
      { verifiableCredential: cred.jwt, options: [] },
      { verifiableCredential: cred.jwt, options: { checks: ["proof", "signature-off"] } },
      { verifiableCredential: cred.jwt, options: { checks: "proof" } },
      { verifiableCredential: { proof: { jwt: cred.jwt } } },
      { options: {} },
    ]) {
      const res = await postJson(world.base, "/credentials/verify", body);
      expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: "malformed" });
    }
  });
});

describe("POST /presentations/verify", () => {
  async function vp(challenge: string, domain: string) {
    const cred = await issue(world.orgA, world.alice);
    return world.alice.handle.agent.kpartyCreatePresentation({
      holder: world.alice.did,
      credentials: [cred.jwt],
      challenge,
      domain,
    });
  }

  it("verifies a presentation, with the challenge and domain checks the options ask for", async () => {
    const presentation = await vp("third-party-nonce", "verifier.example");
    const plain = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: presentation,
    });
    expect(plain.body).toMatchObject({ verified: true, holder: world.alice.did, errors: [] });
    expect(plain.body.checks.map((c: { check: string }) => c.check)).not.toContain("presentation.challenge");
    const checked = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: presentation,
      options: { challenge: "third-party-nonce", domain: "verifier.example" },
    });
    expect(checked.body.verified).toBe(true);
    expect(checked.body.checks.map((c: { check: string }) => c.check)).toEqual(
      expect.arrayContaining([
        "presentation.audience",
        "presentation.challenge",
        "presentation.holder_binding",
      ]),
    );
  });

  it("reports a wrong challenge or domain as not verified", async () => {
    const presentation = await vp("nonce-1", "verifier.example");
    const wrongChallenge = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: presentation,
      options: { challenge: "nonce-2" },
    });
    expect(wrongChallenge.body).toMatchObject({ verified: false, errors: [{ code: "challenge_invalid" }] });
    const wrongDomain = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: presentation,
      options: { domain: "other.example" },
    });
    expect(wrongDomain.body).toMatchObject({ verified: false, errors: [{ code: "domain_mismatch" }] });
  });

  it("refuses options that would remove a check: 400 malformed", async () => {
    const presentation = await vp("n", "d");
    const res = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: presentation,
      options: { verifyCredentials: false },
    });
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status: 400, code: "malformed" });
  });
});

describe("POST /presentations/verify without a challenge", () => {
  it("verifies a presentation that carries no nonce when no challenge is asked for, and refuses it when one is", async () => {
    const cred = await issue(world.orgA, world.alice);
    const noNonce = await world.alice.handle.agent.createVerifiablePresentation({
      presentation: { holder: world.alice.did, verifiableCredential: [cred.jwt] },
      proofFormat: "jwt",
    });
    const jwt = (noNonce.proof as { jwt: string }).jwt;
    const plain = await postJson(world.base, "/presentations/verify", { verifiablePresentation: jwt });
    expect(plain.body).toMatchObject({ verified: true, errors: [] });
    const asked = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: jwt,
      options: { challenge: "n" },
    });
    expect(asked.body).toMatchObject({ verified: false, errors: [{ code: "challenge_invalid" }] });
  });
});

describe("POST /presentations/verify, JSON form and challenges", () => {
  it("verifies the JSON form of a presentation and refuses one whose holder or credential differs from the signed one", async () => {
    const cred = await issue(world.orgA, world.alice);
    const revoked = await issue(world.orgA, world.alice);
    await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: revoked.credentialId });
    const vpJwt = await world.alice.handle.agent.kpartyCreatePresentation({
      holder: world.alice.did,
      credentials: [cred.jwt],
      challenge: "caller-nonce",
      domain: "verifier.example",
    });
    const form = normalizePresentation(vpJwt) as unknown as Record<string, any>;
    const ok = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: form,
      options: { checks: ["proof"] },
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ verified: true, holder: world.alice.did, errors: [] });
    for (const [body, field] of [
      [{ ...form, holder: world.mallory.did }, "holder"],
      [{ ...form, verifiableCredential: [revoked.jwt] }, "verifiableCredential[0]"],
      [
        { ...form, verifiableCredential: [normalizeCredential(revoked.jwt)] },
        "verifiableCredential[0].proof.jwt",
      ],
    ] as const) {
      const res = await postJson(world.base, "/presentations/verify", { verifiablePresentation: body });
      expect({ status: res.status, code: res.body.error?.code, field: res.body.error?.field }).toEqual({
        status: 400,
        code: "jwt_mismatch",
        field,
      });
    }
  });

  it("consumes a challenge this gateway issued: a second verification and /auth/token then refuse it", async () => {
    const cred = await issue(world.orgA, world.alice);
    const minted = await postJson(world.base, "/challenges", {});
    expect({ status: minted.status, domain: minted.body.domain }).toEqual({ status: 200, domain: DOMAIN });
    const nonce = minted.body.challenge as string;
    const vpJwt = await presentationFor(world, world.alice, cred.jwt, { challenge: nonce });
    const first = await postJson(world.base, "/presentations/verify", { verifiablePresentation: vpJwt });
    expect(first.body).toMatchObject({ verified: true, warnings: [], errors: [] });
    expect(first.body.checks.map((c: { check: string }) => c.check)).toContain("presentation.challenge");
    const second = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: vpJwt,
      options: { challenge: nonce },
    });
    expect(second.body).toMatchObject({ verified: false, errors: [{ code: "challenge_reused" }] });
    const token = await postJson(world.base, "/auth/token", { presentation: vpJwt });
    expect({ status: token.status, code: token.body.error?.code }).toEqual({
      status: 401,
      code: "challenge_reused",
    });
  });

  it("says when a caller's challenge was only compared, never consumed", async () => {
    const cred = await issue(world.orgA, world.alice);
    const vpJwt = await presentationFor(world, world.alice, cred.jwt, { challenge: "caller-owned" });
    for (let i = 0; i < 2; i++) {
      const res = await postJson(world.base, "/presentations/verify", {
        verifiablePresentation: vpJwt,
        options: { challenge: "caller-owned" },
      });
      expect(res.body).toMatchObject({
        verified: true,
        warnings: [{ code: "challenge_not_issued_here" }],
        errors: [],
      });
    }
  });
});
