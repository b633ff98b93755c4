import type { JsonRpcSigner } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  anchorBatch,
  anchorCredential,
  approveProposal,
  createChainClient,
  createWalletClient,
  executeProposal,
  getAnchor,
  getMember,
  getProposal,
  kpartyInterfaces,
  proposeAddMember,
  proposeQuorum,
  proposeRemoveMember,
  proposeRevokeCredentials,
  proposeRotateKey,
  reinstateBatch,
  revokeBatch,
  revokeCredential,
  suspendBatch,
  suspendCredential,
  type WalletClient,
} from "../../src/chain/index.ts";
import { startTestChain, type TestChain } from "../fixtures/chain.ts";
import { deployRegistries, expectRevert, type RegistryFixture } from "../fixtures/contracts.ts";
import { errorCodeOf } from "../fixtures/errors.ts";

let chain: TestChain;
const consortiumErrors = () => kpartyInterfaces().consortium;
const registryErrors = () => kpartyInterfaces().credentials;
const plain = (args: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(args).map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v]));

beforeAll(async () => {
  chain = await startTestChain();
});
afterAll(async () => {
  chain.provider.destroy();
  await chain.stop();
});

/** A fresh consortium (members = accounts 1, 2; quorum 2) and a wallet per account. */
async function setup(): Promise<{ fx: RegistryFixture; w: WalletClient[]; addr: string[] }> {
  const fx = await deployRegistries(chain);
  const w = chain.accounts.map((signer) => createWalletClient({ signer, deployment: fx.deployment }));
  const addr = await Promise.all(chain.accounts.map((s: JsonRpcSigner) => s.getAddress()));
  return { fx, w, addr };
}

