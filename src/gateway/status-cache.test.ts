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

/** Counts reads; each read returns the state `next` gives (a promise of it makes the read wait). */
function setup(
  next: () => Partial<CredentialState> | Promise<Partial<CredentialState>> = () => ({}),
  options: { maxEntryAgeMs?: number; maxEntries?: number; maxUnauthenticatedEntries?: number } = {},
) {
  let now = 0;
  let reads = 0;
  let block = 9;
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
              ...(await next()),
            };
          },
        }),
      },
    },
  } as unknown as ChainClient;
  // getCredentialState asks the provider for the block number first
  (chain.provider as { getBlockNumber: () => Promise<number> }).getBlockNumber = async () => block;
  const cache = createStatusCache({
    chain,
    watcher,
    now: () => now,
    maxStalenessMs: 1000,
    ...options,
  });
  return {
    cache,
    watcher,
    reads: () => reads,
    advance: (ms: number) => (now += ms),
    /** The node's head for the next reads (the fake watcher has delivered block 10). */
    head: (n: number) => {
      block = n;
    },
    /** The event feed reports a poll that succeeded now. */
    synced: () => {
      (watcher as { lastSyncedAt: number }).lastSyncedAt = now;
    },
  };
}

/** Lets reads started in the background run to their end. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

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

  it("applies a delivered revocation, suspension (bits set) or removal to exactly the entries it touches, in place; an anchor evicts", async () => {
    const t = setup();
    for (const i of [3, 4, 300]) await t.cache.get(key(i));
    const flags = async (i: number) => {
      const s = await t.cache.get(key(i));
      return [s.revoked, s.suspended, s.issuerIsMember, s.blockNumber];
    };
    t.watcher.emit("CredentialRevoked", { issuer: ISSUER, index: 3n }, 10);
    expect([await flags(3), await flags(4)]).toEqual([
      [true, false, true, 10],
      [false, false, true, 9],
    ]);
    t.watcher.emit("CredentialSuspended", { issuer: ISSUER.toLowerCase(), index: 4n }, 10);
    t.watcher.emit(
      "StatusWordChanged",
      { issuer: ISSUER, revocation: true, word: 1n, bits: 1n << 44n, set: true },
      10,
    );
    expect([await flags(4), await flags(300)]).toEqual([
      [false, true, true, 10],
      [true, false, true, 10],
    ]);
    expect(t.reads()).toBe(3);
    t.watcher.emit("CredentialAnchored", { issuer: ISSUER, credentialId: key(999).anchorKey });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(3);
    t.watcher.emit("CredentialAnchored", { issuer: ISSUER, credentialId: key(4).anchorKey });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(4);
    t.watcher.emit("MemberRemoved", { account: ISSUER.toLowerCase() }, 10);
    expect([await flags(3), await flags(4)]).toEqual([
      [true, false, false, 10],
      [false, false, false, 10],
    ]);
    expect(t.reads()).toBe(4);
  });

  it("drops an entry a delivered restriction was applied to when the chain reorganises below the event's block", async () => {
    const t = setup();
    for (const i of [3, 4]) await t.cache.get(key(i));
    t.watcher.emit("CredentialRevoked", { issuer: ISSUER, index: 3n }, 10);
    t.watcher.reorg({ ancestor: 9, abandoned: [] });
    expect(t.cache.size).toBe(1);
    expect((await t.cache.get(key(3))).revoked).toBe(false);
    expect(t.reads()).toBe(3);
  });

  it("a reinstatement evicts exactly the entries of its index; an admission every entry of the member", async () => {
    const t = setup();
    const OTHER = "0x00000000000000000000000000000000000000bB";
    for (const i of [3, 4]) await t.cache.get(key(i));
    expect([t.cache.size, t.reads()]).toEqual([2, 2]);
    t.watcher.emit("CredentialReinstated", { issuer: ISSUER.toLowerCase(), index: 3n });
    expect(t.cache.size).toBe(1);
    await t.cache.get(key(4));
    expect(t.reads()).toBe(2);
    await t.cache.get(key(3));
    expect(t.reads()).toBe(3);
    // another account's admission touches none of this issuer's entries
    t.watcher.emit("MemberAdded", { account: OTHER });
    expect(t.cache.size).toBe(2);
    t.watcher.emit("MemberAdded", { account: ISSUER.toLowerCase() });
    expect(t.cache.sizes).toEqual({ main: 0, unauthenticated: 0, indexed: 0, issuers: 0 });
    await t.cache.get(key(3));
    await t.cache.get(key(4));
    expect(t.reads()).toBe(5);
  });

  it("a batch anchor by the issuer evicts exactly the entry under that root, and the next check reads the chain", async () => {
    const t = setup();
    for (const i of [3, 4]) await t.cache.get(key(i));
    t.watcher.emit("BatchAnchored", {
      issuer: ISSUER,
      root: key(3).anchorKey.toUpperCase().replace("0X", "0x"),
    });
    expect(t.cache.size).toBe(1);
    await t.cache.get(key(4));
    expect(t.reads()).toBe(2);
    await t.cache.get(key(3));
    expect(t.reads()).toBe(3);
  });

  it("an anchor evicts only the anchoring issuer's entries; a key rotation evicts the member's", async () => {
    const t = setup();
    const OTHER = "0x00000000000000000000000000000000000000bB";
    await t.cache.get(key(4));
    // another member anchors the very same key: not this issuer's anchor, the entry stays
    t.watcher.emit("CredentialAnchored", { issuer: OTHER, credentialId: key(4).anchorKey });
    t.watcher.emit("BatchAnchored", { issuer: OTHER, root: key(4).anchorKey });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(1);
    t.watcher.emit("BatchAnchored", { issuer: ISSUER.toLowerCase(), root: key(4).anchorKey });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(2);
    t.watcher.emit("MemberKeyRotated", { member: OTHER, previousOperator: OTHER, newOperator: ISSUER });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(2);
    t.watcher.emit("MemberKeyRotated", { member: ISSUER, previousOperator: ISSUER, newOperator: OTHER });
    await t.cache.get(key(4));
    expect(t.reads()).toBe(3);
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

  it("answers from an entry past half its age and re-reads it in the background, once at a time", async () => {
    let revoked = false;
    let gate: Promise<void> | undefined;
    const t = setup(async () => {
      await gate;
      return { revoked };
    });
    await t.cache.get(key(3));
    t.advance(15_000); // exactly half of the default 30 s: still young
    t.synced();
    await t.cache.get(key(3));
    await settle();
    expect(t.reads()).toBe(1);

    t.advance(1);
    t.synced();
    revoked = true; // on the chain now, with no event seen for it
    let open = () => {};
    gate = new Promise((resolve) => {
      open = resolve;
    });
    expect((await t.cache.get(key(3))).revoked).toBe(false); // answered without waiting
    expect((await t.cache.get(key(3))).revoked).toBe(false);
    await settle();
    expect(t.reads()).toBe(2); // one re-read for both
    open();
    await settle();
    expect((await t.cache.get(key(3))).revoked).toBe(true); // the re-read's state, kept
    expect(t.reads()).toBe(2);
  });

  it("keeps the entry when a background re-read fails, and waits for a read once it is past its age", async () => {
    let fail = false;
    const t = setup(() => {
      if (fail) throw new Error("node down");
      return {};
    });
    await t.cache.get(key(3));
    t.advance(20_000);
    t.synced();
    fail = true;
    expect((await t.cache.get(key(3))).revoked).toBe(false);
    await settle();
    expect(t.reads()).toBe(2);
    expect((await t.cache.get(key(3))).revoked).toBe(false); // the failed re-read left it in place
    await settle();
    expect(t.reads()).toBe(3); // and the next request tries again

    t.advance(10_001); // 30,001 ms old: the request waits for the chain
    t.synced();
    fail = false;
    const seen = t.reads();
    expect((await t.cache.get(key(3))).revoked).toBe(false);
    expect(t.reads()).toBe(seen + 1);
  });

  it("waits for the chain when an entry is past its age, and gets the chain's state", async () => {
    let suspended = false;
    const t = setup(() => ({ suspended }), { maxEntryAgeMs: 4_000 });
    await t.cache.get(key(3));
    t.advance(4_001);
    t.synced();
    suspended = true;
    expect((await t.cache.get(key(3))).suspended).toBe(true);
    expect(t.reads()).toBe(2);
  });

  it("does not keep a background re-read that raced an event for its issuer", async () => {
    let emitDuringRead = false;
    const t = setup(() => {
      if (emitDuringRead) {
        emitDuringRead = false;
        t.watcher.emit("CredentialReinstated", { issuer: ISSUER, index: 3n });
        return { revoked: true };
      }
      return {};
    });
    await t.cache.get(key(3));
    t.advance(16_000);
    t.synced();
    emitDuringRead = true;
    expect((await t.cache.get(key(3))).revoked).toBe(false);
    await settle();
    expect(t.reads()).toBe(2);
    expect((await t.cache.get(key(3))).revoked).toBe(false); // evicted by the event: read again
    expect(t.reads()).toBe(3);
  });

  it("on a reorganisation drops the entries the abandoned events touched and every entry read above the ancestor", async () => {
    const t = setup();
    t.head(5);
    await t.cache.get(key(3));
    await t.cache.get(key(4));
    t.head(8);
    await t.cache.get(key(5));
    await t.cache.get(key(6));
    expect([t.cache.size, t.reads()]).toEqual([4, 4]);
    t.watcher.reorg({
      ancestor: 6,
      abandoned: [{ name: "CredentialRevoked", args: { issuer: ISSUER, index: 3n }, blockNumber: 7 }],
    });
    expect(t.cache.size).toBe(1);
    await t.cache.get(key(4)); // read at 5, untouched: kept
    expect(t.reads()).toBe(4);
    for (const i of [3, 5, 6]) await t.cache.get(key(i));
    expect(t.reads()).toBe(7);
  });

  it("drops every entry on a fork deeper than the watcher's window", async () => {
    const t = setup();
    t.head(2);
    for (const i of [3, 4, 5]) await t.cache.get(key(i));
    t.watcher.reorg({ ancestor: null, abandoned: [] });
    expect(t.cache.size).toBe(0);
    await t.cache.get(key(4));
    expect(t.reads()).toBe(4);
  });

  it("does not keep a state read above the block the watcher has delivered, nor one that raced a reorganisation", async () => {
    let reorgDuringRead = false;
    const t = setup(() => {
      if (reorgDuringRead) {
        reorgDuringRead = false;
        t.watcher.reorg({ ancestor: 9, abandoned: [] });
      }
      return {};
    });
    t.head(11); // the watcher is at 10
    await t.cache.get(key(3));
    await t.cache.get(key(3));
    expect([t.reads(), t.cache.size]).toEqual([2, 0]);
    t.head(9);
    reorgDuringRead = true;
    await t.cache.get(key(3));
    expect(t.cache.size).toBe(0);
    await t.cache.get(key(3));
    await t.cache.get(key(3));
    expect([t.reads(), t.cache.size]).toEqual([4, 1]);
  });

  it("keeps at most maxEntries states, evicting exactly the least recently used, and prunes its issuer index with them", async () => {
    const t = setup(() => ({}), { maxEntries: 3 });
    for (const i of [1, 2, 3]) await t.cache.get(key(i));
    await t.cache.get(key(1)); // key 2 is now the least recently used
    await t.cache.get(key(4));
    expect(t.cache.sizes).toEqual({ main: 3, unauthenticated: 0, indexed: 3, issuers: 1 });
    expect(t.reads()).toBe(4);
    for (const i of [1, 3, 4]) await t.cache.get(key(i));
    expect(t.reads()).toBe(4);
    await t.cache.get(key(2)); // evicted: read again, and key 1 goes
    expect(t.reads()).toBe(5);
    await t.cache.get(key(1));
    expect(t.reads()).toBe(6);
  });

  it("keeps the states read for unauthenticated input apart: however many, they evict only each other", async () => {
    const t = setup(() => ({}), { maxEntries: 2, maxUnauthenticatedEntries: 2 });
    await t.cache.get(key(1));
    for (let i = 100; i < 300; i++) await t.cache.unauthenticated.get(key(i));
    expect(t.cache.sizes).toEqual({ main: 1, unauthenticated: 2, indexed: 3, issuers: 1 });
    expect(t.reads()).toBe(201);
    await t.cache.get(key(1)); // still cached
    await t.cache.unauthenticated.get(key(1)); // served from the main segment, which it does not change
    await t.cache.unauthenticated.get(key(299)); // the most recent unauthenticated read, kept
    expect(t.reads()).toBe(201);
    await t.cache.unauthenticated.get(key(297)); // evicted long ago
    expect(t.reads()).toBe(202);
    expect(t.cache.sizes).toEqual({ main: 1, unauthenticated: 2, indexed: 3, issuers: 1 });
  });

  it("promotes a state read for input that turned out authentic into the main segment", async () => {
    const t = setup(() => ({}), { maxEntries: 2, maxUnauthenticatedEntries: 2 });
    await t.cache.unauthenticated.get(key(7));
    t.cache.promote(key(7));
    t.cache.promote(key(8)); // never read: nothing to promote
    expect(t.cache.sizes).toEqual({ main: 1, unauthenticated: 0, indexed: 1, issuers: 1 });
    for (let i = 100; i < 110; i++) await t.cache.unauthenticated.get(key(i));
    await t.cache.get(key(7));
    expect(t.reads()).toBe(11);
    // an authenticated read of a state kept for unauthenticated input moves it too
    await t.cache.get(key(109));
    expect(t.cache.sizes).toEqual({ main: 2, unauthenticated: 1, indexed: 3, issuers: 1 });
    expect(t.reads()).toBe(11);
  });

  it("prunes its index of issuers with the entries: 1,000 forged issuers leave as many index keys as entries", async () => {
    const t = setup(() => ({}), { maxEntries: 5, maxUnauthenticatedEntries: 5 });
    const forged = (i: number): StatusKey => ({
      ...key(i),
      issuer: `0x${(i + 1).toString(16).padStart(40, "0")}`,
    });
    for (let i = 0; i < 1000; i++) await t.cache.unauthenticated.get(forged(i));
    for (let i = 0; i < 1000; i++) await t.cache.get(forged(i + 5000));
    expect(t.cache.sizes).toEqual({ main: 5, unauthenticated: 5, indexed: 10, issuers: 10 });
    t.watcher.emit("MemberAdded", { account: forged(5999).issuer });
    t.watcher.emit("MemberAdded", { account: forged(999).issuer });
    expect(t.cache.sizes).toEqual({ main: 4, unauthenticated: 4, indexed: 8, issuers: 8 });
    t.watcher.reorg({ ancestor: null, abandoned: [] });
    expect(t.cache.sizes).toEqual({ main: 0, unauthenticated: 0, indexed: 0, issuers: 0 });
  });

  it("registry events evict states kept for unauthenticated input as well", async () => {
    const t = setup();
    await t.cache.unauthenticated.get(key(3));
    await t.cache.unauthenticated.get(key(3));
    expect(t.reads()).toBe(1);
    t.watcher.emit("CredentialAnchored", { issuer: ISSUER, credentialId: key(3).anchorKey });
    await t.cache.unauthenticated.get(key(3));
    expect(t.reads()).toBe(2);
  });
});

describe("status cache: pushed events (before the watcher's poll delivers them)", () => {
  /** The state the fake chain returns by default, with `changes`. */
  const chainState = (changes: Partial<CredentialState> = {}): CredentialState => ({
    anchoredBy: ISSUER,
    anchoredAt: 5,
    issuerIsMember: true,
    issuerWasMemberAtAnchor: true,
    revoked: false,
    suspended: false,
    blockNumber: 9,
    ...changes,
  });

  it("denies what a pushed revocation, suspension (bits set) or removal restricts at once, from the cached entry, until the watcher delivers its block", async () => {
    const t = setup();
    for (const i of [3, 4, 300]) await t.cache.get(key(i));
    t.watcher.hint("CredentialRevoked", { issuer: ISSUER.toLowerCase(), index: 3n });
    expect(await t.cache.get(key(3))).toEqual(chainState({ revoked: true }));
    expect(await t.cache.get(key(4))).toEqual(chainState());
    t.watcher.hint("StatusWordChanged", {
      issuer: ISSUER,
      revocation: false,
      word: 1n,
      bits: 1n << 44n,
      set: true,
    });
    expect(await t.cache.get(key(300))).toEqual(chainState({ suspended: true }));
    expect(await t.cache.unauthenticated.get(key(300))).toEqual(chainState({ suspended: true }));
    t.watcher.hint("MemberRemoved", { account: ISSUER, blockNumber: 11n }, 12);
    expect(await t.cache.get(key(4))).toEqual(chainState({ issuerIsMember: false }));
    expect([t.reads(), t.cache.size]).toEqual([3, 3]); // not one read since the pushes
    // the watcher delivers block 11 without those events (an abandoned block): they lapse, block 12's stays
    t.watcher.syncedBlock = 11;
    for (const i of [3, 4, 300])
      expect(await t.cache.get(key(i))).toEqual(chainState({ issuerIsMember: false }));
    t.watcher.syncedBlock = 12;
    for (const i of [3, 4, 300]) expect(await t.cache.get(key(i))).toEqual(chainState());
    expect(t.reads()).toBe(3);
  });

  it("denies a pushed revocation to a read under way, and does not keep what that read returns", async () => {
    let release: (state: Partial<CredentialState>) => void = () => undefined;
    const t = setup(() => new Promise((resolve) => (release = resolve)));
    const reading = t.cache.get(key(3));
    await settle();
    t.watcher.hint("CredentialRevoked", { issuer: ISSUER, index: 3n });
    release({});
    expect(await reading).toEqual(chainState({ revoked: true }));
    expect(t.cache.size).toBe(0);
  });

  it("grants nothing on a pushed reinstatement, admission or bits cleared: those only evict, and a denial holds until its block is delivered", async () => {
    let chain: Partial<CredentialState> = {};
    const t = setup(() => chain);
    await t.cache.get(key(3));
    t.watcher.hint("CredentialSuspended", { issuer: ISSUER, index: 3n }, 11);
    expect(await t.cache.get(key(3))).toEqual(chainState({ suspended: true }));
    // the node pushes the reinstatement; the chain's head already says so
    t.watcher.hint("CredentialReinstated", { issuer: ISSUER, index: 3n }, 12);
    t.watcher.hint(
      "StatusWordChanged",
      { issuer: ISSUER, revocation: false, word: 0n, bits: 1n << 3n, set: false },
      12,
    );
    t.watcher.hint("MemberAdded", { account: ISSUER }, 12);
    expect(t.cache.size).toBe(0);
    expect(await t.cache.get(key(3))).toEqual(chainState({ suspended: true }));
    expect(t.reads()).toBe(2);
    t.watcher.syncedBlock = 11;
    chain = { blockNumber: 11 } as Partial<CredentialState>;
    expect(await t.cache.get(key(3))).toEqual(chainState({ suspended: false }));
  });

  it("treats a pushed event of a block already delivered as the poll's: it evicts, and denies nothing", async () => {
    const t = setup();
    await t.cache.get(key(3));
    t.watcher.hint("CredentialRevoked", { issuer: ISSUER, index: 3n }, 10);
    expect(t.cache.size).toBe(0);
    expect(await t.cache.get(key(3))).toEqual(chainState());
    expect(t.reads()).toBe(2);
  });
});
