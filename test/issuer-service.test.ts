import { randomUUID } from "node:crypto";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getAnchor } from "../src/chain/index.ts";
import { decodeJwt } from "../src/credential/index.ts";
import { buildIssuerService, IssuerClientStore } from "../src/issuer/index.ts";
import { postJson } from "./fixtures/http.ts";
import { createWorld, type KPartyWorld, MODEL_ID } from "./fixtures/kparty.ts";

let world: KPartyWorld;
let service: FastifyInstance;
let base: string;
let apiKey: string;

beforeAll(async () => {
  world = await createWorld();
  const clients = new IssuerClientStore(join(world.dir, "issuer-clients.json"));
  apiKey = (await clients.add("portal")).apiKey;
  service = await buildIssuerService({
    agent: world.orgA.handle.agent,
    issuer: world.orgA.did,
    deployment: world.deployment,
    clients,
  });
  base = await service.listen({ host: "127.0.0.1", port: 0 });
});
afterAll(async () => {
  await service?.close();
  await world?.close();
});

async function call(method: string, path: string, body?: unknown, key: string | null = apiKey) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(key ? { authorization: `Bearer ${key}` } : {}),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any>, headers: res.headers };
}

/** The request the W3C vc-api-issuer-test-suite sends: a VCDM 1.1 credential with a did:key subject. */
function suiteCredential(): Record<string, any> {
  return {
    "@context": ["https://www.w3.org/2018/credentials/v1"],
    type: ["VerifiableCredential"],
    credentialSubject: { id: "did:key:z6MkhTNL7i2etLerDK8Acz5t528giE5KA4p75T6ka1E1D74r" },
    issuanceDate: `${new Date().toISOString().slice(0, 19)}Z`,
    id: `urn:uuid:${randomUUID()}`,
    issuer: world.orgA.did,
  };
}

function kpartyCredential(subject: string, kParty: Record<string, unknown> = {}): Record<string, any> {
  return {
    "@context": ["https://www.w3.org/2018/credentials/v1"],
    type: ["VerifiableCredential", "KPartyCredential"],
    issuer: { id: world.orgA.did },
    credentialSubject: {
      id: subject,
      kParty: { role: "participant", models: [MODEL_ID], actions: ["model:read"], ...kParty },
    },
  };
}

