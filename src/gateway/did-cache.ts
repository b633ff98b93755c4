import type { DIDResolutionResult } from "did-resolver";
import type { RegistryEvent, RegistryWatcher } from "../chain/index.ts";
import { parseDidEthr } from "../credential/index.ts";
import { ChangeClock, SegmentedCache } from "../util/lru.ts";
import type { DidResolver } from "./verify/verifier.ts";

const DID_EVENTS = new Set(["DIDOwnerChanged", "DIDDelegateChanged", "DIDAttributeChanged"]);

/** The ERC-1056 identity (lower-case address) a did:ethr URL is about, or null for other URLs. */
function identityOf(didUrl: string): string | null {
  try {
    return parseDidEthr(didUrl.split("?")[0]).account.toLowerCase();
  } catch {
    return null;
  }
}

/** The block of a `?versionId=N` DID URL, or null. */
function versionOf(didUrl: string): number | null {
  const match = /[?&]versionId=(\d+)(?:&|$)/.exec(didUrl);
  return match ? Number(match[1]) : null;
}

interface Entry {
  result: DIDResolutionResult;
  identity: string | null;
  versioned: boolean;
}

/** A DID resolver with its cache's two segments (see {@link createDidCache}). */
export interface DidCache extends DidResolver {
  /**
   * Resolution for input not yet authenticated (a credential or presentation whose signature
   * has not been verified): served from either segment, kept only in the small one.
   */
  readonly unauthenticated: DidResolver;
  /** Moves the document of `didUrl`, if kept for unauthenticated input, to the main segment. */
  promote(didUrl: string): void;
  /** Documents kept, in both segments. */
  readonly size: number;
  readonly sizes: { main: number; unauthenticated: number };
}

/**
 * Caches DID resolution for the verifier. A document as of a past block (`?versionId=N`) does
 * not change while that block stays on the chain, and is kept. A current document is kept
 * while the event feed is fresh, and dropped when the ERC-1056 registry reports a change for
 * its identity; a resolution that raced such a change is not kept. Failed resolutions are
 * never cached.
 *
 * Two segments, a {@link SegmentedCache} (least recently used out in each): the main one (`maxEntries`,
 * default 10,000) holds documents resolved for authenticated input; documents resolved for
 * input not yet authenticated (`unauthenticated`) go to a small one of their own
 * (`maxUnauthenticatedEntries`, default 1,000), and move to the main one when the verifier
 * `promote`s them. So forged credentials and presentations, however many, evict only each other.
 *
 * On a chain reorganisation every current document is dropped (the block a resolution saw is
 * not known, so none can be trusted to be on the new branch), with every document as of a block
 * above the common ancestor; a fork deeper than the event feed's window drops everything.
 * Resolutions under way when it happens are not kept.
 */
export function createDidCache(options: {
  resolver: DidResolver;
  watcher: RegistryWatcher;
  now: () => number;
  /** Current documents are served from the cache only while the event feed is this fresh (default 1000 ms). */
  maxStalenessMs?: number;
  maxEntries?: number;
  maxUnauthenticatedEntries?: number;
}): DidCache {
  const { resolver, watcher, now } = options;
  const maxStaleness = options.maxStalenessMs ?? 1_000;
  const entries = new SegmentedCache<string, Entry>({
    maxEntries: options.maxEntries ?? 10_000,
    maxUnauthenticatedEntries: options.maxUnauthenticatedEntries ?? 1_000,
  });
  /** The identities' last ERC-1056 events, so that a resolution that raced one is not kept. */
  const changes = new ChangeClock(10_000);
  /** Bumped by every reorganisation: a resolution that started before one is not kept. */
  let generation = 0;

  watcher.onReorg(({ ancestor }) => {
    generation++;
    entries.deleteWhere((key, entry) => {
      const version = entry.versioned ? versionOf(key) : null;
      return ancestor === null || version === null || version > ancestor;
    });
  });

  const evict = (e: RegistryEvent) => {
    if (!DID_EVENTS.has(e.name)) return;
    const identity = String(e.args.identity).toLowerCase();
    changes.touch(identity);
    entries.deleteWhere((_key, entry) => !entry.versioned && entry.identity === identity);
  };
  watcher.onEvent(evict);
  watcher.onHint?.(evict); // pushed: drop at once, before the poll delivers it

  const usable = (entry: Entry) => entry.versioned || now() - watcher.lastSyncedAt <= maxStaleness;

  async function resolveDid(didUrl: string, authenticated: boolean): Promise<DIDResolutionResult> {
    const hit = entries.get(didUrl, authenticated, usable);
    if (hit) return hit.result;
    const identity = identityOf(didUrl);
    const versioned = didUrl.includes("?versionId=");
    const since = changes.start();
    const started = generation;
    const result = await resolver.resolveDid({ didUrl });
    const ok = !result.didResolutionMetadata?.error && result.didDocument;
    const raced = identity !== null && changes.changedSince(identity, since);
    // a past block the feed has not delivered yet could still be abandoned unseen
    const settled = versioned && (versionOf(didUrl) ?? Number.POSITIVE_INFINITY) <= watcher.syncedBlock;
    if (ok && generation === started && (versioned ? settled : !raced)) {
      entries.set(didUrl, { result, identity, versioned }, authenticated);
    }
    return result;
  }

  return {
    resolveDid: ({ didUrl }) => resolveDid(didUrl, true),
    unauthenticated: { resolveDid: ({ didUrl }) => resolveDid(didUrl, false) },
    promote: (didUrl) => entries.promote(didUrl),
    get size() {
      return entries.size;
    },
    get sizes() {
      return entries.sizes;
    },
  };
}
