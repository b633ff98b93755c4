import { randomBytes } from "node:crypto";
import { KPartyError } from "../errors/index.ts";

/** A challenge as both backends store it (times in ms; `usedAt` null while unused). */
export interface ChallengeRow {
  usedAt: number | null;
  expiresAt: number;
}

/** A challenge's lifetime in ms, checked (a lifetime that is not positive: `TypeError`). */
export function challengeTtlMs(ttlSeconds: number): number {
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new TypeError("challenge ttlSeconds must be positive");
  }
  return ttlSeconds * 1000;
}

/** A fresh challenge: 256 random bits, base64url. */
export const newChallenge = (): string => randomBytes(32).toString("base64url");

/**
 * Why the challenge stored as `row` (undefined: never issued here, or pruned) cannot be used
 * at `now`: `challenge_reused` once used, `challenge_invalid` when unknown or expired; null
 * when it can be. The one rule of both backends' `check` and `consume`.
 */
export function challengeRefusal(row: ChallengeRow | undefined, now: number): KPartyError | null {
  if (row?.usedAt != null) return new KPartyError("challenge_reused", "the challenge has already been used");
  if (!row) return new KPartyError("challenge_invalid", "the challenge was not issued by this gateway");
  if (row.expiresAt <= now) return new KPartyError("challenge_invalid", "the challenge has expired");
  return null;
}

/**
 * Why a `consume` whose conditional update changed no row failed, from the row read after it:
 * as {@link challengeRefusal}, and a row neither used nor expired by then counts as expired at
 * the update (its time was taken first).
 */
export function consumeRefusal(row: ChallengeRow | undefined, now: number): KPartyError {
  return challengeRefusal(row, now) ?? new KPartyError("challenge_invalid", "the challenge has expired");
}
