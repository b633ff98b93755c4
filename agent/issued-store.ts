import type { DataSource } from "typeorm";

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
];

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
    return new IssuedCredentialStore(db);
  }

  /** Allocates the next status index of `account`'s lists. */
  async allocateIndex(account: string): Promise<number> {
    const rows: { idx: number }[] = await this.#db.query(
      `INSERT INTO kparty_status_counter (account, next_index) VALUES (?, 1)
       ON CONFLICT(account) DO UPDATE SET next_index = next_index + 1
       RETURNING next_index - 1 AS idx`,
      [account.toLowerCase()],
    );
    const idx = rows[0]?.idx;
    if (idx === undefined) throw new Error("status index allocation returned no row");
    return Number(idx);
  }

  async save(record: IssuedRecord): Promise<void> {
    await this.#db.query(
      `INSERT INTO kparty_issued (credential_id, issuer, issuer_account, subject, status_index, jwt, issued_at, anchored_block, anchor_tx)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        record.credentialId,
        record.issuer,
        record.issuerAccount.toLowerCase(),
        record.subject,
        record.statusIndex,
        record.jwt,
        record.issuedAt,
        record.anchoredBlock,
        record.anchorTx,
      ],
    );
  }

  async markAnchored(credentialId: string, blockNumber: number, tx: string): Promise<void> {
    await this.#db.query(
      `UPDATE kparty_issued SET anchored_block = ?, anchor_tx = ? WHERE credential_id = ?`,
      [blockNumber, tx, credentialId],
    );
  }

  async get(credentialId: string): Promise<IssuedRecord | undefined> {
    const rows: Row[] = await this.#db.query(`SELECT * FROM kparty_issued WHERE credential_id = ?`, [
      credentialId.toLowerCase(),
    ]);
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
