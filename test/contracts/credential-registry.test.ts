import { type JsonRpcSigner, keccak256, toUtf8Bytes } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kpartyInterfaces } from "../../src/chain/index.ts";
import { startTestChain, type TestChain } from "../fixtures/chain.ts";
import { deployRegistries, expectRevert, type RegistryFixture, send } from "../fixtures/contracts.ts";

let chain: TestChain;
let fx: RegistryFixture;
let m1: JsonRpcSigner;
let m2: JsonRpcSigner;
let a1: string;
let a2: string;
const iface = () => kpartyInterfaces().credentials;
const registry = (s: JsonRpcSigner) => fx.as(s).credentials;
let counter = 0;
const freshId = () => keccak256(toUtf8Bytes(`credential-${++counter}`));
const ZERO = "0x0000000000000000000000000000000000000000";

beforeAll(async () => {
  chain = await startTestChain();
  fx = await deployRegistries(chain);
  [m1, m2] = fx.members as [JsonRpcSigner, JsonRpcSigner];
  [a1, a2] = await Promise.all([m1.getAddress(), m2.getAddress()]);
});
afterAll(async () => {
  chain.provider.destroy();
  await chain.stop();
});

describe("CredentialRegistry anchoring", () => {
  it("anchors an id with the caller as issuer and emits CredentialAnchored(id, issuer, block)", async () => {
    const id = freshId();
    const { events, blockNumber } = await send(registry(m1).getFunction("anchor")(id), iface());
    expect(events).toEqual([{ name: "CredentialAnchored", args: [id, a1, blockNumber] }]);
    expect((await registry(m2).getFunction("anchorOf").staticCall(a1, id)).toArray()).toEqual([
      true,
      BigInt(blockNumber),
    ]);
    expect((await registry(m2).getFunction("anchorOf").staticCall(a2, id)).toArray()).toEqual([false, 0n]);
  });

  it("keys anchors by issuer: a member anchoring another's id first neither blocks it nor owns it", async () => {
    // m1 (a rogue member) anchors the id and the root m2 is about to anchor
    const id = freshId();
    const root = freshId();
    const early = await send(registry(m1).getFunction("anchor")(id), iface());
    const earlyRoot = await send(registry(m1).getFunction("anchorBatch")(root, 4), iface());
    const before = registry(m2).getFunction("credentialState");
    expect((await before.staticCall(id, a2, 0, 0)).toArray()).toEqual([ZERO, 0n, true, false, false, false]);
    // m2, the real issuer, anchors both anyway: each anchor is keyed to its own issuer
    const own = await send(registry(m2).getFunction("anchor")(id), iface());
    expect(own.events).toEqual([{ name: "CredentialAnchored", args: [id, a2, own.blockNumber] }]);
    const ownRoot = await send(registry(m2).getFunction("anchorBatch")(root, 4), iface());
    expect(ownRoot.events).toEqual([{ name: "BatchAnchored", args: [root, a2, 4, ownRoot.blockNumber] }]);
    const anchorOf = registry(m1).getFunction("anchorOf");
    expect((await anchorOf.staticCall(a1, id)).toArray()).toEqual([true, BigInt(early.blockNumber)]);
    expect((await anchorOf.staticCall(a2, id)).toArray()).toEqual([true, BigInt(own.blockNumber)]);
    expect((await anchorOf.staticCall(a1, root)).toArray()).toEqual([true, BigInt(earlyRoot.blockNumber)]);
    expect((await anchorOf.staticCall(a2, root)).toArray()).toEqual([true, BigInt(ownRoot.blockNumber)]);
    // the claimed issuer's anchor is the one credentialState reports
    const state = registry(m1).getFunction("credentialState");
    expect((await state.staticCall(id, a2, 0, 0)).toArray()).toEqual([
      a2,
      BigInt(own.blockNumber),
      true,
      true,
      false,
      false,
    ]);
    expect((await state.staticCall(root, a1, 0, 0)).toArray()).toEqual([
      a1,
      BigInt(earlyRoot.blockNumber),
      true,
      true,
      false,
      false,
    ]);
    // re-anchoring by the same issuer still reverts, naming that issuer's own anchor
    await expectRevert(registry(m2).getFunction("anchor")(id), iface(), "CredentialRegistryAlreadyAnchored", [
      id,
      a2,
      own.blockNumber,
    ]);
    await expectRevert(
      registry(m1).getFunction("anchorBatch")(root, 4),
      iface(),
      "CredentialRegistryAlreadyAnchored",
      [root, a1, earlyRoot.blockNumber],
    );
  });

  it("reverts CredentialRegistryZeroCredentialId for the zero id", async () => {
    await expectRevert(
      registry(m1).getFunction("anchor")(`0x${"00".repeat(32)}`),
      iface(),
      "CredentialRegistryZeroCredentialId",
      [],
    );
  });

  it("reverts CredentialRegistryNotMember(caller) when a non-member anchors, suspends or reinstates", async () => {
    const outsider = await fx.outsider.getAddress();
    const r = registry(fx.outsider);
    await expectRevert(r.getFunction("anchor")(freshId()), iface(), "CredentialRegistryNotMember", [
      outsider,
    ]);
    await expectRevert(r.getFunction("anchorBatch")(freshId(), 2), iface(), "CredentialRegistryNotMember", [
      outsider,
    ]);
    await expectRevert(r.getFunction("suspend")(1), iface(), "CredentialRegistryNotMember", [outsider]);
    await expectRevert(r.getFunction("reinstate")(1), iface(), "CredentialRegistryNotMember", [outsider]);
    await expectRevert(r.getFunction("suspendBatch")([1]), iface(), "CredentialRegistryNotMember", [
      outsider,
    ]);
    await expectRevert(r.getFunction("reinstateBatch")([1]), iface(), "CredentialRegistryNotMember", [
      outsider,
    ]);
  });

  it("lets any account revoke in its own list only (revocation only withdraws trust)", async () => {
    const outsider = await fx.outsider.getAddress();
    const { events } = await send(registry(fx.outsider).getFunction("revoke")(77), iface());
    expect(events).toEqual([{ name: "CredentialRevoked", args: [outsider, 77] }]);
    expect(await registry(m1).getFunction("isRevoked").staticCall(outsider, 77)).toBe(true);
    expect(await registry(m1).getFunction("isRevoked").staticCall(a1, 77)).toBe(false);
  });

  it("mirrors membership from the consortium, which alone may change it", async () => {
    const r = registry(m1);
    expect(await r.getFunction("isIssuer").staticCall(a1)).toBe(true);
    expect(await r.getFunction("isIssuer").staticCall(await fx.outsider.getAddress())).toBe(false);
    await expectRevert(r.getFunction("setIssuer")(a1, false), iface(), "CredentialRegistryNotConsortium", [
      a1,
    ]);
    await expectRevert(r.getFunction("setOperator")(a1, a2), iface(), "CredentialRegistryNotConsortium", [
      a1,
    ]);
    expect((await r.getFunction("memberByOperator").staticCall(a1)).toArray()).toEqual([a1, true]);
  });
});

