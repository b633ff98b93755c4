import type { DatabaseSync } from "node:sqlite";
import type { ModelMetadataStore, ModelRecord, ModelUpdateRecord } from "../port.ts";

type ModelRow = {
  id: string;
  description: string;
  version: number | bigint;
  shape: string;
  dtype: "float32";
  max_samples_per_update: number | bigint;
  aggregation: string;
  updated_at: string;
};

type UpdateRow = {
  model: string;
  round: number | bigint;
  participant: string;
  sample_count: number | bigint;
  bytes: number | bigint;
  received_at: string;
  blob: string;
};

/** A model row as the port's record (shape and aggregation are stored as JSON text). */
export function modelOfRow(r: ModelRow): ModelRecord {
  return {
    id: r.id,
    description: r.description,
    version: Number(r.version),
    shape: JSON.parse(r.shape) as number[],
    dtype: r.dtype,
    maxSamplesPerUpdate: Number(r.max_samples_per_update),
    aggregation: JSON.parse(r.aggregation) as ModelRecord["aggregation"],
    updatedAt: r.updated_at,
  };
}

/** An update row as the port's record. */
export function updateOfRow(r: UpdateRow): ModelUpdateRecord {
  return {
    model: r.model,
    round: Number(r.round),
    participant: r.participant,
    sampleCount: Number(r.sample_count),
    bytes: Number(r.bytes),
    receivedAt: r.received_at,
    blob: r.blob,
  };
}

/** The values of a model row, in the column order {@link MODEL_COLUMNS} names. */
export function modelValues(m: ModelRecord): (string | number)[] {
  return [
    m.id,
    m.description,
    m.version,
    JSON.stringify(m.shape),
    m.dtype,
    m.maxSamplesPerUpdate,
    JSON.stringify(m.aggregation),
    m.updatedAt,
  ];
}

/** The values of an update row, in the column order {@link UPDATE_COLUMNS} names. */
export function updateValues(u: ModelUpdateRecord): (string | number)[] {
  return [u.model, u.round, u.participant, u.sampleCount, u.bytes, u.receivedAt, u.blob];
}

export const MODEL_COLUMNS =
  "id, description, version, shape, dtype, max_samples_per_update, aggregation, updated_at";
export const UPDATE_COLUMNS = "model, round, participant, sample_count, bytes, received_at, blob";

/** Tables `models` and `model_updates`, if absent. */
function createModelTables(db: DatabaseSync): void {
  db.exec(`CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    version INTEGER NOT NULL,
    shape TEXT NOT NULL,
    dtype TEXT NOT NULL,
    max_samples_per_update INTEGER NOT NULL,
    aggregation TEXT NOT NULL,
    updated_at TEXT NOT NULL
  )`);
  db.exec(`CREATE TABLE IF NOT EXISTS model_updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL REFERENCES models (id),
    round INTEGER NOT NULL,
    participant TEXT NOT NULL,
    sample_count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    blob TEXT NOT NULL,
    UNIQUE (model, round, participant)
  )`);
}

/**
 * The model store's metadata in tables `models` and `model_updates` of a node:sqlite file (the
 * gateway's, or the model directory's own for a store without a state backend), created on first
 * use. An update's uniqueness per model, round and participant is the table's unique key; every
 * write is one statement (or one transaction), synchronous. SQLite writes one at a time, and a
 * write statement holds the database's write lock from its start: the advance's count of the
 * round's updates and its change of the version are one atomic step.
 */
export function sqliteModelMetadata(db: DatabaseSync): ModelMetadataStore {
  createModelTables(db);
  const insertModel = db.prepare(
    `INSERT INTO models (${MODEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
  );
  const one = db.prepare(`SELECT ${MODEL_COLUMNS} FROM models WHERE id = ?`);
  // the update is inserted only while its round is the model's open one (version = round)
  const addUpdate = db.prepare(
    `INSERT INTO model_updates (${UPDATE_COLUMNS})
     SELECT ?, ?, ?, ?, ?, ?, ? FROM models WHERE id = ? AND version = ?
     ON CONFLICT (model, round, participant) DO NOTHING`,
  );
  // the round closes only with exactly the updates its closer aggregated
  const advance = db.prepare(
    `UPDATE models SET version = version + 1, updated_at = ? WHERE id = ? AND version = ?
     AND (SELECT count(*) FROM model_updates WHERE model = ? AND round = ?) = ?`,
  );
  const has = db.prepare("SELECT 1 FROM model_updates WHERE model = ? AND round = ? AND participant = ?");
  const get = (id: string) => {
    const row = one.get(id) as ModelRow | undefined;
    return row ? modelOfRow(row) : undefined;
  };
  return {
    insert: (model) => insertModel.run(...modelValues(model)).changes === 1,
    get,
    list: () =>
      (db.prepare(`SELECT ${MODEL_COLUMNS} FROM models ORDER BY id`).all() as ModelRow[]).map(modelOfRow),
    addUpdate(u) {
      if (addUpdate.run(...updateValues(u), u.model, u.round).changes === 1) return "accepted";
      return get(u.model)?.version === u.round ? "duplicate" : "closed";
    },
    hasUpdate: (model, round, participant) => has.get(model, round, participant) !== undefined,
    updates: (model, round) =>
      (
        db
          .prepare(`SELECT ${UPDATE_COLUMNS} FROM model_updates WHERE model = ? AND round = ? ORDER BY seq`)
          .all(model, round) as UpdateRow[]
      ).map(updateOfRow),
    countUpdates: (model, round) =>
      Number(
        (
          db
            .prepare("SELECT count(*) AS n FROM model_updates WHERE model = ? AND round = ?")
            .get(model, round) as {
            n: number;
          }
        ).n,
      ),
    advance: (model, round, updatedAt, aggregated) =>
      advance.run(updatedAt, model, round, model, round, aggregated).changes === 1,
    importModel: (model, updates) => importModel(db, model, updates),
  };
}

/** Adds `model` and `updates` in one transaction unless the model exists (false). */
function importModel(db: DatabaseSync, model: ModelRecord, updates: ModelUpdateRecord[]): boolean {
  const insertModel = db.prepare(
    `INSERT INTO models (${MODEL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
  );
  const insertUpdate = db.prepare(
    `INSERT INTO model_updates (${UPDATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  db.exec("BEGIN IMMEDIATE");
  try {
    const added = insertModel.run(...modelValues(model)).changes === 1;
    if (added) for (const u of updates) insertUpdate.run(...updateValues(u));
    db.exec("COMMIT");
    return added;
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}