describe("governance: admission", () => {
  it("proposes, refuses early execution and double approval, then admits at quorum", async () => {
    const { fx, w, addr } = await setup();
    const candidate = { account: addr[3] as string, did: "did:ethr:0x7a69:c", name: "Org C" };
    const proposed = await proposeAddMember(w[1] as WalletClient, candidate);
    const block = await chain.provider.getBlock(proposed.blockNumber);
    const expiresAt = (block?.timestamp ?? 0) + 7 * 24 * 3600;
    expect(proposed.events.map((e) => ({ name: e.name, args: plain(e.args) }))).toEqual([
      {
        name: "ProposalCreated",
        args: { id: 0, kind: 0, proposer: addr[1], account: addr[3], quorum: 0, expiresAt },
      },
      { name: "ProposalApproved", args: { id: 0, member: addr[1] } },
    ]);
    await expectRevert(
      executeProposal(w[1] as WalletClient, { id: 0 }),
      consortiumErrors(),
      "ConsortiumRegistryQuorumNotReached",
      [0, 1, 2],
    );
    await expectRevert(
      approveProposal(w[1] as WalletClient, { id: 0 }),
      consortiumErrors(),
      "ConsortiumRegistryAlreadyApproved",
      [0, addr[1]],
    );
    const approved = await approveProposal(w[2] as WalletClient, { id: 0 });
    expect(approved.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["ProposalApproved", { id: 0, member: addr[2] }],
    ]);
    const executed = await executeProposal(w[2] as WalletClient, { id: 0 });
    expect(executed.events.map((e) => [e.name, plain(e.args)])).toEqual([
      [
        "MemberAdded",
        { account: addr[3], did: "did:ethr:0x7a69:c", name: "Org C", blockNumber: executed.blockNumber },
      ],
      ["ProposalExecuted", { id: 0, executor: addr[2] }],
    ]);
    const client = createChainClient({ provider: chain.provider, deployment: fx.deployment });
    expect(await getProposal(client, 0)).toMatchObject({
      kind: "add-member",
      executed: true,
      approvals: 2,
      name: "Org C",
    });
    await expectRevert(
      executeProposal(w[1] as WalletClient, { id: 0 }),
      consortiumErrors(),
      "ConsortiumRegistryProposalExecuted",
      [0],
    );
    const c = client.contracts.consortium;
    expect(await c.getFunction("wasMemberAt").staticCall(addr[3], executed.blockNumber - 1)).toBe(false);
    expect(await c.getFunction("wasMemberAt").staticCall(addr[3], executed.blockNumber)).toBe(true);
  });

  it("refuses proposals and approvals from outsiders, unknown ids, and invalid admissions", async () => {
    const { w, addr } = await setup();
    const outsider = w[3] as WalletClient;
    const errors = consortiumErrors();
    await expectRevert(proposeQuorum(outsider, { quorum: 1 }), errors, "ConsortiumRegistryNotMember", [
      addr[3],
    ]);
    await expectRevert(approveProposal(outsider, { id: 0 }), errors, "ConsortiumRegistryNotMember", [
      addr[3],
    ]);
    await expectRevert(
      approveProposal(w[1] as WalletClient, { id: 99 }),
      errors,
      "ConsortiumRegistryUnknownProposal",
      [99],
    );
    await expectRevert(
      proposeAddMember(w[1] as WalletClient, { account: addr[2] as string, did: "did:x", name: "dup" }),
      errors,
      "ConsortiumRegistryAlreadyMember",
      [addr[2]],
    );
    await expectRevert(
      proposeAddMember(w[1] as WalletClient, { account: addr[4] as string, did: "", name: "no did" }),
      errors,
      "ConsortiumRegistryEmptyDid",
      [addr[4]],
    );
    await expectRevert(
      proposeAddMember(w[1] as WalletClient, {
        account: "0x0000000000000000000000000000000000000000",
        did: "d",
        name: "z",
      }),
      errors,
      "ConsortiumRegistryZeroAddress",
      [],
    );
    await expectRevert(
      proposeQuorum(w[1] as WalletClient, { quorum: 0 }),
      errors,
      "ConsortiumRegistryInvalidQuorum",
      [0, 2],
    );
    await expectRevert(
      proposeQuorum(w[1] as WalletClient, { quorum: 3 }),
      errors,
      "ConsortiumRegistryInvalidQuorum",
      [3, 2],
    );
    await expectRevert(
      proposeRemoveMember(w[1] as WalletClient, { account: addr[4] as string }),
      errors,
      "ConsortiumRegistryNotMember",
      [addr[4]],
    );
  });

  it("refuses to approve or execute an expired proposal", async () => {
    const { w } = await setup();
    const { proposalId } = await proposeQuorum(w[1] as WalletClient, { quorum: 1 });
    const client = createChainClient({
      provider: chain.provider,
      deployment: (w[1] as WalletClient).deployment,
    });
    const { expiresAt } = await getProposal(client, proposalId);
    await chain.provider.send("evm_increaseTime", [7 * 24 * 3600 + 1]);
    await chain.provider.send("evm_mine", []);
    const seconds = expiresAt.getTime() / 1000;
    await expectRevert(
      approveProposal(w[2] as WalletClient, { id: proposalId }),
      consortiumErrors(),
      "ConsortiumRegistryProposalExpired",
      [proposalId, seconds],
    );
    await expectRevert(
      executeProposal(w[1] as WalletClient, { id: proposalId }),
      consortiumErrors(),
      "ConsortiumRegistryProposalExpired",
      [proposalId, seconds],
    );
  });
});

