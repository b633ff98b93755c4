import {
  type ChainClient,
  type CredentialState,
  getCredentialState,
  type RegistryEvent,
  type RegistryWatcher,
} from "../chain/index.ts";
import { ChangeClock, LruCache } from "../util/lru.ts";

/** What identifies a credential's on-chain state: its anchor key, its issuer's account and its indexes. */
export interface StatusKey {
  anchorKey: string;
  issuer: string;
  revocationIndex: number;
  suspensionIndex: number;
}

export interface StatusCacheOptions {
  chain: ChainClient;
  watcher: RegistryWatcher;
  now: () => number;
  /**
   * Cached states are used only while the watcher has synced within this bound (default
   * 5000 ms). With the chain unreachable, live tokens are honoured up to this bound, then refused.
   */
  maxStalenessMs?: number;
  /**
   * An entry is re-read after this age even without an event, in case one was missed (default
   * 30 s): the request that finds it older waits for the read.
   */
  maxEntryAgeMs?: number;
  /**
   * A request that finds an entry older than this (default half of `maxEntryAgeMs`), but not
   * older than `maxEntryAgeMs`, is answered from the entry and starts a re-read in the
   * background (one per entry at a time), so that a credential in steady use is re-read off
   * the requests' path.
   */
  refreshAfterMs?: number;
  /** Entries kept for authenticated input (default 100,000). */
  maxEntries?: number;
  /** Entries kept for input not yet authenticated, in a segment of their own (default 1,000). */
  maxUnauthenticatedEntries?: number;
}

/** The bound a caller may tighten per read (see `get`). */
export interface StalenessBound {
  maxStalenessMs?: number;
}

interface Entry {
  state: CredentialState;
  key: StatusKey;
  storedAt: number;
}

/**
 * Credential states for the access guard, cached and invalidated by the registry's events:
 * a revocation, suspension or reinstatement of the issuer's index (or its word, for batches),
 * the issuer's anchor of the entry's key (anchors are per issuer: another member's anchor of
 * the same key touches only that member's entries), or the issuer's admission, removal or key
 * rotation evicts the entries it touches. A read that raced an event for its issuer is not cached.
 *
 * Reads are made at the watcher's confirmation depth (the block `confirmations` below the
 * head), and a state is kept only when it was read at a block the watcher has already
 * delivered, so every entry reflects a block whose hash the watcher checks. On a chain
 * reorganisation the entries the abandoned events touched and every entry read above the
 * common ancestor are dropped, and reads under way are not kept; a fork deeper than the
 * watcher's window drops every entry.
 *
 * Two segments, each an {@link LruCache} (least recently used out): the main one
 * (`maxEntries`) holds the states read for authenticated input (live access tokens, verified
 * credentials); states read for input not yet authenticated (`unauthenticated`: a credential
 * whose signature has not been verified yet) go to a small one (`maxUnauthenticatedEntries`)
 * and move to the main one when the verifier `promote`s them. So forged credentials, however
 * many, evict only each other. The per-issuer index of the entries, which events use, is
 * pruned with every entry that leaves either segment.
 */
