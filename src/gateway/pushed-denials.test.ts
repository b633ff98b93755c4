import { describe, expect, it } from "vitest";
import type { CredentialState } from "../chain/index.ts";
import { PushedDenials } from "./pushed-denials.ts";

const ISSUER = "0x00000000000000000000000000000000000000Aa";
const STATE: CredentialState = {
  anchoredBy: ISSUER,
  anchoredAt: 5,
  issuerIsMember: true,
  issuerWasMemberAtAnchor: true,
  revoked: false,
  suspended: false,
  blockNumber: 9,
};
const key = (index: number) => ({ issuer: ISSUER, revocationIndex: index, suspensionIndex: index });
const revoked = (index: number, blockNumber: number) => ({
  name: "CredentialRevoked",
  args: { issuer: ISSUER, index: BigInt(index) },
  blockNumber,
});

describe("pushed denials", () => {
  it("lets the bits of one word lapse together, at the last block that set one", () => {
    const denials = new PushedDenials();
    denials.record(revoked(3, 11), 10);
    denials.record(revoked(4, 12), 10);
    expect([3, 4].map((i) => denials.apply(key(i), STATE, 11).revoked)).toEqual([true, true]);
    expect([3, 4].map((i) => denials.apply(key(i), STATE, 12).revoked)).toEqual([false, false]);
  });

  it("keeps a member's removal until the last block that pushed one is delivered, whatever their order", () => {
    const denials = new PushedDenials();
    const removed = (blockNumber: number) => ({
      name: "MemberRemoved",
      args: { account: ISSUER },
      blockNumber,
    });
    denials.record(removed(12), 10);
    denials.record(removed(11), 10);
    expect(denials.apply(key(3), STATE, 11).issuerIsMember).toBe(false);
    expect(denials.apply(key(3), STATE, 12)).toBe(STATE);
  });

  it("keeps at most maxEntries pending words and removals, dropping the oldest", () => {
    const denials = new PushedDenials(2);
    expect([0, 256, 512].map((i) => denials.record(revoked(i, 11), 10))).toEqual([
      ISSUER.toLowerCase(),
      ISSUER.toLowerCase(),
      ISSUER.toLowerCase(),
    ]);
    expect(denials.size).toBe(2);
    expect([0, 256, 512].map((i) => denials.apply(key(i), STATE, 10).revoked)).toEqual([false, true, true]);
  });

  it("lets a denial lapse once its block is delivered, also at a block it was pruned at before (a reorganisation)", () => {
    const denials = new PushedDenials();
    denials.record(revoked(3, 19), 17);
    expect(denials.apply(key(3), STATE, 18).revoked).toBe(true);
    // the watcher went back to 16 and the node pushes block 17 of the new branch
    denials.record(revoked(300, 17), 16);
    expect(denials.apply(key(300), STATE, 16).revoked).toBe(true);
    expect(denials.apply(key(300), STATE, 18)).toBe(STATE);
    expect(denials.apply(key(3), STATE, 18).revoked).toBe(true);
    expect(denials.apply(key(3), STATE, 19)).toBe(STATE);
    expect(denials.size).toBe(0);
  });

  it("records nothing for events that may grant, for other events, or for a block already delivered", () => {
    const denials = new PushedDenials();
    const events = [
      { name: "CredentialReinstated", args: { issuer: ISSUER, index: 3n }, blockNumber: 11 },
      {
        name: "StatusWordChanged",
        args: { issuer: ISSUER, revocation: true, word: 0n, bits: 8n, set: false },
        blockNumber: 11,
      },
      { name: "MemberAdded", args: { account: ISSUER }, blockNumber: 11 },
      { name: "CredentialAnchored", args: { issuer: ISSUER, credentialId: "0x01" }, blockNumber: 11 },
      revoked(3, 10),
    ];
    expect(events.map((e) => denials.record(e, 10))).toEqual([null, null, null, null, null]);
    expect(denials.size).toBe(0);
  });
});
