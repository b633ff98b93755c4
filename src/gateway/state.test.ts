import fs from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import type { KPartyError } from "../errors/index.ts";
import { AuditLog, verifyAuditChain } from "./audit.ts";
import { ChallengeStore, openGatewayDatabase, SqliteOid4vpTransactions } from "./state.ts";

/** The real sync, for mocks that slow it down (taken before any test spies on it). */
const fdatasyncSync = fs.fdatasyncSync;

describe("ChallengeStore", () => {
  it("accepts a challenge once, then reports challenge_reused", () => {
    const store = new ChallengeStore(openGatewayDatabase(":memory:"), {
      ttlSeconds: 60,
      now: () => 1_000_000,
    });
    const { challenge, expiresAt } = store.issue("127.0.0.1");
    expect(expiresAt.getTime()).toBe(1_060_000);
    expect(errorCode(() => store.consume(challenge))).toBe("no error");
    expect(errorCode(() => store.consume(challenge))).toBe("challenge_reused");
  });

  it("reports challenge_invalid for an unknown or expired challenge", () => {
    let now = 1_000_000;
    const store = new ChallengeStore(openGatewayDatabase(":memory:"), { ttlSeconds: 60, now: () => now });
    expect(errorCode(() => store.consume("never-issued"))).toBe("challenge_invalid");
    const { challenge } = store.issue("127.0.0.1");
    now += 60_000;
    expect(errorCode(() => store.consume(challenge))).toBe("challenge_invalid");
  });
});

describe("SqliteOid4vpTransactions", () => {
  const open = (now: () => number) => {
    const store = new SqliteOid4vpTransactions(openGatewayDatabase(":memory:"), { now });
    store.create({ id: "tx", state: "st", nonce: "n", client: "127.0.0.1", request: "{}", expiresAt: 2_000 });
    return store;
  };

  it("consumes a request's nonce once: another nonce or state is challenge_invalid, a second answer challenge_reused", () => {
    const store = open(() => 1_000);
    expect(errorCode(() => store.checkNonce("st", "other"))).toBe("challenge_invalid");
    expect(errorCode(() => store.consumeNonce("st", "other"))).toBe("challenge_invalid");
    expect(errorCode(() => store.consumeNonce("nope", "n"))).toBe("challenge_invalid");
    expect(errorCode(() => store.consumeNonce("st", "n"))).toBe("no error");
    expect(errorCode(() => store.checkNonce("st", "n"))).toBe("challenge_reused");
    expect(errorCode(() => store.consumeNonce("st", "n"))).toBe("challenge_reused");
    expect(store.byId("tx")?.respondedAt).toBe(1_000);
  });

  it("refuses the nonce of an expired request: challenge_invalid", () => {
    const store = open(() => 2_000);
    expect(errorCode(() => store.consumeNonce("st", "n"))).toBe("challenge_invalid");
    expect(store.byState("st")?.respondedAt).toBeNull();
  });

  it("settles only a responded transaction, once; redeems a granted one once", () => {
    const store = open(() => 1_000);
    store.settle("tx", "granted", "{}");
    expect(store.byId("tx")?.outcome).toBeNull();
    expect(store.redeem("tx")).toBe(false);
    store.consumeNonce("st", "n");
    store.settle("tx", "granted", '{"g":1}');
    store.settle("tx", "denied", '{"code":"revoked"}');
    expect(store.byId("tx")).toMatchObject({ outcome: "granted", result: '{"g":1}' });
    expect(store.redeem("tx")).toBe(true);
    expect(store.redeem("tx")).toBe(false);
    expect(store.byId("tx")?.redeemedAt).toBe(1_000);
  });
});