export function createStatusCache(options: StatusCacheOptions) {
  const { chain, watcher, now } = options;
  const maxStaleness = options.maxStalenessMs ?? 5_000;
  const maxAge = options.maxEntryAgeMs ?? 30_000;
  const refreshAfter = options.refreshAfterMs ?? maxAge / 2;
  /** The entries of each issuer (lower-case account → entry keys), in both segments. */
  const byIssuer = new Map<string, Set<string>>();
  const unindex = (k: string, entry: Entry) => {
    const who = entry.key.issuer.toLowerCase();
    const keys = byIssuer.get(who);
    keys?.delete(k);
    if (keys?.size === 0) byIssuer.delete(who);
  };
  const main = new LruCache<string, Entry>({ maxEntries: options.maxEntries ?? 100_000, onDelete: unindex });
  const probation = new LruCache<string, Entry>({
    maxEntries: options.maxUnauthenticatedEntries ?? 1_000,
    onDelete: unindex,
  });
  const segments = [main, probation];
  /** The issuers' last events, so that a read that raced one is not kept. */
  const changes = new ChangeClock(10_000);
  /** Background re-reads under way, by entry. */
  const refreshing = new Set<string>();
  /** Bumped by every reorganisation: a read that started before one is not kept. */
  let generation = 0;

  const keyOf = (k: StatusKey) =>
    `${k.anchorKey.toLowerCase()}|${k.issuer.toLowerCase()}|${k.revocationIndex}|${k.suspensionIndex}`;

  const remove = (k: string) => {
    for (const segment of segments) segment.delete(k);
  };

  function evict(issuer: string, match: (key: StatusKey) => boolean = () => true) {
    const who = issuer.toLowerCase();
    changes.touch(who);
    for (const k of [...(byIssuer.get(who) ?? [])]) {
      const entry = main.peek(k) ?? probation.peek(k);
      if (!entry || match(entry.key)) remove(k);
    }
  }

  const touches = (index: number) => (k: StatusKey) =>
    k.revocationIndex === index || k.suspensionIndex === index;
  const inWord = (word: bigint, bits: bigint) => (k: StatusKey) =>
    [k.revocationIndex, k.suspensionIndex].some(
      (i) => BigInt(i) >> 8n === word && ((bits >> (BigInt(i) & 255n)) & 1n) === 1n,
    );

  /** Evicts the entries `e` touches (a delivered event, or an abandoned one on a reorganisation). */
  function invalidate(e: RegistryEvent) {
    const a = e.args;
    switch (e.name) {
      case "CredentialRevoked":
      case "CredentialSuspended":
      case "CredentialReinstated":
        evict(String(a.issuer), touches(Number(a.index)));
        break;
      case "StatusWordChanged":
        evict(String(a.issuer), inWord(BigInt(a.word as bigint), BigInt(a.bits as bigint)));
        break;
      case "CredentialAnchored":
        evict(String(a.issuer), (k) => k.anchorKey.toLowerCase() === String(a.credentialId).toLowerCase());
        break;
      case "BatchAnchored":
        evict(String(a.issuer), (k) => k.anchorKey.toLowerCase() === String(a.root).toLowerCase());
        break;
      case "MemberAdded":
      case "MemberRemoved":
        evict(String(a.account));
        break;
      case "MemberKeyRotated":
        evict(String(a.member));
        break;
    }
  }

  watcher.onEvent(invalidate);
  watcher.onReorg(({ ancestor, abandoned }) => {
    generation++;
    if (ancestor === null) {
      for (const segment of segments) segment.clear();
      return;
    }
    for (const e of abandoned) invalidate(e);
    for (const segment of segments) segment.deleteWhere((_k, entry) => entry.state.blockNumber > ancestor);
  });

  /** Puts `entry` in one segment (and in that one only), indexed by its issuer. */
  function place(k: string, entry: Entry, authenticated: boolean) {
    const [into, other] = authenticated ? [main, probation] : [probation, main];
    other.delete(k);
    into.set(k, entry);
    const who = entry.key.issuer.toLowerCase();
    const keys = byIssuer.get(who);
    if (keys) keys.add(k);
    else byIssuer.set(who, new Set([k]));
  }

  const store = (k: string, key: StatusKey, state: CredentialState, authenticated: boolean) =>
    place(k, { state, key, storedAt: now() }, authenticated);

  /** Reads the state from the chain and keeps it, unless an event for its issuer came meanwhile. */
  async function read(k: string, key: StatusKey, authenticated: boolean): Promise<CredentialState> {
    const who = key.issuer.toLowerCase();
    const since = changes.start();
    const started = generation;
    const state = await getCredentialState(chain, {
      anchorKey: key.anchorKey,
      issuer: key.issuer,
      revocationIndex: key.revocationIndex,
      suspensionIndex: key.suspensionIndex,
      confirmations: watcher.confirmations,
    });
    const kept =
      !changes.changedSince(who, since) && generation === started && state.blockNumber <= watcher.syncedBlock;
    if (kept) store(k, key, state, authenticated);
    return state;
  }

  /** The entry of `k`: an authenticated use moves it to (or up in) the main segment. */
  function cached(k: string, authenticated: boolean): Entry | undefined {
    const inMain = main.peek(k);
    if (inMain) {
      if (authenticated) main.get(k);
      return inMain;
    }
    const inProbation = probation.peek(k);
    if (inProbation && authenticated) place(k, inProbation, true);
    else if (inProbation) probation.get(k);
    return inProbation;
  }

  async function get(
    key: StatusKey,
    bound: StalenessBound,
    authenticated: boolean,
  ): Promise<CredentialState> {
    const k = keyOf(key);
    const entry = cached(k, authenticated);
    const fresh = now() - watcher.lastSyncedAt <= (bound.maxStalenessMs ?? maxStaleness);
    const age = entry ? now() - entry.storedAt : Number.POSITIVE_INFINITY;
    if (entry && fresh && age <= maxAge) {
      if (age > refreshAfter && !refreshing.has(k)) {
        refreshing.add(k);
        // a failed re-read changes nothing: the entry ages on, and past maxAge a request reads
        read(k, key, main.has(k))
          .catch(() => undefined)
          .finally(() => refreshing.delete(k));
      }
      return entry.state;
    }
    try {
      return await read(k, key, authenticated || main.has(k));
    } catch (error) {
      if (entry && fresh) return entry.state;
      throw error;
    }
  }

  return {
    /** Whether the watcher has synced within the staleness bound. */
    fresh(): boolean {
      return now() - watcher.lastSyncedAt <= maxStaleness;
    },

    /**
     * The credential's state: from the cache while the watcher is fresh and the entry young,
     * otherwise from the chain. An entry past `refreshAfterMs` is still served, and re-read in
     * the background. If the chain cannot be read, a cached state is still honoured within the
     * staleness bound (the cache's, or a tighter one per call); beyond it the read's
     * `registry_unavailable` is thrown. For authenticated input: what it reads goes to the main segment.
     */
    get: (key: StatusKey, bound: StalenessBound = {}) => get(key, bound, true),

    /** `get` for input not yet authenticated: what it reads is kept in the small segment only. */
    unauthenticated: {
      get: (key: StatusKey, bound: StalenessBound = {}) => get(key, bound, false),
    },

    /** Moves the state of `key`, if kept for unauthenticated input, to the main segment. */
    promote(key: StatusKey): void {
      const k = keyOf(key);
      const entry = probation.peek(k);
      if (entry) place(k, entry, true);
    },

    /** Entries kept, in both segments. */
    get size() {
      return main.size + probation.size;
    },

    get sizes() {
      let indexed = 0;
      for (const keys of byIssuer.values()) indexed += keys.size;
      return { main: main.size, unauthenticated: probation.size, indexed, issuers: byIssuer.size };
    },
  };
}

export type StatusCache = ReturnType<typeof createStatusCache>;