describe("CredentialRegistry status lists", () => {
  it("revokes with CredentialRevoked(issuer, index); a second revoke reverts CredentialRegistryAlreadyRevoked", async () => {
    const { events } = await send(registry(m1).getFunction("revoke")(300), iface());
    expect(events).toEqual([{ name: "CredentialRevoked", args: [a1, 300] }]);
    expect(await registry(m1).getFunction("isRevoked").staticCall(a1, 300)).toBe(true);
    expect(await registry(m1).getFunction("isRevoked").staticCall(a1, 301)).toBe(false);
    expect(await registry(m1).getFunction("isRevoked").staticCall(a2, 300)).toBe(false);
    await expectRevert(registry(m1).getFunction("revoke")(300), iface(), "CredentialRegistryAlreadyRevoked", [
      a1,
      300,
    ]);
  });

  it("suspends and reinstates with events; double suspend and reinstate of a clear bit revert", async () => {
    const s = await send(registry(m2).getFunction("suspend")(5), iface());
    expect(s.events).toEqual([{ name: "CredentialSuspended", args: [a2, 5] }]);
    expect(await registry(m2).getFunction("isSuspended").staticCall(a2, 5)).toBe(true);
    await expectRevert(
      registry(m2).getFunction("suspend")(5),
      iface(),
      "CredentialRegistryAlreadySuspended",
      [a2, 5],
    );
    const r = await send(registry(m2).getFunction("reinstate")(5), iface());
    expect(r.events).toEqual([{ name: "CredentialReinstated", args: [a2, 5] }]);
    expect(await registry(m2).getFunction("isSuspended").staticCall(a2, 5)).toBe(false);
    await expectRevert(registry(m2).getFunction("reinstate")(5), iface(), "CredentialRegistryNotSuspended", [
      a2,
      5,
    ]);
  });

  it("packs 256 bits per word: indexes 255, 256 and 2^200 are independent", async () => {
    const big = 2n ** 200n;
    await send(registry(m1).getFunction("suspend")(255), iface());
    await send(registry(m1).getFunction("suspend")(big), iface());
    const isSuspended = registry(m1).getFunction("isSuspended");
    expect(await isSuspended.staticCall(a1, 255)).toBe(true);
    expect(await isSuspended.staticCall(a1, 256)).toBe(false);
    expect(await isSuspended.staticCall(a1, 254)).toBe(false);
    expect(await isSuspended.staticCall(a1, big)).toBe(true);
  });

  it("credentialState reads anchor, the claimed issuer's membership and its bits in one call", async () => {
    const id = freshId();
    const { blockNumber } = await send(registry(m1).getFunction("anchor")(id), iface());
    await send(registry(m1).getFunction("revoke")(42), iface());
    const state = registry(m1).getFunction("credentialState");
    expect((await state.staticCall(id, a1, 42, 43)).toArray()).toEqual([
      a1,
      BigInt(blockNumber),
      true, // issuer is a member now
      true, // and was at the anchoring block
      true, // revoked
      false, // suspended
    ]);
    const outsider = await fx.outsider.getAddress();
    // anchors are read under the claimed issuer: a1's anchor is not the outsider's
    expect((await state.staticCall(id, outsider, 42, 43)).toArray()).toEqual([
      ZERO,
      0n,
      false,
      false,
      false,
      false,
    ]);
    expect((await state.staticCall(freshId(), a2, 0, 0)).toArray()).toEqual([
      ZERO,
      0n,
      true,
      false, // not anchored: no anchoring block to have been a member at
      false,
      false,
    ]);
    expect(await registry(m1).getFunction("consortium").staticCall()).toBe(
      fx.deployment.contracts.ConsortiumRegistry,
    );
  });
});
