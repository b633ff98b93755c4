import type { DIDResolutionResult } from "did-resolver";
import type { RegistryWatcher } from "../chain/index.ts";
import { parseDidEthr } from "../credential/index.ts";
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

/**
 * Caches DID resolution for the verifier. A document as of a past block (`?versionId=N`) does
 * not change while that block stays on the chain, and is kept (least recently used first out).
 * A current document is kept while the event feed is fresh, and dropped when the ERC-1056
 * registry reports a change for its identity; a resolution that raced such a change is not
 * kept. Failed resolutions are never cached.
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
}): DidResolver & { readonly size: number } {
  const { resolver, watcher, now } = options;
  const maxStaleness = options.maxStalenessMs ?? 1_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const entries = new Map<
    string,
    { result: DIDResolutionResult; identity: string | null; versioned: boolean }
  >();
  const epochs = new Map<string, number>();
  /** Bumped by every reorganisation: a resolution that started before one is not kept. */
  let generation = 0;

  watcher.onReorg(({ ancestor }) => {
    generation++;
    for (const [key, entry] of entries) {
      const version = entry.versioned ? versionOf(key) : null;
      if (ancestor === null || version === null || version > ancestor) entries.delete(key);
    }
  });

  watcher.onEvent((e) => {
    if (!DID_EVENTS.has(e.name)) return;
    const identity = String(e.args.identity).toLowerCase();
    epochs.set(identity, (epochs.get(identity) ?? 0) + 1);
    for (const [key, entry] of entries) {
      if (!entry.versioned && entry.identity === identity) entries.delete(key);
    }
  });

  return {
    async resolveDid({ didUrl }) {
      const hit = entries.get(didUrl);
      if (hit && (hit.versioned || now() - watcher.lastSyncedAt <= maxStaleness)) {
        entries.delete(didUrl); // move to the most recently used end
        entries.set(didUrl, hit);
        return hit.result;
      }
      const identity = identityOf(didUrl);
      const versioned = didUrl.includes("?versionId=");
      const epoch = identity ? (epochs.get(identity) ?? 0) : 0;
      const started = generation;
      const result = await resolver.resolveDid({ didUrl });
      const ok = !result.didResolutionMetadata?.error && result.didDocument;
      const raced = identity !== null && (epochs.get(identity) ?? 0) !== epoch;
      // a past block the feed has not delivered yet could still be abandoned unseen
      const settled = versioned && (versionOf(didUrl) ?? Number.POSITIVE_INFINITY) <= watcher.syncedBlock;
      if (ok && generation === started && (versioned ? settled : !raced)) {
        if (entries.size >= maxEntries) entries.delete(entries.keys().next().value as string);
        entries.set(didUrl, { result, identity, versioned });
      }
      return result;
    },
    get size() {
      return entries.size;
    },
  };
}
