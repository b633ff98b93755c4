import { JsonRpcApiProvider } from "ethers";
import type { ChainClient } from "./client.ts";
import { kpartyInterfaces } from "./contracts.ts";
import { subscribeLogs } from "./push.ts";

/** A decoded event of the kparty registries. */
export interface RegistryEvent {
  name: string;
  args: Record<string, unknown>;
  blockNumber: number;
}

/**
 * A chain reorganisation the feed has detected: blocks whose events it had delivered are no
 * longer on the node's chain.
 */
export interface RegistryReorg {
  /**
   * The last block both branches share; the feed re-scans the new branch from the block after
   * it. `null` when the fork is deeper than the feed's window of block hashes: then nothing the
   * listener knows can be trusted and it must drop everything.
   */
  ancestor: number | null;
  /** The events the feed had delivered from the abandoned blocks (those still in its window), in chain order. */
  abandoned: RegistryEvent[];
}

export interface RegistryWatcher {
  /** The last block whose events were delivered (the deployment block before the first poll). */
  readonly syncedBlock: number;
  /** When (per `now`) the last poll succeeded; `-Infinity` before the first. */
  readonly lastSyncedAt: number;
  /** Blocks that must be on top of a block before its events are delivered (0: at once). */
  readonly confirmations: number;
  /** Adds a listener; events arrive in chain order. Returns a function that removes it. */
  onEvent(listener: (event: RegistryEvent) => void): () => void;
  /**
   * Adds a listener for reorganisations, called before the events of the new branch are
   * delivered. Returns a function that removes it.
   */
  onReorg(listener: (reorg: RegistryReorg) => void): () => void;
  /** Polls once now (the timer also does); resolves when done. */
  poll(): Promise<void>;
  /**
   * True while the registries' logs are pushed over a WebSocket (`pushUrl`): each one triggers
   * a poll at once, and the timer only keeps the feed fresh. Absent or false: polling alone.
   */
  readonly pushed?: boolean;
  /**
   * Adds a listener for events as the node pushes them (`pushUrl`, no confirmation depth),
   * before any poll has read and checked them: a reason to drop what a cache holds (the next
   * read then asks the chain), or to deny at once what the event restricts until its block is
   * delivered (the status cache does, see `PushedDenials`), never a state that grants — a
   * pushed log may be from a block that is abandoned later. The same events still arrive at
   * `onEvent` once polled. Returns a function that removes the listener.
   */
  onHint?(listener: (event: RegistryEvent) => void): () => void;
  stop(): void;
}

/** A block as the feed remembers it. */
export interface BlockHeader {
  number: number;
  hash: string;
  parentHash: string;
}

/** A registry event with the hash of the block the node says it is in. */
export interface SourcedEvent {
  event: RegistryEvent;
  blockHash: string;
}

/** Where the feed reads the chain (the node's JSON-RPC API, or a fake in unit tests). */
export interface BlockSource {
  /** The node's latest block. */
  head(): Promise<BlockHeader>;
  /** The node's block `number`, or null when it has none. */
  header(number: number): Promise<BlockHeader | null>;
  /** The registries' events in blocks `from`..`to` (inclusive), in chain order. */
  events(from: number, to: number): Promise<SourcedEvent[]>;
}

export interface EventFeedOptions {
  now: () => number;
  /** The block whose events are taken as already delivered (the deployment block). */
  fromBlock: number;
  pollingIntervalMs?: number;
  maxBlocksPerPoll?: number;
  /** Blocks on top of a block before its events are delivered (default 0). */
  confirmations?: number;
  /** How many of the last delivered blocks the feed keeps the hashes (and events) of (default 128). */
  reorgWindowBlocks?: number;
  /**
   * While `live()` says pushes arrive, the timer polls only every `everyMs` (a heartbeat that
   * keeps `lastSyncedAt` fresh and catches a reorganisation), not every `pollingIntervalMs`.
   */
  relaxed?: { live: () => boolean; everyMs: number };
}

