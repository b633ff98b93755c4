import { KPartyError } from "../errors/index.ts";
import { LruCache } from "../util/lru.ts";

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * Token buckets keyed by string (credential id, client address): `perMinute` requests a
 * minute with bursts up to `perMinute`. In memory, bounded to `maxKeys` buckets (the least
 * recently used is dropped first, see `LruCache`).
 */
export class RateLimiter {
  readonly #buckets: LruCache<string, Bucket>;
  readonly #now: () => number;

  constructor(options: { now: () => number; maxKeys?: number }) {
    this.#now = options.now;
    this.#buckets = new LruCache({ maxEntries: options.maxKeys ?? 100_000 });
  }

  /** Buckets held (at most `maxKeys`). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one request from `key`'s bucket; throws `rate_limited` (with `details.retryAfterSeconds`) when empty. */
  take(key: string, perMinute: number, what: string): void {
    if (!Number.isFinite(perMinute) || perMinute <= 0) throw new TypeError("perMinute must be positive");
    const now = this.#now();
    const ratePerMs = perMinute / 60_000;
    const bucket = this.#buckets.get(key) ?? { tokens: perMinute, updatedAt: now };
    bucket.tokens = Math.min(perMinute, bucket.tokens + Math.max(0, now - bucket.updatedAt) * ratePerMs);
    bucket.updatedAt = now;
    this.#buckets.set(key, bucket); // the most recently used; a dropped bucket restarts full
    if (bucket.tokens < 1) {
      const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerMs / 1000));
      throw new KPartyError("rate_limited", `${what}: more than ${perMinute} requests a minute`, {
        details: { retryAfterSeconds },
      });
    }
    bucket.tokens -= 1;
  }
}
