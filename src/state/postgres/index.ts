import pg from "pg";
import { KPartyError } from "../../errors/index.ts";
import { auditChainWalker, auditRecordFromRow, chainedRecords, type Pending } from "../../gateway/audit.ts";
import { atMostEvery } from "../../util/at-most-every.ts";
import { type AuditKeyRow, auditKeyStore, auditPublicKeyOf } from "../audit-keys.ts";
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
} from "../challenges.ts";
import { type OAuthClientRows, oauthClientStore } from "../oauth-clients.ts";
import type {
  AuditEntry,
  AuditReader,
  AuditRecord,
  AuditSigner,
  AuditStore,
  Challenge,
  ChallengeStore,
  DpopReplayStore,
  GatewayState,
  ModelLock,
  OAuthClientRow,
  Oid4vpTransaction,
  Oid4vpTransactionStore,
  RateLimits,
  RevokedTokenStore,
  TokenKeyStore,
} from "../port.ts";
import {
  rowOf,
  type SealedSnapshot,
  type SealedTokenKeyRow,
  sealedTokenKeys,
  type TokenKeyStoreOptions,
} from "../sealed.ts";
import { batched, firstOfEach, onlyFirstOfEach, storable } from "./batch.ts";
import { type CheckedOut, checkout, inTransaction } from "./checkout.ts";
import { LOCKS, migrate } from "./migrations.ts";
import { postgresModelMetadata } from "./models.ts";

export { MIGRATIONS, type Migration, migrate } from "./migrations.ts";

export interface PostgresStateOptions {
  /** `postgres://user:password@host:port/database` (a secret: never logged). */
  url: string;
  /** Most connections this process opens (default 10). */
  maxConnections?: number;
  /** How long a request waits for a free connection before it is refused with 503 (default 5000 ms). */
  connectionTimeoutMs?: number;
  /** Told about connections that fail while idle (a database restart): the pool replaces them. */
  onError?: (error: Error) => void;
}

/** Most audit records one transaction appends (the rest go in the next). */
const MAX_GROUP = 512;

/** A database failure as the gateway's fail-closed refusal (503); the cause is for the operator only. */
function unavailable(error: unknown): KPartyError {
  if (error instanceof KPartyError) return error;
  return new KPartyError("state_unavailable", "the gateway's shared state cannot be reached", {
    cause: error,
  });
}

/**
 * The PostgreSQL backend: any number of gateway replicas share one database for challenges
 * (redeemed at most once, whichever replica sees them), rate buckets and quotas (one bucket per
 * key for the deployment), one audit chain (appends serialised on its head row: no forks), the
 * DPoP `jti` replay store (a proof is single-use across replicas), revoked token ids, the
 * introspection clients, OID4VP transactions, the model store's metadata and the token keys (every replica verifies every replica's tokens; stored encrypted under the
 * secret `tokenKeys({ secret })` requires, the same on every replica). Opens a bounded pool and runs
 * the schema migrations (see `MIGRATIONS`) before it returns. A database that cannot be reached
 * makes the requests that need it fail closed with 503 `state_unavailable`; the pool reconnects
 * by itself once it is back.
 * @example
 * ```ts
 * const state = await openPostgresState({ url: process.env.KPARTY_DATABASE_URL });
 * const app = await buildGateway({ agent, chain, models, state, domain });
 * // … on shutdown, after app.close():
 * await state.close();
 * ```
 */
export async function openPostgresState(options: PostgresStateOptions): Promise<GatewayState> {
  if (typeof options.url !== "string" || !/^postgres(ql)?:\/\//.test(options.url)) {
    throw new TypeError("url must be a postgres:// URL");
  }
  const max = options.maxConnections ?? 10;
  if (!Number.isSafeInteger(max) || max < 1 || max > 1000)
    throw new TypeError("maxConnections must be an integer from 1 to 1000");
  const connectionTimeoutMillis = options.connectionTimeoutMs ?? 5_000;
  if (!Number.isFinite(connectionTimeoutMillis) || connectionTimeoutMillis <= 0)
    throw new TypeError("connectionTimeoutMs must be a positive number");
  const pool = new pg.Pool({
    connectionString: options.url,
    max,
    connectionTimeoutMillis,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: "kparty-gateway",
  });
  // an idle connection that breaks (a restart) must not crash the process: the pool drops it
  pool.on("error", (error) => options.onError?.(error));
  try {
    await migrate(pool);
  } catch (error) {
    await pool.end();
    throw error instanceof KPartyError ? error : unavailable(error);
  }
  return postgresState(pool);
}

