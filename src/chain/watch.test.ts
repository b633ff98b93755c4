import { afterEach, describe, expect, it } from "vitest";
import {
  type BlockHeader,
  type BlockSource,
  createEventFeed,
  type RegistryEvent,
  type RegistryReorg,
  type RegistryWatcher,
} from "./watch.ts";

interface FakeBlock extends BlockHeader {
  events: string[];
}

/** A chain in memory: blocks 0..head, each with the names of its events; branches get new hashes. */
function fakeChain() {
  let blocks: FakeBlock[] = [{ number: 0, hash: "0xgenesis", parentHash: "0x", events: [] }];
  let mined = 0;
  /** Replaces the hash the next `events` call reports for a block (a branch change mid-poll). */
  let lie: { number: number; hash: string } | null = null;
  let heads = 0;
  let headers = 0;
  const source: BlockSource = {
    head: async () => {
      heads++;
      const b = blocks.at(-1) as FakeBlock;
      return { number: b.number, hash: b.hash, parentHash: b.parentHash };
    },
    header: async (n) => {
      headers++;
      const b = blocks[n];
      return b ? { number: b.number, hash: b.hash, parentHash: b.parentHash } : null;
    },
    events: async (from, to) => {
      const out = blocks.slice(from, to + 1).flatMap((b) =>
        b.events.map((name) => ({
          event: { name, args: {}, blockNumber: b.number },
          blockHash: lie?.number === b.number ? lie.hash : b.hash,
        })),
      );
      lie = null;
      return out;
    },
  };
  return {
    source,
    /** Mines one block with these events; returns its number. */
    mine(...events: string[]): number {
      const parent = blocks.at(-1) as FakeBlock;
      const number = parent.number + 1;
      blocks.push({ number, hash: `0x${number}-${++mined}`, parentHash: parent.hash, events });
      return number;
    },
    /** Drops every block above `n` (as `evm_revert` does). */
    revertTo(n: number) {
      blocks = blocks.slice(0, n + 1);
    },
    lieOnce(number: number, hash: string) {
      lie = { number, hash };
    },
    /** Requests so far: latest-block reads and reads of a block by number. */
    requests: () => ({ heads, headers }),
  };
}

const feeds: RegistryWatcher[] = [];
afterEach(() => {
  for (const f of feeds.splice(0)) f.stop();
});

/** A feed (after its first poll) that polls only when the test says so, recording what it delivers; its clock counts calls. */
async function follow(
  chain: ReturnType<typeof fakeChain>,
  options: { confirmations?: number; reorgWindowBlocks?: number } = {},
) {
  let clock = 0;
  const feed = createEventFeed(chain.source, {
    now: () => ++clock,
    fromBlock: 0,
    pollingIntervalMs: 1e9,
    ...options,
  });
  feeds.push(feed);
  const events: string[] = [];
  const reorgs: { ancestor: number | null; abandoned: string[] }[] = [];
  feed.onEvent((e: RegistryEvent) => events.push(`${e.name}@${e.blockNumber}`));
  feed.onReorg((r: RegistryReorg) =>
    reorgs.push({ ancestor: r.ancestor, abandoned: r.abandoned.map((e) => `${e.name}@${e.blockNumber}`) }),
  );
  await feed.poll();
  return { feed, events, reorgs, poll: () => feed.poll() };
}

