import { join } from "node:path";
import { Wallet } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createKPartyAgent,
  type IssuedCredential,
  KPartyStatusVerifier,
  VeramoSigner,
} from "../agent/index.ts";
import {
  anchorCredential,
  connectContracts,
  createChainClient,
  createProvider,
  createWalletClient,
  getAnchor,
} from "../src/chain/index.ts";
import { decodeJwt, merkleRootOf } from "../src/credential/index.ts";
import { createVerifier } from "../src/gateway/index.ts";
import { type Es256kKey, verifyEs256k } from "../src/gateway/verify/es256k.ts";
import { errorCodeOf } from "./fixtures/errors.ts";
import {
  getJson,
  postJson,
  presentation,
  requestToken,
  tamperPayload,
  tokenAt,
  waitForSync,
} from "./fixtures/http.ts";
import { issue, stateOf } from "./fixtures/issue.ts";
import {
  createWorld,
  type KPartyWorld,
  MODEL_ID,
  startGateway,
  type TestGateway,
} from "./fixtures/kparty.ts";

let world: KPartyWorld;
beforeAll(async () => {
  world = await createWorld();
});
afterAll(async () => {
  await world?.close();
});

const item = (subject: string) => ({
  subject,
  role: "participant" as const,
  models: [MODEL_ID],
  actions: ["model:read" as const],
});

describe("a credential presented again", () => {
  it("has its issuer signature verified once per exact bytes, and everything else every time", async () => {
    const { agent } = await createKPartyAgent({
      role: "verifier",
      chain: { provider: world.chain.provider, deployment: world.deployment },
    });
    const verified: string[] = []; // the JWS signing inputs actually checked, in order
    const clock = { ms: Date.now() };
    const verifier = createVerifier({
      resolver: agent,
      chain: world.client,
      now: () => clock.ms,
      verifySignature: (input: string, signature: Uint8Array, keys: Es256kKey[]) => {
        verified.push(input);
        return verifyEs256k(input, signature, keys);
      },
    });
    const signingInput = (jwt: string) => jwt.slice(0, jwt.lastIndexOf("."));
    const validFrom = new Date(Date.now() - 1000);
    const cred = await issue(world.orgA, world.alice, {
      validFrom,
      validUntil: new Date(validFrom.getTime() + 600_000),
    });
    const present = async () =>
      verifier.verifyPresentation(
        await world.alice.handle.agent.kpartyCreatePresentation({
          holder: world.alice.did,
          credentials: [cred.jwt],
          challenge: "c",
          domain: "d",
        }),
        { domain: "d", consumeChallenge: null },
      );

    const first = await present();
    expect(verified.map((i) => i === signingInput(cred.jwt))).toEqual([false, true]); // VP, then VC
    const second = await present();
    expect(verified.map((i) => i === signingInput(cred.jwt))).toEqual([false, true, false]); // VP only
    expect(second.checks).toEqual(first.checks); // every check is still reported, and passed
    expect(second.credential.credentialId).toBe(cred.credentialId);
    await verifier.verifyCredential(cred.jwt);
    expect(verified).toHaveLength(3);

    // Other bytes are other credentials: a forged signature or payload is checked, and fails.
    const [h, p, sig] = cred.jwt.split(".") as [string, string, string];
    const otherSignature = `${h}.${p}.${sig.startsWith("A") ? "B" : "A"}${sig.slice(1)}`;
    expect(await errorCodeOf(verifier.verifyCredential(otherSignature))).toBe("invalid_signature");
    const otherPayload = tamperPayload(cred.jwt, (payload) => {
      payload.vc.credentialSubject.kParty.models = ["*"];
    });
    expect(await errorCodeOf(verifier.verifyCredential(otherPayload))).toBe("invalid_signature");
    expect(verified).toHaveLength(5);

    // Validity window and status are judged on every presentation.
    clock.ms = validFrom.getTime() + 600_000 + 61_000;
    expect(await errorCodeOf(present())).toBe("expired");
    clock.ms = Date.now();
    await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    expect(await errorCodeOf(present())).toBe("revoked");
  });
});

