/** Most items one statement carries (the rest go in the next). */
const MAX_BATCH = 256;

/**
 * Gathers the calls made during one turn of the event loop into one statement: `run` gets
 * their items, in call order, and returns one result per item (same order). Under load many
 * requests reach the same step in one turn, so a step costs one round trip, one statement and
 * one commit for all of them instead of one each. A failed statement rejects every call of its
 * batch with its error; nothing else is retried.
 */
export function batched<I, O>(run: (items: I[]) => Promise<O[]>): (item: I) => Promise<O> {
  let pending: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const all = pending;
    pending = [];
    for (let i = 0; i < all.length; i += MAX_BATCH) {
      const batch = all.slice(i, i + MAX_BATCH);
      run(batch.map((p) => p.item)).then(
        (results) => {
          for (const [j, p] of batch.entries()) p.resolve(results[j] as O);
        },
        (error: unknown) => {
          for (const p of batch) p.reject(error);
        },
      );
    }
  };
  return (item) =>
    new Promise<O>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
}

/**
 * The first item for each key, sorted by key: batches that lock rows (on any replica) lock them
 * in one order, so two of them never wait for each other in a cycle.
 */
export function firstOfEach<I>(items: I[], key: (item: I) => string): I[] {
  const firsts = new Map<string, I>();
  for (const item of items) {
    const k = key(item);
    if (!firsts.has(k)) firsts.set(k, item);
  }
  return [...firsts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, item]) => item);
}

/** `won(item)` for the first item of each key, false for the ones after it (in call order). */
export function onlyFirstOfEach<I>(
  items: I[],
  key: (item: I) => string,
  won: (item: I) => boolean,
): boolean[] {
  const seen = new Set<string>();
  return items.map((item) => {
    const k = key(item);
    if (seen.has(k)) return false;
    seen.add(k);
    return won(item);
  });
}

/** A UTF-16 surrogate without its other half. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Whether PostgreSQL can store `text` as it is: no NUL character (which `text` refuses) and no
 * lone surrogate (which the driver turns into U+FFFD, so that two different values would be one
 * row, and a batch's upsert would touch that row twice and fail). One caller's unstorable value
 * must not fail the statement of the whole batch. Such a value is never in the database (a
 * challenge never issued here; a DPoP `jti` never recorded, so refused).
 */
export function storable(text: string): boolean {
  return !text.includes("\u0000") && !LONE_SURROGATE.test(text);
}