/** The backend over an open pool whose schema is migrated (see {@link openPostgresState}). */
export function postgresState(pool: pg.Pool): GatewayState {
  const query = async <R extends pg.QueryResultRow>(text: string, values?: unknown[], name?: string) => {
    try {
      return await (name === undefined
        ? pool.query<R>(text, values)
        : pool.query<R>({ name, text, values: values ?? [] }));
    } catch (error) {
      throw unavailable(error);
    }
  };
  const audits: PostgresAuditLog[] = [];
  return {
    backend: "postgres",
    challenges: (options) => new PostgresChallenges(query, options),
    rateLimits: (options) => new PostgresRateLimits(query, options),
    audit: (options) => {
      const log = new PostgresAuditLog(pool, options);
      audits.push(log);
      return log;
    },
    auditReader: () => postgresAuditReader(query),
    auditKeys: (options) =>
      auditKeyStore(postgresAuditKeyRows(query), { ...options, where: "the PostgreSQL database" }),
    tokenKeys: (options = {}) => postgresTokenKeys(pool, query, options),
    dpopReplay: (options) => postgresDpopReplay(query, options),
    revokedTokens: (options) => postgresRevokedTokens(query, options),
    oauthClients: (options = {}) => oauthClientStore(postgresOAuthClientRows(query), options.now),
    oid4vpTransactions: (options) => new PostgresOid4vpTransactions(query, options),
    modelMetadata: () =>
      postgresModelMetadata(query, (fn) =>
        inTransaction(pool, fn).catch((error: unknown) => {
          throw unavailable(error);
        }),
      ),
    modelLock: () => postgresModelLock(pool),
    async close() {
      await Promise.all(audits.map((a) => a.close()));
      await pool.end();
    },
  };
}

/**
 * A statement on a pooled connection; with `name`, a named statement, prepared once per
 * connection (the statements of every grant: no parse and plan each time).
 */
type Query = <R extends pg.QueryResultRow>(
  text: string,
  values?: unknown[],
  name?: string,
) => Promise<pg.QueryResult<R>>;

class PostgresChallenges implements ChallengeStore {
  readonly #query: Query;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #pruneDue = atMostEvery(1_000);

  constructor(query: Query, options: { ttlSeconds: number; now: () => number }) {
    this.#ttlMs = challengeTtlMs(options.ttlSeconds);
    this.#query = query;
    this.#now = options.now;
  }

