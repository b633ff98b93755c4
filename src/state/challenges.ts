import { randomBytes } from "node:crypto";
import { KPartyError } from "../errors/index.ts";
import type { Oid4vpTransaction } from "./port.ts";

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

/**
 * Why an OID4VP response with `nonce` cannot answer the transaction `t` (undefined: its `state`
 * names none) at `now`: `challenge_invalid` for an unknown request, another nonce or an expired
 * request, `challenge_reused` once answered; null when it can. Both backends' `checkNonce`.
 */
export function nonceRefusal(
  t: Pick<Oid4vpTransaction, "nonce" | "respondedAt" | "expiresAt"> | undefined,
  nonce: string,
  now: number,
): KPartyError | null {
  if (!t) return new KPartyError("challenge_invalid", "state names no authorization request of this gateway");
  if (t.nonce !== nonce)
    return new KPartyError("challenge_invalid", "the presentation's nonce is not the one of this request");
  if (t.respondedAt !== null)
    return new KPartyError("challenge_reused", "this authorization request has already been answered");
  if (t.expiresAt <= now)
    return new KPartyError("challenge_invalid", "the authorization request has expired");
  return null;
}

/**
 * Why a `consumeNonce` whose conditional update changed no row failed: as {@link nonceRefusal}
 * on the transaction read after it, and one that passes by then was answered meanwhile.
 */
export function consumeNonceRefusal(
  t: Pick<Oid4vpTransaction, "nonce" | "respondedAt" | "expiresAt"> | undefined,
  nonce: string,
  now: number,
): KPartyError {
  return (
    nonceRefusal(t, nonce, now) ??
    new KPartyError("challenge_reused", "this authorization request has already been answered")
  );
}

/**
 * An OID4VP transaction as both backends' tables hold it (snake_case columns; PostgreSQL's
 * `bigint` times arrive as strings, node:sqlite's as numbers).
 */
export interface TransactionRow {
  id: string;
  state: string;
  nonce: string;
  client: string;
  request: string;
  created_at: number | string;
  expires_at: number | string;
  responded_at: number | string | null;
  outcome: "granted" | "denied" | null;
  result: string | null;
  redeemed_at: number | string | null;
}

const timeOrNull = (v: number | string | null) => (v === null ? null : Number(v));

/** A transaction row as the port's {@link Oid4vpTransaction} (times in ms). */
export function transactionOfRow(row: TransactionRow): Oid4vpTransaction {
  return {
    id: row.id,
    state: row.state,
    nonce: row.nonce,
    client: row.client,
    request: row.request,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    respondedAt: timeOrNull(row.responded_at),
    outcome: row.outcome,
    result: row.result,
    redeemedAt: timeOrNull(row.redeemed_at),
  };
}
