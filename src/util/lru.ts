/**
 * A map bounded to `maxEntries`, least recently used out: inserting a new key into a full cache
 * first removes the entry used longest ago. `get` and `set` count as uses; `peek`, `has` and
 * iteration do not. The one bounded cache of the gateway (DID documents, credential states,
 * verified credentials, rate-limit buckets, signature keys).
 *
 * `onDelete` is called for every entry that leaves the cache — evicted, deleted, cleared —
 * (not when `set` replaces the value of a key that stays): an index kept beside the cache is
 * pruned there, so it can never outgrow the cache.
 *
 * @example
 * ```ts
 * const byIssuer = new Map<string, Set<string>>();
 * const states = new LruCache<string, State>({
 *   maxEntries: 10_000,
 *   onDelete: (key, state) => byIssuer.get(state.issuer)?.delete(key),
 * });
 * states.set(key, state);
 * states.get(key); // now the most recently used
 * ```
 */
export class LruCache<K, V> {
  // a Map iterates in insertion order: re-inserting a key on use keeps it least recently used first
  readonly #entries = new Map<K, V>();
  readonly #onDelete: ((key: K, value: V) => void) | undefined;
  readonly maxEntries: number;

  constructor(options: { maxEntries: number; onDelete?: (key: K, value: V) => void }) {
    if (!Number.isSafeInteger(options?.maxEntries) || options.maxEntries < 1) {
      throw new TypeError("maxEntries must be a positive integer");
    }
    this.maxEntries = options.maxEntries;
    this.#onDelete = options.onDelete;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value of `key`, which becomes the most recently used. */
  get(key: K): V | undefined {
    if (!this.#entries.has(key)) return undefined;
    const value = this.#entries.get(key) as V;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  /** The value of `key`, without counting it as a use. */
  peek(key: K): V | undefined {
    return this.#entries.get(key);
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** Stores `value` under `key` as the most recently used, removing the least recently used past the bound. */
  set(key: K, value: V): this {
    if (this.#entries.has(key)) {
      this.#entries.delete(key);
    } else if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next().value as K;
      this.delete(oldest);
    }
    this.#entries.set(key, value);
    return this;
  }

  /** Removes `key`; whether it was there. */
  delete(key: K): boolean {
    if (!this.#entries.has(key)) return false;
    const value = this.#entries.get(key) as V;
    this.#entries.delete(key);
    this.#onDelete?.(key, value);
    return true;
  }

  /** Removes every entry for which `match` holds; how many. */
  deleteWhere(match: (key: K, value: V) => boolean): number {
    let removed = 0;
    for (const [key, value] of [...this.#entries]) {
      if (match(key, value) && this.delete(key)) removed++;
    }
    return removed;
  }

  clear(): void {
    for (const key of [...this.#entries.keys()]) this.delete(key);
  }

  /** Entries, least recently used first (not a use). */
  entries(): IterableIterator<[K, V]> {
    return this.#entries.entries();
  }

  /** Keys, least recently used first (not a use). */
  keys(): IterableIterator<K> {
    return this.#entries.keys();
  }
}

/**
 * Tells whether something changed while a read was under way, per key, in bounded memory: a
 * read notes `start()`, events `touch(key)`, and `changedSince(key, start)` answers. The last
 * change of at most `maxKeys` keys is remembered (least recently changed out); a key whose
 * change was forgotten answers with the latest forgotten change, so a forgotten change can make
 * a read look raced, never the reverse.
 *
 * @example
 * ```ts
 * const changes = new ChangeClock(10_000);
 * const started = changes.start();
 * const doc = await resolve(did);
 * if (!changes.changedSince(identity, started)) cache.set(did, doc);
 * ```
 */
export class ChangeClock {
  #now = 0;
  #forgotten = 0;
  readonly #last: LruCache<string, number>;

  constructor(maxKeys: number) {
    this.#last = new LruCache({
      maxEntries: maxKeys,
      onDelete: (_key, at) => {
        this.#forgotten = Math.max(this.#forgotten, at);
      },
    });
  }

  /** Keys whose last change is remembered (at most `maxKeys`). */
  get size(): number {
    return this.#last.size;
  }

  start(): number {
    return this.#now;
  }

  touch(key: string): void {
    this.#now += 1;
    this.#last.set(key, this.#now);
  }

  changedSince(key: string, start: number): boolean {
    return (this.#last.peek(key) ?? this.#forgotten) > start;
  }
}