describe("batch anchoring", () => {
  it("issues a batch under one anchored root; each proof leads to it; the gateway accepts it with the proof", async () => {
    const batch = await world.orgA.handle.agent.kpartyIssueCredentials({
      issuer: world.orgA.did,
      credentials: [1, 2, 3, 4, 5].map(() => item(world.alice.did)),
    });
    const root = batch[0]?.anchor.root as string;
    expect(batch.map((c) => c.anchor.root)).toEqual(Array(5).fill(root));
    expect(batch.map((c) => c.statusIndex - (batch[0]?.statusIndex ?? 0))).toEqual([0, 1, 2, 3, 4]);
    for (const c of batch) expect(merkleRootOf(c.credentialId, c.anchor.proof)).toBe(root);
    const anchor = await getAnchor(world.client, { issuer: world.orgA.account, key: root });
    expect(anchor).toEqual({ blockNumber: batch[0]?.anchor.blockNumber });
    const record = await world.orgA.handle.agent.kpartyGetIssuedCredential({
      credentialId: batch[2]?.credentialId as string,
    });
    expect(record).toMatchObject({
      anchorRoot: root,
      anchorProof: batch[2]?.anchor.proof,
      anchoredBlock: anchor?.blockNumber,
    });

    const c = batch[2] as (typeof batch)[number];
    const ok = await tokenAt(world.base, world.alice, c.jwt, { anchorProof: c.anchor.proof });
    expect(ok.status).toBe(200);
    const token = ok.body.access_token as string;
    expect((await getJson(world.base, `/models/${MODEL_ID}`, token)).status).toBe(200);

    const without = await tokenAt(world.base, world.alice, c.jwt);
    expect([without.status, without.body.error.code]).toEqual([403, "not_anchored"]);
    const wrong = await tokenAt(world.base, world.alice, c.jwt, { anchorProof: batch[3]?.anchor.proof });
    expect([wrong.status, wrong.body.error.code]).toEqual([403, "not_anchored"]);
    const junk = await tokenAt(world.base, world.alice, c.jwt, { anchorProof: ["not a hash"] });
    expect([junk.status, junk.body.error.code]).toEqual([400, "malformed"]);

    const revoked = await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: c.credentialId });
    await waitForSync(world.base, revoked.blockNumber);
    const live = await getJson(world.base, `/models/${MODEL_ID}`, token);
    expect([live.status, live.body.error.code]).toEqual([403, "revoked"]);
    expect(
      (
        await tokenAt(world.base, world.alice, (batch[1] as typeof c).jwt, {
          anchorProof: batch[1]?.anchor.proof,
        })
      ).status,
    ).toBe(200);
  });

  it("allocates distinct indexes to concurrent batch and single issuance", async () => {
    const [batch, single1, single2] = await Promise.all([
      world.orgB.handle.agent.kpartyIssueCredentials({
        issuer: world.orgB.did,
        credentials: [1, 2, 3].map(() => item(world.alice.did)),
      }),
      issue(world.orgB, world.alice),
      issue(world.orgB, world.alice),
    ]);
    const indexes = [...batch.map((c) => c.statusIndex), single1.statusIndex, single2.statusIndex];
    expect(new Set(indexes).size).toBe(5);
  });

  it("keeps a batch whose anchoring failed, and anchors it once on resume", async () => {
    await world.chain.provider.send("hardhat_setBalance", [world.orgB.account, "0x0"]);
    const code = await errorCodeOf(
      world.orgB.handle.agent.kpartyIssueCredentials({
        issuer: world.orgB.did,
        credentials: [item(world.alice.did)],
      }),
    );
    expect(code).toBe("insufficient_funds");
    const [pending] = (await world.orgB.handle.agent.kpartyListIssuedCredentials({})).filter(
      (r) => r.anchoredBlock === null,
    );
    expect(pending?.anchorRoot).toMatch(/^0x[0-9a-f]{64}$/);
    await world.chain.provider.send("hardhat_setBalance", [world.orgB.account, "0x8AC7230489E80000"]);
    expect(await world.orgB.handle.agent.kpartyResumeAnchoring({})).toEqual({ credentials: 0, batches: 1 });
    expect(await world.orgB.handle.agent.kpartyResumeAnchoring({})).toEqual({ credentials: 0, batches: 0 });
    const record = await world.orgB.handle.agent.kpartyGetIssuedCredential({
      credentialId: pending?.credentialId as string,
    });
    expect(
      await getAnchor(world.client, { issuer: world.orgB.account, key: record.anchorRoot as string }),
    ).toEqual({
      blockNumber: record.anchoredBlock,
    });
    expect(
      (await tokenAt(world.base, world.alice, record.jwt, { anchorProof: record.anchorProof })).status,
    ).toBe(200);
  });
});

