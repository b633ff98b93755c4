import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import {
  type ChallengeRow,
  challengeRefusal,
  challengeTtlMs,
  consumeNonceRefusal,
  consumeRefusal,
  newChallenge,
  nonceRefusal,
  type TransactionRow,
  transactionOfRow,
} from "../state/challenges.ts";
import type { Oid4vpTransaction, Oid4vpTransactionStore } from "../state/port.ts";
import { atMostEvery } from "../util/at-most-every.ts";

/**
 * Opens (creating if needed) the gateway's embedded database: challenges, OID4VP transactions,
 * the DPoP replay cache (`dpop_jti`, see `SqliteDpopReplayStore`) and the audit log. WAL with `synchronous=FULL` by default; the audit log syncs its own commits off the
 * event loop (see `AuditLog`). `:memory:` gives a throwaway database (tests).
 */
export function openGatewayDatabase(file: string): DatabaseSync {
  if (file !== ":memory:") mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const db = new DatabaseSync(file);
  db.exec(`
    PRAGMA journal_mode = WAL;
    PRAGMA synchronous = FULL;
    PRAGMA busy_timeout = 5000;
    CREATE TABLE IF NOT EXISTS challenges (
      challenge TEXT PRIMARY KEY NOT NULL,
      client TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      used_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS challenges_expiry ON challenges (expires_at);
    CREATE TABLE IF NOT EXISTS oid4vp_transactions (
      id TEXT PRIMARY KEY NOT NULL,
      state TEXT NOT NULL UNIQUE,
      nonce TEXT NOT NULL UNIQUE,
      client TEXT NOT NULL,
      request TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      responded_at INTEGER,
      outcome TEXT CHECK (outcome IN ('granted', 'denied')),
      result TEXT,
      redeemed_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS oid4vp_transactions_expiry ON oid4vp_transactions (expires_at);
    CREATE TABLE IF NOT EXISTS dpop_jti (
      key TEXT PRIMARY KEY NOT NULL,
      expires_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS dpop_jti_expiry ON dpop_jti (expires_at);
    CREATE TABLE IF NOT EXISTS audit (
      seq INTEGER PRIMARY KEY,
      at TEXT NOT NULL,
      client TEXT NOT NULL,
      route TEXT NOT NULL,
      holder TEXT,
      credential_id TEXT,
      action TEXT,
      model TEXT,
      outcome TEXT NOT NULL CHECK (outcome IN ('granted', 'denied')),
      code TEXT,
      prev_hash TEXT NOT NULL,
      hash TEXT NOT NULL,
      kid TEXT,
      sig TEXT
    );
  `);
  // files from before records were signed: their records stay (verify reports them unsigned)
  const columns = db.prepare("SELECT name FROM pragma_table_info('audit')").all() as { name: string }[];
  if (!columns.some((c) => c.name === "sig"))
    db.exec("ALTER TABLE audit ADD COLUMN kid TEXT; ALTER TABLE audit ADD COLUMN sig TEXT");
  return db;
}

export interface Challenge {
  challenge: string;
  expiresAt: Date;
}

/**
 * Single-use, short-lived challenges. Consumption is one conditional UPDATE, so two
 * concurrent presentations of the same challenge cannot both succeed.
 *
 * Challenge writes skip their own fsync (`synchronous=NORMAL` for the statement; WAL keeps
 * them atomic and ordered). That loses nothing that matters: a token is answered only after
 * the write-ahead log holding its audit record has been synced (see `AuditLog`), and that sync
 * covers every earlier frame in the log, this consumption included. A challenge lost to a
 * power cut before any such sync was never the basis of an answer: its presentation is refused.
 */
export class ChallengeStore {
  readonly #db: DatabaseSync;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #insert: StatementSync;
  readonly #prune: StatementSync;
  readonly #use: StatementSync;
  readonly #lookup: StatementSync;
  readonly #pruneDue = atMostEvery(1_000);