describe("event feed", () => {
  it("polls again right after the poll under way when a push asks during it (pollSoon)", async () => {
    const chain = fakeChain();
    const t = await follow(chain);
    // the next poll reads the head, then waits: a push arrives for a block mined after that read
    let release: () => void = () => undefined;
    const head = chain.source.head;
    chain.source.head = async () => {
      const latest = await head();
      chain.source.head = head;
      await new Promise<void>((r) => {
        release = r;
      });
      return latest;
    };
    const first = t.feed.poll();
    await new Promise((r) => setImmediate(r));
    chain.mine("CredentialRevoked");
    (t.feed as ReturnType<typeof createEventFeed>).pollSoon();
    release();
    await first;
    expect(t.events).toEqual([]); // the poll under way had read the head before the block
    await expect.poll(() => t.events, { timeout: 1_000, interval: 1 }).toEqual(["CredentialRevoked@1"]);
    expect(t.feed.syncedBlock).toBe(1);
  });

  it("delivers events in chain order and follows the head", async () => {
    const chain = fakeChain();
    const t = await follow(chain);
    chain.mine("CredentialAnchored");
    chain.mine();
    chain.mine("CredentialRevoked", "CredentialSuspended");
    await t.poll();
    expect(t.events).toEqual(["CredentialAnchored@1", "CredentialRevoked@3", "CredentialSuspended@3"]);
    expect(t.feed.syncedBlock).toBe(3);
    expect(t.reorgs).toEqual([]);
  });

  it("re-scans from the common ancestor when the chain is reverted and a different block mined at a number it passed", async () => {
    const chain = fakeChain();
    const t = await follow(chain);
    chain.mine("CredentialAnchored"); // 1
    await t.poll();
    chain.mine("CredentialReinstated"); // 2 on branch A
    chain.mine(); // 3
    chain.mine(); // 4
    await t.poll();
    expect(t.feed.syncedBlock).toBe(4);
    chain.revertTo(1);
    chain.mine("CredentialRevoked"); // 2 on branch B: the head (2) is below what the feed delivered
    await t.poll();
    expect(t.reorgs).toEqual([{ ancestor: 1, abandoned: ["CredentialReinstated@2"] }]);
    expect(t.events).toEqual(["CredentialAnchored@1", "CredentialReinstated@2", "CredentialRevoked@2"]);
    expect(t.feed.syncedBlock).toBe(2);
  });

  it("detects a branch of the same height by the hash of its last block", async () => {
    const chain = fakeChain();
    const t = await follow(chain);
    chain.mine(); // 1
    chain.mine("MemberAdded"); // 2
    await t.poll();
    chain.revertTo(1);
    chain.mine("MemberRemoved"); // 2 again, another hash
    await t.poll();
    expect(t.reorgs).toEqual([{ ancestor: 1, abandoned: ["MemberAdded@2"] }]);
    expect(t.events).toEqual(["MemberAdded@2", "MemberRemoved@2"]);
    // nothing new: the next poll changes nothing, and costs one request (the latest block)
    const before = chain.requests();
    await t.poll();
    expect(t.reorgs).toHaveLength(1);
    expect(t.events).toHaveLength(2);
    expect(chain.requests()).toEqual({ heads: before.heads + 1, headers: before.headers });
  });

  it("reports a fork deeper than its window with no ancestor, and resumes on the new chain", async () => {
    const chain = fakeChain();
    const t = await follow(chain, { reorgWindowBlocks: 3 });
    chain.mine(); // 1
    await t.poll();
    for (let n = 2; n <= 6; n++) {
      if (n === 5) chain.mine("CredentialRevoked");
      else chain.mine();
    }
    await t.poll();
    expect(t.feed.syncedBlock).toBe(6);
    chain.revertTo(1);
    chain.mine("CredentialReinstated"); // 2
    chain.mine(); // 3
    await t.poll();
    // the window held blocks 4..6 only: the revocation at 5 is reported, the ancestor (1) is not known
    expect(t.reorgs).toEqual([{ ancestor: null, abandoned: ["CredentialRevoked@5"] }]);
    // resumed at the new head: what the new branch held before it is not replayed (listeners dropped everything)
    expect(t.feed.syncedBlock).toBe(3);
    expect(t.events).toEqual(["CredentialRevoked@5"]);
    chain.mine("CredentialSuspended"); // 4
    await t.poll();
    expect(t.events).toEqual(["CredentialRevoked@5", "CredentialSuspended@4"]);
    expect(t.reorgs).toHaveLength(1);
  });

  it("delivers a block's events only once `confirmations` blocks are on top, and checks the hashes below", async () => {
    const chain = fakeChain();
    const t = await follow(chain, { confirmations: 2 });
    chain.mine(); // 1
    const revoked = chain.mine("CredentialRevoked"); // 2
    chain.mine(); // 3
    await t.poll();
    expect([t.feed.syncedBlock, t.events]).toEqual([1, []]);
    chain.mine(); // 4: two blocks on top of 2
    await t.poll();
    expect([t.feed.syncedBlock, t.events]).toEqual([2, [`CredentialRevoked@${revoked}`]]);
    // a reorg above the confirmed block is not seen; one below it is
    chain.revertTo(3);
    chain.mine(); // 4'
    await t.poll();
    expect(t.reorgs).toEqual([]);
    chain.revertTo(1);
    chain.mine(); // 2'
    chain.mine(); // 3'
    chain.mine(); // 4''
    await t.poll();
    expect(t.reorgs).toEqual([{ ancestor: 1, abandoned: ["CredentialRevoked@2"] }]);
    expect(t.feed.syncedBlock).toBe(2);
  });

  it("applies nothing of a poll whose events come from another branch than its blocks, and retries", async () => {
    const chain = fakeChain();
    const t = await follow(chain);
    expect(t.feed.lastSyncedAt).toBe(1);
    chain.mine("CredentialRevoked"); // 1
    chain.lieOnce(1, "0xother");
    await t.poll();
    expect([t.feed.syncedBlock, t.events, t.feed.lastSyncedAt]).toEqual([0, [], 1]);
    await t.poll();
    expect([t.feed.syncedBlock, t.events, t.feed.lastSyncedAt]).toEqual([1, ["CredentialRevoked@1"], 2]);
  });

  it("rejects a negative depth and an empty window", () => {
    const chain = fakeChain();
    expect(() => createEventFeed(chain.source, { now: () => 0, fromBlock: 0, confirmations: -1 })).toThrow(
      "confirmations must be an integer of at least 0",
    );
    expect(() => createEventFeed(chain.source, { now: () => 0, fromBlock: 0, reorgWindowBlocks: 0 })).toThrow(
      "reorgWindowBlocks must be an integer of at least 1",
    );
  });
});
