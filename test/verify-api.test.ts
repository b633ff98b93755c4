import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postJson } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, type KPartyWorld, MODEL_ID } from "./fixtures/kparty.ts";

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

  it("accepts the object form, and reports a revoked token as not verified with its code", async () => {
    const cred = await issue(world.orgA, world.alice);
    await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    const res = await postJson(world.base, "/credentials/verify", {
      verifiableCredential: { proof: { jwt: cred.jwt } },
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
