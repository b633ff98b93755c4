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

/**
 * Opens the agent's embedded database: Veramo's TypeORM entities and migrations on sql.js
 * (WebAssembly SQLite, no native addon), loaded from `file` and written back atomically
 * after every change. One process per file.
 */
export async function openAgentDatabase(file: string): Promise<DataSource> {
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
