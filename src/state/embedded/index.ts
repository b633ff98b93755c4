import type { DatabaseSync } from "node:sqlite";
import { AuditLog, auditRecordFromRow, verifyAuditChain } from "../../gateway/audit.ts";
import { SqliteDpopReplayStore } from "../../gateway/dpop.ts";
import { RateLimiter } from "../../gateway/rate-limit.ts";
import { ChallengeStore, SqliteOid4vpTransactions } from "../../gateway/state.ts";
import { atMostEvery } from "../../util/at-most-every.ts";
import {
  type AuditKeyRow,
  type AuditKeyStoreOptions,
  auditKeyStore,
  auditPublicKeyOf,
} from "../audit-keys.ts";
import { memoryTokenKeys } from "../keys.ts";
import { type OAuthClientRows, oauthClientStore } from "../oauth-clients.ts";
import type { GatewayState, OAuthClientRow, RevokedTokenStore, TokenKeyStore } from "../port.ts";
import {
  rowOf,
  type SealedSnapshot,
  type SealedTokenKeyRow,
  sealedTokenKeys,
  type TokenKeyStoreOptions,
} from "../sealed.ts";
import { sqliteModelMetadata } from "./models.ts";

/**
 * The embedded backend: the gateway's node:sqlite file (see `openGatewayDatabase`) for
 * challenges, the audit log, the DPoP `jti` replay store, revoked token ids, introspection
 * clients, OID4VP transactions, the model store's metadata (tables `models`, `model_updates`) and the token keys (encrypted under `tokenKeys({ secret })`; without
 * a secret one fresh key in memory, whose tokens end with the process), and rate limits in memory — one process is
 * the whole deployment, so its buckets are the only ones. Zero set-up; the caller opens and
 * closes the database.
 * @example
 * ```ts
 * const state = createEmbeddedState(openGatewayDatabase(".kparty/gateway/gateway.sqlite"));
 * const app = await buildGateway({ agent, chain, models, state, domain });
 * ```
 */
export function createEmbeddedState(db: DatabaseSync): GatewayState {
  return {
    backend: "embedded",
    challenges: (options) => new ChallengeStore(db, options),
    rateLimits: (options) => new RateLimiter(options),
    audit: (options) => new AuditLog(db, options),
    auditReader: () => ({
      tail: (limit) => new AuditLog(db, { now: Date.now }).tail(limit),
      verify: () => verifyAuditChain(db),
      page: (afterSeq, limit) =>
        (
          db.prepare("SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?").all(afterSeq, limit) as Record<
            string,
            unknown
          >[]
        ).map(auditRecordFromRow),
      headRow: () => null, // the file's last record is its head
      publicKeys: () => {
        const row = sqliteAuditKeyRows(db).readSync();
        return row ? [auditPublicKeyOf(row)] : [];
      },
    }),
    auditKeys: (options) => sqliteAuditKeys(db, options),
    tokenKeys: (options = {}) =>
      options.secret === undefined ? memoryTokenKeys(undefined, options.now) : sqliteTokenKeys(db, options),
    dpopReplay: (options) => new SqliteDpopReplayStore(db, options),
    revokedTokens: (options) => sqliteRevokedTokens(db, options),
    oauthClients: (options = {}) => oauthClientStore(sqliteOAuthClientRows(db), options.now),
    oid4vpTransactions: (options) => new SqliteOid4vpTransactions(db, options),
    modelMetadata: () => sqliteModelMetadata(db),
    modelLock: () => null,
    close: async () => {},
  };
}

/**
 * Revoked token ids in table `revoked_tokens` (created on first use): a primary-key lookup per
 * protected request, synchronous; ids past their `keep_until` pruned at most once a second.
 */
function sqliteRevokedTokens(db: DatabaseSync, options: { now: () => number }): RevokedTokenStore {
  db.exec(`CREATE TABLE IF NOT EXISTS revoked_tokens (
    token_id TEXT PRIMARY KEY NOT NULL,
    keep_until INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
  )`);
  db.exec("CREATE INDEX IF NOT EXISTS revoked_tokens_expiry ON revoked_tokens (keep_until)");
  const insert = db.prepare(
    "INSERT INTO revoked_tokens (token_id, keep_until, revoked_at) VALUES (?, ?, ?) ON CONFLICT (token_id) DO NOTHING",
  );
  const lookup = db.prepare("SELECT 1 FROM revoked_tokens WHERE token_id = ? AND keep_until >= ?");
  const prune = db.prepare("DELETE FROM revoked_tokens WHERE keep_until < ?");
  const pruneDue = atMostEvery(1_000);
  return {
    revoke(tokenId, keepUntilMs) {
      const now = options.now();
      if (pruneDue(now)) prune.run(now);
      return insert.run(tokenId, keepUntilMs, now).changes === 1;
    },
    isRevoked: (tokenId) => lookup.get(tokenId, options.now()) !== undefined,
  };
}