  async issue(client: string): Promise<Challenge> {
    const now = this.#now();
    const challenge = newChallenge();
    if (this.#pruneDue(now)) {
      await this.#query("DELETE FROM kparty_challenges WHERE expires_at < $1", [now - this.#ttlMs]);
    }
    await this.#query(
      "INSERT INTO kparty_challenges (challenge, client, created_at, expires_at) VALUES ($1, $2, $3, $4)",
      [challenge, client, now, now + this.#ttlMs],
    );
    return { challenge, expiresAt: new Date(now + this.#ttlMs) };
  }

  /** The rows of the challenges read in one turn of the event loop, in one statement. */
  readonly #rows = batched(async (challenges: string[]) => {
    const { rows } = await this.#query<{ challenge: string; used_at: string | null; expires_at: string }>(
      "SELECT challenge, used_at, expires_at FROM kparty_challenges WHERE challenge = ANY($1::text[])",
      [challenges.filter(storable)],
      "kparty_challenge_rows",
    );
    const byChallenge = new Map(rows.map((r) => [r.challenge, r]));
    return challenges.map((c) => byChallenge.get(c));
  });

  /**
   * The challenges redeemed in one turn of the event loop, in one statement whose row locks are
   * all taken in challenge order, as every replica's batches take them: two batches never wait
   * for each other in a cycle (a deadlock, 40P01, would fail every call of one of them with
   * 503). The order is not left to the join the planner picks (an `UPDATE … FROM unnest` locks
   * rows in the order its join yields them, a hash join's in table order): the CTE's
   * `ORDER BY … FOR UPDATE` is planned as a LockRows node above the ordered rows (a Sort, or an
   * index scan in key order), and LockRows locks each row as it receives it. The `UPDATE`
   * changes only rows the CTE locked (joined on the primary key), so it locks nothing new. A
   * row changed by another transaction while we waited is re-checked on its newest version
   * (READ COMMITTED): one used meanwhile is left out. So of concurrent redemptions of one
   * challenge on any replica exactly one changes its row, and within a batch only the first
   * call for a challenge can be that one.
   */
  readonly #redeem = batched(async (items: { challenge: string; at: number }[]) => {
    const firsts = firstOfEach(items, (i) => i.challenge).filter((i) => storable(i.challenge));
    const { rows } = await this.#query<{ challenge: string }>(
      `WITH locked AS MATERIALIZED (
         SELECT c.challenge, u.at
         FROM kparty_challenges AS c JOIN unnest($1::text[], $2::bigint[]) AS u (challenge, at)
           ON c.challenge = u.challenge
         WHERE c.used_at IS NULL AND c.expires_at > u.at
         ORDER BY c.challenge
         FOR UPDATE OF c
       )
       UPDATE kparty_challenges AS c SET used_at = l.at FROM locked AS l
       WHERE c.challenge = l.challenge
       RETURNING c.challenge`,
      [firsts.map((i) => i.challenge), firsts.map((i) => i.at)],
      "kparty_challenge_redeem",
    );
    const redeemed = new Set(rows.map((r) => r.challenge));
    return onlyFirstOfEach(
      items,
      (i) => i.challenge,
      (i) => redeemed.has(i.challenge),
    );
  });

  async #row(challenge: string): Promise<ChallengeRow | undefined> {
    const row = await this.#rows(challenge);
    return (
      row && { usedAt: row.used_at === null ? null : Number(row.used_at), expiresAt: Number(row.expires_at) }
    );
  }

  async check(challenge: string): Promise<void> {
    const refusal = challengeRefusal(await this.#row(challenge), this.#now());
    if (refusal) throw refusal;
  }

  async issuedHere(challenge: string): Promise<boolean> {
    return (await this.#row(challenge)) !== undefined;
  }

  async consume(challenge: string): Promise<void> {
    const now = this.#now();
    if (await this.#redeem({ challenge, at: now })) return;
    throw consumeRefusal(await this.#row(challenge), now);
  }
}

/**
 * Token buckets in one table: a take is one upsert that refills the bucket by the time since
 * its last update, takes a token if there is one, and says whether it did; the row lock makes
 * concurrent takes on any replica count one after the other. A bucket idle for a minute is
 * full again, so idle rows are deleted (at most every 10 s per replica).
 */
class PostgresRateLimits implements RateLimits {
  readonly #query: Query;
  readonly #now: () => number;
  readonly #pruneDue = atMostEvery(10_000);

  constructor(query: Query, options: { now: () => number }) {
    this.#query = query;
    this.#now = options.now;
  }

  async take(key: string, perMinute: number, what: string): Promise<void> {
    if (!Number.isFinite(perMinute) || perMinute <= 0) throw new TypeError("perMinute must be positive");
    const now = this.#now();
    const ratePerMs = perMinute / 60_000;
    if (this.#pruneDue(now)) {
      await this.#query("DELETE FROM kparty_rate_buckets WHERE updated_at < $1", [now - 60_000]);
    }
    const refilled = "LEAST($2::float8, b.tokens + GREATEST(0, $3::bigint - b.updated_at) * $4::float8)";
    const { rows } = await this.#query<{ granted: boolean; tokens: number }>(
      `INSERT INTO kparty_rate_buckets AS b (key, tokens, updated_at, granted)
       VALUES ($1, CASE WHEN $2::float8 >= 1 THEN $2::float8 - 1 ELSE $2::float8 END, $3::bigint, $2::float8 >= 1)
       ON CONFLICT (key) DO UPDATE SET
         tokens = CASE WHEN ${refilled} >= 1 THEN ${refilled} - 1 ELSE ${refilled} END,
         granted = ${refilled} >= 1,
         updated_at = GREATEST(b.updated_at, $3::bigint)
       RETURNING granted, tokens`,
      [key, perMinute, now, ratePerMs],
    );
    const row = rows[0];
    if (row?.granted) return;
    const tokens = Number(row?.tokens ?? 0);
    const retryAfterSeconds = Math.max(1, Math.ceil((1 - tokens) / ratePerMs / 1000));
    throw new KPartyError("rate_limited", `${what}: more than ${perMinute} requests a minute`, {
      details: { retryAfterSeconds },
    });
  }
}

/** The columns of `kparty_audit` an append writes, in `AuditRecord` order. */
const AUDIT_FIELDS = [
  ["seq", "seq", "bigint"],
  ["at", "at", "text"],
  ["client", "client", "text"],
  ["route", "route", "text"],
  ["holder", "holder", "text"],
  ["credential_id", "credentialId", "text"],
  ["action", "action", "text"],
  ["model", "model", "text"],
  ["outcome", "outcome", "text"],
  ["code", "code", "text"],
  ["prev_hash", "prevHash", "text"],
  ["hash", "hash", "text"],
  ["kid", "kid", "text"],
  ["sig", "sig", "text"],
] as const;

/**
 * A group of records and the head they end at, in one statement that writes them only if the
 * head is still the one the group was chained to ($17, $18): the head row's update waits for
 * any other append's lock on it and then re-checks the condition against the committed row, so
 * of appends chained to one head exactly one is written, and the others write nothing. Prepared
 * once per connection (a named statement).
 */
const APPEND_IF_HEAD = {
  name: "kparty_audit_append_if_head",
  text: `WITH moved AS (
      UPDATE kparty_audit_head SET seq = $15, hash = $16 WHERE id = 1 AND seq = $17 AND hash = $18 RETURNING 1
    )
    INSERT INTO kparty_audit (${AUDIT_FIELDS.map(([column]) => column).join(", ")})
    SELECT * FROM unnest(${AUDIT_FIELDS.map(([, , type], i) => `$${i + 1}::${type}[]`).join(", ")})
    WHERE EXISTS (SELECT 1 FROM moved)`,
};

/** The values of {@link APPEND_IF_HEAD} for `records`, chained to `head`. */
function appendValues(records: AuditRecord[], head: { seq: number; hash: string }): unknown[] {
  const last = records.at(-1) ?? head;
  return [
    ...AUDIT_FIELDS.map(([, field]) => records.map((r) => r[field] ?? null)),
    last.seq,
    last.hash,
    head.seq,
    head.hash,
  ];
}

/**
 * The deployment's one audit chain. Each replica commits its pending records as a group, one
 * group at a time, chained to the head the replica's previous group left: one statement
 * ({@link APPEND_IF_HEAD}) writes the records and moves the chain's head row only if the head is
 * still that one. Where another replica has appended since (or the head is not known yet), the
 * group is chained again in a transaction that first locks the head row (`SELECT … FOR
 * UPDATE`): appends from all replicas are serialised on that row, each group continues from the
 * head the previous one left, so the chain has one order and no forks. `append` resolves after
 * the commit, which PostgreSQL returns once it is flushed to its write-ahead log (with the
 * default `synchronous_commit = on`; with synchronous replication, once the standby has it
 * too). A failed statement or transaction leaves nothing of its group and rejects it
 * (`state_unavailable`); the next group reads the head again.
 */
class PostgresAuditLog implements AuditStore {
  readonly #pool: pg.Pool;
  readonly #now: () => number;
  readonly #signer: AuditSigner | undefined;
  #pending: Pending[] = [];
  #running: Promise<void> | null = null;
  #closed = false;
  /** The head this replica's last group left (null: unknown, read it under the lock). */
  #head: { seq: number; hash: string } | null = null;

  constructor(pool: pg.Pool, options: { now: () => number; signer?: AuditSigner }) {
    this.#pool = pool;
    this.#now = options.now;
    this.#signer = options.signer;
  }

  get failure(): KPartyError | null {
    return null; // a failed commit loses nothing: only the group it carried is refused
  }

  append(entry: AuditEntry): Promise<AuditRecord> {
    if (this.#closed) return Promise.reject(new Error("the audit log is closed"));
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, at: this.#now(), resolve, reject });
      this.#run();
    });
  }

  /** One group commit at a time per replica; what arrives meanwhile forms the next group. */
  #run(): void {
    if (this.#running) return;
    this.#running = (async () => {
      while (this.#pending.length > 0) {
        const group = this.#pending.splice(0, MAX_GROUP);
        try {
          const records = await this.#commit(group);
          for (const [i, p] of group.entries()) p.resolve(records[i] as AuditRecord);
        } catch (error) {
          this.#head = null; // whether the group was written is unknown: read the head again
          for (const p of group) p.reject(unavailable(error));
        }
      }
    })().finally(() => {
      this.#running = null;
      if (this.#pending.length > 0) this.#run();
    });
  }

  async #commit(group: Pending[]): Promise<AuditRecord[]> {
    const head = this.#head;
    if (head) {
      const records = chainedRecords(group, head, this.#signer);
      const { rowCount } = await this.#pool.query({ ...APPEND_IF_HEAD, values: appendValues(records, head) });
      if (rowCount === records.length) {
        this.#head = records.at(-1) ?? head;
        return records;
      }
    }
    const records = await this.#commitLocked(group);
    this.#head = records.at(-1) ?? this.#head;
    return records;
  }

  /** The group chained to the head read under its row lock, in one transaction. */
  async #commitLocked(group: Pending[]): Promise<AuditRecord[]> {
    return inTransaction(this.#pool, async (client) => {
      const { rows } = await client.query<{ seq: string; hash: string }>(
        "SELECT seq, hash FROM kparty_audit_head WHERE id = 1 FOR UPDATE",
      );
      const row = rows[0];
      if (!row) throw new Error("the audit chain's head row is missing");
      const head = { seq: Number(row.seq), hash: row.hash };
      this.#head = head;
      const records = chainedRecords(group, head, this.#signer);
      const { rowCount } = await client.query({ ...APPEND_IF_HEAD, values: appendValues(records, head) });
      if (rowCount !== records.length) throw new Error("the audit chain's head moved while it was locked");
      return records;
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    while (this.#running) await this.#running;
  }
}

function postgresAuditReader(query: Query): AuditReader {
  return {
    async page(afterSeq, limit) {
      const { rows } = await query("SELECT * FROM kparty_audit WHERE seq > $1 ORDER BY seq LIMIT $2", [
        afterSeq,
        limit,
      ]);
      return rows.map(auditRecordFromRow);
    },
    async headRow() {
      const { rows } = await query<{ seq: string; hash: string }>(
        "SELECT seq, hash FROM kparty_audit_head WHERE id = 1",
      );
      const row = rows[0];
      return row ? { seq: Number(row.seq), hash: row.hash } : null;
    },
    async publicKeys() {
      const row = await postgresAuditKeyRows(query).read();
      return row ? [auditPublicKeyOf(row)] : [];
    },
    async tail(limit) {
      const { rows } = await query(
        "SELECT * FROM (SELECT * FROM kparty_audit ORDER BY seq DESC LIMIT $1) t ORDER BY seq",
        [limit],
      );
      return rows.map(auditRecordFromRow);
    },
    async verify() {
      const walk = auditChainWalker();
      let after = 0;
      for (;;) {
        const { rows } = await query("SELECT * FROM kparty_audit WHERE seq > $1 ORDER BY seq LIMIT 1000", [
          after,
        ]);
        for (const row of rows) {
          const broken = walk.add(auditRecordFromRow(row));
          if (broken) return broken;
        }
        if (rows.length < 1000) break;
        after = Number(rows.at(-1)?.seq);
      }
      // the head row must name the last record: a chain cut at its end is caught here
      const { rows } = await query<{ seq: string; hash: string }>(
        "SELECT seq, hash FROM kparty_audit_head WHERE id = 1",
      );
      const result = walk.result();
      const head = rows[0];
      if (!head || Number(head.seq) !== result.records || head.hash !== result.head) {
        return {
          valid: false,
          records: result.records,
          head: result.head,
          broken: { seq: result.records + 1, reason: `the chain's head names record ${head?.seq ?? "?"}` },
        };
      }
      return result;
    },
  };
}

/** The deployment's audit keys (one row, see `src/state/audit-keys.ts`; migration 4). */
function postgresAuditKeyRows(query: Query) {
  type Row = { kid: string; x: string; anchorer: string; sealed: string; created_at: string };
  const read = async (): Promise<AuditKeyRow | null> => {
    const { rows } = await query<Row>(
      "SELECT kid, x, anchorer, sealed, created_at FROM kparty_audit_keys WHERE id = 1",
    );
    const r = rows[0];
    return r
      ? { kid: r.kid, x: r.x, anchorer: r.anchorer, sealed: r.sealed, createdAt: Number(r.created_at) }
      : null;
  };
  return {
    read,
    async insertIfAbsent(row: AuditKeyRow) {
      await query(
        `INSERT INTO kparty_audit_keys (id, kid, x, anchorer, sealed, created_at) VALUES (1, $1, $2, $3, $4, $5)
         ON CONFLICT (id) DO NOTHING`,
        [row.kid, row.x, row.anchorer, row.sealed, row.createdAt],
      );
      return (await read()) as AuditKeyRow;
    },
  };
}

/**
 * Token keys in the database, encrypted under the gateway's secret (see `src/state/sealed.ts`):
 * `kparty_token_keys` holds each key's public `x` and its sealed private key,
 * `kparty_token_key_kek` the wrapped data key. The first key is added under an advisory lock,
 * so replicas starting together on an empty database agree on it (and on the data key: the
 * first one stored wins). Keys a development build stored in the clear are in
 * `kparty_token_keys_unencrypted` (migration 2) and refused until a rotation discards them.
 */
function postgresTokenKeys(pool: pg.Pool, query: Query, options: TokenKeyStoreOptions): TokenKeyStore {
  if (options.secret === undefined) {
    throw new TypeError(
      "tokenKeySecret is required on PostgreSQL: replicas share the token keys, stored encrypted under it",
    );
  }
  type Row = { kid: string; x: string; nonce: string; sealed: string; created_at: string };
  const SELECT = "SELECT kid, x, nonce, sealed, created_at FROM kparty_token_keys ORDER BY created_at, kid";
  const INSERT =
    "INSERT INTO kparty_token_keys (kid, x, nonce, sealed, created_at) VALUES ($1, $2, $3, $4, $5)";
  const values = (row: SealedTokenKeyRow) => [row.kid, row.x, row.nonce, row.sealed, row.createdAt];
  const read = async (): Promise<SealedSnapshot> => {
    const { rows } = await query<{ record: string | null; keys: Row[] | null; unencrypted: string }>(
      `SELECT (SELECT record FROM kparty_token_key_kek WHERE id = 1) AS record,
              (SELECT json_agg(k) FROM (${SELECT}) k) AS keys,
              (SELECT count(*) FROM kparty_token_keys_unencrypted) AS unencrypted`,
    );
    const row = rows[0];
    return {
      kek: row?.record ?? null,
      keys: (row?.keys ?? []).map(rowOf),
      unencrypted: Number(row?.unencrypted ?? 0),
    };
  };
  const transaction = (fn: (client: pg.PoolClient) => Promise<void>) =>
    inTransaction(pool, fn, { lock: LOCKS.tokenKeys }).catch((error: unknown) => {
      throw unavailable(error);
    });
  return sealedTokenKeys(
    {
      read,
      async putKekIfAbsent(record) {
        await query(
          "INSERT INTO kparty_token_key_kek (id, record) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
          [record],
        );
        return read();
      },
      insertFirst: (row) =>
        transaction(async (client) => {
          const { rowCount } = await client.query("SELECT 1 FROM kparty_token_keys LIMIT 1");
          if (rowCount === 0) await client.query(INSERT, values(row));
        }),
      insertDiscardingUnencrypted: (row) =>
        transaction(async (client) => {
          await client.query("DELETE FROM kparty_token_keys_unencrypted");
          await client.query(INSERT, values(row));
        }),
    },
    { ...options, where: "the PostgreSQL database" },
  );
}

/** Deletes rows of `table` past `column` at most once a second per store (a bounded table, no extra query per request). */
function pruner(query: Query, table: string, column: string) {
  const pruneDue = atMostEvery(1_000);
  return async (now: number) => {
    if (!pruneDue(now)) return;
    await query(`DELETE FROM ${table} WHERE ${column} < $1`, [now]);
  };
}

/**
 * The DPoP replay store of the deployment: one upsert (for every use of one turn of the event
 * loop) that inserts each key, or takes over an entry past its expiry, and returns a row only
 * then — so of concurrent uses of one `jti` on any replica exactly one is new (the row lock
 * orders them).
 */
function postgresDpopReplay(query: Query, options: { now: () => number }): DpopReplayStore {
  const prune = pruner(query, "kparty_dpop_jti", "expires_at");
  // the keys used in one turn of the event loop, in one upsert (keys in order, as every
  // replica's batches insert them); an entry is taken over only if it expired before the
  // earliest use of the batch, and within a batch only the first use of a key can be new.
  // The order holds in the database: `unnest` in FROM yields the arrays' elements in order,
  // as the plan's only node below the insert (no join or sort for the planner to choose), and
  // the insert settles each row's conflict (waits for another insert of its key to end, or
  // locks the existing row for DO UPDATE, held whether or not its WHERE passes) before it
  // takes the next row: every key's lock or wait comes in key order, so no deadlock
  const use = batched(async (items: { key: string; expiresAtMs: number; now: number }[]) => {
    const firsts = firstOfEach(items, (i) => i.key).filter((i) => storable(i.key));
    const { rows } = await query<{ key: string }>(
      `INSERT INTO kparty_dpop_jti AS j (key, expires_at) SELECT * FROM unnest($1::text[], $2::bigint[])
       ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE j.expires_at < $3
       RETURNING j.key`,
      [firsts.map((i) => i.key), firsts.map((i) => i.expiresAtMs), Math.min(...items.map((i) => i.now))],
      "kparty_dpop_jti_use",
    );
    const fresh = new Set(rows.map((r) => r.key));
    return onlyFirstOfEach(
      items,
      (i) => i.key,
      (i) => fresh.has(i.key),
    );
  });
  return {
    async use(key, expiresAtMs) {
      const now = options.now();
      await prune(now);
      return use({ key, expiresAtMs, now });
    },
  };
}

/** Revoked token ids of the deployment: `INSERT … ON CONFLICT DO NOTHING`, a primary-key lookup per use. */
function postgresRevokedTokens(query: Query, options: { now: () => number }): RevokedTokenStore {
  const prune = pruner(query, "kparty_revoked_tokens", "keep_until");
  return {
    async revoke(tokenId, keepUntilMs) {
      const now = options.now();
      await prune(now);
      const { rowCount } = await query(
        `INSERT INTO kparty_revoked_tokens (token_id, keep_until, revoked_at) VALUES ($1, $2, $3)
         ON CONFLICT (token_id) DO NOTHING RETURNING 1`,
        [tokenId, keepUntilMs, now],
      );
      return rowCount === 1;
    },
    async isRevoked(tokenId) {
      const { rowCount } = await query(
        "SELECT 1 FROM kparty_revoked_tokens WHERE token_id = $1 AND keep_until >= $2",
        [tokenId, options.now()],
      );
      return rowCount === 1;
    },
  };
}

/**
 * OID4VP transactions of the deployment in `kparty_oid4vp_transactions`: a request created at
 * one replica is fetched, answered and collected at any. Every single-use step (the nonce, the
 * settlement, the collection) is one conditional `UPDATE`: of concurrent attempts on any replica
 * exactly one changes the row. Transactions expired a day ago are pruned (at most a minute apart).
 */
class PostgresOid4vpTransactions implements Oid4vpTransactionStore {
  readonly #query: Query;
  readonly #now: () => number;
  readonly #pruneDue = atMostEvery(60_000);

  constructor(query: Query, options: { now: () => number }) {
    this.#query = query;
    this.#now = options.now;
  }

  async create(t: Pick<Oid4vpTransaction, "id" | "state" | "nonce" | "client" | "request" | "expiresAt">) {
    const now = this.#now();
    if (this.#pruneDue(now)) {
      await this.#query("DELETE FROM kparty_oid4vp_transactions WHERE expires_at < $1", [now - 86_400_000]);
    }
    await this.#query(
      `INSERT INTO kparty_oid4vp_transactions (id, state, nonce, client, request, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [t.id, t.state, t.nonce, t.client, t.request, now, t.expiresAt],
    );
  }

  async #one(column: "id" | "state", value: string): Promise<Oid4vpTransaction | undefined> {
    const { rows } = await this.#query<TransactionRow>(
      `SELECT * FROM kparty_oid4vp_transactions WHERE ${column} = $1`,
      [value],
    );
    const row = rows[0];
    return row && transactionOfRow(row);
  }

  byId(id: string) {
    return this.#one("id", id);
  }

  byState(state: string) {
    return this.#one("state", state);
  }

  async checkNonce(state: string, nonce: string): Promise<void> {
    const refusal = nonceRefusal(await this.byState(state), nonce, this.#now());
    if (refusal) throw refusal;
  }

  async consumeNonce(state: string, nonce: string): Promise<void> {
    const now = this.#now();
    const { rowCount } = await this.#query(
      `UPDATE kparty_oid4vp_transactions SET responded_at = $1
       WHERE state = $2 AND nonce = $3 AND responded_at IS NULL AND expires_at > $1`,
      [now, state, nonce],
    );
    if (rowCount === 1) return;
    throw consumeNonceRefusal(await this.byState(state), nonce, this.#now());
  }

  async settle(id: string, outcome: "granted" | "denied", result: string): Promise<void> {
    await this.#query(
      `UPDATE kparty_oid4vp_transactions SET outcome = $1, result = $2
       WHERE id = $3 AND responded_at IS NOT NULL AND outcome IS NULL`,
      [outcome, result, id],
    );
  }

  async redeem(id: string): Promise<boolean> {
    const { rowCount } = await this.#query(
      `UPDATE kparty_oid4vp_transactions SET redeemed_at = $1
       WHERE id = $2 AND outcome = 'granted' AND redeemed_at IS NULL`,
      [this.#now(), id],
    );
    return rowCount === 1;
  }
}

/** Introspection clients in `kparty_oauth_clients`. */
function postgresOAuthClientRows(query: Query): OAuthClientRows {
  const columns = "id, name, secret_hash, can_revoke, created_at";
  type Row = { id: string; name: string; secret_hash: string; can_revoke: boolean; created_at: string };
  const rowOf = (r: Row): OAuthClientRow => ({
    id: r.id,
    name: r.name,
    secretHash: r.secret_hash,
    canRevoke: r.can_revoke,
    createdAt: r.created_at,
  });
  return {
    async insert(row) {
      const { rowCount } = await query(
        `INSERT INTO kparty_oauth_clients (${columns}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1`,
        [row.id, row.name, row.secretHash, row.canRevoke, row.createdAt],
      );
      return rowCount === 1;
    },
    async all() {
      const { rows } = await query<Row>(
        `SELECT ${columns} FROM kparty_oauth_clients ORDER BY created_at, id`,
      );
      return rows.map(rowOf);
    },
    async byId(id) {
      const { rows } = await query<Row>(`SELECT ${columns} FROM kparty_oauth_clients WHERE id = $1`, [id]);
      return rows[0] ? rowOf(rows[0]) : undefined;
    },
    async delete(idOrName) {
      const { rows } = await query<Row>(
        `DELETE FROM kparty_oauth_clients WHERE id = $1 OR name = $1 RETURNING ${columns}`,
        [idOrName],
      );
      return rows[0] ? rowOf(rows[0]) : undefined;
    },
  };
}

/**
 * A session-level advisory lock per model, held on a connection of its own for the work: one
 * replica at a time accepts an update to or closes a round of a model.
 */
function postgresModelLock(pool: pg.Pool): ModelLock {
  return async (model, fn) => {
    let out: CheckedOut;
    try {
      out = await checkout(pool);
    } catch (error) {
      throw unavailable(error);
    }
    const { client } = out;
    const key = `kparty.model:${model}`;
    let failed: Error | undefined;
    try {
      try {
        await client.query("SELECT pg_advisory_lock(hashtextextended($1, 0))", [key]);
      } catch (error) {
        failed = error as Error;
        throw unavailable(error);
      }
      try {
        return await fn();
      } finally {
        await client
          .query("SELECT pg_advisory_unlock(hashtextextended($1, 0))", [key])
          .catch((error: Error) => {
            failed = error; // the connection is dropped, which releases the lock
          });
      }
    } finally {
      out.release(failed);
    }
  };
}
