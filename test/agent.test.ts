import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CredentialPayload } from "@veramo/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKPartyAgent } from "../agent/index.ts";
import { decodeJwt } from "../src/credential/index.ts";
import { isKPartyError } from "../src/errors/index.ts";
import { errorCodeOf } from "./fixtures/errors.ts";
import { issue, stateOf } from "./fixtures/issue.ts";
import { createWorld, type KPartyWorld, MODEL_ID, PASSPHRASE } from "./fixtures/kparty.ts";
import { writeLegacyKeyring } from "./fixtures/legacy-keyring.ts";

let world: KPartyWorld;
beforeAll(async () => {
  world = await createWorld();
});
afterAll(async () => {
  await world?.close();
});

describe("issuer agent", () => {
  it("issues a K-th Party token in the DESIGN.md format", async () => {
    const validFrom = new Date("2026-01-01T00:00:00Z");
    const validUntil = new Date("2027-01-01T00:00:00Z");
    const cred = await issue(world.orgA, world.alice, {
      validFrom,
      validUntil,
      quota: { requestsPerMinute: 600 },
    });
    const { header, payload } = decodeJwt(cred.jwt);
    const { CredentialRegistry, ConsortiumRegistry } = world.deployment.contracts;
    expect(header).toEqual({ alg: "ES256K", typ: "JWT" });
    expect(payload).toEqual({
      iss: world.orgA.did,
      sub: world.alice.did,
      nbf: 1767225600,
      exp: 1798761600,
      jti: expect.stringMatching(/^urn:uuid:[0-9a-f-]{36}$/),
      vc: {
        "@context": ["https://www.w3.org/2018/credentials/v1"],
        type: ["VerifiableCredential", "KPartyCredential"],
        credentialSubject: {
          kParty: {
            consortium: `eip155:31337:${ConsortiumRegistry}`,
            role: "participant",
            models: [MODEL_ID],
            actions: ["model:read", "model:contribute"],
            quota: { requestsPerMinute: 600 },
          },
        },
        credentialStatus: [
          {
            id: `eip155:31337:${CredentialRegistry}#revocation-${cred.statusIndex}`,
            type: "KPartyRegistryStatus",
            statusPurpose: "revocation",
            statusListIndex: String(cred.statusIndex),
          },
          {
            id: `eip155:31337:${CredentialRegistry}#suspension-${cred.statusIndex}`,
            type: "KPartyRegistryStatus",
            statusPurpose: "suspension",
            statusListIndex: String(cred.statusIndex),
          },
        ],
      },
    });
    const record = await world.orgA.handle.agent.kpartyGetIssuedCredential({
      credentialId: cred.credentialId,
    });
    expect(record).toMatchObject({
      credentialId: cred.credentialId,
      issuer: world.orgA.did,
      issuerAccount: world.orgA.account.toLowerCase(),
      subject: world.alice.did,
      statusIndex: cred.statusIndex,
      jwt: cred.jwt,
      anchoredBlock: cred.anchor.blockNumber,
      anchorTx: cred.anchor.transactionHash,
    });
  });

  it("signs the bytes Veramo's createVerifiableCredential signs for the same credential, and Veramo verifies them", async () => {
    const cred = await issue(world.orgA, world.alice, {
      validFrom: new Date("2026-01-01T00:00:00Z"),
      validUntil: new Date("2027-01-01T00:00:00Z"),
    });
    const { payload } = decodeJwt(cred.jwt);
    const vc = payload.vc as Record<string, unknown> & { credentialSubject: Record<string, unknown> };
    // the credential kpartyCredential built, in its key order, back from the JWT's claims
    const credential = {
      "@context": vc["@context"],
      type: vc.type,
      id: payload.jti,
      issuer: { id: payload.iss },
      issuanceDate: new Date((payload.nbf as number) * 1000).toISOString(),
      expirationDate: new Date((payload.exp as number) * 1000).toISOString(),
      credentialSubject: { id: payload.sub, ...vc.credentialSubject },
      credentialStatus: vc.credentialStatus,
    };
    const agent = world.orgA.handle.agent;
    const byVeramo = await agent.createVerifiableCredential({
      credential: credential as unknown as CredentialPayload,
      proofFormat: "jwt",
    });
    // ES256K signatures here are deterministic (RFC 6979): the same key and bytes give the same JWT
    expect((byVeramo.proof as { jwt: string }).jwt).toBe(cred.jwt);
    const verified = await agent.verifyCredential({ credential: cred.jwt });
    expect(verified.verified).toBe(true);
  });

  it("hands out distinct status indexes under concurrent issuance", async () => {
    const issued = await Promise.all([1, 2, 3, 4, 5].map(() => issue(world.orgB, world.alice)));
    const indexes = issued.map((c) => c.statusIndex).sort((a, b) => a - b);
    expect(new Set(indexes).size).toBe(5);
    expect((indexes.at(-1) ?? Number.NaN) - (indexes.at(0) ?? Number.NaN)).toBe(4);
    for (const c of issued) {
      const state = await stateOf(world.client, c, world.orgB);
      expect(state.anchoredBy).toBe(world.orgB.account);
    }
  });

  it("continues the status index sequence after a restart, with its keys and records", async () => {
    const before = await issue(world.orgA, world.alice);
    const dataDir = join(world.dir, "members", "org-a");
    await world.orgA.handle.close();
    const reopened = await createKPartyAgent({
      role: "issuer",
      dataDir,
      passphrase: PASSPHRASE,
      chain: { provider: world.chain.provider, deployment: world.deployment },
    });
    world.orgA.handle = reopened;
    const after = await issue(world.orgA, world.alice);
    expect(after.statusIndex).toBe(before.statusIndex + 1);
    const listed = await reopened.agent.kpartyListIssuedCredentials({ issuer: world.orgA.did });
    expect(listed.map((r) => r.credentialId)).toContain(before.credentialId);
    expect((await reopened.agent.didManagerGet({ did: world.orgA.did })).did).toBe(world.orgA.did);
  });

  it("refuses a wrong passphrase before touching any key: wrong_passphrase", async () => {
    const code = await errorCodeOf(
      createKPartyAgent({
        role: "holder",
        dataDir: join(world.dir, "alice"),
        passphrase: "not the passphrase",
        chain: { provider: world.chain.provider, deployment: world.deployment },
      }),
    );
    expect(code).toBe("wrong_passphrase");
  });

  it("keeps private keys encrypted at rest", async () => {
    const privateKeyHex = "4f3edf983ac636a65a842ce7c78d9aa706d3b113bce9c46f30d7d21715b23b1d";
    const kid =
      "04e68acfc0253a10620dff706b0a1b1f1f5833ea3beb3bde2250d5f271f3563606672ebc45e0b7ea2e816ecb70ca03137b1c9476eec63d4632e990020b7b6fba39";
    const dataDir = join(world.dir, "key-at-rest");
    const handle = await createKPartyAgent({
      role: "holder",
      dataDir,
      passphrase: PASSPHRASE,
      chain: { provider: world.chain.provider, deployment: world.deployment },
    });
    const imported = await handle.agent.keyManagerImport({
      kms: "local",
      type: "Secp256k1",
      privateKeyHex,
      kid,
    });
    expect(imported.kid).toBe(kid);
    await handle.close();
    const file = await readFile(join(dataDir, "agent.sqlite"));
    expect(file.includes(Buffer.from(privateKeyHex, "hex"))).toBe(false);
    expect(file.includes(Buffer.from(privateKeyHex))).toBe(false);
    expect(file.includes(Buffer.from(kid))).toBe(true);
  });

  it("opens an agent whose keyring was written before issue 35 (scrypt N = 2^15), re-encrypts the keyring with N = 2^17 and keeps its keys", async () => {
    const privateKeyHex = "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f";
    const dataDir = join(world.dir, "legacy-keyring");
    const keyring = join(dataDir, "keyring.json");
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    await writeLegacyKeyring(keyring, PASSPHRASE);
    const legacy = await readFile(keyring);
    const open = () =>
      createKPartyAgent({
        role: "holder",
        dataDir,
        passphrase: PASSPHRASE,
        chain: { provider: world.chain.provider, deployment: world.deployment },
      });
    const first = await open();
    const { kid } = await first.agent.keyManagerImport({ kms: "local", type: "Secp256k1", privateKeyHex });
    const sign = (handle: typeof first) =>
      handle.agent.keyManagerSign({ keyRef: kid, data: "kparty keys at rest", algorithm: "ES256K" });
    const signature = await sign(first);
    await first.close();
    // what kparty before issue 35 left on disk: the key encrypted under the format-1 keyring's key
    await writeFile(keyring, legacy);
    const reopened = await open();
    expect(JSON.parse(await readFile(keyring, "utf8"))).toMatchObject({
      version: 2,
      kdf: "scrypt",
      N: 131072,
      r: 8,
      p: 1,
    });
    expect(await sign(reopened)).toBe(signature);
    await reopened.close();
    const again = await open();
    expect(await sign(again)).toBe(signature);
    await again.close();
  });

  it("refuses to issue for an issuer outside the consortium, before allocating an index: issuer_not_member", async () => {
    const code = await errorCodeOf(issue(world.outsider, world.alice));
    expect(code).toBe("issuer_not_member");
    expect(await world.outsider.handle.agent.kpartyListIssuedCredentials({})).toEqual([]);
  });

  it("refuses bad issuance arguments: invalid_argument", async () => {
    expect(await errorCodeOf(issue(world.orgA, world.alice, { actions: ["model:fly" as never] }))).toBe(
      "invalid_argument",
    );
    expect(await errorCodeOf(issue(world.orgA, world.alice, { models: [] }))).toBe("invalid_argument");
    expect(await errorCodeOf(issue(world.orgA, world.alice, { role: "admin" as never }))).toBe(
      "invalid_argument",
    );
    expect(
      await errorCodeOf(
        issue(world.orgA, world.alice, {
          validFrom: new Date(2_000_000_000_000),
          validUntil: new Date(1_000),
        }),
      ),
    ).toBe("invalid_argument");
  });

  it("revokes, suspends and reinstates on chain; reinstating a clear bit reverts with its custom error", async () => {
    const cred = await issue(world.orgA, world.alice);
    const read = () => stateOf(world.client, cred, world.orgA);
    await world.orgA.handle.agent.kpartySuspendCredential({ credentialId: cred.credentialId });
    expect(await read()).toMatchObject({ revoked: false, suspended: true });
    await world.orgA.handle.agent.kpartyReinstateCredential({ credentialId: cred.credentialId });
    expect(await read()).toMatchObject({ revoked: false, suspended: false });
    let error: unknown;
    try {
      await world.orgA.handle.agent.kpartyReinstateCredential({ credentialId: cred.credentialId });
    } catch (e) {
      error = e;
    }
    expect(isKPartyError(error, "chain_reverted") && error.details).toEqual({
      error: "CredentialRegistryNotSuspended",
      args: [world.orgA.account, String(cred.statusIndex)],
    });
    await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    expect(await read()).toMatchObject({ revoked: true, suspended: false });
    expect(
      await errorCodeOf(
        world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: `0x${"ab".repeat(32)}` }),
      ),
    ).toBe("not_found");
  });
});