/** A feed whose poll can be asked for by a push: see {@link createEventFeed}. */
export interface EventFeed extends RegistryWatcher {
  /**
   * Polls as soon as possible: at once, or right after the poll under way (which may have read
   * the head before the change that was pushed).
   */
  pollSoon(): void;
}

/** A poll that saw the chain change under it; nothing of it is applied and the next tick retries. */
class RacedError extends Error {}

function checkCount(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < min)) {
    throw new TypeError(`${name} must be an integer of at least ${min}`);
  }
}

/**
 * The reorg-safe core of {@link createRegistryWatcher}, over any {@link BlockSource}.
 *
 * It remembers the hash of every block it delivered within the window; each poll checks that
 * the next block's parent (or, when nothing is new, the last delivered block) is still the
 * node's. On a mismatch it finds the last block of its window that the node still has (the
 * common ancestor), tells the reorg listeners which delivered events were abandoned, and
 * re-scans from the ancestor. A fork below the window reports `ancestor: null` and resumes at
 * the lower of its last block and the new chain's confirmed head.
 *
 * @example
 * ```ts
 * const feed = createEventFeed(source, { now: Date.now, fromBlock: 0, confirmations: 2 });
 * feed.onReorg(({ ancestor }) => console.log("reorganised above", ancestor));
 * ```
 */
export function createEventFeed(source: BlockSource, options: EventFeedOptions): EventFeed {
  const st = feedState(source, options);
  let again = false;
  const poll = () => {
    st.running ??= pollOnce(st)
      .catch(() => undefined) // unreachable node or a race with the chain: keep state, retry next tick
      .finally(() => {
        st.running = undefined;
        if (again && !st.stopped) {
          again = false;
          void poll();
        }
      });
    return st.running;
  };

  let lastTick = Number.NEGATIVE_INFINITY;
  const timer = setInterval(() => {
    const t = performance.now();
    if (options.relaxed?.live() && t - lastTick < options.relaxed.everyMs) return;
    lastTick = t;
    void poll();
  }, st.interval);
  timer.unref();
  void poll();

  return {
    get syncedBlock() {
      return st.syncedBlock;
    },
    get lastSyncedAt() {
      return st.lastSyncedAt;
    },
    confirmations: st.confirmations,
    onEvent(listener) {
      st.listeners.add(listener);
      return () => st.listeners.delete(listener);
    },
    onReorg(listener) {
      st.reorgListeners.add(listener);
      return () => st.reorgListeners.delete(listener);
    },
    poll,
    pollSoon() {
      if (st.running) again = true;
      else void poll();
    },
    stop() {
      st.stopped = true;
      clearInterval(timer);
    },
  };
}

/** A feed's settings and memory (see {@link createEventFeed}). */
interface FeedState {
  source: BlockSource;
  now: () => number;
  interval: number;
  maxSpan: number;
  confirmations: number;
  windowSize: number;
  listeners: Set<(event: RegistryEvent) => void>;
  reorgListeners: Set<(reorg: RegistryReorg) => void>;
  syncedBlock: number;
  lastSyncedAt: number;
  /** The delivered blocks the feed keeps (contiguous, oldest first, the last is `syncedBlock`). */
  window: (BlockHeader & { events: RegistryEvent[] })[];
  running: Promise<void> | undefined;
  stopped: boolean;
}

/** The options checked (misconfiguration is a TypeError), and the feed's empty memory. */
function feedState(source: BlockSource, options: EventFeedOptions): FeedState {
  checkCount("confirmations", options.confirmations, 0);
  checkCount("reorgWindowBlocks", options.reorgWindowBlocks, 1);
  checkCount("maxBlocksPerPoll", options.maxBlocksPerPoll, 1);
  const interval = options.pollingIntervalMs ?? 100;
  if (!Number.isFinite(interval) || interval <= 0)
    throw new TypeError("pollingIntervalMs must be a positive number");
  return {
    source,
    now: options.now,
    interval,
    maxSpan: options.maxBlocksPerPoll ?? 5_000,
    confirmations: options.confirmations ?? 0,
    windowSize: options.reorgWindowBlocks ?? 128,
    listeners: new Set(),
    reorgListeners: new Set(),
    syncedBlock: options.fromBlock,
    lastSyncedAt: Number.NEGATIVE_INFINITY,
    window: [],
    running: undefined,
    stopped: false,
  };
}

