import type pg from "pg";
import {
  MODEL_COLUMNS,
  modelOfRow,
  modelValues,
  UPDATE_COLUMNS,
  updateOfRow,
  updateValues,
} from "../embedded/models.ts";
import type { ModelMetadataStore, ModelRecord, ModelUpdateRecord } from "../port.ts";

type Query = <R extends pg.QueryResultRow>(text: string, values?: unknown[]) => Promise<pg.QueryResult<R>>;

/** Runs `fn` in one transaction on one connection (failures as `state_unavailable`). */
type Transaction = <T>(fn: (client: pg.PoolClient) => Promise<T>) => Promise<T>;

/**
 * The model store's metadata in `kparty_models` and `kparty_model_updates` (migration 5), shared
 * by every replica: a model registered at one replica is seen at all, and of concurrent updates
 * of one participant for one round, on any replicas, the unique key on (model, round,
 * participant) accepts exactly one (`INSERT … ON CONFLICT DO NOTHING`). An update is inserted
 * only while its round is the model's open one, in the same statement, which holds the model's
 * row `FOR SHARE` until it commits; `advance` takes the row `FOR UPDATE` before it counts the
 * round's updates. So an update commits before an advance counts it, or waits for the advance
 * and finds its round closed: none is accepted after the round's updates were counted, whether
 * or not the model lock (an advisory lock on a connection that can drop) still serialises them.
 */
export function postgresModelMetadata(query: Query, transaction: Transaction): ModelMetadataStore {
  const get = async (id: string) => {
    const { rows } = await query<Parameters<typeof modelOfRow>[0]>(
      `SELECT ${MODEL_COLUMNS} FROM kparty_models WHERE id = $1`,
      [id],
    );
    return rows[0] ? modelOfRow(rows[0]) : undefined;
  };
  return {
    async insert(model) {
      const { rowCount } = await query(
        `INSERT INTO kparty_models (${MODEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO NOTHING RETURNING 1`,
        modelValues(model),
      );
      return rowCount === 1;
    },
    get,
    async list() {
      const { rows } = await query<Parameters<typeof modelOfRow>[0]>(
        `SELECT ${MODEL_COLUMNS} FROM kparty_models ORDER BY id`,
      );
      return rows.map(modelOfRow);
    },
    async addUpdate(u) {
      const { rowCount } = await query(
        `INSERT INTO kparty_model_updates (${UPDATE_COLUMNS})
         SELECT $1, $2, $3, $4, $5, $6, $7 FROM kparty_models WHERE id = $1 AND version = $2 FOR SHARE
         ON CONFLICT (model, round, participant) DO NOTHING RETURNING 1`,
        updateValues(u),
      );
      if (rowCount === 1) return "accepted";
      return (await get(u.model))?.version === u.round ? "duplicate" : "closed";
    },
    async hasUpdate(model, round, participant) {
      const { rowCount } = await query(
        "SELECT 1 FROM kparty_model_updates WHERE model = $1 AND round = $2 AND participant = $3",
        [model, round, participant],
      );
      return rowCount === 1;
    },
    async updates(model, round) {
      const { rows } = await query<Parameters<typeof updateOfRow>[0]>(
        `SELECT ${UPDATE_COLUMNS} FROM kparty_model_updates WHERE model = $1 AND round = $2 ORDER BY seq`,
        [model, round],
      );
      return rows.map(updateOfRow);
    },
    async countUpdates(model, round) {
      const { rows } = await query<{ n: string }>(
        "SELECT count(*) AS n FROM kparty_model_updates WHERE model = $1 AND round = $2",
        [model, round],
      );
      return Number(rows[0]?.n ?? 0);
    },
    advance: (model, round, updatedAt, aggregated) =>
      transaction((client) => advance(client, { model, round, updatedAt, aggregated })),
    importModel: (model, updates) => importModel(query, model, updates),
  };
}

/**
 * Closes `round` in one transaction: the model's row `FOR UPDATE` first (granted once every
 * update holding it `FOR SHARE` has committed; none can take it after), then the round's
 * updates counted in a new statement (READ COMMITTED: it sees every update committed before
 * the lock), and the version moved on only if they are the `aggregated` ones.
 */
async function advance(
  client: pg.PoolClient,
  args: { model: string; round: number; updatedAt: string; aggregated: number },
): Promise<boolean> {
  const { rowCount } = await client.query(
    "SELECT 1 FROM kparty_models WHERE id = $1 AND version = $2 FOR UPDATE",
    [args.model, args.round],
  );
  if (rowCount !== 1) return false;
  const { rows } = await client.query<{ n: string }>(
    "SELECT count(*) AS n FROM kparty_model_updates WHERE model = $1 AND round = $2",
    [args.model, args.round],
  );
  if (Number(rows[0]?.n) !== args.aggregated) return false;
  await client.query("UPDATE kparty_models SET version = version + 1, updated_at = $1 WHERE id = $2", [
    args.updatedAt,
    args.model,
  ]);
  return true;
}

/** Adds `model` and `updates` in one statement unless the model exists (false). */
async function importModel(query: Query, model: ModelRecord, updates: ModelUpdateRecord[]): Promise<boolean> {
  // one statement: the updates are inserted only with the model
  const column = (i: number) => updates.map((u) => updateValues(u)[i]);
  const { rows } = await query<{ added: string }>(
    `WITH m AS (
           INSERT INTO kparty_models (${MODEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (id) DO NOTHING RETURNING id
         ), u AS (
           INSERT INTO kparty_model_updates (${UPDATE_COLUMNS})
           SELECT * FROM unnest($9::text[], $10::int[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::text[])
           WHERE EXISTS (SELECT 1 FROM m)
           RETURNING 1
         )
         SELECT (SELECT count(*) FROM m) AS added, (SELECT count(*) FROM u) AS updates`,
    [...modelValues(model), ...[0, 1, 2, 3, 4, 5, 6].map(column)],
  );
  return Number(rows[0]?.added ?? 0) === 1;
}