describe("governance: removal and quorum", () => {
  it("changes the quorum, removes a member, and closes its membership interval", async () => {
    const { fx, w, addr } = await setup();
    const q = await proposeQuorum(w[1] as WalletClient, { quorum: 1 });
    await approveProposal(w[2] as WalletClient, { id: q.proposalId });
    const changed = await executeProposal(w[1] as WalletClient, { id: q.proposalId });
    expect(changed.events.map((e) => [e.name, plain(e.args)])[0]).toEqual([
      "QuorumChanged",
      { previousQuorum: 2, newQuorum: 1 },
    ]);
    const r = await proposeRemoveMember(w[1] as WalletClient, { account: addr[2] as string });
    const removed = await executeProposal(w[1] as WalletClient, { id: r.proposalId });
    expect(removed.events.map((e) => [e.name, plain(e.args)])[0]).toEqual([
      "MemberRemoved",
      { account: addr[2], blockNumber: removed.blockNumber },
    ]);
    const c = createChainClient({ provider: chain.provider, deployment: fx.deployment }).contracts.consortium;
    expect(await c.getFunction("isMember").staticCall(addr[2])).toBe(false);
    expect(await c.getFunction("members").staticCall()).toEqual([addr[1]]);
    expect(await c.getFunction("wasMemberAt").staticCall(addr[2], removed.blockNumber - 1)).toBe(true);
    expect(await c.getFunction("wasMemberAt").staticCall(addr[2], removed.blockNumber)).toBe(false);
    const [from, to] = await c.getFunction("membershipHistory").staticCall(addr[2]);
    expect([from.map(Number), to.map(Number)]).toEqual([
      [fx.deployment.deployedAtBlock],
      [removed.blockNumber],
    ]);
    // a removed member's approval no longer counts, and it cannot act
    await expectRevert(
      proposeQuorum(w[2] as WalletClient, { quorum: 1 }),
      consortiumErrors(),
      "ConsortiumRegistryNotMember",
      [addr[2]],
    );
  });

  it("refuses a removal that would leave the quorum above the member count", async () => {
    const { w, addr } = await setup();
    const r = await proposeRemoveMember(w[1] as WalletClient, { account: addr[2] as string });
    await approveProposal(w[2] as WalletClient, { id: r.proposalId });
    await expectRevert(
      executeProposal(w[1] as WalletClient, { id: r.proposalId }),
      consortiumErrors(),
      "ConsortiumRegistryInvalidQuorum",
      [2, 1],
    );
  });

  it("counts approvals of current members only", async () => {
    const { fx, w, addr } = await setup();
    // lower the quorum, then propose something m2 approves, then remove m2
    const q = await proposeQuorum(w[1] as WalletClient, { quorum: 1 });
    await approveProposal(w[2] as WalletClient, { id: q.proposalId });
    await executeProposal(w[1] as WalletClient, { id: q.proposalId });
    const pending = await proposeAddMember(w[2] as WalletClient, {
      account: addr[3] as string,
      did: "did:c",
      name: "C",
    });
    const client = createChainClient({ provider: chain.provider, deployment: fx.deployment });
    expect((await getProposal(client, pending.proposalId)).approvals).toBe(1);
    const r = await proposeRemoveMember(w[1] as WalletClient, { account: addr[2] as string });
    await executeProposal(w[1] as WalletClient, { id: r.proposalId });
    expect((await getProposal(client, pending.proposalId)).approvals).toBe(0);
  });
});

/** Proposes with `proposer`, approves with each of `approvers`, executes with the proposer. */
async function pass(
  propose: Promise<{ proposalId: number }>,
  proposer: WalletClient,
  approvers: WalletClient[],
) {
  const { proposalId } = await propose;
  for (const w of approvers) await approveProposal(w, { id: proposalId });
  return executeProposal(proposer, { id: proposalId });
}

describe("governance: approvals count within the approver's current membership", () => {
  it("a removed member's approval does not come back when it is re-admitted without a new vote", async () => {
    const { fx, w, addr } = await setup();
    const [w1, w2, w3] = [w[1], w[2], w[3]] as [WalletClient, WalletClient, WalletClient];
    const b = addr[2] as string;
    await pass(proposeAddMember(w1, { account: addr[3] as string, did: "did:c", name: "C" }), w1, [w2]);
    // B approves a pending proposal (quorum 2: the proposer and B)
    const pending = await proposeQuorum(w1, { quorum: 1 });
    await approveProposal(w2, { id: pending.proposalId });
    const client = createChainClient({ provider: chain.provider, deployment: fx.deployment });
    expect((await getProposal(client, pending.proposalId)).approvals).toBe(2);
    // B is removed, then re-admitted
    await pass(proposeRemoveMember(w1, { account: b }), w1, [w3]);
    const readmitted = await pass(proposeAddMember(w1, { account: b, did: "did:b", name: "B" }), w1, [w3]);
    expect(readmitted.events.map((e) => e.name)).toEqual(["MemberAdded", "ProposalExecuted"]);
    // B's old approval is gone: the proposal lacks it, and execution reverts
    expect((await getProposal(client, pending.proposalId)).approvals).toBe(1);
    const c = client.contracts.consortium;
    expect(await c.getFunction("hasApproved").staticCall(pending.proposalId, b)).toBe(false);
    await expectRevert(
      executeProposal(w1, { id: pending.proposalId }),
      consortiumErrors(),
      "ConsortiumRegistryQuorumNotReached",
      [pending.proposalId, 1, 2],
    );
    // a new vote counts
    const again = await approveProposal(w2, { id: pending.proposalId });
    expect(again.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["ProposalApproved", { id: pending.proposalId, member: b }],
    ]);
    const executed = await executeProposal(w1, { id: pending.proposalId });
    expect(executed.events.map((e) => [e.name, plain(e.args)])[0]).toEqual([
      "QuorumChanged",
      { previousQuorum: 2, newQuorum: 1 },
    ]);
  });
});

