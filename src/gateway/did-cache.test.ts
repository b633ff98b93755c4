import type { DIDResolutionResult } from "did-resolver";
import { computeAddress, Wallet } from "ethers";
import { describe, expect, it } from "vitest";
import { fakeWatcher } from "../../test/fixtures/watcher.ts";
import { createDidCache } from "./did-cache.ts";

const key = Wallet.createRandom().signingKey.compressedPublicKey;
const did = `did:ethr:0x7a69:${key}`;
const identity = computeAddress(key);

function setup(
  onResolve: () => void = () => {},
  bounds: { maxEntries?: number; maxUnauthenticatedEntries?: number } = {},
) {
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
    ...bounds,
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

  it("keeps at most maxEntries documents, evicting exactly the least recently used", async () => {
    const t = setup(() => {}, { maxEntries: 3 });
    const at = (block: number) => ({ didUrl: `${did}?versionId=${block}` });
    for (const block of [1, 2, 3]) await t.cache.resolveDid(at(block));
    await t.cache.resolveDid(at(1)); // block 2 is now the least recently used
    await t.cache.resolveDid(at(4));
    expect([t.cache.sizes, t.resolves()]).toEqual([{ main: 3, unauthenticated: 0 }, 4]);
    for (const block of [1, 3, 4]) await t.cache.resolveDid(at(block));
    expect(t.resolves()).toBe(4);
    await t.cache.resolveDid(at(2));
    expect(t.resolves()).toBe(5);
  });

  it("keeps documents resolved for unauthenticated input apart until promoted: they evict only each other", async () => {
    const t = setup(() => {}, { maxEntries: 2, maxUnauthenticatedEntries: 2 });
    await t.cache.resolveDid({ didUrl: did });
    const forged = (i: number) => ({ didUrl: `did:ethr:0x7a69:0x${(i + 1).toString(16).padStart(40, "0")}` });
    for (let i = 0; i < 100; i++) await t.cache.unauthenticated.resolveDid(forged(i));
    expect([t.cache.sizes, t.resolves()]).toEqual([{ main: 1, unauthenticated: 2 }, 101]);
    await t.cache.resolveDid({ didUrl: did });
    await t.cache.unauthenticated.resolveDid({ didUrl: did }); // served from the main segment
    await t.cache.unauthenticated.resolveDid(forged(99)); // kept (most recent)
    expect(t.resolves()).toBe(101);
    t.cache.promote(forged(99).didUrl);
    expect(t.cache.sizes).toEqual({ main: 2, unauthenticated: 1 });
    // an authenticated resolution of a document kept for unauthenticated input moves it too
    await t.cache.resolveDid(forged(98));
    expect([t.cache.sizes, t.resolves()]).toEqual([{ main: 2, unauthenticated: 0 }, 101]);
    // the main segment is an LRU of its own: the forged(98) move evicted the oldest, did
    await t.cache.resolveDid({ didUrl: did });
    expect(t.resolves()).toBe(102);
  });

  it("drops unauthenticated documents on their identity's event too", async () => {
    const t = setup();
    await t.cache.unauthenticated.resolveDid({ didUrl: did });
    await t.cache.unauthenticated.resolveDid({ didUrl: did });
    t.emit("DIDDelegateChanged", identity);
    await t.cache.unauthenticated.resolveDid({ didUrl: did });
    expect(t.resolves()).toBe(2);
  });
});