function reorganised(st: FeedState, ancestor: number | null, abandoned: RegistryEvent[]) {
  for (const listener of st.reorgListeners) listener({ ancestor, abandoned });
}

/** The node no longer has the last delivered block: find where the branches meet. */
async function rewind(st: FeedState, target: number): Promise<void> {
  const nodes = await Promise.all(st.window.map((b) => st.source.header(b.number)));
  let k = st.window.length - 1;
  while (k >= 0 && nodes[k]?.hash !== st.window[k]?.hash) k--;
  const kept = st.window[k];
  if (kept) {
    const abandoned = st.window.slice(k + 1).flatMap((b) => b.events);
    st.window = st.window.slice(0, k + 1);
    st.syncedBlock = kept.number;
    reorganised(st, kept.number, abandoned);
    return;
  }
  // deeper than the window: the listeners drop everything, so nothing older needs replaying
  const abandoned = st.window.flatMap((b) => b.events);
  st.window = [];
  st.syncedBlock = Math.max(0, Math.min(st.syncedBlock, target));
  reorganised(st, null, abandoned);
}

/** What one step of a poll did: the feed is at the target, or it should look again. */
type Step = "done" | "again" | "rewind";

/** One poll: from the last delivered block up to the node's head less the confirmations. */
async function pollOnce(st: FeedState): Promise<void> {
  const latest = await st.source.head();
  const target = latest.number - st.confirmations;
  /** A block's header as the node has it now (the latest block's is already at hand). */
  const header = (n: number) => (n === latest.number ? Promise.resolve(latest) : st.source.header(n));
  let rewinds = 0;
  while (!st.stopped) {
    const step = await pollStep(st, target, header);
    if (step === "done") break;
    if (step === "rewind") {
      if (++rewinds > 8) throw new RacedError("the chain keeps changing under the feed");
      await rewind(st, target);
    }
  }
  st.lastSyncedAt = st.now();
}

/** One step towards `target`: seed the window, check the tip, or deliver the next span of blocks. */
async function pollStep(
  st: FeedState,
  target: number,
  header: (n: number) => Promise<BlockHeader | null>,
): Promise<Step> {
  const tip = st.window.at(-1);
  if (!tip) {
    // start (or restart after a deep fork) from the node's block at `syncedBlock`
    const seed = await st.source.header(st.syncedBlock);
    if (!seed) {
      if (st.syncedBlock <= Math.max(target, 0))
        throw new RacedError("the node lacks a block below its head");
      return "rewind";
    }
    st.window = [{ ...seed, events: [] }];
    return "again";
  }
  if (st.syncedBlock >= target) {
    const now = await header(tip.number);
    return now?.hash === tip.hash ? "done" : "rewind";
  }
  return deliverSpan(st, tip, target, header);
}

/** Reads the blocks after `tip` (up to `maxSpan`), checks they chain onto it, and delivers their events. */
async function deliverSpan(
  st: FeedState,
  tip: BlockHeader,
  target: number,
  header: (n: number) => Promise<BlockHeader | null>,
): Promise<Step> {
  const from = st.syncedBlock + 1;
  const to = Math.min(target, st.syncedBlock + st.maxSpan);
  const first = Math.max(from, to - st.windowSize + 1);
  const numbers = first === from ? [] : [from];
  for (let n = first; n <= to; n++) numbers.push(n);
  const headers = await Promise.all(numbers.map(header));
  // the next block does not follow ours: ours was abandoned (or the node went back)
  if (headers[0]?.parentHash !== tip.hash) return "rewind";
  const kept = headers.slice(numbers.length - (to - first + 1));
  for (let j = 0; j < kept.length; j++) {
    if (!kept[j] || (j > 0 && kept[j]?.parentHash !== kept[j - 1]?.hash))
      throw new RacedError("blocks changed mid-poll");
  }
  const byNumber = new Map(kept.map((h) => [h?.number, h?.hash]));
  const found = await st.source.events(from, to);
  for (const { event, blockHash } of found) {
    const expected = byNumber.get(event.blockNumber);
    if (expected !== undefined && expected !== blockHash) throw new RacedError("events of another branch");
  }
  // every check passed: deliver, then remember the blocks
  for (const { event } of found) for (const listener of st.listeners) listener(event);
  const entries = (kept as BlockHeader[]).map((h) => ({
    ...h,
    events: found.filter((f) => f.event.blockNumber === h.number).map((f) => f.event),
  }));
  st.window = first === from ? [...st.window, ...entries] : entries;
  if (st.window.length > st.windowSize) st.window = st.window.slice(st.window.length - st.windowSize);
  st.syncedBlock = to;
  return "again";
}