describe("governance: key rotation", () => {
  it("moves a member's rights to its new account once the quorum executes it; anchors and lists stay the member's", async () => {
    const { fx, w, addr } = await setup();
    const [w1, w2, w4] = [w[1], w[2], w[4]] as [WalletClient, WalletClient, WalletClient];
    const [a1, a2, a4] = [addr[1], addr[2], addr[4]] as [string, string, string];
    const before = `0x${"b1".repeat(32)}`;
    const anchored = await anchorCredential(w2, { credentialId: before });
    await suspendCredential(w2, { index: 5 });

    const proposed = await proposeRotateKey(w2, { member: a2, newOperator: a4 });
    const id = proposed.proposalId;
    const block = await chain.provider.getBlock(proposed.blockNumber);
    expect(proposed.events.map((e) => [e.name, plain(e.args)])).toEqual([
      [
        "ProposalCreated",
        {
          id,
          kind: 4,
          proposer: a2,
          account: a2,
          quorum: 0,
          expiresAt: (block?.timestamp ?? 0) + 7 * 24 * 3600,
        },
      ],
      ["KeyRotationProposed", { id, member: a2, newOperator: a4 }],
      ["ProposalApproved", { id, member: a2 }],
    ]);
    const client = createChainClient({ provider: chain.provider, deployment: fx.deployment });
    expect(await getProposal(client, id)).toMatchObject({
      kind: "rotate-key",
      account: a2,
      newOperator: a4,
      approvals: 1,
    });
    // nothing changes before the quorum executes it
    await expectRevert(proposeQuorum(w4, { quorum: 1 }), consortiumErrors(), "ConsortiumRegistryNotMember", [
      a4,
    ]);
    await approveProposal(w1, { id });
    const executed = await executeProposal(w1, { id });
    expect(executed.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["MemberKeyRotated", { member: a2, previousOperator: a2, newOperator: a4 }],
      ["ProposalExecuted", { id, executor: a1 }],
    ]);
    expect(await getMember(client, a2)).toEqual({
      account: a2,
      did: `did:ethr:0x7a69:${a2}`,
      name: "Member 2",
      active: true,
      operator: a4,
    });

    // the old key has no right left
    const registry = registryErrors();
    await expectRevert(
      anchorCredential(w2, { credentialId: `0x${"b2".repeat(32)}` }),
      registry,
      "CredentialRegistryNotMember",
      [a2],
    );
    await expectRevert(suspendCredential(w2, { index: 6 }), registry, "CredentialRegistryNotMember", [a2]);
    await expectRevert(revokeCredential(w2, { index: 5 }), registry, "CredentialRegistryKeyRotated", [
      a2,
      a4,
    ]);
    await expectRevert(proposeQuorum(w2, { quorum: 1 }), consortiumErrors(), "ConsortiumRegistryNotMember", [
      a2,
    ]);

    // the new key acts for the member, in the member's anchor table and lists
    await expectRevert(
      anchorCredential(w4, { credentialId: before }),
      registry,
      "CredentialRegistryAlreadyAnchored",
      [before, a2, anchored.blockNumber],
    );
    const after = `0x${"b3".repeat(32)}`;
    const own = await anchorCredential(w4, { credentialId: after });
    expect(own.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["CredentialAnchored", { credentialId: after, issuer: a2, blockNumber: own.blockNumber }],
    ]);
    expect(await getAnchor(client, { issuer: a2, key: after })).toEqual({ blockNumber: own.blockNumber });
    expect(await getAnchor(client, { issuer: a4, key: after })).toBeNull();
    const revoked = await revokeCredential(w4, { index: 5 });
    expect(revoked.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["CredentialRevoked", { issuer: a2, index: 5 }],
    ]);
    const voted = await proposeQuorum(w4, { quorum: 1 });
    expect(voted.events.map((e) => [e.name, plain(e.args)])[1]).toEqual([
      "ProposalApproved",
      { id: voted.proposalId, member: a2 },
    ]);
    const isSuspended = client.contracts.credentials.getFunction("isSuspended");
    expect(await isSuspended.staticCall(a2, 5)).toBe(true);
  });

  it("refuses a new operating account that is in use, zero, or for a non-member", async () => {
    const { w, addr } = await setup();
    const [w1, w2] = [w[1], w[2]] as [WalletClient, WalletClient];
    const [a1, a2, a3, a4] = [addr[1], addr[2], addr[3], addr[4]] as [string, string, string, string];
    const errors = consortiumErrors();
    // a member's own current account, another member's account
    await expectRevert(
      proposeRotateKey(w1, { member: a1, newOperator: a1 }),
      errors,
      "ConsortiumRegistryAccountInUse",
      [a1],
    );
    await expectRevert(
      proposeRotateKey(w1, { member: a1, newOperator: a2 }),
      errors,
      "ConsortiumRegistryAccountInUse",
      [a2],
    );
    await expectRevert(
      proposeRotateKey(w1, { member: a1, newOperator: "0x0000000000000000000000000000000000000000" }),
      errors,
      "ConsortiumRegistryZeroAddress",
      [],
    );
    await expectRevert(
      proposeRotateKey(w1, { member: a3, newOperator: a4 }),
      errors,
      "ConsortiumRegistryNotMember",
      [a3],
    );
    // once a4 operates member 2, nobody else may take it, and it cannot be admitted as a member
    await pass(proposeRotateKey(w1, { member: a2, newOperator: a4 }), w1, [w2]);
    await expectRevert(
      proposeRotateKey(w1, { member: a1, newOperator: a4 }),
      errors,
      "ConsortiumRegistryAccountInUse",
      [a4],
    );
    await expectRevert(
      proposeAddMember(w1, { account: a4, did: "did:x", name: "X" }),
      errors,
      "ConsortiumRegistryAccountInUse",
      [a4],
    );
    // rotating back to the member's own account is allowed
    const back = await pass(proposeRotateKey(w1, { member: a2, newOperator: a2 }), w1, [
      w[4] as WalletClient,
    ]);
    expect(back.events.map((e) => [e.name, plain(e.args)])[0]).toEqual([
      "MemberKeyRotated",
      { member: a2, previousOperator: a4, newOperator: a2 },
    ]);
  });
});

