import type { DataSource, EntityManager } from "typeorm";
import { decodeJwt } from "../src/credential/index.ts";
import { KPartyError } from "../src/errors/index.ts";
import { inTurn, isPostgres, withSchemaLock } from "./store.ts";

/** The database's manager or a transaction's: what the store's statements run on. */
type Queryable = Pick<EntityManager, "query">;

/** What the issuer agent remembers of each credential it signed. */
export interface IssuedRecord {
  credentialId: string;
  issuer: string;
  /** The issuer's chain account (owner of the status lists). */
  issuerAccount: string;
  subject: string;
  statusIndex: number;
  jwt: string;
  issuedAt: string;
  /** Null until the anchoring transaction is confirmed. */
  anchoredBlock: number | null;
  anchorTx: string | null;
  /** Merkle root the credential was anchored under, null when its id was anchored directly. */
  anchorRoot: string | null;
  /** Inclusion proof of the credential id under `anchorRoot` (empty when anchored directly). */
  anchorProof: string[];
}

/** A batch of credentials anchored under one Merkle root. */
export interface BatchRecord {
  root: string;
  issuer: string;
  issuerAccount: string;
  count: number;
  createdAt: string;
  anchoredBlock: number | null;
  anchorTx: string | null;
}

/** The store's tables; `{int}` is INTEGER on SQLite (already 64-bit), BIGINT on PostgreSQL. */
const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS kparty_status_counter (
     account TEXT PRIMARY KEY NOT NULL,
     next_index {int} NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS kparty_issued (
     credential_id TEXT PRIMARY KEY NOT NULL,
     issuer TEXT NOT NULL,
     issuer_account TEXT NOT NULL,
     subject TEXT NOT NULL,
     status_index {int} NOT NULL,
     jwt TEXT NOT NULL,
     issued_at TEXT NOT NULL,
     anchored_block {int},
     anchor_tx TEXT,
     UNIQUE (issuer_account, status_index))`,
  `CREATE TABLE IF NOT EXISTS kparty_batches (
     root TEXT PRIMARY KEY NOT NULL,
     issuer TEXT NOT NULL,
     issuer_account TEXT NOT NULL,
     count INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     anchored_block {int},
     anchor_tx TEXT)`,
];

/** Columns added after the first release of the table, created on open when missing. */
const ADDED_COLUMNS: [table: string, column: string, type: string][] = [
  ["kparty_issued", "anchor_root", "TEXT"],
  ["kparty_issued", "anchor_proof", "TEXT"],
  // the credential's own `id` (its JWT's jti), by which VC-API clients name it
  ["kparty_issued", "jti", "TEXT"],
];

/** The `jti` of a credential JWT this store recorded, or null. */
function jtiOf(jwt: string): string | null {
  const { jti } = decodeJwt(jwt).payload;
  return typeof jti === "string" ? jti : null;
}

interface Row {
  credential_id: string;
  issuer: string;
  issuer_account: string;
  subject: string;
  status_index: number;
  jwt: string;
  issued_at: string;
  anchored_block: number | null;
  anchor_tx: string | null;
  anchor_root: string | null;
  anchor_proof: string | null;
}

function fromRow(row: Row): IssuedRecord {
  return {
    credentialId: row.credential_id,
    issuer: row.issuer,
    issuerAccount: row.issuer_account,
    subject: row.subject,
    statusIndex: Number(row.status_index),
    jwt: row.jwt,
    issuedAt: row.issued_at,
    anchoredBlock: row.anchored_block === null ? null : Number(row.anchored_block),
    anchorTx: row.anchor_tx,
    anchorRoot: row.anchor_root,
    anchorProof: row.anchor_proof ? (JSON.parse(row.anchor_proof) as string[]) : [],
  };
}

/** Signed credentials of one issuance and, for a batch, the batch they are anchored under. */
export interface Issuance {
  records: IssuedRecord[];
  batch?: Omit<BatchRecord, "anchoredBlock" | "anchorTx">;
}

/** How long an issuance waits for another process's issuance of the same account (PostgreSQL). */
const LOCK_TIMEOUT = "30s";

/** A statement that failed: the database is unreachable or refused it (stable code, 503 at a service). */
function unavailable(error: unknown): KPartyError {
  return new KPartyError("state_unavailable", "the agent database is unavailable", { cause: error });
}

/** `fn`'s result, its failure as {@link unavailable}. */
async function database<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    throw unavailable(error);
  }
}

/** Refuses an issuance whose indexes are not exactly `first … first + count - 1`. */
function checkIndexes(issuance: Issuance, first: number, count: number): void {
  const indexes = issuance.records.map((r) => r.statusIndex);
  if (indexes.length !== count || indexes.some((index, i) => index !== first + i)) {
    throw new Error("issuance does not use the status indexes allocated to it");
  }
}

/**
 * The issuer's durable bookkeeping in the agent database (SQLite through sql.js, or
 * PostgreSQL): a per-account status index counter and the issued credentials with their
 * anchoring state. Status indexes are gap-free and never reused, also across restarts and,
 * on PostgreSQL, across processes issuing for the same account (see {@link issue}).
 */
export class IssuedCredentialStore {
  readonly #db: DataSource;
  readonly #postgres: boolean;

  private constructor(db: DataSource) {
    this.#db = db;
    this.#postgres = isPostgres(db);
  }

  /** `sql` with `?` placeholders as the database's driver wants them (`$1, $2, …` on PostgreSQL). */
  #sql(sql: string): string {
    if (!this.#postgres) return sql;
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  }

  static async open(db: DataSource): Promise<IssuedCredentialStore> {
    const store = new IssuedCredentialStore(db);
    await withSchemaLock(db, () => store.#migrate());
    return store;
  }

  /** Creates the tables, adds columns newer than them and fills in `jti` where it is missing. */
  async #migrate(): Promise<void> {
    const db = this.#db;
    const int = this.#postgres ? "BIGINT" : "INTEGER";
    for (const statement of SCHEMA) await db.query(statement.replaceAll("{int}", int));
    for (const [table, column, type] of ADDED_COLUMNS) {
      if (this.#postgres) {
        await db.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${column} ${type}`);
        continue;
      }
      const columns: { name: string }[] = await db.query(`PRAGMA table_info(${table})`);
      if (!columns.some((c) => c.name === column))
        await db.query(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
    }
    const unnamed: { credential_id: string; jwt: string }[] = await db.query(
      "SELECT credential_id, jwt FROM kparty_issued WHERE jti IS NULL",
    );
    for (const row of unnamed) {
      await db.query(this.#sql("UPDATE kparty_issued SET jti = ? WHERE credential_id = ?"), [
        jtiOf(row.jwt),
        row.credential_id,
      ]);
    }
    await db.query("CREATE INDEX IF NOT EXISTS kparty_issued_jti ON kparty_issued (jti)");
  }

  /**
   * Allocates `count` consecutive status indexes of `account`, lets `build` sign the
   * credentials with them (`first`, `first + 1`, …) and records them with the counter's new
   * value in one transaction, before anything is anchored. Nothing is taken when `build` or
   * the write fails, so indexes stay gap-free; an index is never handed out twice. On
   * PostgreSQL the counter's row stays locked (`SELECT … FOR UPDATE`) until the commit, so
   * processes issuing for the same account take turns; issuances through one database
   * handle also take turns in this process (one connection waits for the lock, the pool's
   * others serve the signing).
   */
  async issue(
    account: string,
    count: number,
    build: (first: number) => Promise<Issuance>,
  ): Promise<Issuance> {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError("count must be a positive integer");
    const key = account.toLowerCase();
    return inTurn(this.#db, "issue", () =>
      this.#postgres ? this.#issueLocked(key, count, build) : this.#issueHere(key, count, build),
    );
  }

  /** PostgreSQL: one transaction holding the counter's row lock while `build` signs. */
  async #issueLocked(
    account: string,
    count: number,
    build: (first: number) => Promise<Issuance>,
  ): Promise<Issuance> {
    const runner = this.#db.createQueryRunner();
    try {
      const first = await database(async () => {
        await runner.connect();
        await runner.startTransaction();
        await runner.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
        return this.#counter(runner.manager, account, "FOR UPDATE");
      });
      const issuance = await build(first);
      checkIndexes(issuance, first, count);
      await database(async () => {
        await this.#write(runner.manager, account, first, count, issuance);
        await runner.commitTransaction();
      });
      return issuance;
    } catch (error) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw error;
    } finally {
      await runner.release();
    }
  }

  /**
   * SQLite: the file is this process's alone (see `openAgentDatabase`) and its issuances take
   * turns, so the counter read before `build` is still current when the transaction writes.
   */
  async #issueHere(
    account: string,
    count: number,
    build: (first: number) => Promise<Issuance>,
  ): Promise<Issuance> {
    const first = await this.#counter(this.#db.manager, account, "");
    const issuance = await build(first);
    checkIndexes(issuance, first, count);
    await this.#db.transaction((tx) => this.#write(tx, account, first, count, issuance));
    return issuance;
  }

  /** The account's next free index (its counter row created at 0 when missing). */
  async #counter(db: Queryable, account: string, lock: "FOR UPDATE" | ""): Promise<number> {
    await db.query(
      this.#sql(
        "INSERT INTO kparty_status_counter (account, next_index) VALUES (?, 0) ON CONFLICT (account) DO NOTHING",
      ),
      [account],
    );
    const rows: { next_index: number | string }[] = await db.query(
      this.#sql(`SELECT next_index FROM kparty_status_counter WHERE account = ? ${lock}`),
      [account],
    );
    const next = rows[0]?.next_index;
    if (next === undefined) throw new Error("status index counter has no row");
    return Number(next);
  }

  /** Records an issuance and advances the account's counter past it. */
  async #write(
    db: Queryable,
    account: string,
    first: number,
    count: number,
    issuance: Issuance,
  ): Promise<void> {
    await this.#insert(db, issuance.records, issuance.batch);
    await db.query(this.#sql("UPDATE kparty_status_counter SET next_index = ? WHERE account = ?"), [
      first + count,
      account,
    ]);
  }

  /**
   * Records signed credentials (and, for a batch, the batch) in one transaction, before
   * anything is anchored: a crash leaves them pending, never lost.
   */
  async save(records: IssuedRecord[], batch?: Issuance["batch"]): Promise<void> {
    await this.#db.transaction((tx) => this.#insert(tx, records, batch));
  }

  async #insert(db: Queryable, records: IssuedRecord[], batch?: Issuance["batch"]): Promise<void> {
    if (batch) {
      await db.query(
        this.#sql(
          "INSERT INTO kparty_batches (root, issuer, issuer_account, count, created_at) VALUES (?, ?, ?, ?, ?)",
        ),
        [batch.root, batch.issuer, batch.issuerAccount.toLowerCase(), batch.count, batch.createdAt],
      );
    }
    for (const r of records) {
      await db.query(
        this.#sql(`INSERT INTO kparty_issued (credential_id, issuer, issuer_account, subject, status_index, jwt,
           issued_at, anchored_block, anchor_tx, anchor_root, anchor_proof, jti)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
        [
          r.credentialId,
          r.issuer,
          r.issuerAccount.toLowerCase(),
          r.subject,
          r.statusIndex,
          r.jwt,
          r.issuedAt,
          r.anchoredBlock,
          r.anchorTx,
          r.anchorRoot,
          JSON.stringify(r.anchorProof),
          jtiOf(r.jwt),
        ],
      );
    }
  }

  /** Marks a credential id, or every credential of a batch root, anchored at `blockNumber`. */
  async markAnchored(
    key: { credentialId: string } | { root: string },
    blockNumber: number,
    tx: string,
  ): Promise<void> {
    const sql = (s: string) => this.#sql(s);
    await this.#db.transaction(async (t) => {
      if ("root" in key) {
        await t.query(sql("UPDATE kparty_batches SET anchored_block = ?, anchor_tx = ? WHERE root = ?"), [
          blockNumber,
          tx,
          key.root,
        ]);
        await t.query(
          sql("UPDATE kparty_issued SET anchored_block = ?, anchor_tx = ? WHERE anchor_root = ?"),
          [blockNumber, tx, key.root],
        );
      } else {
        await t.query(
          sql("UPDATE kparty_issued SET anchored_block = ?, anchor_tx = ? WHERE credential_id = ?"),
          [blockNumber, tx, key.credentialId],
        );
      }
    });
  }

  /** Signed but not yet anchored: single credentials and batches. */
  async pending(): Promise<{ credentials: IssuedRecord[]; batches: BatchRecord[] }> {
    const credentials: Row[] = await this.#db.query(
      `SELECT * FROM kparty_issued WHERE anchored_block IS NULL AND anchor_root IS NULL ORDER BY status_index`,
    );
    const batches: Record<string, unknown>[] = await this.#db.query(
      `SELECT * FROM kparty_batches WHERE anchored_block IS NULL ORDER BY created_at`,
    );
    return {
      credentials: credentials.map(fromRow),
      batches: batches.map((b) => ({
        root: b.root as string,
        issuer: b.issuer as string,
        issuerAccount: b.issuer_account as string,
        count: Number(b.count),
        createdAt: b.created_at as string,
        anchoredBlock: null,
        anchorTx: null,
      })),
    };
  }

  /** The record of a credential by its credential id (`0x…`) or by its own `id` (the JWT's jti). */
  async get(credentialId: string): Promise<IssuedRecord | undefined> {
    const rows: Row[] = await this.#db.query(
      this.#sql("SELECT * FROM kparty_issued WHERE credential_id = ? OR jti = ? LIMIT 1"),
      [credentialId.toLowerCase(), credentialId],
    );
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async list(filter: { issuer?: string } = {}): Promise<IssuedRecord[]> {
    const rows: Row[] = filter.issuer
      ? await this.#db.query(
          this.#sql("SELECT * FROM kparty_issued WHERE issuer = ? ORDER BY issued_at, status_index"),
          [filter.issuer],
        )
      : await this.#db.query("SELECT * FROM kparty_issued ORDER BY issued_at, status_index");
    return rows.map(fromRow);
  }
}
