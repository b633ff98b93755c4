import type { DataSource } from "typeorm";
import { decodeJwt } from "../src/credential/index.ts";

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

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS kparty_status_counter (
     account TEXT PRIMARY KEY NOT NULL,
     next_index INTEGER NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS kparty_issued (
     credential_id TEXT PRIMARY KEY NOT NULL,
     issuer TEXT NOT NULL,
     issuer_account TEXT NOT NULL,
     subject TEXT NOT NULL,
     status_index INTEGER NOT NULL,
     jwt TEXT NOT NULL,
     issued_at TEXT NOT NULL,
     anchored_block INTEGER,
     anchor_tx TEXT,
     UNIQUE (issuer_account, status_index))`,
  `CREATE TABLE IF NOT EXISTS kparty_batches (
     root TEXT PRIMARY KEY NOT NULL,
     issuer TEXT NOT NULL,
     issuer_account TEXT NOT NULL,
     count INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     anchored_block INTEGER,
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

/**
 * The issuer's durable bookkeeping in the agent database: a per-account status index
 * counter (one atomic statement per allocation, saved before the index is used, so an
 * index is never handed out twice, also across restarts) and the issued credentials with
 * their anchoring state.
 */
export class IssuedCredentialStore {
  readonly #db: DataSource;

  private constructor(db: DataSource) {
    this.#db = db;
  }

  static async open(db: DataSource): Promise<IssuedCredentialStore> {
    for (const statement of SCHEMA) await db.query(statement);
    for (const [table, column, type] of ADDED_COLUMNS) {
      const columns: { name: string }[] = await db.query(`PRAGMA table_info(${table})`);
      if (!columns.some((c) => c.name === column))
        await db.query(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
    }
    const unnamed: { credential_id: string; jwt: string }[] = await db.query(
      "SELECT credential_id, jwt FROM kparty_issued WHERE jti IS NULL",
    );
    for (const row of unnamed) {
      await db.query("UPDATE kparty_issued SET jti = ? WHERE credential_id = ?", [
        jtiOf(row.jwt),
        row.credential_id,
      ]);
    }
    await db.query("CREATE INDEX IF NOT EXISTS kparty_issued_jti ON kparty_issued (jti)");
    return new IssuedCredentialStore(db);
  }

  /**
   * Allocates `count` consecutive status indexes of `account`'s lists and returns the first.
   * One statement, saved to disk before it returns: an index is never handed out twice.
   */
  async allocateIndexes(account: string, count = 1): Promise<number> {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError("count must be a positive integer");
    const rows: { first: number }[] = await this.#db.query(
      `INSERT INTO kparty_status_counter (account, next_index) VALUES (?, ?)
       ON CONFLICT(account) DO UPDATE SET next_index = next_index + ?
       RETURNING next_index - ? AS first`,
      [account.toLowerCase(), count, count, count],
    );
    const first = rows[0]?.first;
    if (first === undefined) throw new Error("status index allocation returned no row");
    return Number(first);
  }

  /**
   * Records signed credentials (and, for a batch, the batch) in one transaction, before
   * anything is anchored: a crash leaves them pending, never lost.
   */
  async save(
    records: IssuedRecord[],
    batch?: Omit<BatchRecord, "anchoredBlock" | "anchorTx">,
  ): Promise<void> {
    await this.#db.transaction(async (tx) => {
      if (batch) {
        await tx.query(
          `INSERT INTO kparty_batches (root, issuer, issuer_account, count, created_at) VALUES (?, ?, ?, ?, ?)`,
          [batch.root, batch.issuer, batch.issuerAccount.toLowerCase(), batch.count, batch.createdAt],
        );
      }
      for (const r of records) {
        await tx.query(
          `INSERT INTO kparty_issued (credential_id, issuer, issuer_account, subject, status_index, jwt, issued_at,
             anchored_block, anchor_tx, anchor_root, anchor_proof, jti)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
    });
  }

  /** Marks a credential id, or every credential of a batch root, anchored at `blockNumber`. */
  async markAnchored(
    key: { credentialId: string } | { root: string },
    blockNumber: number,
    tx: string,
  ): Promise<void> {
    await this.#db.transaction(async (t) => {
      if ("root" in key) {
        await t.query(`UPDATE kparty_batches SET anchored_block = ?, anchor_tx = ? WHERE root = ?`, [
          blockNumber,
          tx,
          key.root,
        ]);
        await t.query(`UPDATE kparty_issued SET anchored_block = ?, anchor_tx = ? WHERE anchor_root = ?`, [
          blockNumber,
          tx,
          key.root,
        ]);
      } else {
        await t.query(`UPDATE kparty_issued SET anchored_block = ?, anchor_tx = ? WHERE credential_id = ?`, [
          blockNumber,
          tx,
          key.credentialId,
        ]);
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
      `SELECT * FROM kparty_issued WHERE credential_id = ? OR jti = ? LIMIT 1`,
      [credentialId.toLowerCase(), credentialId],
    );
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async list(filter: { issuer?: string } = {}): Promise<IssuedRecord[]> {
    const rows: Row[] = filter.issuer
      ? await this.#db.query(
          `SELECT * FROM kparty_issued WHERE issuer = ? ORDER BY issued_at, status_index`,
          [filter.issuer],
        )
      : await this.#db.query(`SELECT * FROM kparty_issued ORDER BY issued_at, status_index`);
    return rows.map(fromRow);
  }
}
