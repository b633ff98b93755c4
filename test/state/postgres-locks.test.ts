import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { type GatewayState, openPostgresState } from "../../src/state/index.ts";
import { refusal } from "../fixtures/errors.ts";
import { updateRow } from "../fixtures/model-rows.ts";
import { startTestPostgres } from "../fixtures/postgres.ts";

/**
 * The row locks of the PostgreSQL backend's batched statements and of closing a model's round,
 * shown with real connections: one holds a row in an open transaction, the statement under
 * test waits for it, and a third says (NOWAIT) which rows that statement already holds.
 */

const postgres = await startTestPostgres();
if ("unavailable" in postgres) console.warn(`PostgreSQL lock tests skipped: ${postgres.unavailable}`);
afterAll(async () => {
  if (!("unavailable" in postgres)) await postgres.stop();
});

const T0 = 1_800_000_000_000;

/** Plans without nested loops or merge joins: a join of the batch's keys and the table is a hash join. */
const HASH_JOINS = `?options=${encodeURIComponent("-c enable_nestloop=off -c enable_mergejoin=off")}`;

/**
 * A fresh database with the schema migrated, the backend on it (with `hashJoins`, planning
 * only hash joins) and `n` plain connections.
 */
async function setUp(n: number, options: { hashJoins?: boolean } = {}) {
  if ("unavailable" in postgres) throw new Error(postgres.unavailable);
  const url = await postgres.database();
  const states: GatewayState[] = [];
  const clients = Array.from({ length: n }, () => new pg.Client({ connectionString: url }));
  for (const c of clients) await c.connect();
  const replica = async (hashJoins = false) => {
    const state = await openPostgresState({ url: hashJoins ? url + HASH_JOINS : url, maxConnections: 8 });
    states.push(state);
    return state;
  };
  return {
    state: await replica(options.hashJoins),
    clients,
    replica,
    async close() {
      for (const c of clients) await c.end().catch(() => undefined);
      for (const s of states) await s.close();
    },
  };
}

/** Until a statement of this database waits for a lock (each check is one round trip). */
async function untilOneWaits(observer: pg.Client): Promise<void> {
  for (;;) {
    const { rows } = await observer.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    if (Number(rows[0]?.n) > 0) return;
  }
}

/** What `SELECT … FOR UPDATE NOWAIT` of one row says: "free", or the error's SQLSTATE (55P03: locked). */
async function rowLockOf(client: pg.Client, sql: string, values: unknown[]): Promise<string> {
  await client.query("BEGIN");
  try {
    await client.query(`${sql} FOR UPDATE NOWAIT`, values);
    return "free";
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  } finally {
    await client.query("ROLLBACK");
  }
}

describe.skipIf("unavailable" in postgres)("postgres row locks: batched challenge redemption", () => {
  const insertChallenges = async (client: pg.Client, names: string[]) => {
    // in this order in the table: a join reading the table in its order would meet them so
    for (const name of names)
      await client.query(
        "INSERT INTO kparty_challenges (challenge, client, created_at, expires_at) VALUES ($1, 'c', $2, $3)",
        [name, T0, T0 + 60_000],
      );
  };
  const usedAt = async (client: pg.Client) =>
    (await client.query("SELECT challenge, used_at FROM kparty_challenges ORDER BY challenge")).rows.map(
      (r: { challenge: string; used_at: string | null }) => [r.challenge, r.used_at && Number(r.used_at)],
    );

  for (const join of ["the planner's choice", "a hash join"]) {
    it(`locks a batch's rows in challenge order (${join}): it holds "a" while it waits for "b"`, async () => {
      const t = await setUp(3, { hashJoins: join === "a hash join" });
      const [holder, prober, observer] = t.clients as [pg.Client, pg.Client, pg.Client];
      try {
        await insertChallenges(holder, ["b", "a", "d", "c"]);
        const store = t.state.challenges({ ttlSeconds: 60, now: () => T0 });
        // another replica's redemption of "b", in an open transaction
        await holder.query("BEGIN");
        await holder.query("UPDATE kparty_challenges SET used_at = $1 WHERE challenge = 'b'", [T0 - 1]);
        const outcomes = Promise.all(["b", "a"].map((c) => refusal(() => store.consume(c)))); // one batch
        await untilOneWaits(observer);
        expect(await rowLockOf(prober, "SELECT 1 FROM kparty_challenges WHERE challenge = $1", ["a"])).toBe(
          "55P03",
        );
        await holder.query("COMMIT");
        expect(await outcomes).toEqual(["challenge_reused", "accepted"]);
        // the same with the other transaction rolled back: both redeemed by the batch
        await holder.query("BEGIN");
        await holder.query("UPDATE kparty_challenges SET used_at = $1 WHERE challenge = 'd'", [T0 - 1]);
        const more = Promise.all(["d", "c"].map((c) => refusal(() => store.consume(c))));
        await untilOneWaits(observer);
        expect(await rowLockOf(prober, "SELECT 1 FROM kparty_challenges WHERE challenge = $1", ["c"])).toBe(
          "55P03",
        );
        await holder.query("ROLLBACK");
        expect(await more).toEqual(["accepted", "accepted"]);
        expect(await usedAt(observer)).toEqual([
          ["a", T0],
          ["b", T0 - 1],
          ["c", T0],
          ["d", T0],
        ]);
      } finally {
        await t.close();
      }
    });
  }

  // one replica joins with a nested loop (the batch's keys in order), the other with a hash join
  // (the table's order, here the order of issue): without the sort each locks in its own order
  it("two replicas redeeming the same challenges in opposite orders and plans, 20 times: each once, no error", async () => {
    const t = await setUp(1);
    const [observer] = t.clients as [pg.Client];
    try {
      const clock = { ttlSeconds: 60, now: () => T0 };
      const [a, b] = [t.state.challenges(clock), (await t.replica(true)).challenges(clock)];
      for (let round = 0; round < 20; round++) {
        const issued = [];
        for (let i = 0; i < 30; i++) issued.push((await a.issue("127.0.0.1")).challenge);
        const reversed = [...issued].reverse();
        const [atA, atB] = await Promise.all([
          Promise.all(issued.map((c) => refusal(() => a.consume(c)))),
          Promise.all(reversed.map((c) => refusal(() => b.consume(c)))),
        ]);
        const byChallenge = issued.map((_, i) => [atA[i], atB[issued.length - 1 - i]].sort());
        expect(byChallenge).toEqual(issued.map(() => ["accepted", "challenge_reused"]));
      }
      const { rows } = await observer.query(
        "SELECT count(*) AS n FROM kparty_challenges WHERE used_at IS NULL",
      );
      expect(Number(rows[0].n)).toBe(0);
    } finally {
      await t.close();
    }
  });
});

