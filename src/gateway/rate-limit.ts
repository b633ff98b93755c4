import { KPartyError } from "../errors/index.ts";

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * Token buckets keyed by string (credential id, client address): `perMinute` requests a
 * minute with bursts up to `perMinute`. In memory, bounded to `maxKeys` buckets (the least
 * recently used are dropped first).
 */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  readonly #maxKeys: number;

  constructor(options: { now: () => number; maxKeys?: number }) {
    this.#now = options.now;
    this.#maxKeys = options.maxKeys ?? 100_000;
  }

  /** Takes one request from `key`'s bucket; throws `rate_limited` (with `details.retryAfterSeconds`) when empty. */
  take(key: string, perMinute: number, what: string): void {
    if (!Number.isFinite(perMinute) || perMinute <= 0) throw new TypeError("perMinute must be positive");
    const now = this.#now();
    const ratePerMs = perMinute / 60_000;
    const bucket = this.#buckets.get(key) ?? { tokens: perMinute, updatedAt: now };
    bucket.tokens = Math.min(perMinute, bucket.tokens + Math.max(0, now - bucket.updatedAt) * ratePerMs);
    bucket.updatedAt = now;
    if (bucket.tokens < 1) {
      this.#buckets.set(key, bucket);
      const retryAfterSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerMs / 1000));
      throw new KPartyError("rate_limited", `${what}: more than ${perMinute} requests a minute`, {
        details: { retryAfterSeconds },
      });
    }
    bucket.tokens -= 1;
    this.#buckets.delete(key); // re-insert: Map order doubles as least-recently-used order
    this.#buckets.set(key, bucket);
    if (this.#buckets.size > this.#maxKeys) this.#evict();
  }

  /** Drops the least recently used tenth (a dropped bucket restarts full). */
  #evict(): void {
    for (const key of this.#buckets.keys()) {
      if (this.#buckets.size <= this.#maxKeys * 0.9) return;
      this.#buckets.delete(key);
    }
  }
}
