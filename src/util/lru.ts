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
 * Two {@link LruCache} segments for what is read on behalf of input: the main one for
 * authenticated input, a small one (`maxUnauthenticatedEntries`) for input not authenticated
 * yet, so that forged input, however much, evicts only its own kind. An entry is in one
 * segment at a time; an authenticated use or `promote` moves it to the main one.
 *
 * `onDelete` is called for an entry that leaves the cache (evicted from its segment, deleted,
 * cleared), not for one moving between the segments.
 *
 * @example
 * ```ts
 * const docs = new SegmentedCache<string, Doc>({ maxEntries: 10_000, maxUnauthenticatedEntries: 1_000 });
 * docs.set(url, doc, false); // read for a credential whose signature is not verified yet
 * docs.promote(url); // it verified
 * ```
 */
export class SegmentedCache<K, V> {
  readonly #main: LruCache<K, V>;
  readonly #probation: LruCache<K, V>;
  #moving = false;

  constructor(options: {
    maxEntries: number;
    maxUnauthenticatedEntries: number;
    onDelete?: (key: K, value: V) => void;
  }) {
    const onDelete = (key: K, value: V) => {
      if (!this.#moving) options.onDelete?.(key, value);
    };
    this.#main = new LruCache({ maxEntries: options.maxEntries, onDelete });
    this.#probation = new LruCache({ maxEntries: options.maxUnauthenticatedEntries, onDelete });
  }

  /**
   * The value of `key` if `usable` accepts it (main segment first): an authenticated use moves
   * it to (or up in) the main segment, an unauthenticated one up in its own.
   */
  get(key: K, authenticated: boolean, usable: (value: V) => boolean = () => true): V | undefined {
    const inMain = this.#main.peek(key);
    if (inMain !== undefined && usable(inMain)) {
      if (authenticated) this.#main.get(key);
      return inMain;
    }
    const inProbation = this.#probation.peek(key);
    if (inProbation === undefined || !usable(inProbation)) return undefined;
    if (authenticated) this.set(key, inProbation, true);
    else this.#probation.get(key);
    return inProbation;
  }

  /** The value of `key` in either segment, without counting it as a use. */
  peek(key: K): V | undefined {
    return this.#main.peek(key) ?? this.#probation.peek(key);
  }

  /** Whether `key` is in the main segment (was read for, or used by, authenticated input). */
  authenticated(key: K): boolean {
    return this.#main.has(key);
  }

  /** Stores `value` under `key` in one segment (and in that one only), as its most recently used. */
  set(key: K, value: V, authenticated: boolean): this {
    const [into, other] = authenticated ? [this.#main, this.#probation] : [this.#probation, this.#main];
    this.#moving = true;
    try {
      other.delete(key);
    } finally {
      this.#moving = false;
    }
    into.set(key, value);
    return this;
  }

  /** Moves `key`, if kept for unauthenticated input, to the main segment. */
  promote(key: K): void {
    const value = this.#probation.peek(key);
    if (value !== undefined) this.set(key, value, true);
  }

  delete(key: K): boolean {
    const inMain = this.#main.delete(key);
    return this.#probation.delete(key) || inMain;
  }

  /** Removes every entry, in both segments, for which `match` holds; how many. */
  deleteWhere(match: (key: K, value: V) => boolean): number {
    return this.#main.deleteWhere(match) + this.#probation.deleteWhere(match);
  }

  clear(): void {
    this.#main.clear();
    this.#probation.clear();
  }

  /** Entries kept, in both segments. */
  get size(): number {
    return this.#main.size + this.#probation.size;
  }

  get sizes(): { main: number; unauthenticated: number } {
    return { main: this.#main.size, unauthenticated: this.#probation.size };
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