/** The feed's view of a JSON-RPC node: `eth_getBlockByNumber` (headers only) and `eth_getLogs`. */
function rpcBlockSource(client: ChainClient): BlockSource {
  const { provider } = client;
  const address = registryAddresses(client);
  const hex = (n: number) => `0x${n.toString(16)}`;
  const rpc = async (method: string, params: unknown[]) => {
    if (!(provider instanceof JsonRpcApiProvider))
      throw new TypeError("the watcher needs a JSON-RPC provider");
    return provider.send(method, params);
  };
  async function blockAt(tag: string): Promise<BlockHeader | null> {
    const block = (await rpc("eth_getBlockByNumber", [tag, false])) as Record<string, unknown> | null;
    if (!block) return null;
    return { number: Number(block.number), hash: String(block.hash), parentHash: String(block.parentHash) };
  }
  return {
    async head() {
      const block = await blockAt("latest");
      if (!block) throw new Error("the node has no latest block");
      return block;
    },
    header: (number) => (number < 0 ? Promise.resolve(null) : blockAt(hex(number))),
    async events(from, to) {
      const logs = (await rpc("eth_getLogs", [
        { address, fromBlock: hex(from), toBlock: hex(to) },
      ])) as Record<string, unknown>[];
      const out: SourcedEvent[] = [];
      for (const log of logs) {
        const event = decodeRegistryLog(log);
        if (event) out.push({ event, blockHash: String(log.blockHash) });
      }
      return out;
    },
  };
}

/** A registry log (as `eth_getLogs` or a push gives it) decoded, or null for an event the registries do not have. */
function decodeRegistryLog(log: Record<string, unknown>): RegistryEvent | null {
  const i = kpartyInterfaces();
  const topics = log.topics;
  const data = log.data;
  if (!Array.isArray(topics) || typeof data !== "string") return null;
  for (const iface of [i.credentials, i.consortium, i.didRegistry]) {
    const parsed = iface.parseLog({ topics: topics as string[], data });
    if (parsed)
      return { name: parsed.name, args: parsed.args.toObject(), blockNumber: Number(log.blockNumber) };
  }
  return null;
}

/** The registries whose logs the watcher follows. */
const registryAddresses = (client: ChainClient) => [
  client.deployment.contracts.CredentialRegistry,
  client.deployment.contracts.ConsortiumRegistry,
  client.deployment.contracts.EthereumDIDRegistry,
];

