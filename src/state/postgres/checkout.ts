import type pg from "pg";
import { KPartyError } from "../../errors/index.ts";

/** A connection taken from the pool for work of several statements; give it back with `release`. */
export interface CheckedOut {
  client: pg.PoolClient;
  /**
   * Returns the connection to the pool, or drops it when it failed (`failed`, or an error it
   * emitted while checked out): a broken connection is never reused.
   */
  release(failed?: unknown): void;
}

/**
 * Takes a connection from the pool and listens for its errors while it is out. The pool
 * listens only to idle connections; one checked out that the server terminates (a restart:
 * `57P01`, or the socket closing) emits `error`, and with no listener that would crash the
 * process. Here it only marks the connection broken: its pending query fails on its own (the
 * caller answers `state_unavailable`), and `release` drops it.
 */
export async function checkout(pool: pg.Pool): Promise<CheckedOut> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (error: Error) => {
    lost = error;
  };
  client.on("error", onError);
  return {
    client,
    release(failed) {
      const broken = lost ?? (failed instanceof Error ? failed : undefined);
      // the pool listens again from here (a dropped connection ends without another event)
      client.off("error", onError);
      client.release(broken);
    },
  };
}

/**
 * Runs `fn` in one transaction on a connection of `pool`, under the advisory lock `lock` if
 * given: COMMIT after it, ROLLBACK when anything throws (the error passed on as it is). The
 * connection goes back to the pool, unless the error was not one of kparty's refusals (a
 * `KPartyError` leaves the connection healthy): a connection that failed mid-transaction is
 * dropped.
 */
export async function inTransaction<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  options: { lock?: number } = {},
): Promise<T> {
  const { client, release } = await checkout(pool);
  let failed: unknown;
  try {
    await client.query("BEGIN");
    if (options.lock !== undefined) await client.query("SELECT pg_advisory_xact_lock($1)", [options.lock]);
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    failed = error;
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    release(failed instanceof KPartyError ? undefined : failed);
  }
}
