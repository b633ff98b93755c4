import type pg from "pg";
import { KPartyError } from "../../errors/index.ts";
import { GENESIS_HASH } from "../../gateway/audit.ts";
import { inTransaction } from "./checkout.ts";

/** One schema change; versions are applied in order, each once, in one transaction with its record. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The gateway's schema in PostgreSQL, versioned. Append new versions; never edit an applied one.
 * Tables are prefixed `kparty_` so the database may hold other things.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "gateway state: challenges, rate buckets, audit chain, token keys",
    sql: `
      CREATE TABLE kparty_challenges (
        challenge text PRIMARY KEY,
        client text NOT NULL,
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        used_at bigint
      );
      CREATE INDEX kparty_challenges_expiry ON kparty_challenges (expires_at);
      CREATE TABLE kparty_rate_buckets (
        key text PRIMARY KEY,
        tokens double precision NOT NULL,
        updated_at bigint NOT NULL,
        granted boolean NOT NULL
      );
      CREATE INDEX kparty_rate_buckets_idle ON kparty_rate_buckets (updated_at);
      CREATE TABLE kparty_audit (
        seq bigint PRIMARY KEY,
        at text NOT NULL,
        client text NOT NULL,
        route text NOT NULL,
        holder text,
        credential_id text,
        action text,
        model text,
        outcome text NOT NULL CHECK (outcome IN ('granted', 'denied')),
        code text,
        prev_hash text NOT NULL,
        hash text NOT NULL
      );
      -- the head of the one audit chain: appends lock this row, so they are serialised
      CREATE TABLE kparty_audit_head (
        id integer PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        hash text NOT NULL
      );
      INSERT INTO kparty_audit_head (id, seq, hash) VALUES (1, 0, '${GENESIS_HASH}');
      CREATE TABLE kparty_token_keys (
        kid text PRIMARY KEY,
        private_key text NOT NULL,
        created_at bigint NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "token keys encrypted under the gateway's secret",
    // version 1 stored private keys in the clear (never released): they are kept apart, refused
    // at load and discarded by the next rotation, since they may have been read
    sql: `
      ALTER TABLE kparty_token_keys RENAME TO kparty_token_keys_unencrypted;
      ALTER INDEX kparty_token_keys_pkey RENAME TO kparty_token_keys_unencrypted_pkey;
      CREATE TABLE kparty_token_keys (
        kid text PRIMARY KEY,
        x text NOT NULL,
        nonce text NOT NULL,
        sealed text NOT NULL,
        created_at bigint NOT NULL
      );
      CREATE TABLE kparty_token_key_kek (
        id integer PRIMARY KEY CHECK (id = 1),
        record text NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: "DPoP jti replay store, revoked access tokens, introspection clients, OID4VP transactions",
    sql: `
      CREATE TABLE kparty_dpop_jti (
        key text PRIMARY KEY,
        expires_at bigint NOT NULL
      );
      CREATE INDEX kparty_dpop_jti_expiry ON kparty_dpop_jti (expires_at);
      CREATE TABLE kparty_revoked_tokens (
        token_id text PRIMARY KEY,
        keep_until bigint NOT NULL,
        revoked_at bigint NOT NULL
      );
      CREATE INDEX kparty_revoked_tokens_expiry ON kparty_revoked_tokens (keep_until);
      CREATE TABLE kparty_oid4vp_transactions (
        id text PRIMARY KEY,
        state text NOT NULL UNIQUE,
        nonce text NOT NULL UNIQUE,
        client text NOT NULL,
        request text NOT NULL,
        created_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        responded_at bigint,
        outcome text CHECK (outcome IN ('granted', 'denied')),
        result text,
        redeemed_at bigint
      );
      CREATE INDEX kparty_oid4vp_transactions_expiry ON kparty_oid4vp_transactions (expires_at);
      CREATE TABLE kparty_oauth_clients (
        id text PRIMARY KEY,
        name text NOT NULL UNIQUE,
        secret_hash text NOT NULL,
        can_revoke boolean NOT NULL,
        created_at text NOT NULL
      );
    `,
  },
  {
    version: 4,
    name: "signed audit records and the deployment's audit keys",
    // records of version 1 stay unsigned (kid and sig null); verify reports them as such
    sql: `
      ALTER TABLE kparty_audit ADD COLUMN kid text, ADD COLUMN sig text;
      CREATE TABLE kparty_audit_keys (
        id integer PRIMARY KEY CHECK (id = 1),
        kid text NOT NULL,
        x text NOT NULL,
        anchorer text NOT NULL,
        sealed text NOT NULL,
        created_at bigint NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: "model store metadata: models and their update receipts (weights stay files)",
    // one update per participant and round is the unique key; seq keeps the acceptance order
    sql: `
      CREATE TABLE kparty_models (
        id text PRIMARY KEY,
        description text NOT NULL,
        version integer NOT NULL,
        shape text NOT NULL,
        dtype text NOT NULL,
        max_samples_per_update bigint NOT NULL,
        aggregation text NOT NULL,
        updated_at text NOT NULL
      );
      CREATE TABLE kparty_model_updates (
        seq bigserial PRIMARY KEY,
        model text NOT NULL REFERENCES kparty_models (id),
        round integer NOT NULL,
        participant text NOT NULL,
        sample_count bigint NOT NULL,
        bytes bigint NOT NULL,
        received_at text NOT NULL,
        blob text NOT NULL,
        UNIQUE (model, round, participant)
      );
    `,
  },
];

/** Advisory-lock keys (one namespace of 64-bit integers per database). */
export const LOCKS = { migrations: 0x6b70_6d69, tokenKeys: 0x6b70_746b } as const;

/**
 * Brings the schema to the newest version, in one transaction under an advisory lock, so
 * replicas starting together apply each version once. Refuses a database whose schema is newer
 * than this kparty knows (an older replica must not write to it). Returns the version.
 */
export async function migrate(pool: pg.Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<number> {
  return inTransaction(pool, (client) => applyMigrations(client, migrations), { lock: LOCKS.migrations });
}

/** The migrations `client`'s database lacks, applied in order (inside `migrate`'s transaction). */
async function applyMigrations(client: pg.PoolClient, migrations: readonly Migration[]): Promise<number> {
  await client.query(`CREATE TABLE IF NOT EXISTS kparty_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`);
  const { rows } = await client.query<{ version: number }>("SELECT version FROM kparty_schema_migrations");
  const applied = new Set(rows.map((r) => Number(r.version)));
  const newest = Math.max(0, ...applied);
  const known = Math.max(0, ...migrations.map((m) => m.version));
  if (newest > known) {
    throw new KPartyError(
      "config_invalid",
      `the database's kparty schema is version ${newest}, newer than this kparty knows (${known}): upgrade kparty`,
    );
  }
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    await client.query(m.sql);
    await client.query("INSERT INTO kparty_schema_migrations (version, name) VALUES ($1, $2)", [
      m.version,
      m.name,
    ]);
  }
  return known;
}