  constructor(db: DatabaseSync, options: { ttlSeconds: number; now: () => number }) {
    this.#ttlMs = challengeTtlMs(options.ttlSeconds);
    this.#db = db;
    this.#now = options.now;
    this.#insert = db.prepare(
      "INSERT INTO challenges (challenge, client, created_at, expires_at) VALUES (?, ?, ?, ?)",
    );
    this.#prune = db.prepare("DELETE FROM challenges WHERE expires_at < ?");
    this.#use = db.prepare(
      "UPDATE challenges SET used_at = ? WHERE challenge = ? AND used_at IS NULL AND expires_at > ?",
    );
    this.#lookup = db.prepare("SELECT used_at, expires_at FROM challenges WHERE challenge = ?");
  }

  /** Runs a challenge write without an fsync of its own (see the class comment). */
  #write<T>(fn: () => T): T {
    this.#db.exec("PRAGMA synchronous = NORMAL");
    try {
      return fn();
    } finally {
      this.#db.exec("PRAGMA synchronous = FULL");
    }
  }

  /** Mints a fresh challenge (256 random bits, base64url) for `client`; prunes long-expired ones once a second. */
  issue(client: string): Challenge {
    const now = this.#now();
    const challenge = newChallenge();
    this.#write(() => {
      if (this.#pruneDue(now)) {
        this.#prune.run(now - this.#ttlMs);
      }
      this.#insert.run(challenge, client, now, now + this.#ttlMs);
    });
    return { challenge, expiresAt: new Date(now + this.#ttlMs) };
  }

  /**
   * Checks, without using it, that `challenge` was issued here, is unexpired and unused; throws
   * like {@link consume}. Lets a verifier refuse a made-up nonce before any expensive work.
   */
  check(challenge: string): void {
    const refusal = challengeRefusal(this.#row(challenge), this.#now());
    if (refusal) throw refusal;
  }

  #row(challenge: string): ChallengeRow | undefined {
    const row = this.#lookup.get(challenge) as { used_at: number | null; expires_at: number } | undefined;
    return row && { usedAt: row.used_at, expiresAt: row.expires_at };
  }

  /** Whether `challenge` was issued here (used or not, expired or not, until pruned). */
  issuedHere(challenge: string): boolean {
    return this.#lookup.get(challenge) !== undefined;
  }

  /** Marks `challenge` used; throws `challenge_reused`, or `challenge_invalid` if unknown or expired. */
  consume(challenge: string): void {
    const now = this.#now();
    const { changes } = this.#write(() => this.#use.run(now, challenge, now));
    if (changes === 1) return;
    throw consumeRefusal(this.#row(challenge), now);
  }
}

export type { Oid4vpTransaction, Oid4vpTransactionStore } from "../state/port.ts";

const transactionOf = (row: TransactionRow | undefined): Oid4vpTransaction | undefined =>
  row && transactionOfRow(row);

/** OID4VP transactions in the gateway's node:sqlite database; those expired a day ago are pruned. */
export class SqliteOid4vpTransactions implements Oid4vpTransactionStore {
  readonly #now: () => number;
  readonly #insert: StatementSync;
  readonly #prune: StatementSync;
  readonly #byId: StatementSync;
  readonly #byState: StatementSync;
  readonly #respond: StatementSync;
  readonly #settle: StatementSync;
  readonly #redeem: StatementSync;
  readonly #pruneDue = atMostEvery(60_000);

  constructor(db: DatabaseSync, options: { now: () => number }) {
    this.#now = options.now;
    this.#insert = db.prepare(
      "INSERT INTO oid4vp_transactions (id, state, nonce, client, request, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.#prune = db.prepare("DELETE FROM oid4vp_transactions WHERE expires_at < ?");
    this.#byId = db.prepare("SELECT * FROM oid4vp_transactions WHERE id = ?");
    this.#byState = db.prepare("SELECT * FROM oid4vp_transactions WHERE state = ?");
    this.#respond = db.prepare(
      "UPDATE oid4vp_transactions SET responded_at = ? WHERE state = ? AND nonce = ? AND responded_at IS NULL AND expires_at > ?",
    );
    this.#settle = db.prepare(
      "UPDATE oid4vp_transactions SET outcome = ?, result = ? WHERE id = ? AND responded_at IS NOT NULL AND outcome IS NULL",
    );
    this.#redeem = db.prepare(
      "UPDATE oid4vp_transactions SET redeemed_at = ? WHERE id = ? AND outcome = 'granted' AND redeemed_at IS NULL",
    );
  }

  create(t: Pick<Oid4vpTransaction, "id" | "state" | "nonce" | "client" | "request" | "expiresAt">): void {
    const now = this.#now();
    if (this.#pruneDue(now)) {
      this.#prune.run(now - 86_400_000);
    }
    this.#insert.run(t.id, t.state, t.nonce, t.client, t.request, now, t.expiresAt);
  }

  byId(id: string): Oid4vpTransaction | undefined {
    return transactionOf(this.#byId.get(id) as TransactionRow | undefined);
  }

  byState(state: string): Oid4vpTransaction | undefined {
    return transactionOf(this.#byState.get(state) as TransactionRow | undefined);
  }

  checkNonce(state: string, nonce: string): void {
    const refusal = nonceRefusal(this.byState(state), nonce, this.#now());
    if (refusal) throw refusal;
  }

  consumeNonce(state: string, nonce: string): void {
    const now = this.#now();
    if (this.#respond.run(now, state, nonce, now).changes === 1) return;
    throw consumeNonceRefusal(this.byState(state), nonce, this.#now());
  }

  settle(id: string, outcome: "granted" | "denied", result: string): void {
    this.#settle.run(outcome, result, id);
  }

  redeem(id: string): boolean {
    return this.#redeem.run(this.#now(), id).changes === 1;
  }
}
