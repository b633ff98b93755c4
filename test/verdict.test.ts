import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IssuedCredential, VeramoSigner } from "../agent/index.ts";
import { anchorCredential, createWalletClient } from "../src/chain/index.ts";
import type { CredentialBundle } from "../src/cli/bundle.ts";
import type { ConsortiumMember } from "../src/devnet/index.ts";
import { kparty } from "./fixtures/cli.ts";
import { errorCodeOf } from "./fixtures/errors.ts";
import { tokenAt, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, type KPartyWorld } from "./fixtures/kparty.ts";

/**
 * One verdict: for every state a credential can be in on a real chain, `kparty credential
 * status` (the real binary, reading the chain) prints the code the gateway refuses the
 * credential with over HTTP, or `valid` where the gateway grants a token. Both decide through
 * `credentialVerdict`/`judgeCredentialState` (src/gateway/verify/judge.ts).
 *
 * Two states of that table the registry cannot produce: an anchor by another account than the
 * issuer (anchors are kept per issuer, so another member's anchor of the same key shows as
 * none: the "anchored by another account" row below) and an anchor by an issuer that was not a
 * member then (anchoring needs a current member). Both are pinned on the pure function in
 * src/gateway/verify/judge.test.ts.
 */

let world: KPartyWorld;
let deploymentFile: string;
beforeAll(async () => {
  world = await createWorld();
  deploymentFile = join(world.dir, "deployment.json");
  writeFileSync(deploymentFile, JSON.stringify({ ...world.deployment, rpcUrl: world.chain.url }));
});
afterAll(async () => {
  await world?.close();
});

/** What the gateway answers a presentation of `credential` by Alice: its status and `valid` or the error code. */
async function gatewayAnswer(credential: IssuedCredential): Promise<[number, string]> {
  const anchorProof = credential.anchor.root === null ? {} : { anchorProof: credential.anchor.proof };
  const res = await tokenAt(world.base, world.alice, credential.jwt, anchorProof);
  return [res.status, res.status === 200 ? "valid" : (res.body.error.code as string)];
}

/** What `kparty credential status <bundle> --json` prints as the verdict on `credential` of `issuer`. */
async function cliVerdict(name: string, credential: IssuedCredential, issuer: ConsortiumMember) {
  const bundle: CredentialBundle = {
    type: "kparty-credential",
    credentialId: credential.credentialId,
    issuer: issuer.did,
    issuerAccount: issuer.account,
    subject: world.alice.did,
    statusIndex: credential.statusIndex,
    jwt: credential.jwt,
    anchor: credential.anchor,
  };
  const file = join(world.dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(bundle));
  const r = await kparty(["credential", "status", file, "--json"], {
    cwd: world.dir,
    env: { KPARTY_RPC_URL: world.chain.url, KPARTY_DEPLOYMENT: deploymentFile },
  });
  expect([r.code, r.stderr]).toEqual([0, ""]);
  return (JSON.parse(r.stdout) as { verdict: string }).verdict;
}

/** A credential of Org B signed and recorded, but never anchored (its anchoring ran out of funds). */
async function unanchored(): Promise<IssuedCredential> {
  const provider = world.chain.provider;
  await provider.send("hardhat_setBalance", [world.orgB.account, "0x0"]);
  expect(await errorCodeOf(issue(world.orgB, world.alice))).toBe("insufficient_funds");
  await provider.send("hardhat_setBalance", [world.orgB.account, "0x8AC7230489E80000"]);
  const [pending] = (await world.orgB.handle.agent.kpartyListIssuedCredentials({})).filter(
    (r) => r.anchoredBlock === null,
  );
  const record = await world.orgB.handle.agent.kpartyGetIssuedCredential({
    credentialId: pending?.credentialId as string,
  });
  expect(record.anchoredBlock).toBe(null);
  return {
    jwt: record.jwt,
    credentialId: record.credentialId,
    statusIndex: record.statusIndex,
    anchor: { blockNumber: 0, transactionHash: "", root: null, proof: [] },
  };
}