describe("kparty issuer service (VC-API)", () => {
  it("refuses a request without a valid API key: 401 token_invalid with WWW-Authenticate", async () => {
    for (const key of [null, "kpi_000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", `${apiKey}x`]) {
      const res = await call("POST", "/credentials/issue", { credential: suiteCredential() }, key);
      expect({ status: res.status, code: res.body.error?.code }).toEqual({
        status: 401,
        code: "token_invalid",
      });
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="kparty issuer"');
    }
  });

  it("issues and anchors the W3C suite's credential: 201 with its JSON form, its id kept", async () => {
    const credential = suiteCredential();
    const res = await call("POST", "/credentials/issue", { credential });
    expect(res.status).toBe(201);
    const vc = res.body.verifiableCredential;
    expect(vc).toMatchObject({
      "@context": credential["@context"],
      type: ["VerifiableCredential"],
      id: credential.id,
      issuer: { id: world.orgA.did },
      issuanceDate: new Date(credential.issuanceDate).toISOString(),
      credentialSubject: credential.credentialSubject,
      proof: { type: "JwtProof2020" },
    });
    const { payload, header } = decodeJwt(vc.proof.jwt);
    expect(header.alg).toBe("ES256K");
    expect(payload).toMatchObject({
      iss: world.orgA.did,
      jti: credential.id,
      sub: credential.credentialSubject.id,
    });
    expect((payload.vc as { credentialStatus: unknown[] }).credentialStatus).toHaveLength(2);
    // anchored by the issuer under the credential's id, in the block the service reports
    expect(
      await getAnchor(world.client, { issuer: world.orgA.account, key: res.body.kparty.credentialId }),
    ).toEqual({
      blockNumber: res.body.kparty.anchor.blockNumber,
    });
    const fetched = await call("GET", `/credentials/${encodeURIComponent(credential.id)}`);
    expect(fetched.status).toBe(200);
    expect(fetched.body.verifiableCredential.proof.jwt).toBe(vc.proof.jwt);
    expect(fetched.body.kparty.credentialId).toBe(res.body.kparty.credentialId);
    // the gateway verifies its JSON form as is: signature, anchoring, membership, status — a
    // credential of a member, not a K-th Party token (no claims), so it grants nothing
    const verified = await postJson(world.base, "/credentials/verify", {
      verifiableCredential: vc,
      options: { checks: ["proof"] },
    });
    expect(verified.status).toBe(200);
    expect(verified.body).toMatchObject({ verified: true, errors: [] });
    expect(verified.body.credential).toEqual({
      id: res.body.kparty.credentialId,
      issuer: world.orgA.did,
      subject: credential.credentialSubject.id,
      types: ["VerifiableCredential"],
      anchoredAt: res.body.kparty.anchor.blockNumber,
      claims: null,
    });
    // revoked through the service, the gateway says so
    await call("POST", "/credentials/status", {
      credentialId: credential.id,
      credentialStatus: { type: "KPartyRegistryStatus", statusPurpose: "revocation" },
      status: true,
    });
    await expect
      .poll(
        async () =>
          (await postJson(world.base, "/credentials/verify", { verifiableCredential: vc })).body.errors,
      )
      .toEqual([{ code: "revoked", message: "the credential has been revoked" }]);
    // and it is no K-th Party token: presented for access, it is refused
    const presented = await postJson(world.base, "/presentations/verify", {
      verifiablePresentation: await world.alice.handle.agent.kpartyCreatePresentation({
        holder: world.alice.did,
        credentials: [vc.proof.jwt],
        challenge: "n",
        domain: "d",
      }),
    });
    expect(presented.body).toMatchObject({
      verified: false,
      errors: [
        { code: "malformed", message: "vc type must include VerifiableCredential and KPartyCredential" },
      ],
    });
  });

  it("issues a K-th Party token that the gateway verifies in JSON form", async () => {
    const res = await call("POST", "/credentials/issue", { credential: kpartyCredential(world.alice.did) });
    expect(res.status).toBe(201);
    const verified = await postJson(world.base, "/credentials/verify", {
      verifiableCredential: res.body.verifiableCredential,
      options: { checks: ["proof"] },
    });
    expect(verified.body).toMatchObject({ verified: true, errors: [] });
    expect(verified.body.credential).toMatchObject({
      id: res.body.kparty.credentialId,
      subject: world.alice.did,
    });
  });

  it("refuses invalid requests with 400 malformed naming the field, and issues nothing", async () => {
    const before = (await world.orgA.handle.agent.kpartyListIssuedCredentials({})).length;
    const c = suiteCredential;
    const without = (key: string) => {
      const { [key]: _, ...rest } = c();
      return rest;
    };
    const cases: [unknown, string][] = [
      [{ verifiableCredential: c() }, "credential"],
      [{ credential: without("@context") }, "credential.@context"],
      [{ credential: { ...c(), "@context": 4 } }, "credential.@context"],
      [{ credential: { ...c(), "@context": ["https://example.org/other"] } }, "credential.@context"],
      [{ credential: without("type") }, "credential.type"],
      [{ credential: { ...c(), type: 4 } }, "credential.type"],
      [{ credential: { ...c(), type: [] } }, "credential.type"],
      [{ credential: { ...c(), type: [4] } }, "credential.type.0"],
      [{ credential: { ...c(), type: ["Other"] } }, "credential.type"],
      [{ credential: without("issuer") }, "credential.issuer"],
      [{ credential: { ...c(), issuer: 4 } }, "credential.issuer"],
      [{ credential: { ...c(), issuer: [] } }, "credential.issuer"],
      [{ credential: { ...c(), issuer: world.orgB.did } }, "credential.issuer"],
      [{ credential: without("credentialSubject") }, "credential.credentialSubject"],
      [{ credential: { ...c(), credentialSubject: "did:example:1234" } }, "credential.credentialSubject"],
      [{ credential: { ...c(), credentialSubject: {} } }, "credential.credentialSubject"],
      [{ credential: { ...c(), issuanceDate: "yesterday" } }, "credential.issuanceDate"],
      [{ credential: { ...c(), expirationDate: "2001-01-01T00:00:00Z" } }, "credential.expirationDate"],
      [{ credential: { ...c(), credentialStatus: { id: "x" } } }, "credential.credentialStatus"],
      [{ credential: { ...c(), proof: { type: "JwtProof2020" } } }, "credential.proof"],
      [{ credential: c(), options: { mandatoryPointers: [] } }, "options.mandatoryPointers"],
      [
        { credential: kpartyCredential(world.alice.did, { actions: ["fly"] }) },
        "credential.credentialSubject.kParty",
      ],
      [{ credential: kpartyCredential("did:key:z6Mk") }, "credential.credentialSubject.id"],
      [
        { credential: kpartyCredential(world.alice.did, { consortium: "eip155:1:0x0" }) },
        "credential.credentialSubject.kParty.consortium",
      ],
    ];
    for (const [body, field] of cases) {
      const res = await call("POST", "/credentials/issue", body);
      expect({ status: res.status, code: res.body.error?.code, field: res.body.error?.field }, field).toEqual(
        {
          status: 400,
          code: "malformed",
          field,
        },
      );
    }
    expect((await world.orgA.handle.agent.kpartyListIssuedCredentials({})).length).toBe(before);
  });

  it("revokes, suspends and reinstates by the credential's id; the gateway sees each; repeats are 409", async () => {
    const issued = await call("POST", "/credentials/issue", {
      credential: kpartyCredential(world.alice.did),
    });
    const id = issued.body.verifiableCredential.id as string;
    const vc = issued.body.verifiableCredential;
    const status = (statusPurpose: string, value: boolean) =>
      call("POST", "/credentials/status", {
        credentialId: id,
        credentialStatus: { type: "KPartyRegistryStatus", statusPurpose },
        status: value,
      });
    const verdict = async () =>
      (await postJson(world.base, "/credentials/verify", { verifiableCredential: vc })).body.errors[0]
        ?.code ?? "ok";

    const suspended = await status("suspension", true);
    expect(suspended.status).toBe(200);
    expect(suspended.body).toMatchObject({
      credentialId: issued.body.kparty.credentialId,
      statusPurpose: "suspension",
      status: true,
    });
    await expect.poll(verdict).toBe("suspended");
    expect((await status("suspension", true)).status).toBe(409);
    expect((await status("suspension", false)).status).toBe(200);
    await expect.poll(verdict).toBe("ok");
    expect((await status("revocation", true)).status).toBe(200);
    await expect.poll(verdict).toBe("revoked");
    const again = await status("revocation", true);
    expect({ status: again.status, code: again.body.error?.code }).toEqual({ status: 409, code: "conflict" });
    const clear = await status("revocation", false);
    expect({ status: clear.status, code: clear.body.error?.code, field: clear.body.error?.field }).toEqual({
      status: 400,
      code: "malformed",
      field: "status",
    });
    const unknown = await call("POST", "/credentials/status", {
      credentialId: "urn:uuid:never-issued",
      credentialStatus: { type: "KPartyRegistryStatus", statusPurpose: "revocation" },
      status: true,
    });
    expect({ status: unknown.status, code: unknown.body.error?.code }).toEqual({
      status: 404,
      code: "not_found",
    });
  });

  it("issues a batch under one anchored root, each credential with its inclusion proof", async () => {
    const credentials = [world.alice.did, world.mallory.did, world.alice.did].map((s) => kpartyCredential(s));
    const res = await call("POST", "/credentials/issue/batch", { credentials });
    expect(res.status).toBe(201);
    const issued = res.body.issued as { verifiableCredential: any; kparty: any }[];
    expect(issued).toHaveLength(3);
    const roots = new Set(issued.map((i) => i.kparty.anchor.root));
    expect(roots.size).toBe(1);
    const [first] = issued;
    const verified = await postJson(world.base, "/credentials/verify", {
      verifiableCredential: first?.verifiableCredential,
      options: { anchorProof: first?.kparty.anchor.proof },
    });
    expect(verified.body).toMatchObject({ verified: true });
    const bad = await call("POST", "/credentials/issue/batch", {
      credentials: [
        kpartyCredential(world.alice.did),
        { ...kpartyCredential(world.alice.did), issuer: world.orgB.did },
      ],
    });
    expect({ status: bad.status, field: bad.body.error?.field }).toEqual({
      status: 400,
      field: "credentials.1.issuer",
    });
  });

  it("serves its OpenAPI document without a key, one path per route", async () => {
    const res = await call("GET", "/openapi.json", undefined, null);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.paths).sort()).toEqual([
      "/credentials/issue",
      "/credentials/issue/batch",
      "/credentials/status",
      "/credentials/{id}",
      "/openapi.json",
    ]);
    expect(
      res.body.paths["/credentials/issue"].post.requestBody.content["application/json"].schema.required,
    ).toEqual(["credential"]);
  });
});
