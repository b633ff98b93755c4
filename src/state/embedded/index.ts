import { createPrivateKey } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { AuditLog, verifyAuditChain } from "../../gateway/audit.ts";
import { RateLimiter } from "../../gateway/rate-limit.ts";
import { ChallengeStore } from "../../gateway/state.ts";
import { newTokenKey } from "../keys.ts";
import type { GatewayState, StoredTokenKey, TokenKeyStore } from "../port.ts";

/**
 * The embedded backend: the gateway's node:sqlite file (see `openGatewayDatabase`) for
 * challenges, the audit log and the token keys, and rate limits in memory — one process is
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
    }),
    tokenKeys: () => sqliteTokenKeys(db),
    modelLock: () => null,
    close: async () => {},
  };
}

/**
 * Access-token keys in the gateway's SQLite file (table `token_keys`, created on first use, so
 * a database from before keys were stored opens as it is): tokens survive a restart, and
 * `kparty gateway keys rotate` adds a key. The private keys are as protected as the file (the
 * data dir is created 0700).
 */
function sqliteTokenKeys(db: DatabaseSync): TokenKeyStore {
  db.exec(`CREATE TABLE IF NOT EXISTS token_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    private_key TEXT NOT NULL,
    created_at INTEGER NOT NULL
  )`);
  const all = db.prepare("SELECT kid, private_key, created_at FROM token_keys ORDER BY created_at, kid");
  const insert = db.prepare("INSERT INTO token_keys (kid, private_key, created_at) VALUES (?, ?, ?)");
  const read = () =>
    (all.all() as { kid: string; private_key: string; created_at: number }[]).map(
      (r): StoredTokenKey => ({
        kid: r.kid,
        privateKey: createPrivateKey(r.private_key),
        createdAt: Number(r.created_at),
      }),
    );
  const store = (key: StoredTokenKey) =>
    insert.run(key.kid, key.privateKey.export({ format: "pem", type: "pkcs8" }) as string, key.createdAt);
  return {
    async load() {
      db.exec("BEGIN IMMEDIATE");
      try {
        let keys = read();
        if (keys.length === 0) {
          store(newTokenKey(Date.now()));
          keys = read();
        }
        db.exec("COMMIT");
        return keys;
      } catch (error) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw error;
      }
    },
    async add() {
      const newest = read().at(-1)?.createdAt ?? 0;
      const key = newTokenKey(Math.max(Date.now(), newest + 1));
      store(key);
      return key;
    },
  };
}
