import { describe, expect, it } from "vitest";
import { fakeWatcher } from "../../test/fixtures/watcher.ts";
import type { ChainClient, CredentialState } from "../chain/index.ts";
import { createStatusCache, type StatusKey } from "./status-cache.ts";

const ISSUER = "0x00000000000000000000000000000000000000Aa";
const key = (index: number): StatusKey => ({
  anchorKey: `0x${index.toString(16).padStart(64, "0")}`,
  issuer: ISSUER,
  revocationIndex: index,
  suspensionIndex: index,
});

/** Counts reads; each read returns `revoked: reads > n` style states via `next`. */
function setup(next: () => Partial<CredentialState> = () => ({})) {
  let now = 0;
  let reads = 0;
  const watcher = fakeWatcher();
  const chain = {
    deployment: { chainId: 31337, contracts: {}, deployedAtBlock: 0 },
    provider: {},
    contracts: {
      credentials: {
        getFunction: () => ({
          staticCall: async () => {
            reads++;
            return {
              anchoredBy: ISSUER,
              anchoredAt: 5n,
              issuerIsMember: true,
              issuerWasMemberAtAnchor: true,
              revoked: false,
              suspended: false,
              ...next(),
            };
          },
        }),
      },
    },
  } as unknown as ChainClient;
  // getCredentialState asks the provider for the block number first
  (chain.provider as { getBlockNumber: () => Promise<number> }).getBlockNumber = async () => 9;
  const cache = createStatusCache({
    chain,
    watcher,
    now: () => now,
    maxStalenessMs: 1000,
  });
  return { cache, watcher, reads: () => reads, advance: (ms: number) => (now += ms) };
}

describe("status cache", () => {
  it("serves repeated reads from the cache while the event feed is fresh, and reads again when it is stale", async () => {
    const t = setup();
    await t.cache.get(key(3));
    await t.cache.get(key(3));
    expect(t.reads()).toBe(1);
    t.advance(1001);
    await t.cache.get(key(3));
    expect(t.reads()).toBe(2);
  });

  it("evicts exactly the entries an event touches", async () => {
    const t = setup();
    for (const i of [3, 4, 300]) await t.cache.get(key(i));
    t.watcher.emit("CredentialRevoked", { issuer: ISSUER, index: 3n });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(3);
    await t.cache.get(key(3));
    expect(t.reads()).toBe(4);
    t.watcher.emit("StatusWordChanged", {
      issuer: ISSUER,
      revocation: true,
      word: 1n,
      bits: 1n << 44n,
      set: true,
    });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(4);
    await t.cache.get(key(300));
    expect(t.reads()).toBe(5);
    t.watcher.emit("CredentialAnchored", { issuer: ISSUER, credentialId: key(999).anchorKey });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(5);
    t.watcher.emit("MemberRemoved", { account: ISSUER.toLowerCase() });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(6);
  });

  it("does not cache a read that raced an event for its issuer", async () => {
    let emitDuringRead = true;
    const t = setup(() => {
      if (emitDuringRead) {
        emitDuringRead = false;
        t.watcher.emit("CredentialSuspended", { issuer: ISSUER, index: 3n });
      }
      return {};
    });
    await t.cache.get(key(3));
    await t.cache.get(key(3));
    expect(t.reads()).toBe(2);
  });
});