describe.skipIf("unavailable" in postgres)("postgres row locks: batched DPoP jti upsert", () => {
  it('inserts a batch\'s keys in key order: it holds "jkt:a" while it waits for "jkt:b"', async () => {
    const t = await setUp(3);
    const [holder, prober, observer] = t.clients as [pg.Client, pg.Client, pg.Client];
    try {
      const replay = t.state.dpopReplay({ now: () => T0 });
      expect(await replay.use("jkt:first", T0 + 61_000)).toBe(true); // prunes now, not again for a second
      // two entries past their expiry (taken over by a new use), "jkt:b" first in the table
      for (const key of ["jkt:b", "jkt:a"])
        await holder.query("INSERT INTO kparty_dpop_jti (key, expires_at) VALUES ($1, $2)", [key, T0 - 1]);
      // another replica's use of "jkt:b", in an open transaction
      await holder.query("BEGIN");
      await holder.query("UPDATE kparty_dpop_jti SET expires_at = $1 WHERE key = 'jkt:b'", [T0 + 30_000]);
      const outcomes = Promise.all(["jkt:b", "jkt:a"].map((k) => replay.use(k, T0 + 61_000))); // one batch
      await untilOneWaits(observer);
      expect(await rowLockOf(prober, "SELECT 1 FROM kparty_dpop_jti WHERE key = $1", ["jkt:a"])).toBe(
        "55P03",
      );
      await holder.query("COMMIT");
      expect(await outcomes).toEqual([false, true]);
      const { rows } = await observer.query("SELECT key, expires_at FROM kparty_dpop_jti ORDER BY key");
      expect(rows.map((r: { key: string; expires_at: string }) => [r.key, Number(r.expires_at)])).toEqual([
        ["jkt:a", T0 + 61_000],
        ["jkt:b", T0 + 30_000],
        ["jkt:first", T0 + 61_000],
      ]);
    } finally {
      await t.close();
    }
  });
});

describe.skipIf("unavailable" in postgres)("postgres row locks: closing a model's round", () => {
  const MODEL = {
    id: "held",
    description: "d",
    version: 1,
    shape: [2],
    dtype: "float32" as const,
    maxSamplesPerUpdate: 10,
    aggregation: { rule: "fedavg" as const },
    updatedAt: "t0",
  };
  const row = (participant: string) => updateRow("held", participant);

  it("holds an update while the model's row is locked FOR UPDATE, then refuses it as closed once the round advanced", async () => {
    const t = await setUp(2);
    const [closer, observer] = t.clients as [pg.Client, pg.Client];
    try {
      const meta = t.state.modelMetadata();
      expect(await meta.insert(MODEL)).toBe(true);
      expect(await meta.addUpdate(row("did:p"))).toBe("accepted");
      await closer.query("BEGIN");
      await closer.query("SELECT 1 FROM kparty_models WHERE id = 'held' FOR UPDATE");
      const late = meta.addUpdate(row("did:q"));
      await untilOneWaits(observer);
      await closer.query("UPDATE kparty_models SET version = 2 WHERE id = 'held'");
      await closer.query("COMMIT");
      expect(await late).toBe("closed");
      expect(await meta.updates("held", 1)).toMatchObject([{ participant: "did:p" }]);
    } finally {
      await t.close();
    }
  });

  it("an advance waits for an update in flight (FOR SHARE on the model's row), then counts it: false", async () => {
    const t = await setUp(2);
    const [adder, observer] = t.clients as [pg.Client, pg.Client];
    try {
      const meta = t.state.modelMetadata();
      expect(await meta.insert(MODEL)).toBe(true);
      expect(await meta.addUpdate(row("did:p"))).toBe("accepted");
      // an update being accepted: its row inserted, its model's row held, not yet committed
      await adder.query("BEGIN");
      await adder.query(
        `INSERT INTO kparty_model_updates (model, round, participant, sample_count, bytes, received_at, blob)
         SELECT id, 1, 'did:q', 1, 8, 't', 'q.f32' FROM kparty_models WHERE id = 'held' AND version = 1 FOR SHARE`,
      );
      const advanced = meta.advance("held", 1, "t1", 1); // its closer aggregated did:p only
      await untilOneWaits(observer);
      await adder.query("COMMIT");
      expect(await advanced).toBe(false);
      expect(await meta.get("held")).toMatchObject({ version: 1, updatedAt: "t0" });
      expect(await meta.advance("held", 1, "t2", 2)).toBe(true);
      expect(await meta.get("held")).toMatchObject({ version: 2, updatedAt: "t2" });
    } finally {
      await t.close();
    }
  });
});
