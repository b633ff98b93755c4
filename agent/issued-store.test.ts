import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { DataSource } from "typeorm";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestPostgres, type TestPostgres } from "../test/fixtures/postgres.ts";
import { type Issuance, IssuedCredentialStore, type IssuedRecord } from "./issued-store.ts";
import { openAgentDatabase } from "./store.ts";

/**
 * The issued-credential store on both backends: status indexes are gap-free and never reused,
 * on PostgreSQL also when several agents of one member (each its own database handle, as two
 * processes have) issue at once. Signing is stood in for by a function that yields between
 * credentials, so issuances interleave as they do around a real signature.
 */
const postgres = await startTestPostgres();
if ("unavailable" in postgres) console.warn(`issued-store PostgreSQL tests skipped: ${postgres.unavailable}`);
afterAll(async () => {
  if (!("unavailable" in postgres)) await postgres.stop();
});

const ACCOUNT = "0x00000000000000000000000000000000000000Aa";
const segment = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** A record the store accepts: a JWT-shaped string (the store reads its `jti`), not a signed one. */
function record(statusIndex: number, by: string): IssuedRecord {
  const jti = `urn:uuid:${by}-${statusIndex}`;
  return {
    credentialId: `0x${statusIndex.toString(16).padStart(64, "0")}`,
    issuer: "did:ethr:0x7a69:0x00000000000000000000000000000000000000aa",
    issuerAccount: ACCOUNT,
    subject: `did:example:${by}`,
    statusIndex,
    jwt: `${segment({ alg: "ES256K" })}.${segment({ jti })}.${segment({ by })}`,
    issuedAt: "2026-01-01T00:00:00.000Z",
    anchoredBlock: null,
    anchorTx: null,
    anchorRoot: null,
    anchorProof: [],
  };
}

const yieldOnce = () => new Promise((resolve) => setImmediate(resolve));

/** One credential issued by `by`: the index is taken, a turn of the event loop passes, it is recorded. */
function issueOne(store: IssuedCredentialStore, by: string): Promise<Issuance> {
  return store.issue(ACCOUNT, 1, async (first) => {
    await yieldOnce();
    return { records: [record(first, by)] };
  });
}

async function storedIndexes(db: DataSource): Promise<number[]> {
  const rows: { status_index: number | string }[] = await db.query(
    "SELECT status_index FROM kparty_issued ORDER BY status_index",
  );
  return rows.map((r) => Number(r.status_index));
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The behaviour both backends share, on databases `open` opens (two handles on one database). */
function sharedSuite(open: () => Promise<[DataSource, DataSource]>) {
  let dbs: DataSource[] = [];
  afterEach(async () => {
    for (const db of dbs.splice(0)) if (db.isInitialized) await db.destroy();
  });
  const stores = async () => {
    dbs = await open();
    return Promise.all(dbs.map((db) => IssuedCredentialStore.open(db)));
  };

  it("takes no index when signing fails: the next issuance gets the same one", async () => {
    const [store] = (await stores()) as [IssuedCredentialStore];
    await issueOne(store, "a");
    const failure = new Error("signing failed");
    await expect(store.issue(ACCOUNT, 3, () => Promise.reject(failure))).rejects.toBe(failure);
    const next = await store.issue(ACCOUNT, 2, async (first) => ({
      records: [record(first, "b"), record(first + 1, "b")],
    }));
    expect(next.records.map((r) => r.statusIndex)).toEqual([1, 2]);
    expect(await storedIndexes(dbs[0] as DataSource)).toEqual([0, 1, 2]);
  });

  it("refuses an issuance that signed other indexes than it was given, and takes none", async () => {
    const [store] = (await stores()) as [IssuedCredentialStore];
    await expect(
      store.issue(ACCOUNT, 1, async (first) => ({ records: [record(first + 1, "a")] })),
    ).rejects.toThrow("issuance does not use the status indexes allocated to it");
    expect((await issueOne(store, "a")).records[0]?.statusIndex).toBe(0);
    expect(await storedIndexes(dbs[0] as DataSource)).toEqual([0]);
  });
}

describe("issued-credential store on the embedded database (sql.js)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kparty-issued-"));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  sharedSuite(async () => {
    const db = await openAgentDatabase(join(dir, "agent.sqlite"));
    return [db, db];
  });

  it("gives 40 concurrent issuances of one agent the indexes 0..39, and keeps them across a restart", async () => {
    const file = join(dir, "agent.sqlite");
    let db = await openAgentDatabase(file);
    let store = await IssuedCredentialStore.open(db);
    const issued = await Promise.all(range(40).map((i) => issueOne(store, `c${i}`)));
    expect(issued.map((x) => x.records[0]?.statusIndex).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(
      range(40),
    );
    await db.destroy();
    db = await openAgentDatabase(file);
    store = await IssuedCredentialStore.open(db);
    expect((await issueOne(store, "after")).records[0]?.statusIndex).toBe(40);
    expect(await storedIndexes(db)).toEqual(range(41));
    await db.destroy();
  });
});

