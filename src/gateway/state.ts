import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { KPartyError } from "../errors/index.ts";

/**
 * Opens (creating if needed) the gateway's embedded database: challenges, the DPoP replay
 * cache (`dpop_jti`, see `SqliteDpopReplayStore`) and the audit log. WAL with `synchronous=FULL` by default; the audit log syncs its own commits off the
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
      hash TEXT NOT NULL
    );
  `);
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
  #prunedAt = 0;

  constructor(db: DatabaseSync, options: { ttlSeconds: number; now: () => number }) {
    if (!Number.isFinite(options.ttlSeconds) || options.ttlSeconds <= 0) {
      throw new TypeError("challenge ttlSeconds must be positive");
    }
    this.#db = db;
    this.#ttlMs = options.ttlSeconds * 1000;
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
    const challenge = randomBytes(32).toString("base64url");
    this.#write(() => {
      if (now - this.#prunedAt >= 1_000) {
        this.#prunedAt = now;
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
    const row = this.#lookup.get(challenge) as { used_at: number | null; expires_at: number } | undefined;
    if (row?.used_at != null)
      throw new KPartyError("challenge_reused", "the challenge has already been used");
    if (!row) throw new KPartyError("challenge_invalid", "the challenge was not issued by this gateway");
    if (row.expires_at <= this.#now())
      throw new KPartyError("challenge_invalid", "the challenge has expired");
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
    const row = this.#lookup.get(challenge) as { used_at: number | null; expires_at: number } | undefined;
    if (row?.used_at != null)
      throw new KPartyError("challenge_reused", "the challenge has already been used");
    if (row) throw new KPartyError("challenge_invalid", "the challenge has expired");
    throw new KPartyError("challenge_invalid", "the challenge was not issued by this gateway");
  }
}