/**
 * Follows the ConsortiumRegistry, CredentialRegistry and ERC-1056 (DID registry) logs by polling
 * the node every `pollingIntervalMs` (default 100), decoding every event and delivering it to
 * listeners in chain order. A failed poll changes nothing and is retried on the next tick, so
 * the watcher recovers by itself when the node comes back and then delivers what happened
 * meanwhile.
 *
 * Pushed, not only polled: with `pushUrl` (a `ws://` or `wss://` JSON-RPC URL; Hardhat's node
 * serves WebSocket on its HTTP port) the watcher also subscribes to the registries' logs
 * (`eth_subscribe`) and polls at once for each one pushed, so a revocation applies as soon as
 * the node pushes its log instead of at the next poll. The push only says when
 * to read: the events are still read and checked by the poll (the same reorg checks); before
 * that, `onHint` listeners get the pushed event to drop what they cache, or to deny what it
 * restricts until the poll has delivered its block (never to grant). While the
 * subscription is live the timer polls every `pushHeartbeatMs` (default 250), which keeps the
 * freshness clock (`lastSyncedAt`) well inside the gateway's bounds (with `confirmations` above
 * 0 it keeps polling every `pollingIntervalMs`: the block that confirms an event pushes no log
 * of its own); when the socket drops,
 * polling every `pollingIntervalMs` resumes at once and the socket is retried with a bounded
 * back-off. Staleness bounds and fail-closed behaviour are the same either way.
 *
 * Reorganisations: the watcher keeps the hashes of the last `reorgWindowBlocks` (default 128)
 * blocks it delivered. When the node's chain no longer contains them, it reports the fork to
 * `onReorg` listeners — the common ancestor and the abandoned events, or `ancestor: null` when
 * the fork is deeper than the window — and re-scans the new branch from the ancestor, so an
 * event that lands on the new branch is delivered even at a block number already passed.
 * With `confirmations: n` (default 0) a block's events are delivered only once `n` blocks are
 * on top of it (`syncedBlock` trails the head by `n`).
 *
 * @example
 * ```ts
 * const watcher = createRegistryWatcher(client, { now: Date.now, confirmations: 2, pushUrl: "ws://127.0.0.1:8545" });
 * watcher.onEvent((e) => { if (e.name === "CredentialRevoked") evict(e.args.issuer, e.args.index); });
 * watcher.onReorg(({ ancestor, abandoned }) => (ancestor === null ? evictAll() : abandoned.forEach(undo)));
 * ```
 */
export function createRegistryWatcher(
  client: ChainClient,
  options: {
    now: () => number;
    pollingIntervalMs?: number;
    fromBlock?: number;
    maxBlocksPerPoll?: number;
    confirmations?: number;
    reorgWindowBlocks?: number;
    pushUrl?: string;
    pushHeartbeatMs?: number;
  },
): RegistryWatcher {
  const { fromBlock, pushUrl, pushHeartbeatMs, ...rest } = options;
  const heartbeat = pushHeartbeatMs ?? 250;
  if (!Number.isFinite(heartbeat) || heartbeat <= 0)
    throw new TypeError("pushHeartbeatMs must be a positive number");
  let subscription: ReturnType<typeof subscribeLogs> | null = null;
  const hintListeners = new Set<(event: RegistryEvent) => void>();
  // with a confirmation depth a pushed event is not yet one the gateway acts on, even to evict
  const hint = (log: Record<string, unknown> | undefined) => {
    if (!log || log.removed === true || rest.confirmations) return;
    let event: RegistryEvent | null = null;
    try {
      event = decodeRegistryLog(log);
    } catch {
      return; // a pushed log that does not decode hints nothing; the poll reads the chain itself
    }
    if (event) for (const listener of hintListeners) listener(event);
  };
  const feed = createEventFeed(rpcBlockSource(client), {
    ...rest,
    fromBlock: fromBlock ?? client.deployment.deployedAtBlock,
    // with confirmations, the block that confirms an event pushes no log: keep polling for it
    ...(pushUrl && !rest.confirmations
      ? { relaxed: { live: () => subscription?.live ?? false, everyMs: heartbeat } }
      : {}),
  });
  if (!pushUrl) return feed;
  try {
    subscription = subscribeLogs({
      url: pushUrl,
      addresses: registryAddresses(client),
      onLog: (log) => {
        hint(log);
        feed.pollSoon();
      },
      onDown: () => feed.pollSoon(), // polling resumes on the timer; read once now
    });
  } catch (error) {
    feed.stop();
    throw error;
  }
  const sub = subscription;
  return {
    get syncedBlock() {
      return feed.syncedBlock;
    },
    get lastSyncedAt() {
      return feed.lastSyncedAt;
    },
    confirmations: feed.confirmations,
    onEvent: feed.onEvent,
    onReorg: feed.onReorg,
    poll: feed.poll,
    get pushed() {
      return sub.live;
    },
    onHint(listener) {
      hintListeners.add(listener);
      return () => hintListeners.delete(listener);
    },
    stop() {
      sub.close();
      feed.stop();
    },
  };
}
