import type { DIDResolutionResult } from "did-resolver";
import type { RegistryWatcher } from "../chain/index.ts";
import { parseDidEthr } from "../credential/index.ts";
import { ChangeClock, LruCache } from "../util/lru.ts";
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
 * Two segments, each an {@link LruCache} (least recently used out): the main one (`maxEntries`,
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
  const main = new LruCache<string, Entry>({ maxEntries: options.maxEntries ?? 10_000 });
  const probation = new LruCache<string, Entry>({
    maxEntries: options.maxUnauthenticatedEntries ?? 1_000,
  });
  const segments = [main, probation];
  /** The identities' last ERC-1056 events, so that a resolution that raced one is not kept. */
  const changes = new ChangeClock(10_000);
  /** Bumped by every reorganisation: a resolution that started before one is not kept. */
  let generation = 0;

  watcher.onReorg(({ ancestor }) => {
    generation++;
    for (const segment of segments) {
      segment.deleteWhere((key, entry) => {
        const version = entry.versioned ? versionOf(key) : null;
        return ancestor === null || version === null || version > ancestor;
      });
    }
  });

  watcher.onEvent((e) => {
    if (!DID_EVENTS.has(e.name)) return;
    const identity = String(e.args.identity).toLowerCase();
    changes.touch(identity);
    for (const segment of segments) {
      segment.deleteWhere((_key, entry) => !entry.versioned && entry.identity === identity);
    }
  });

  const usable = (entry: Entry | undefined): entry is Entry =>
    entry !== undefined && (entry.versioned || now() - watcher.lastSyncedAt <= maxStaleness);

  /** A usable cached document: an authenticated use moves it to (or up in) the main segment. */
  function cached(didUrl: string, authenticated: boolean): DIDResolutionResult | undefined {
    const inMain = main.peek(didUrl);
    if (usable(inMain)) {
      if (authenticated) main.get(didUrl);
      return inMain.result;
    }
    const inProbation = probation.peek(didUrl);
    if (!usable(inProbation)) return undefined;
    if (authenticated) keep(didUrl, inProbation, true);
    else probation.get(didUrl);
    return inProbation.result;
  }

  /** Keeps `entry` in one segment (and in that one only). */
  function keep(didUrl: string, entry: Entry, authenticated: boolean) {
    const [into, other] = authenticated ? [main, probation] : [probation, main];
    other.delete(didUrl);
    into.set(didUrl, entry);
  }

  async function resolveDid(didUrl: string, authenticated: boolean): Promise<DIDResolutionResult> {
    const hit = cached(didUrl, authenticated);
    if (hit) return hit;
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
      keep(didUrl, { result, identity, versioned }, authenticated);
    }
    return result;
  }

  return {
    resolveDid: ({ didUrl }) => resolveDid(didUrl, true),
    unauthenticated: { resolveDid: ({ didUrl }) => resolveDid(didUrl, false) },
    promote(didUrl) {
      const entry = probation.peek(didUrl);
      if (entry) keep(didUrl, entry, true);
    },
    get size() {
      return main.size + probation.size;
    },
    get sizes() {
      return { main: main.size, unauthenticated: probation.size };
    },
  };
}