/** Org A anchors `credentialId` from its own account (a member anchoring a key that is not its credential). */
async function anchorAsOrgA(credentialId: string): Promise<number> {
  const identifier = await world.orgA.handle.agent.didManagerGet({ did: world.orgA.did });
  const key = identifier.keys[0] as (typeof identifier.keys)[number];
  const signer = new VeramoSigner(world.orgA.handle.agent, key.kid, world.orgA.account, world.chain.provider);
  const wallet = createWalletClient({ signer, deployment: world.deployment });
  return (await anchorCredential(wallet, { credentialId })).blockNumber;
}

/** Removes Org B from the consortium (quorum lowered to 1 first, with Org B's approval). */
async function removeOrgB(): Promise<number> {
  const a = world.orgA.handle.agent;
  const q = await a.kpartyProposeQuorum({ member: world.orgA.did, quorum: 1 });
  await world.orgB.handle.agent.kpartyApproveProposal({ member: world.orgB.did, id: q.proposalId });
  await a.kpartyExecuteProposal({ member: world.orgA.did, id: q.proposalId });
  const removal = await a.kpartyProposeRemoval({ member: world.orgA.did, account: world.orgB.account });
  const removed = await a.kpartyExecuteProposal({ member: world.orgA.did, id: removal.proposalId });
  expect(removed.events[0]?.name).toBe("MemberRemoved");
  return removed.blockNumber;
}

describe("kparty credential status and the gateway give one verdict", () => {
  it("for every state a credential reaches on the chain: the CLI prints the code the gateway answers", async () => {
    const orgA = world.orgA.handle.agent;
    const valid = await issue(world.orgA, world.alice);
    const revoked = await issue(world.orgA, world.alice);
    await orgA.kpartyRevokeCredential({ credentialId: revoked.credentialId });
    const suspended = await issue(world.orgA, world.alice);
    await orgA.kpartySuspendCredential({ credentialId: suspended.credentialId });
    const reinstated = await issue(world.orgA, world.alice);
    await orgA.kpartySuspendCredential({ credentialId: reinstated.credentialId });
    await orgA.kpartyReinstateCredential({ credentialId: reinstated.credentialId });
    const expired = await issue(world.orgA, world.alice, {
      validFrom: new Date("2020-01-01T00:00:00Z"),
      validUntil: new Date("2020-01-02T00:00:00Z"),
    });
    const batch = await orgA.kpartyIssueCredentials({
      issuer: world.orgA.did,
      credentials: [0, 1].map(() => ({
        subject: world.alice.did,
        role: "participant" as const,
        models: ["mnist-logreg"],
        actions: ["model:read" as const],
      })),
    });
    const notAnchored = await unanchored();
    const removedIssuer = await issue(world.orgB, world.alice);
    const beforeRemoval: [string, IssuedCredential, ConsortiumMember, [number, string]][] = [
      ["valid", valid, world.orgA, [200, "valid"]],
      ["revoked", revoked, world.orgA, [403, "revoked"]],
      ["suspended", suspended, world.orgA, [403, "suspended"]],
      ["reinstated", reinstated, world.orgA, [200, "valid"]],
      ["expired", expired, world.orgA, [401, "expired"]],
      ["batch member", batch[1] as IssuedCredential, world.orgA, [200, "valid"]],
      ["not anchored", notAnchored, world.orgB, [403, "not_anchored"]],
      ["removed issuer, before removal", removedIssuer, world.orgB, [200, "valid"]],
    ];
    await waitForSync(world.base, await world.chain.provider.getBlockNumber());
    for (const [name, credential, issuer, answer] of beforeRemoval) {
      expect([name, await gatewayAnswer(credential)]).toEqual([name, answer]);
      expect([name, await cliVerdict(name, credential, issuer)]).toEqual([name, answer[1]]);
    }

    // another member anchors Org B's key: not Org B's anchor, so still not anchored for both
    await waitForSync(world.base, await anchorAsOrgA(notAnchored.credentialId));
    expect(await gatewayAnswer(notAnchored)).toEqual([403, "not_anchored"]);
    expect(await cliVerdict("anchored by another account", notAnchored, world.orgB)).toBe("not_anchored");

    // the issuer leaves the consortium: its credentials are refused by both (default policy)
    await waitForSync(world.base, await removeOrgB());
    expect(await gatewayAnswer(removedIssuer)).toEqual([403, "issuer_not_member"]);
    expect(await cliVerdict("removed issuer", removedIssuer, world.orgB)).toBe("issuer_not_member");
  });
});
