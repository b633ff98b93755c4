import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { Entities, migrations } from "@veramo/data-store";
import { DataSource } from "typeorm";
import { KPartyError } from "../src/errors/index.ts";
import { writeFileAtomic } from "../src/util/atomic-file.ts";

/**
 * Takes an exclusive lock on `file` for this process (sql.js keeps the database in memory,
 * so two processes on one file would overwrite each other). A lock left by a dead process
 * is taken over.
 */
function lockFile(file: string): () => void {
  const lock = `${file}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lock, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const pid = Number(readFileSync(lock, "utf8"));
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = pid > 0;
      } catch {
        alive = false;
      }
      if (alive) {
        const by = pid === process.pid ? "this process" : `process ${pid}`;
        throw new KPartyError("data_dir_in_use", `${file} is in use by ${by}`, {
          details: { hint: "one kparty process per data dir: stop the other one, or use another --data-dir" },
        });
      }
      rmSync(lock, { force: true });
    }
  }
  throw new KPartyError("data_dir_in_use", `could not lock ${file}`);
}

/** True for a `postgres://` (or `postgresql://`) URL: the agent database on PostgreSQL. */
export function isPostgresUrl(location: string): boolean {
  return /^postgres(ql)?:\/\//.test(location);
}

/** True when `db` is on PostgreSQL (else sql.js). */
export function isPostgres(db: DataSource): boolean {
  return db.options.type === "postgres";
}

/** Advisory-lock key under which agents on one PostgreSQL database change its schema ("kpag"). */
const SCHEMA_LOCK = 0x6b70_6167;

const queues = new Map<string, WeakMap<DataSource, Promise<unknown>>>();

/** Runs `fn` after every earlier `fn` of `queue` on `db` in this process has settled. */
export function inTurn<T>(db: DataSource, queue: string, fn: () => Promise<T>): Promise<T> {
  let turns = queues.get(queue);
  if (!turns) {
    turns = new WeakMap();
    queues.set(queue, turns);
  }
  const turn = (turns.get(db) ?? Promise.resolve()).catch(() => undefined).then(fn);
  turns.set(db, turn);
  return turn;
}

/**
 * Runs `fn` (schema changes) alone among the agents on `db`: in this process in turn, and on
 * PostgreSQL also under a session advisory lock, so processes opening one database together
 * migrate it once (an sql.js file is this process's alone).
 */
export function withSchemaLock<T>(db: DataSource, fn: () => Promise<T>): Promise<T> {
  return inTurn(db, "schema", async () => {
    if (!isPostgres(db)) return fn();
    const runner = db.createQueryRunner();
    try {
      await runner.query("SELECT pg_advisory_lock($1)", [SCHEMA_LOCK]);
      try {
        return await fn();
      } finally {
        await runner.query("SELECT pg_advisory_unlock($1)", [SCHEMA_LOCK]);
      }
    } finally {
      await runner.release();
    }
  });
}

/** Connections an agent keeps to PostgreSQL at most, and how long it waits for one. */
const POOL = { max: 10, connectTimeoutMs: 5_000 } as const;

/**
 * Opens the agent database on PostgreSQL at `url`: Veramo's entities, its migrations run under
 * the schema lock. Any number of processes may share it; `state_unavailable` when it cannot be
 * reached (the message names host and database, never the password).
 */
async function openPostgresAgentDatabase(url: string): Promise<DataSource> {
  const dataSource = new DataSource({
    type: "postgres",
    url,
    applicationName: "kparty-agent",
    poolSize: POOL.max,
    connectTimeoutMS: POOL.connectTimeoutMs,
    entities: Entities,
    migrations,
    migrationsRun: false,
    synchronize: false,
    logging: false,
  });
  try {
    await dataSource.initialize();
    await withSchemaLock(dataSource, () => dataSource.runMigrations({ transaction: "all" }));
  } catch (cause) {
    if (dataSource.isInitialized) await dataSource.destroy().catch(() => undefined);
    const { host, pathname } = new URL(url);
    throw new KPartyError(
      "state_unavailable",
      `cannot open the agent database postgres://${host}${pathname}`,
      {
        cause,
        details: { hint: "is PostgreSQL reachable? check --database or KPARTY_DATABASE_URL" },
      },
    );
  }
  return dataSource;
}

/**
 * Opens the agent's database: PostgreSQL when `location` is a `postgres://` URL (see
 * {@link openPostgresAgentDatabase}), else the embedded file at `location`.
 */
export async function openAgentDatabase(location: string): Promise<DataSource> {
  return isPostgresUrl(location) ? openPostgresAgentDatabase(location) : openEmbeddedAgentDatabase(location);
}

/**
 * Opens the agent's embedded database: Veramo's TypeORM entities and migrations on sql.js
 * (WebAssembly SQLite, no native addon), loaded from `file` and written back atomically
 * after every change. One process per file.
 */
async function openEmbeddedAgentDatabase(file: string): Promise<DataSource> {
  const unlock = lockFile(file);
  let database: Uint8Array | undefined;
  try {
    database = new Uint8Array(await readFile(file));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
      unlock();
      throw error;
    }
  }
  const dataSource = new DataSource({
    type: "sqljs",
    ...(database ? { database } : {}),
    autoSave: true,
    autoSaveCallback: (data: Uint8Array) => writeFileAtomic(file, data),
    entities: Entities,
    migrations,
    migrationsRun: true,
    synchronize: false,
    logging: false,
  });
  try {
    await dataSource.initialize();
  } catch (error) {
    unlock();
    throw error;
  }
  const destroy = dataSource.destroy.bind(dataSource);
  dataSource.destroy = async () => {
    try {
      await destroy();
    } finally {
      unlock();
    }
  };
  return dataSource;
}