describe("ChallengeStore durability", () => {
  it("leaves the connection at synchronous=FULL after every challenge write, even one that fails", () => {
    const db = openGatewayDatabase(":memory:");
    const level = () => (db.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous;
    const store = new ChallengeStore(db, { ttlSeconds: 60, now: () => 1_000_000 });
    expect(level()).toBe(2);
    const { challenge } = store.issue("c");
    expect(level()).toBe(2);
    store.consume(challenge);
    expect(level()).toBe(2);
    expect(errorCode(() => store.consume("unknown"))).toBe("challenge_invalid");
    expect(level()).toBe(2);
    db.exec("DROP TABLE challenges");
    expect(errorCode(() => store.issue("c"))).not.toBe("no error");
    expect(level()).toBe(2);
  });

  it("prunes long-expired challenges at most once a second", () => {
    const db = openGatewayDatabase(":memory:");
    let now = 1_000_000;
    const store = new ChallengeStore(db, { ttlSeconds: 60, now: () => now });
    const count = () => Number((db.prepare("SELECT COUNT(*) AS n FROM challenges").get() as { n: number }).n);
    store.issue("a");
    now += 121_000; // the first is now expired for longer than a lifetime
    store.issue("b");
    expect(count()).toBe(1);
    now += 121_000;
    store.issue("c");
    now += 500;
    store.issue("d"); // within a second of the last prune: no prune
    expect(count()).toBe(2);
  });
});

describe("AuditLog", () => {
  const at = () => Date.parse("2026-11-22T00:00:00Z");
  /**
   * Resolves after the end of the current event-loop turn: after a group commit that `append`
   * scheduled (setImmediate, queued before this one) and after every promise reaction queued
   * so far, with what they queued in turn.
   */
  const turn = () => new Promise<void>((r) => setImmediate(r));

  /**
   * Runs `test` on an audit log (`options` added to a fixed clock, and a sync-timing clock on
   * which syncs take no time unless the test says so) in a WAL file, with spies on its syncs:
   * on the event loop (`fs.fdatasyncSync`) and on libuv's thread pool (`FileHandle.datasync`),
   * which `holdPoolSyncs` makes wait, each recorded with the file descriptor it was made on,
   * until the test resolves or rejects it; `syncsStarted(n)` resolves once n have started.
   */
  async function withWalLog(
    options: Partial<ConstructorParameters<typeof AuditLog>[1]>,
    test: (wal: {
      db: ReturnType<typeof openGatewayDatabase>;
      log: AuditLog;
      loopSync: ReturnType<typeof vi.spyOn>;
      poolSync: ReturnType<typeof vi.spyOn>;
      holdPoolSyncs: () => {
        syncs: { fd: number; resolve: () => void; reject: (error: Error) => void }[];
        syncsStarted: (n: number) => Promise<void>;
      };
    }) => Promise<void>,
  ): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), "kparty-audit-"));
    try {
      const db = openGatewayDatabase(join(dir, "gateway.sqlite"));
      const log = new AuditLog(db, { now: at, elapsedMs: () => 0, ...options });
      const probe = await open(join(dir, "gateway.sqlite"), "r");
      const poolSync = vi.spyOn(Object.getPrototypeOf(probe), "datasync");
      await probe.close();
      const loopSync = vi.spyOn(fs, "fdatasyncSync");
      const holdPoolSyncs = () => {
        const syncs: { fd: number; resolve: () => void; reject: (error: Error) => void }[] = [];
        const onStart: (() => void)[] = [];
        poolSync.mockImplementation(function (this: { fd: number }) {
          return new Promise<void>((resolve, reject) => {
            syncs.push({ fd: this.fd, resolve, reject });
            for (const started of onStart.splice(0)) started();
          });
        });
        const syncsStarted = async (n: number) => {
          while (syncs.length < n) await new Promise<void>((r) => onStart.push(r));
        };
        return { syncs, syncsStarted };
      };
      await test({ db, log, loopSync, poolSync, holdPoolSyncs });
      await log.close();
      db.close();
    } finally {
      vi.restoreAllMocks();
      await rm(dir, { recursive: true, force: true });
    }
  }

  it("appends decisions in order, each linked to the previous hash", async () => {
    const log = new AuditLog(openGatewayDatabase(":memory:"), { now: at });
    const first = await log.append({
      client: "a",
      route: "/auth/token",
      outcome: "granted",
      holder: "did:1",
      credentialId: "0x1",
    });
    const second = await log.append({
      client: "b",
      route: "/auth/token",
      outcome: "denied",
      code: "revoked",
    });
    expect(first.prevHash).toBe("0".repeat(64));
    expect(second).toMatchObject({
      seq: 2,
      prevHash: first.hash,
      outcome: "denied",
      code: "revoked",
      holder: null,
    });
    expect(second.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(log.tail(1)).toEqual([second]);
    expect(log.tail(10).map((r) => r.seq)).toEqual([1, 2]);
  });

  it("verifies an intact chain and finds an edited or a deleted record", async () => {
    const db = openGatewayDatabase(":memory:");
    const log = new AuditLog(db, { now: at });
    for (const code of ["revoked", "expired", "suspended", null]) {
      await log.append({ client: "c", route: "/auth/token", outcome: code ? "denied" : "granted", code });
    }
    const intact = verifyAuditChain(db);
    expect(intact).toEqual({ valid: true, records: 4, head: log.tail(1)[0]?.hash });

    db.prepare("UPDATE audit SET outcome = 'granted', code = NULL WHERE seq = 2").run();
    expect(verifyAuditChain(db).broken).toEqual({ seq: 2, reason: "content does not match its hash" });

    const fresh = openGatewayDatabase(":memory:");
    const log2 = new AuditLog(fresh, { now: at });
    for (let i = 0; i < 3; i++)
      await log2.append({ client: "c", route: "/x", outcome: "denied", code: "revoked" });
    fresh.prepare("DELETE FROM audit WHERE seq = 2").run();
    expect(verifyAuditChain(fresh).broken).toEqual({ seq: 3, reason: "expected record 2, found 3" });
  });

  it("commits the decisions of one event-loop turn in one transaction, in call order", async () => {
    const db = openGatewayDatabase(":memory:");
    const log = new AuditLog(db, { now: at });
    const exec = vi.spyOn(db, "exec");
    const pending = ["a", "b", "c"].map((client) =>
      log.append({ client, route: "/auth/token", outcome: "granted" }),
    );
    expect(log.tail(10)).toEqual([]); // nothing is committed before the turn ends
    const records = await Promise.all(pending);
    expect(records.map((r) => [r.seq, r.client])).toEqual([
      [1, "a"],
      [2, "b"],
      [3, "c"],
    ]);
    expect(records[1]?.prevHash).toBe(records[0]?.hash);
    expect(records[2]?.prevHash).toBe(records[1]?.hash);
    expect(exec.mock.calls.map(([sql]) => sql)).toEqual(["BEGIN IMMEDIATE", "COMMIT"]);
    expect(log.tail(10)).toEqual(records);
    expect(verifyAuditChain(db)).toEqual({ valid: true, records: 3, head: records[2]?.hash });
  });

  it("splits a large group into transactions of at most 512 records, chained across them", async () => {
    const db = openGatewayDatabase(":memory:");
    const log = new AuditLog(db, { now: at });
    const exec = vi.spyOn(db, "exec");
    const records = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        log.append({ client: `c${i}`, route: "/x", outcome: "granted" }),
      ),
    );
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    expect(exec.mock.calls.filter(([sql]) => sql === "COMMIT")).toHaveLength(2);
    expect(verifyAuditChain(db)).toEqual({ valid: true, records: 1000, head: records[999]?.hash });
  });

  it("rejects every decision of a group whose commit fails, keeps none of them, and goes on", async () => {
    const db = openGatewayDatabase(":memory:");
    const log = new AuditLog(db, { now: at });
    db.exec(`CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.client = 'boom'
             BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
    const outcomes = await Promise.allSettled(
      ["a", "boom", "c"].map((client) => log.append({ client, route: "/x", outcome: "granted" })),
    );
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect((outcomes[0] as PromiseRejectedResult).reason.message).toMatch(/disk says no/);
    expect(log.tail(10)).toEqual([]);
    expect(db.isTransaction).toBe(false);
    const next = await log.append({ client: "d", route: "/x", outcome: "denied", code: "revoked" });
    expect([next.seq, next.prevHash]).toEqual([1, "0".repeat(64)]);
  });

  it("close() commits what is pending and waits for it to be on disk, so closing the database loses nothing", async () => {
    const db = openGatewayDatabase(":memory:");
    const log = new AuditLog(db, { now: at });
    const pending = log.append({ client: "a", route: "/x", outcome: "granted" });
    await log.close();
    expect(log.tail(10).map((r) => r.client)).toEqual(["a"]);
    db.close();
    expect((await pending).seq).toBe(1);
    await expect(log.append({ client: "b", route: "/x", outcome: "granted" })).rejects.toThrow(
      "the audit log is closed",
    );
  });

  it.each([
    ["on the event loop, by default", {}, "1 on the loop, 0 on the pool"],
    ["on libuv's thread pool with loopSyncMaxMs 0", { loopSyncMaxMs: 0 }, "0 on the loop, 1 on the pool"],
  ])(
    "in a WAL file, commits without SQLite's own sync, then syncs the log once for the turn's decisions %s, and resolves only after that",
    async (_, options, syncedBefore) => {
      await withWalLog(options, async ({ db, log, loopSync, poolSync }) => {
        const levels: string[] = [];
        const exec = db.exec.bind(db);
        vi.spyOn(db, "exec").mockImplementation((sql: string) => {
          if (sql === "COMMIT")
            levels.push(
              String((db.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous),
            );
          return exec(sql);
        });
        const synced: string[] = [];
        await Promise.all(
          ["a", "b"].map((client) =>
            log.append({ client, route: "/x", outcome: "granted" }).then((r) => {
              synced.push(
                `${r.client}: ${loopSync.mock.calls.length} on the loop, ${poolSync.mock.calls.length} on the pool`,
              );
            }),
          ),
        );
        expect(levels).toEqual(["1"]); // NORMAL for the commit: SQLite does not sync it
        expect((db.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous).toBe(2);
        expect(synced).toEqual([`a: ${syncedBefore}`, `b: ${syncedBefore}`]);
      });
    },
  );

  it("syncs on libuv's thread pool after a window of 32 slow syncs on the event loop, for 10 s, then 20 s if the disk is still slow; a sync on the loop also makes the pool's waiting groups durable", async () => {
    let now = at();
    let elapsed = 0;
    const options = { now: () => now, elapsedMs: () => elapsed };
    await withWalLog(options, async ({ log, loopSync, poolSync, holdPoolSyncs }) => {
      const slowSync = (fd: number) => {
        elapsed += 2.5; // over loopSyncMaxMs, 2 ms by default, on the log's sync-timing clock
        fdatasyncSync(fd);
      };
      const durable: string[] = [];
      const append = (client: string) =>
        log.append({ client, route: "/x", outcome: "granted" }).then((r) => durable.push(r.client));
      const where = () =>
        `${loopSync.mock.calls.length} on the loop, ${poolSync.mock.calls.length} on the pool`;
      loopSync.mockImplementation(slowSync);
      for (let i = 0; i < 31; i++) await append(`slow${i}`);
      await append("slow31"); // the window's median is 2.5 ms
      expect(where()).toBe("32 on the loop, 0 on the pool");
      const { syncs, syncsStarted } = holdPoolSyncs();
      const a = append("a");
      await syncsStarted(1);
      expect(where()).toBe("32 on the loop, 1 on the pool");
      now += 9_999;
      const b = append("b");
      await syncsStarted(2);
      expect(where()).toBe("32 on the loop, 2 on the pool");
      now += 1;
      loopSync.mockImplementation(fdatasyncSync);
      durable.length = 0;
      await append("c"); // after 10 s: on the loop again
      expect(where()).toBe("33 on the loop, 2 on the pool");
      // c's sync started after a's and b's commits: durable too, their syncs on the pool still held
      expect(durable).toEqual(["a", "b", "c"]);
      for (const sync of syncs) sync.resolve();
      await Promise.all([a, b]);
      // the new window, c's and 31 slow ones, is slow too: the pool for 20 s this time
      loopSync.mockImplementation(slowSync);
      for (let i = 0; i < 31; i++) await append(`slow${i}`);
      expect(where()).toBe("64 on the loop, 2 on the pool");
      now += 19_999;
      const d = append("d");
      await syncsStarted(3);
      expect(where()).toBe("64 on the loop, 3 on the pool");
      syncs[2]?.resolve();
      await d;
      now += 1;
      await append("e");
      expect(where()).toBe("65 on the loop, 3 on the pool");
    });
  });

  it("on the event loop, a failed sync refuses the decisions waiting on it and every later one", async () => {
    const reported: string[] = [];
    const onSyncFailure = (error: KPartyError) => reported.push(error.code);
    await withWalLog({ onSyncFailure }, async ({ log, loopSync, poolSync }) => {
      const eio = Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
      loopSync.mockImplementation(() => {
        throw eio;
      });
      const outcome = (client: string) =>
        log.append({ client, route: "/x", outcome: "granted" }).then(
          () => "durable",
          (error: KPartyError) => `${error.code}: ${error.message}`,
        );
      const refused =
        "audit_unavailable: the audit log could not be synced to disk, so no decision is recorded until the gateway restarts";
      expect(await Promise.all([outcome("a"), outcome("b")])).toEqual([refused, refused]);
      expect(await outcome("c")).toBe(refused); // without a commit or a sync
      expect(log.tail(10).map((r) => r.client)).toEqual(["a", "b"]);
      expect([loopSync.mock.calls.length, poolSync.mock.calls.length]).toEqual([1, 0]);
      expect(reported).toEqual(["audit_unavailable"]);
      expect(log.failure?.cause).toBe(eio);
    });
  });

  it("on libuv's thread pool, a group committed while the log is being synced gets a sync of its own, two at most at once, and a sync makes the older syncs' groups durable too", async () => {
    await withWalLog({ loopSyncMaxMs: 0 }, async ({ log, holdPoolSyncs }) => {
      const { syncs, syncsStarted } = holdPoolSyncs();
      const durable: string[] = [];
      const append = (client: string) =>
        log.append({ client, route: "/x", outcome: "granted" }).then((r) => durable.push(r.client));
      const a = append("a");
      await syncsStarted(1);
      const b = append("b"); // committed while a's sync is under way
      await syncsStarted(2);
      const c = append("c");
      await turn(); // c's group is committed, and whether it gets a sync now decided
      expect(syncs).toHaveLength(2); // c waits: two syncs are under way
      expect(log.tail(10).map((r) => r.client)).toEqual(["a", "b", "c"]); // all committed
      syncs[1]?.resolve();
      await Promise.all([a, b]);
      // b did not wait for a's sync, which started before its commit; and b's sync, which
      // started after a's commit, made a durable too, before a's own sync ended
      expect(durable).toEqual(["a", "b"]);
      await syncsStarted(3); // c's sync starts when one finishes
      syncs[0]?.resolve(); // a's own sync: nothing is left waiting on it
      await turn(); // everything its end sets off has run (the syncs are mocks: no I/O)
      expect(durable).toEqual(["a", "b"]);
      syncs[2]?.resolve();
      await c;
      expect(durable).toEqual(["a", "b", "c"]);
    });
  });

  it("on libuv's thread pool, a failed sync refuses the decisions waiting on it and every later one, and each sync under way has a handle of its own", async () => {
    const reported: string[] = [];
    const onSyncFailure = (error: KPartyError) => reported.push(error.code);
    await withWalLog({ onSyncFailure, loopSyncMaxMs: 0 }, async ({ log, holdPoolSyncs, poolSync }) => {
      const { syncs, syncsStarted } = holdPoolSyncs();
      const outcome = (client: string) =>
        log.append({ client, route: "/x", outcome: "granted" }).then(
          () => "durable",
          (error: KPartyError) => `${error.code}: ${error.message}`,
        );
      const a = outcome("a");
      await syncsStarted(1);
      const b = outcome("b"); // committed while a's sync is under way: a sync of its own
      await syncsStarted(2);
      expect(syncs[0]?.fd).not.toBe(syncs[1]?.fd); // an error is reported to each of them
      const eio = Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
      syncs[0]?.reject(eio);
      const refused =
        "audit_unavailable: the audit log could not be synced to disk, so no decision is recorded until the gateway restarts";
      expect(await a).toBe(refused);
      syncs[1]?.resolve(); // ended after a's failed: proves nothing
      expect(await b).toBe(refused);
      expect(await outcome("c")).toBe(refused); // later decisions too, without a commit or a sync
      expect(log.tail(10).map((r) => r.client)).toEqual(["a", "b"]);
      expect(poolSync).toHaveBeenCalledTimes(2);
      expect(reported).toEqual(["audit_unavailable"]); // once
      expect(log.failure?.cause).toBe(eio); // for the gateway's log
    });
  });

  it("survives a restart: the chain continues from the records on disk", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kparty-audit-"));
    try {
      const file = join(dir, "gateway.sqlite");
      const first = openGatewayDatabase(file);
      await new AuditLog(first, { now: at }).append({
        client: "a",
        route: "/auth/token",
        outcome: "granted",
      });
      first.close();
      const reopened = openGatewayDatabase(file);
      const log = new AuditLog(reopened, { now: at });
      const second = await log.append({
        client: "b",
        route: "/auth/token",
        outcome: "denied",
        code: "revoked",
      });
      expect(second.seq).toBe(2);
      expect(verifyAuditChain(reopened)).toEqual({ valid: true, records: 2, head: second.hash });
      reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
