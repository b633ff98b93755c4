import type { JsonRpcSigner } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deployKParty, kpartyInterfaces } from "../../src/chain/index.ts";
import { startTestChain, type TestChain } from "../fixtures/chain.ts";
import { deployRegistries, expectRevert, type RegistryFixture } from "../fixtures/contracts.ts";

let chain: TestChain;
let fx: RegistryFixture;
const iface = () => kpartyInterfaces().consortium;

beforeAll(async () => {
  chain = await startTestChain();
  fx = await deployRegistries(chain);
});
afterAll(async () => {
  chain.provider.destroy();
  await chain.stop();
});

const ZERO = "0x0000000000000000000000000000000000000000";

describe("ConsortiumRegistry", () => {
  it("emits MemberAdded per founder and QuorumChanged(0, quorum) at construction", async () => {
    const deployer = chain.accounts[0] as JsonRpcSigner;
    const a = await (chain.accounts[1] as JsonRpcSigner).getAddress();
    const deployment = await deployKParty({
      deployer,
      founders: [{ account: a, did: "did:ethr:0x7a69:a", name: "A" }],
      quorum: 1,
    });
    const block = await chain.provider.getBlock(deployment.deployedAtBlock, true);
    const receipt = await chain.provider.getTransactionReceipt(block?.transactions[0] as string);
    const events = receipt?.logs
      .map((l) => iface().parseLog(l))
      .map((e) => ({ name: e?.name, args: e?.args.toArray() }));
    expect(events).toEqual([
      { name: "CredentialRegistryCreated", args: [deployment.contracts.CredentialRegistry] },
      { name: "MemberAdded", args: [a, "did:ethr:0x7a69:a", "A", BigInt(deployment.deployedAtBlock)] },
      { name: "QuorumChanged", args: [0n, 1n] },
    ]);
  });

  it("reports members, their records, count and quorum", async () => {
    const [m1, m2] = await Promise.all(fx.members.map((s) => s.getAddress()));
    const c = fx.as(fx.outsider).consortium;
    expect(await c.getFunction("members").staticCall()).toEqual([m1, m2]);
    expect(await c.getFunction("memberCount").staticCall()).toBe(2n);
    expect(await c.getFunction("quorum").staticCall()).toBe(2n);
    expect((await c.getFunction("memberOf").staticCall(m1)).toArray()).toEqual([
      `did:ethr:0x7a69:${m1}`,
      "Member 1",
      true,
    ]);
    expect((await c.getFunction("memberOf").staticCall(await fx.outsider.getAddress())).toArray()).toEqual([
      "",
      "",
      false,
    ]);
    expect(await c.getFunction("isMember").staticCall(m2)).toBe(true);
    expect(await c.getFunction("isMember").staticCall(await fx.outsider.getAddress())).toBe(false);
  });

  it("answers wasMemberAt from the admission block on, and never before or for outsiders", async () => {
    const m1 = await (fx.members[0] as JsonRpcSigner).getAddress();
    const c = fx.as(fx.outsider).consortium;
    const admitted = fx.deployment.deployedAtBlock;
    expect(await c.getFunction("wasMemberAt").staticCall(m1, admitted - 1)).toBe(false);
    expect(await c.getFunction("wasMemberAt").staticCall(m1, admitted)).toBe(true);
    expect(await c.getFunction("wasMemberAt").staticCall(m1, admitted + 1000)).toBe(true);
    expect(await c.getFunction("wasMemberAt").staticCall(await fx.outsider.getAddress(), admitted)).toBe(
      false,
    );
  });

  describe("construction reverts", () => {
    const deployer = () => chain.accounts[0] as JsonRpcSigner;
    const member = async (i: number) => ({
      account: await (chain.accounts[i] as JsonRpcSigner).getAddress(),
      did: `did:ethr:0x7a69:${i}`,
      name: `M${i}`,
    });

    it("ConsortiumRegistryZeroAddress for the zero account", async () => {
      await expectRevert(
        deployKParty({
          deployer: deployer(),
          founders: [{ account: ZERO, did: "did:x", name: "z" }],
          quorum: 1,
        }),
        iface(),
        "ConsortiumRegistryZeroAddress",
        [],
      );
    });

    it("ConsortiumRegistryAlreadyMember(account) for a repeated founder", async () => {
      const m = await member(1);
      await expectRevert(
        deployKParty({ deployer: deployer(), founders: [m, m], quorum: 1 }),
        iface(),
        "ConsortiumRegistryAlreadyMember",
        [m.account],
      );
    });

    it("ConsortiumRegistryEmptyDid(account) for a founder without DID", async () => {
      const m = { ...(await member(1)), did: "" };
      await expectRevert(
        deployKParty({ deployer: deployer(), founders: [m], quorum: 1 }),
        iface(),
        "ConsortiumRegistryEmptyDid",
        [m.account],
      );
    });

    it("ConsortiumRegistryInvalidQuorum(quorum, members) for a quorum above the member count", async () => {
      // deployKParty validates the quorum itself; deploy the contract directly to reach the revert.
      const { ContractFactory } = await import("ethers");
      const { loadArtifact } = await import("../../src/chain/artifacts.ts");
      const artifact = loadArtifact("ConsortiumRegistry");
      const factory = new ContractFactory(artifact.abi, artifact.bytecode, deployer());
      await expectRevert(
        factory.deploy([await member(1)], 2, 3600),
        iface(),
        "ConsortiumRegistryInvalidQuorum",
        [2, 1],
      );
      await expectRevert(
        factory.deploy([await member(1)], 0, 3600),
        iface(),
        "ConsortiumRegistryInvalidQuorum",
        [0, 1],
      );
    });
  });
});
