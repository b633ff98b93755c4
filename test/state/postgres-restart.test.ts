import { afterAll, describe, expect, it } from "vitest";
import { KPartyError } from "../../src/errors/index.ts";
import { openPostgresState } from "../../src/state/index.ts";
import { startTestPostgres, type TestPostgres } from "../fixtures/postgres.ts";

/**
 * A PostgreSQL restart while the gateway holds a connection out of the pool (a model lock, an
 * audit group's transaction): the server terminates it (57P01), pg emits `error` on it, and
 * with nobody listening that crashed the gateway process (found by `npm run replicas`). Now
 * the work fails closed and the connection is dropped, and the next request finds the server.
 */
const postgres = await startTestPostgres();
if ("unavailable" in postgres) console.warn(`PostgreSQL restart tests skipped: ${postgres.unavailable}`);

const T0 = 1_800_000_000_000;

describe.skipIf("unavailable" in postgres)("a PostgreSQL restart under a checked-out connection", () => {
  const pg = postgres as TestPostgres;
  afterAll(() => pg.stop());

  it("does not crash the process, fails closed, and the next request works", async () => {
    const state = await openPostgresState({ url: await pg.database(), maxConnections: 2 });
    const errors: unknown[] = [];
    const onUncaught = (error: unknown) => errors.push(error);
    process.on("uncaughtException", onUncaught);
    try {
      const lock = state.modelLock();
      if (!lock) throw new Error("PostgreSQL has a model lock");
      // the lock's connection is out of the pool while the server goes down under it
      const held = await lock("m", async () => {
        await pg.stop({ keepData: true });
        // a pause for the server's termination to reach the held connection: it shapes the fault,
        // nothing below is timed (no crash and fail-closed hold whenever the error arrives)
        await new Promise((r) => setTimeout(r, 200));
        return "done";
      });
      expect(held).toBe("done");
      const audit = state.audit({ now: () => T0 });
      const refused = await audit
        .append({ client: "c", route: "/auth/token", outcome: "denied" })
        .catch((e: unknown) => e);
      expect([refused instanceof KPartyError, (refused as KPartyError).code]).toEqual([
        true,
        "state_unavailable",
      ]);
      await pg.start();
      // a fresh connection: the broken one was dropped, not handed out again
      expect(await lock("m", async () => "again")).toBe("again");
      const record = await audit.append({ client: "c", route: "/auth/token", outcome: "granted" });
      expect(record.seq).toBe(1);
      expect(errors).toEqual([]);
    } finally {
      process.off("uncaughtException", onUncaught);
      await state.close();
    }
  });
});