describe("governance: revoking another member's credentials", () => {
  it("revokes by quorum, skipping bits already set, with one StatusWordChanged per word", async () => {
    const { fx, w, addr } = await setup();
    await revokeCredential(w[2] as WalletClient, { index: 2 });
    const p = await proposeRevokeCredentials(w[1] as WalletClient, {
      issuer: addr[2] as string,
      indexes: [300, 1, 2],
    });
    await approveProposal(w[2] as WalletClient, { id: p.proposalId });
    const executed = await executeProposal(w[1] as WalletClient, { id: p.proposalId });
    expect(executed.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["StatusWordChanged", { issuer: addr[2], revocation: true, word: 0, bits: 2, set: true }],
      ["StatusWordChanged", { issuer: addr[2], revocation: true, word: 1, bits: 2 ** 44, set: true }],
      ["ProposalExecuted", { id: p.proposalId, executor: addr[1] }],
    ]);
    const isRevoked = createChainClient({
      provider: chain.provider,
      deployment: fx.deployment,
    }).contracts.credentials.getFunction("isRevoked");
    expect(await Promise.all([0, 1, 2, 300].map((i) => isRevoked.staticCall(addr[2], i)))).toEqual([
      false,
      true,
      true,
      true,
    ]);
  });

  it("refuses an empty revocation", async () => {
    const { fx, w } = await setup();
    const direct = fx.as(chain.accounts[1] as JsonRpcSigner).consortium;
    await expectRevert(
      direct.getFunction("proposeRevokeCredentials")((w[2] as WalletClient).signer.getAddress(), []),
      consortiumErrors(),
      "ConsortiumRegistryEmptyRevocation",
      [],
    );
    expect(
      await errorCodeOf(
        proposeRevokeCredentials(w[1] as WalletClient, {
          issuer: fx.deployment.contracts.ConsortiumRegistry,
          indexes: [],
        }),
      ),
    ).toBe("invalid_argument");
  });
});