/** Introspection clients in table `oauth_clients` (created on first use). */
function sqliteOAuthClientRows(db: DatabaseSync): OAuthClientRows {
  db.exec(`CREATE TABLE IF NOT EXISTS oauth_clients (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    can_revoke INTEGER NOT NULL,
    created_at TEXT NOT NULL
  )`);
  const columns = "id, name, secret_hash, can_revoke, created_at";
  type Row = { id: string; name: string; secret_hash: string; can_revoke: number; created_at: string };
  const rowOf = (r: Row): OAuthClientRow => ({
    id: r.id,
    name: r.name,
    secretHash: r.secret_hash,
    canRevoke: r.can_revoke === 1,
    createdAt: r.created_at,
  });
  const find = db.prepare(`SELECT ${columns} FROM oauth_clients WHERE id = ? OR name = ?`);
  return {
    insert: (row) =>
      db
        .prepare(`INSERT INTO oauth_clients (${columns}) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
        .run(row.id, row.name, row.secretHash, row.canRevoke ? 1 : 0, row.createdAt).changes === 1,
    all: () =>
      (db.prepare(`SELECT ${columns} FROM oauth_clients ORDER BY created_at, id`).all() as Row[]).map(rowOf),
    byId: (id) => {
      const row = db.prepare(`SELECT ${columns} FROM oauth_clients WHERE id = ?`).get(id) as Row | undefined;
      return row ? rowOf(row) : undefined;
    },
    delete: (idOrName) => {
      const row = find.get(idOrName, idOrName) as Row | undefined;
      if (!row) return undefined;
      db.prepare("DELETE FROM oauth_clients WHERE id = ?").run(row.id);
      return rowOf(row);
    },
  };
}

/**
 * Access-token keys in the gateway's SQLite file, encrypted under the gateway's secret (see
 * `src/state/sealed.ts`): table `token_keys` (kid, public `x`, nonce, sealed private key) and
 * `token_key_kek` (the wrapped data key), created on first use. Tokens survive a restart and
 * `kparty gateway keys rotate` adds a key. A `token_keys` table of the development build that
 * stored private keys in the clear is renamed `token_keys_unencrypted` and refused until a
 * rotation discards its keys.
 */
function sqliteTokenKeys(db: DatabaseSync, options: TokenKeyStoreOptions): TokenKeyStore {
  const legacy = db.prepare("SELECT 1 FROM pragma_table_info('token_keys') WHERE name = 'private_key'").get();
  if (legacy) db.exec("ALTER TABLE token_keys RENAME TO token_keys_unencrypted");
  db.exec(`CREATE TABLE IF NOT EXISTS token_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    x TEXT NOT NULL,
    nonce TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at INTEGER NOT NULL
  )`);
  db.exec(`CREATE TABLE IF NOT EXISTS token_key_kek (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    record TEXT NOT NULL
  )`);
  const hasUnencrypted = () =>
    db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'token_keys_unencrypted'")
      .get() !== undefined;
  const all = db.prepare("SELECT kid, x, nonce, sealed, created_at FROM token_keys ORDER BY created_at, kid");
  const kek = db.prepare("SELECT record FROM token_key_kek WHERE id = 1");
  const insert = db.prepare(
    "INSERT INTO token_keys (kid, x, nonce, sealed, created_at) VALUES (?, ?, ?, ?, ?)",
  );
  const read = async (): Promise<SealedSnapshot> => ({
    kek: (kek.get() as { record: string } | undefined)?.record ?? null,
    keys: (all.all() as Parameters<typeof rowOf>[0][]).map(rowOf),
    unencrypted: hasUnencrypted()
      ? Number((db.prepare("SELECT count(*) AS n FROM token_keys_unencrypted").get() as { n: number }).n)
      : 0,
  });
  const store = (row: SealedTokenKeyRow) => insert.run(row.kid, row.x, row.nonce, row.sealed, row.createdAt);
  /** One synchronous write transaction (no await inside: other statements on this connection cannot interleave). */
  const transaction = (fn: () => void) => {
    db.exec("BEGIN IMMEDIATE");
    try {
      fn();
      db.exec("COMMIT");
    } catch (error) {
      if (db.isTransaction) db.exec("ROLLBACK");
      throw error;
    }
  };
  return sealedTokenKeys(
    {
      read,
      async putKekIfAbsent(record) {
        db.prepare("INSERT OR IGNORE INTO token_key_kek (id, record) VALUES (1, ?)").run(record);
        return read();
      },
      async insertFirst(row) {
        transaction(() => {
          if (all.all().length === 0) store(row);
        });
      },
      async insertDiscardingUnencrypted(row) {
        transaction(() => {
          if (hasUnencrypted()) db.exec("DELETE FROM token_keys_unencrypted");
          store(row);
        });
      },
    },
    { ...options, where: db.location() ?? "the gateway database" },
  );
}

/**
 * Table `audit_keys` of the embedded file: the one row of the deployment's audit keys (see
 * `src/state/audit-keys.ts`), created on first use.
 */
function sqliteAuditKeyRows(db: DatabaseSync) {
  db.exec(`CREATE TABLE IF NOT EXISTS audit_keys (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    kid TEXT NOT NULL,
    x TEXT NOT NULL,
    anchorer TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at INTEGER NOT NULL
  )`);
  const readSync = (): AuditKeyRow | null => {
    const r = db.prepare("SELECT kid, x, anchorer, sealed, created_at FROM audit_keys WHERE id = 1").get() as
      | { kid: string; x: string; anchorer: string; sealed: string; created_at: number }
      | undefined;
    return r
      ? { kid: r.kid, x: r.x, anchorer: r.anchorer, sealed: r.sealed, createdAt: Number(r.created_at) }
      : null;
  };
  return {
    readSync,
    read: async () => readSync(),
    async insertIfAbsent(row: AuditKeyRow) {
      db.prepare(
        "INSERT OR IGNORE INTO audit_keys (id, kid, x, anchorer, sealed, created_at) VALUES (1, ?, ?, ?, ?, ?)",
      ).run(row.kid, row.x, row.anchorer, row.sealed, row.createdAt);
      return readSync() as AuditKeyRow;
    },
  };
}

function sqliteAuditKeys(db: DatabaseSync, options: AuditKeyStoreOptions) {
  return auditKeyStore(sqliteAuditKeyRows(db), {
    ...options,
    where: db.location() ?? "the gateway database",
  });
}