describe("anchors belong to their issuer", () => {
  it("a member front-running another's anchor neither blocks it nor is taken for it; the gateway accepts the credential", async () => {
    // Org A watches the mempool and anchors Org B's credential id first, in the same block and
    // ahead of Org B's own transaction (higher priority fee).
    const provider = world.chain.provider;
    const registry = world.deployment.contracts.CredentialRegistry.toLowerCase();
    const identifier = await world.orgA.handle.agent.didManagerGet({ did: world.orgA.did });
    const key = identifier.keys[0] as (typeof identifier.keys)[number];
    const rogue = connectContracts(
      world.deployment.contracts,
      new VeramoSigner(world.orgA.handle.agent, key.kid, world.orgA.account, provider),
    ).credentials;
    const anchorSelector = rogue.interface.getFunction("anchor")?.selector as string;
    await provider.send("evm_setAutomine", [false]);
    let issued: Promise<IssuedCredential> | undefined;
    let frontRun: { hash: string } | undefined;
    let victimHash: string | undefined;
    try {
      issued = issue(world.orgB, world.alice);
      let id: string | undefined;
      while (id === undefined) {
        const pending = (await provider.send("eth_getBlockByNumber", ["pending", true])) as {
          transactions: { hash: string; to: string | null; input: string }[];
        };
        const tx = pending.transactions.find(
          (t) => t.to?.toLowerCase() === registry && t.input.startsWith(anchorSelector),
        );
        if (tx) {
          victimHash = tx.hash;
          id = rogue.interface.decodeFunctionData("anchor", tx.input)[0] as string;
        } else await new Promise((resolve) => setImmediate(resolve));
      }
      frontRun = await rogue.getFunction("anchor")(id, {
        maxPriorityFeePerGas: 50_000_000_000n,
        maxFeePerGas: 100_000_000_000n,
      });
      await provider.send("evm_mine", []);
    } finally {
      await provider.send("evm_setAutomine", [true]);
    }
    const cred = await (issued as Promise<IssuedCredential>);
    const [rogueReceipt, ownReceipt] = await Promise.all([
      provider.getTransactionReceipt((frontRun as { hash: string }).hash),
      provider.getTransactionReceipt(victimHash as string),
    ]);
    expect(rogueReceipt?.status).toBe(1);
    expect(ownReceipt?.status).toBe(1);
    expect(ownReceipt?.blockNumber).toBe(rogueReceipt?.blockNumber);
    expect((rogueReceipt?.index ?? 0) < (ownReceipt?.index ?? 0)).toBe(true);
    // each anchor is keyed to its own issuer
    expect(await getAnchor(world.client, { issuer: world.orgA.account, key: cred.credentialId })).toEqual({
      blockNumber: cred.anchor.blockNumber,
    });
    expect(await getAnchor(world.client, { issuer: world.orgB.account, key: cred.credentialId })).toEqual({
      blockNumber: cred.anchor.blockNumber,
    });
    const state = await stateOf(world.client, cred, world.orgB);
    expect([state.anchoredBy, state.anchoredAt]).toEqual([world.orgB.account, cred.anchor.blockNumber]);
    await waitForSync(world.base, cred.anchor.blockNumber);
    const granted = await requestToken(world, world.alice, cred.jwt);
    expect(granted.status).toBe(200);
    // the status that counts is the claimed issuer's: Org B revokes, the gateway refuses
    const revocation = await world.orgB.handle.agent.kpartyRevokeCredential({
      credentialId: cred.credentialId,
    });
    await waitForSync(world.base, revocation.blockNumber);
    const revoked = await requestToken(world, world.alice, cred.jwt);
    expect([revoked.status, revoked.body.error.code]).toEqual([403, "revoked"]);
  });
});

describe("Veramo status method", () => {
  it("reports revocation and suspension from the chain, and fails closed when the chain is unreachable", async () => {
    const cred = await issue(world.orgA, world.alice);
    const { payload } = decodeJwt(cred.jwt);
    const credential = {
      "@context": ["https://www.w3.org/2018/credentials/v1"],
      type: ["VerifiableCredential", "KPartyCredential"],
      issuer: { id: payload.iss as string },
      issuanceDate: new Date().toISOString(),
      credentialSubject: { id: payload.sub as string },
      credentialStatus: (payload.vc as { credentialStatus: unknown }).credentialStatus,
      proof: { jwt: cred.jwt },
    } as never;
    const agent = world.alice.handle.agent;
    expect(await agent.checkCredentialStatus({ credential })).toMatchObject({
      revoked: false,
      suspended: false,
      verified: true,
    });
    await world.orgA.handle.agent.kpartySuspendCredential({ credentialId: cred.credentialId });
    expect(await agent.checkCredentialStatus({ credential })).toMatchObject({
      revoked: false,
      suspended: true,
      verified: false,
    });
    await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    expect(await agent.checkCredentialStatus({ credential })).toMatchObject({
      revoked: true,
      verified: false,
    });

    const dead = createChainClient({
      provider: createProvider("http://127.0.0.1:9", 31337, { timeoutMs: 1000 }),
      deployment: world.deployment,
    });
    const offline = new KPartyStatusVerifier({ chain: dead });
    expect(await errorCodeOf(offline.methods.checkCredentialStatus({ credential }, {} as never))).toBe(
      "registry_unavailable",
    );
    dead.provider.destroy();
  });
});

