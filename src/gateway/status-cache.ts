import {
  type ChainClient,
  type CredentialState,
  getCredentialState,
  type RegistryEvent,
  type RegistryReorg,
  type RegistryWatcher,
} from "../chain/index.ts";
import { ChangeClock, SegmentedCache } from "../util/lru.ts";
import { PushedDenials, restrictionOf, restrictState } from "./pushed-denials.ts";

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
 * Credential states for the access guard, cached and kept current by the registry's events:
 * a reinstatement of the issuer's index (or bits cleared in its word, for batches), the
 * issuer's anchor of the entry's key (anchors are per issuer: another member's anchor of the
 * same key touches only that member's entries), or the issuer's admission or key rotation
 * evicts the entries it touches; a restriction — a revocation or suspension of the issuer's
 * index, bits set in its word, the issuer's removal — is applied to the entries it touches in
 * place (what the chain says from the event's block on; the entry then counts as read at that
 * block), so the next request needs no read. A read that raced an event for its issuer is not cached.
 *
 * Reads are made at the watcher's confirmation depth (the block `confirmations` below the
 * head), and a state is kept only when it was read at a block the watcher has already
 * delivered, so every entry reflects a block whose hash the watcher checks. On a chain
 * reorganisation the entries the abandoned events touched and every entry read above the
 * common ancestor are dropped, and reads under way are not kept; a fork deeper than the
 * watcher's window drops every entry.
 *
 * Two segments, a {@link SegmentedCache} (least recently used out in each): the main one
 * (`maxEntries`) holds the states read for authenticated input (live access tokens, verified
 * credentials); states read for input not yet authenticated (`unauthenticated`: a credential
 * whose signature has not been verified yet) go to a small one (`maxUnauthenticatedEntries`)
 * and move to the main one when the verifier `promote`s them. So forged credentials, however
 * many, evict only each other. The per-issuer index of the entries, which events use, is
 * pruned with every entry that leaves either segment.
 *
 * Pushed events (the watcher's `onHint`, before any poll has read and checked them): one that
 * restricts — a revocation, a suspension, status bits set, a member's removal — is applied at
 * once as a denial on every state the cache answers with, cached or read (see
 * {@link PushedDenials}), until the watcher has delivered its block; the cached entries stay, so
 * the next request is refused without a read. Any other pushed event (one that may grant: a
 * reinstatement, an admission, bits cleared, an anchor) only drops the entries it touches: it
 * grants nothing until the poll has delivered it.
 */
export function createStatusCache(options: StatusCacheOptions) {
  const st = statusCacheState(options);
  options.watcher.onEvent((e) => delivered(st, e));
  options.watcher.onHint?.((e) => hinted(st, e));
  options.watcher.onReorg((reorg) => dropReorganised(st, reorg));
  return {
    /** Whether the watcher has synced within the staleness bound. */
    fresh(): boolean {
      return st.now() - st.watcher.lastSyncedAt <= st.maxStaleness;
    },

    /**
     * The credential's state: from the cache while the watcher is fresh and the entry young,
     * otherwise from the chain. An entry past `refreshAfterMs` is still served, and re-read in
     * the background. If the chain cannot be read, a cached state is still honoured within the
     * staleness bound (the cache's, or a tighter one per call); beyond it the read's
     * `registry_unavailable` is thrown. For authenticated input: what it reads goes to the main segment.
     */
    get: (key: StatusKey, bound: StalenessBound = {}) => get(st, key, bound, true),

    /** `get` for input not yet authenticated: what it reads is kept in the small segment only. */
    unauthenticated: {
      get: (key: StatusKey, bound: StalenessBound = {}) => get(st, key, bound, false),
    },

    /** Moves the state of `key`, if kept for unauthenticated input, to the main segment. */
    promote: (key: StatusKey): void => st.entries.promote(keyOf(key)),

    /** Entries kept, in both segments. */
    get size() {
      return st.entries.size;
    },

    get sizes() {
      let indexed = 0;
      for (const keys of st.byIssuer.values()) indexed += keys.size;
      return { ...st.entries.sizes, indexed, issuers: st.byIssuer.size };
    },
  };
}

export type StatusCache = ReturnType<typeof createStatusCache>;

/** A status cache's settings and memory (see {@link createStatusCache}). */
interface StatusCacheState {
  chain: ChainClient;
  watcher: RegistryWatcher;
  now: () => number;
  maxStaleness: number;
  maxAge: number;
  refreshAfter: number;
  entries: SegmentedCache<string, Entry>;
  /** The entries of each issuer (lower-case account → entry keys), in both segments. */
  byIssuer: Map<string, Set<string>>;
  /** The issuers' last events, so that a read that raced one is not kept. */
  changes: ChangeClock;
  /** Background re-reads under way, by entry. */
  refreshing: Set<string>;
  /** Bumped by every reorganisation: a read that started before one is not kept. */
  generation: number;
  /** Restrictions pushed by the node that the watcher has not delivered yet. */
  denials: PushedDenials;
}

function statusCacheState(options: StatusCacheOptions): StatusCacheState {
  const maxAge = options.maxEntryAgeMs ?? 30_000;
  const byIssuer = new Map<string, Set<string>>();
  // the index is pruned with every entry that leaves the cache, so it never outgrows it
  const unindex = (k: string, entry: Entry) => {
    const who = entry.key.issuer.toLowerCase();
    const keys = byIssuer.get(who);
    keys?.delete(k);
    if (keys?.size === 0) byIssuer.delete(who);
  };
  return {
    chain: options.chain,
    watcher: options.watcher,
    now: options.now,
    maxStaleness: options.maxStalenessMs ?? 5_000,
    maxAge,
    refreshAfter: options.refreshAfterMs ?? maxAge / 2,
    entries: new SegmentedCache<string, Entry>({
      maxEntries: options.maxEntries ?? 100_000,
      maxUnauthenticatedEntries: options.maxUnauthenticatedEntries ?? 1_000,
      onDelete: unindex,
    }),
    byIssuer,
    changes: new ChangeClock(10_000),
    refreshing: new Set(),
    generation: 0,
    denials: new PushedDenials(),
  };
}

const keyOf = (k: StatusKey) =>
  `${k.anchorKey.toLowerCase()}|${k.issuer.toLowerCase()}|${k.revocationIndex}|${k.suspensionIndex}`;

const touches = (index: number) => (k: StatusKey) =>
  k.revocationIndex === index || k.suspensionIndex === index;
const inWord = (word: bigint, bits: bigint) => (k: StatusKey) =>
  [k.revocationIndex, k.suspensionIndex].some(
    (i) => BigInt(i) >> 8n === word && ((bits >> (BigInt(i) & 255n)) & 1n) === 1n,
  );
const anchors = (anchorKey: unknown) => (k: StatusKey) =>
  k.anchorKey.toLowerCase() === String(anchorKey).toLowerCase();

/** The issuer an event is about and which of its entries it touches (all when `match` is absent); null for other events. */
function touchedBy(e: RegistryEvent): { issuer: string; match?: (key: StatusKey) => boolean } | null {
  const a = e.args;
  switch (e.name) {
    case "CredentialRevoked":
    case "CredentialSuspended":
    case "CredentialReinstated":
      return { issuer: String(a.issuer), match: touches(Number(a.index)) };
    case "StatusWordChanged":
      return { issuer: String(a.issuer), match: inWord(BigInt(a.word as bigint), BigInt(a.bits as bigint)) };
    case "CredentialAnchored":
      return { issuer: String(a.issuer), match: anchors(a.credentialId) };
    case "BatchAnchored":
      return { issuer: String(a.issuer), match: anchors(a.root) };
    case "MemberAdded":
    case "MemberRemoved":
      return { issuer: String(a.account) };
    case "MemberKeyRotated":
      return { issuer: String(a.member) };
    default:
      return null;
  }
}

/** Evicts the entries `e` touches (a delivered event, or an abandoned one on a reorganisation). */
function invalidate(st: StatusCacheState, e: RegistryEvent) {
  const touched = touchedBy(e);
  if (!touched) return;
  const who = touched.issuer.toLowerCase();
  st.changes.touch(who);
  for (const k of [...(st.byIssuer.get(who) ?? [])]) {
    const entry = st.entries.peek(k);
    if (!entry || !touched.match || touched.match(entry.key)) st.entries.delete(k);
  }
}

/** A delivered event: a restriction applied to the entries it touches, anything else evicts them. */
function delivered(st: StatusCacheState, e: RegistryEvent) {
  const r = restrictionOf(e);
  if (!r) return invalidate(st, e);
  st.changes.touch(r.issuer);
  for (const k of st.byIssuer.get(r.issuer) ?? []) {
    const entry = st.entries.peek(k);
    if (!entry) continue;
    const state = restrictState(r, entry.key, entry.state);
    // read at the event's block now: a reorganisation below it drops the entry
    if (state !== entry.state)
      entry.state = { ...state, blockNumber: Math.max(state.blockNumber, e.blockNumber) };
  }
}

/**
 * A pushed event: a restriction is applied as a denial until its block is delivered (a read
 * under way for the issuer is not kept); anything else drops what it touches, as a delivered
 * event of its kind does, and waits for the poll.
 */
function hinted(st: StatusCacheState, e: RegistryEvent) {
  const issuer = st.denials.record(e, st.watcher.syncedBlock);
  if (issuer) st.changes.touch(issuer);
  else invalidate(st, e);
}

function dropReorganised(st: StatusCacheState, { ancestor, abandoned }: RegistryReorg) {
  st.generation++;
  if (ancestor === null) {
    st.entries.clear();
    return;
  }
  for (const e of abandoned) invalidate(st, e);
  st.entries.deleteWhere((_k, entry) => entry.state.blockNumber > ancestor);
}

/** Puts a state in one segment (and in that one only), indexed by its issuer. */
function store(
  st: StatusCacheState,
  k: string,
  key: StatusKey,
  state: CredentialState,
  authenticated: boolean,
) {
  st.entries.set(k, { state, key, storedAt: st.now() }, authenticated);
  const who = key.issuer.toLowerCase();
  const keys = st.byIssuer.get(who);
  if (keys) keys.add(k);
  else st.byIssuer.set(who, new Set([k]));
}

/** Reads the state from the chain and keeps it, unless an event for its issuer came meanwhile. */
async function read(st: StatusCacheState, k: string, key: StatusKey, authenticated: boolean) {
  const who = key.issuer.toLowerCase();
  const since = st.changes.start();
  const started = st.generation;
  const state = await getCredentialState(st.chain, { ...key, confirmations: st.watcher.confirmations });
  const kept =
    !st.changes.changedSince(who, since) &&
    st.generation === started &&
    state.blockNumber <= st.watcher.syncedBlock;
  if (kept) store(st, k, key, state, authenticated);
  return state;
}

/** The state of `key` (see `createStatusCache().get`), with the pushed restrictions not yet delivered. */
async function get(
  st: StatusCacheState,
  key: StatusKey,
  bound: StalenessBound,
  authenticated: boolean,
): Promise<CredentialState> {
  const state = await lookup(st, key, bound, authenticated);
  return st.denials.apply(key, state, st.watcher.syncedBlock);
}

async function lookup(
  st: StatusCacheState,
  key: StatusKey,
  bound: StalenessBound,
  authenticated: boolean,
): Promise<CredentialState> {
  const k = keyOf(key);
  const entry = st.entries.get(k, authenticated);
  const fresh = st.now() - st.watcher.lastSyncedAt <= (bound.maxStalenessMs ?? st.maxStaleness);
  const age = entry ? st.now() - entry.storedAt : Number.POSITIVE_INFINITY;
  if (entry && fresh && age <= st.maxAge) {
    if (age > st.refreshAfter && !st.refreshing.has(k)) {
      st.refreshing.add(k);
      // a failed re-read changes nothing: the entry ages on, and past maxAge a request reads
      read(st, k, key, st.entries.authenticated(k))
        .catch(() => undefined)
        .finally(() => st.refreshing.delete(k));
    }
    return entry.state;
  }
  try {
    return await read(st, k, key, authenticated || st.entries.authenticated(k));
  } catch (error) {
    if (entry && fresh) return entry.state;
    throw error;
  }
}
