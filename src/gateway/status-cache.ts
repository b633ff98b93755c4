import {
  type ChainClient,
  type CredentialState,
  getCredentialState,
  type RegistryEvent,
  type RegistryWatcher,
} from "../chain/index.ts";

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
  maxEntries?: number;
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
 * rotation evicts the entries it touches. A per-issuer epoch keeps a read that raced an event from being cached.
 *
 * Reads are made at the watcher's confirmation depth (the block `confirmations` below the
 * head), and a state is kept only when it was read at a block the watcher has already
 * delivered, so every entry reflects a block whose hash the watcher checks. On a chain
 * reorganisation the entries the abandoned events touched and every entry read above the
 * common ancestor are dropped, and reads under way are not kept; a fork deeper than the
 * watcher's window drops every entry.
 */
export function createStatusCache(options: StatusCacheOptions) {
  const { chain, watcher, now } = options;
  const maxStaleness = options.maxStalenessMs ?? 5_000;
  const maxAge = options.maxEntryAgeMs ?? 30_000;
  const refreshAfter = options.refreshAfterMs ?? maxAge / 2;
  const maxEntries = options.maxEntries ?? 100_000;
  const entries = new Map<string, Entry>();
  const byIssuer = new Map<string, Set<string>>();
  const epochs = new Map<string, number>();
  /** Background re-reads under way, by entry. */
  const refreshing = new Set<string>();
  /** Bumped by every reorganisation: a read that started before one is not kept. */
  let generation = 0;

  const keyOf = (k: StatusKey) =>
    `${k.anchorKey.toLowerCase()}|${k.issuer.toLowerCase()}|${k.revocationIndex}|${k.suspensionIndex}`;

  function evict(issuer: string, match: (key: StatusKey) => boolean = () => true) {
    const who = issuer.toLowerCase();
    epochs.set(who, (epochs.get(who) ?? 0) + 1);
    const keys = byIssuer.get(who);
    if (!keys) return;
    for (const k of keys) {
      const entry = entries.get(k);
      if (!entry || match(entry.key)) {
        entries.delete(k);
        keys.delete(k);
      }
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
      entries.clear();
      byIssuer.clear();
      return;
    }
    for (const e of abandoned) invalidate(e);
    for (const [k, entry] of entries) {
      if (entry.state.blockNumber > ancestor) {
        entries.delete(k);
        byIssuer.get(entry.key.issuer.toLowerCase())?.delete(k);
      }
    }
  });

  function store(k: string, key: StatusKey, state: CredentialState) {
    if (entries.size >= maxEntries) {
      const oldest = entries.keys().next().value as string;
      entries.delete(oldest);
    }
    entries.set(k, { state, key, storedAt: now() });
    const who = key.issuer.toLowerCase();
    let set = byIssuer.get(who);
    if (!set) {
      set = new Set();
      byIssuer.set(who, set);
    }
    set.add(k);
  }

  /** Reads the state from the chain and keeps it, unless an event for its issuer came meanwhile. */
  async function read(k: string, key: StatusKey): Promise<CredentialState> {
    const who = key.issuer.toLowerCase();
    const epoch = epochs.get(who) ?? 0;
    const started = generation;
    const state = await getCredentialState(chain, {
      credentialId: key.anchorKey,
      issuer: key.issuer,
      revocationIndex: key.revocationIndex,
      suspensionIndex: key.suspensionIndex,
      confirmations: watcher.confirmations,
    });
    const kept =
      (epochs.get(who) ?? 0) === epoch && generation === started && state.blockNumber <= watcher.syncedBlock;
    if (kept) store(k, key, state);
    return state;
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
     * `registry_unavailable` is thrown.
     */
    async get(key: StatusKey, bound: { maxStalenessMs?: number } = {}): Promise<CredentialState> {
      const k = keyOf(key);
      const entry = entries.get(k);
      const fresh = now() - watcher.lastSyncedAt <= (bound.maxStalenessMs ?? maxStaleness);
      const age = entry ? now() - entry.storedAt : Number.POSITIVE_INFINITY;
      if (entry && fresh && age <= maxAge) {
        if (age > refreshAfter && !refreshing.has(k)) {
          refreshing.add(k);
          // a failed re-read changes nothing: the entry ages on, and past maxAge a request reads
          read(k, key)
            .catch(() => undefined)
            .finally(() => refreshing.delete(k));
        }
        return entry.state;
      }
      try {
        return await read(k, key);
      } catch (error) {
        if (entry && fresh) return entry.state;
        throw error;
      }
    },

    get size() {
      return entries.size;
    },
  };
}

export type StatusCache = ReturnType<typeof createStatusCache>;