describe("members removed after issuance", () => {
  let honoring: TestGateway;
  afterAll(async () => {
    await honoring?.close();
  });

  it("denies by default, honours by policy, and the quorum can still revoke", async () => {
    const cred = await issue(world.orgB, world.alice);
    const a = world.orgA.handle.agent;
    const q = await a.kpartyProposeQuorum({ member: world.orgA.did, quorum: 1 });
    await world.orgB.handle.agent.kpartyApproveProposal({ member: world.orgB.did, id: q.proposalId });
    await a.kpartyExecuteProposal({ member: world.orgA.did, id: q.proposalId });
    const removal = await a.kpartyProposeRemoval({ member: world.orgA.did, account: world.orgB.account });
    const removed = await a.kpartyExecuteProposal({ member: world.orgA.did, id: removal.proposalId });
    expect(removed.events[0]?.name).toBe("MemberRemoved");

    const denied = await requestToken(world, world.alice, cred.jwt);
    expect([denied.status, denied.body.error.code]).toEqual([403, "issuer_not_member"]);
    expect(denied.body.error.checks.at(-1)).toEqual({
      check: "credential.issuer_member",
      passed: false,
      code: "issuer_not_member",
    });

    honoring = await startGateway({
      chain: world.chain,
      deployment: world.deployment,
      models: world.models,
      dir: join(world.dir, "honoring-gateway"),
      removedIssuerPolicy: "honor-issued-while-member",
    });
    const vp = async () => {
      const challenge = (await postJson(honoring.base, "/auth/challenge", {})).body.challenge as string;
      return presentation(world, world.alice, cred.jwt, { challenge });
    };
    const honoured = await postJson(honoring.base, "/auth/token", { presentation: await vp() });
    expect(honoured.status).toBe(200);

    expect(await errorCodeOf(issue(world.orgB, world.alice))).toBe("issuer_not_member");

    const revocation = await a.kpartyProposeRevocation({
      member: world.orgA.did,
      issuer: world.orgB.account,
      indexes: [cred.statusIndex],
    });
    const executed = await a.kpartyExecuteProposal({ member: world.orgA.did, id: revocation.proposalId });
    await waitForSync(honoring.base, executed.blockNumber);
    const revoked = await postJson(honoring.base, "/auth/token", { presentation: await vp() });
    expect([revoked.status, revoked.body.error.code]).toEqual([403, "revoked"]);
  });
});

describe("the signing key at issuance", () => {
  it("verifies against the issuer's DID document as of the anchoring block", async () => {
    const before = await issue(world.orgA, world.alice);
    // A batch credential, verified (and remembered by the gateway) under its root's block.
    const [batched] = await world.orgA.handle.agent.kpartyIssueCredentials({
      issuer: world.orgA.did,
      credentials: [item(world.alice.did), item(world.mallory.did)],
    });
    if (!batched) throw new Error("no credential issued");
    const withProof = { anchorProof: batched.anchor.proof };
    expect((await tokenAt(world.base, world.alice, batched.jwt, withProof)).status).toBe(200);
    // Org A hands control of its DID to a new key (ERC-1056 changeOwner, sent from its account).
    const identifier = await world.orgA.handle.agent.didManagerGet({ did: world.orgA.did });
    const key = identifier.keys[0] as (typeof identifier.keys)[number];
    const signer = new VeramoSigner(
      world.orgA.handle.agent,
      key.kid,
      world.orgA.account,
      world.chain.provider,
    );
    const erc1056 = connectContracts(world.deployment.contracts, signer).didRegistry;
    await (await erc1056.getFunction("changeOwner")(world.orgA.account, Wallet.createRandom().address)).wait(
      1,
    );

    // A credential anchored before the change was signed by a key the DID had then: still valid.
    expect((await requestToken(world, world.alice, before.jwt)).status).toBe(200);
    // The old key signing after the change no longer speaks for the DID.
    const after = await issue(world.orgA, world.alice);
    const state = await stateOf(world.client, after, world.orgA);
    expect(state.anchoredBy).toBe(world.orgA.account);
    const refused = await requestToken(world, world.alice, after.jwt);
    expect([refused.status, refused.body.error.code]).toEqual([401, "invalid_signature"]);

    // The same bytes anchored again after the change (their own id, later block): the old
    // key is judged as of that block, not taken from the earlier verification.
    const wallet = createWalletClient({ signer, deployment: world.deployment });
    const { blockNumber } = await anchorCredential(wallet, { credentialId: batched.credentialId });
    await waitForSync(world.base, blockNumber);
    const reanchored = await tokenAt(world.base, world.alice, batched.jwt);
    expect([reanchored.status, reanchored.body.error.code]).toEqual([401, "invalid_signature"]);
    expect((await tokenAt(world.base, world.alice, batched.jwt, withProof)).status).toBe(200);
  });
});
