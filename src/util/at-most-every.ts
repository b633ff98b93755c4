/**
 * A gate that opens at most once per `intervalMs`, by the times it is asked with (the caller's
 * clock): for work done on the way, such as pruning expired rows, that must not run on every
 * request. The first call opens it (unless the clock reads less than `intervalMs`).
 *
 * @example
 * ```ts
 * const pruneDue = atMostEvery(1_000);
 * if (pruneDue(now)) prune.run(now);
 * ```
 */
export function atMostEvery(intervalMs: number): (now: number) => boolean {
  let openedAt = 0;
  return (now) => {
    if (now - openedAt < intervalMs) return false;
    openedAt = now;
    return true;
  };
}