describe("batches", () => {
  it("anchors a batch root with BatchAnchored(root, issuer, count, block); refuses an empty batch", async () => {
    const { w, addr } = await setup();
    const root = `0x${"42".repeat(32)}`;
    const out = await anchorBatch(w[1] as WalletClient, { root, count: 512 });
    expect(out.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["BatchAnchored", { root, issuer: addr[1], count: 512, blockNumber: out.blockNumber }],
    ]);
    await expectRevert(
      anchorBatch(w[1] as WalletClient, { root: `0x${"43".repeat(32)}`, count: 0 }),
      registryErrors(),
      "CredentialRegistryEmptyBatch",
      [],
    );
    await expectRevert(
      anchorBatch(w[1] as WalletClient, { root, count: 1 }),
      registryErrors(),
      "CredentialRegistryAlreadyAnchored",
      [root, addr[1], out.blockNumber],
    );
    // another member's anchor of the same root is its own, and blocks nothing
    const other = await anchorBatch(w[2] as WalletClient, { root, count: 512 });
    expect(other.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["BatchAnchored", { root, issuer: addr[2], count: 512, blockNumber: other.blockNumber }],
    ]);
  });

  it("sets bits word by word and refuses conflicts, unsorted and empty batches", async () => {
    const { fx, w, addr } = await setup();
    const out = await revokeBatch(w[1] as WalletClient, { indexes: [511, 0, 256, 3] });
    expect(out.events.map((e) => [e.name, plain(e.args)])).toEqual([
      ["StatusWordChanged", { issuer: addr[1], revocation: true, word: 0, bits: 9, set: true }],
      [
        "StatusWordChanged",
        { issuer: addr[1], revocation: true, word: 1, bits: String(2n ** 255n + 1n), set: true },
      ],
    ]);
    const errors = registryErrors();
    await expectRevert(
      revokeBatch(w[1] as WalletClient, { indexes: [4, 3] }),
      errors,
      "CredentialRegistryAlreadyRevoked",
      [addr[1], 3],
    );
    await suspendBatch(w[1] as WalletClient, { indexes: [10, 11] });
    await expectRevert(
      suspendBatch(w[1] as WalletClient, { indexes: [11] }),
      errors,
      "CredentialRegistryAlreadySuspended",
      [addr[1], 11],
    );
    await expectRevert(
      reinstateBatch(w[1] as WalletClient, { indexes: [10, 12] }),
      errors,
      "CredentialRegistryNotSuspended",
      [addr[1], 12],
    );
    const direct = fx.as(chain.accounts[1] as JsonRpcSigner).credentials;
    await expectRevert(
      direct.getFunction("revokeBatch")([9, 8]),
      errors,
      "CredentialRegistryUnsortedIndexes",
      [9, 8],
    );
    await expectRevert(direct.getFunction("revokeBatch")([]), errors, "CredentialRegistryEmptyBatch", []);
    await expectRevert(
      direct.getFunction("consortiumRevoke")(addr[1], [1]),
      errors,
      "CredentialRegistryNotConsortium",
      [addr[1]],
    );
    await expectRevert(
      suspendBatch(w[3] as WalletClient, { indexes: [1] }),
      errors,
      "CredentialRegistryNotMember",
      [addr[3]],
    );
  });
});