describe.skipIf("unavailable" in postgres)("issued-credential store on PostgreSQL", () => {
  const server = postgres as TestPostgres;

  /** Two agents of one member on a fresh database (each its own handle, as two processes have), closed after `fn`. */
  async function withTwoAgents(
    fn: (
      stores: [IssuedCredentialStore, IssuedCredentialStore],
      dbs: [DataSource, DataSource],
      url: string,
    ) => Promise<void>,
  ): Promise<void> {
    const url = await server.database();
    // opened together: the schema is created once, under the advisory lock
    const dbs = (await Promise.all([openAgentDatabase(url), openAgentDatabase(url)])) as [
      DataSource,
      DataSource,
    ];
    try {
      const stores = await Promise.all(dbs.map((db) => IssuedCredentialStore.open(db)));
      await fn(stores as [IssuedCredentialStore, IssuedCredentialStore], dbs, url);
    } finally {
      for (const db of dbs) await db.destroy().catch(() => undefined);
    }
  }

  sharedSuite(async () => {
    const url = await server.database();
    return Promise.all([openAgentDatabase(url), openAgentDatabase(url)]);
  });

  it("two agents of one member issuing 2×20 at once get exactly 0..39: no duplicate, no gap", () =>
    withTwoAgents(async ([one, two], dbs) => {
      const issued = await Promise.all(
        range(40).map((i) => (i % 2 === 0 ? issueOne(one, "one") : issueOne(two, "two"))),
      );
      const indexes = issued.map((x) => x.records[0]?.statusIndex as number);
      expect(new Set(indexes).size).toBe(40);
      expect([...indexes].sort((a, b) => a - b)).toEqual(range(40));
      expect(await storedIndexes(dbs[0])).toEqual(range(40));
      const byAgent = (by: string) =>
        issued.filter((x) => x.records[0]?.subject === `did:example:${by}`).length;
      expect([byAgent("one"), byAgent("two")]).toEqual([20, 20]);
      const counter: { next_index: string }[] = await dbs[1].query(
        "SELECT next_index FROM kparty_status_counter WHERE account = $1",
        [ACCOUNT.toLowerCase()],
      );
      expect(counter).toEqual([{ next_index: "40" }]);
    }));

  it("a batch and single issuances of two agents at once: consecutive indexes per batch, 0..24 in all", () =>
    withTwoAgents(async ([one, two], dbs) => {
      const batch = two.issue(ACCOUNT, 10, async (first) => {
        await yieldOnce();
        return { records: range(10).map((i) => record(first + i, "batch")) };
      });
      const singles = range(15).map(() => issueOne(one, "single"));
      const [batched] = await Promise.all([batch, ...singles]);
      const first = batched.records[0]?.statusIndex as number;
      expect(batched.records.map((r) => r.statusIndex)).toEqual(range(10).map((i) => first + i));
      expect(await storedIndexes(dbs[0])).toEqual(range(25));
    }));

  it("a process killed mid-issuance releases its lock and takes no index", () =>
    withTwoAgents(async ([one, two], dbs, url) => {
      await issueOne(one, "before");
      // agent one holds the counter's lock while it "signs"; its connection is then cut, as
      // when its process dies: PostgreSQL rolls the transaction back and agent two goes on
      let signing!: () => void;
      let finish!: () => void;
      const started = new Promise<void>((resolve) => {
        signing = resolve;
      });
      const dying = one.issue(ACCOUNT, 1, async (first) => {
        signing();
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
        return { records: [record(first, "dead")] };
      });
      await started;
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      const killed = await admin.query(
        `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle in transaction'`,
      );
      await admin.end();
      expect(killed.rows).toEqual([{ done: true }]);
      finish();
      await expect(dying).rejects.toMatchObject({ code: "state_unavailable" });
      expect((await issueOne(two, "after")).records[0]?.statusIndex).toBe(1);
      expect(await storedIndexes(dbs[1])).toEqual([0, 1]);
    }));
});
