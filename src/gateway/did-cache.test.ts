import type { DIDResolutionResult } from "did-resolver";
import { computeAddress, Wallet } from "ethers";
import { describe, expect, it } from "vitest";
import { fakeWatcher } from "../../test/fixtures/watcher.ts";
import { createDidCache } from "./did-cache.ts";

const key = Wallet.createRandom().signingKey.compressedPublicKey;
const did = `did:ethr:0x7a69:${key}`;
const identity = computeAddress(key);

function setup(onResolve: () => void = () => {}) {
  let resolves = 0;
  const watcher = fakeWatcher();
  const emit = (name: string, id: string) => watcher.emit(name, { identity: id });
  let now = 0;
  const cache = createDidCache({
    resolver: {
      resolveDid: async () => {
        resolves++;
        onResolve();
        return {
          didDocument: { id: did },
          didResolutionMetadata: {},
          didDocumentMetadata: {},
        } as DIDResolutionResult;
      },
    },
    watcher,
    now: () => now,
  });
  return { cache, watcher, emit, resolves: () => resolves, advance: (ms: number) => (now += ms) };
}

describe("DID document cache", () => {
  it("keeps current documents while fresh, and drops them on their identity's ERC-1056 event", async () => {
    const t = setup();
    await t.cache.resolveDid({ didUrl: did });
    await t.cache.resolveDid({ didUrl: did });
    expect(t.resolves()).toBe(1);
    t.emit("DIDAttributeChanged", Wallet.createRandom().address);
    await t.cache.resolveDid({ didUrl: did });
    expect(t.resolves()).toBe(1);
    t.emit("DIDOwnerChanged", identity);
    await t.cache.resolveDid({ didUrl: did });
    expect(t.resolves()).toBe(2);
    t.advance(1_001);
    await t.cache.resolveDid({ didUrl: did });
    expect(t.resolves()).toBe(3);
  });

  it("keeps documents as of a past block whatever happens after", async () => {
    const t = setup();
    const past = `${did}?versionId=5`;
    await t.cache.resolveDid({ didUrl: past });
    t.emit("DIDOwnerChanged", identity);
    t.advance(60_000);
    await t.cache.resolveDid({ didUrl: past });
    expect(t.resolves()).toBe(1);
  });

  it("does not keep a current document whose resolution raced a change", async () => {
    let first = true;
    const t = setup(() => {
      if (first) {
        first = false;
        t.emit("DIDDelegateChanged", identity);
      }
    });
    await t.cache.resolveDid({ didUrl: did });
    await t.cache.resolveDid({ didUrl: did });
    expect(t.resolves()).toBe(2);
  });

  it("on a reorganisation drops current documents and those as of a block above the ancestor", async () => {
    const t = setup();
    for (const url of [did, `${did}?versionId=4`, `${did}?versionId=7`])
      await t.cache.resolveDid({ didUrl: url });
    expect(t.cache.size).toBe(3);
    t.watcher.reorg({ ancestor: 5, abandoned: [] });
    expect(t.cache.size).toBe(1);
    await t.cache.resolveDid({ didUrl: `${did}?versionId=4` });
    expect(t.resolves()).toBe(3);
    t.watcher.reorg({ ancestor: null, abandoned: [] });
    expect(t.cache.size).toBe(0);
  });

  it("does not keep a document as of a block the event feed has not delivered, nor one resolved across a reorganisation", async () => {
    let reorg = false;
    const t = setup(() => {
      if (reorg) {
        reorg = false;
        t.watcher.reorg({ ancestor: 8, abandoned: [] });
      }
    });
    await t.cache.resolveDid({ didUrl: `${did}?versionId=11` }); // the feed is at block 10
    expect(t.cache.size).toBe(0);
    reorg = true;
    await t.cache.resolveDid({ didUrl: `${did}?versionId=3` });
    await t.cache.resolveDid({ didUrl: did });
    expect([t.cache.size, t.resolves()]).toEqual([1, 3]);
  });
});
