import { describe, expect, it, vi } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import type { KPartyError } from "../errors/index.ts";
import { AuditLog, verifyAuditChain } from "./audit.ts";
import { ChallengeStore, openGatewayDatabase } from "./state.ts";

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
   * Runs `test` on an audit log in a WAL file whose syncs are held: each `datasync` call is
   * recorded (with the file descriptor it was made on) until the test resolves or rejects it.
   */
  async function withHeldSyncs(
    options: Omit<ConstructorParameters<typeof AuditLog>[1], "now">,
    test: (held: {
      log: AuditLog;
      syncs: { fd: number; resolve: () => void; reject: (error: Error) => void }[];
      syncsStarted: (n: number) => Promise<void>;
      datasync: ReturnType<typeof vi.spyOn>;
    }) => Promise<void>,
  ): Promise<void> {
    const fs = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await fs.mkdtemp(join(tmpdir(), "kparty-audit-"));
    try {
      const db = openGatewayDatabase(join(dir, "gateway.sqlite"));
      const log = new AuditLog(db, { now: at, ...options });
      const probe = await fs.open(join(dir, "gateway.sqlite"), "r");
      const syncs: { fd: number; resolve: () => void; reject: (error: Error) => void }[] = [];
      const datasync = vi.spyOn(Object.getPrototypeOf(probe), "datasync").mockImplementation(function (this: {
        fd: number;
      }) {
        return new Promise<void>((resolve, reject) => syncs.push({ fd: this.fd, resolve, reject }));
      });
      await probe.close();
      const syncsStarted = async (n: number) => {
        while (syncs.length < n) await new Promise((r) => setTimeout(r, 1));
      };
      await test({ log, syncs, syncsStarted, datasync });
      await log.close();
      db.close();
    } finally {
      vi.restoreAllMocks();
      await fs.rm(dir, { recursive: true, force: true });
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

  it("in a WAL file, commits without a sync of its own and resolves after syncing the log off the event loop", async () => {
    const fs = await import("node:fs/promises");
    const { mkdtemp, rm } = fs;
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = await mkdtemp(join(tmpdir(), "kparty-audit-"));
    try {
      const db = openGatewayDatabase(join(dir, "gateway.sqlite"));
      const log = new AuditLog(db, { now: at });
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
      const probe = await fs.open(join(dir, "gateway.sqlite"), "r");
      const datasync = vi.spyOn(Object.getPrototypeOf(probe), "datasync");
      await probe.close();
      const pending = Promise.all(
        ["a", "b"].map((client) =>
          log.append({ client, route: "/x", outcome: "granted" }).then((r) => {
            synced.push(`${r.client}:${datasync.mock.calls.length}`);
            return r;
          }),
        ),
      );
      await pending;
      expect(levels).toEqual(["1"]); // NORMAL for the commit: no sync on the event loop
      expect((db.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous).toBe(2);
      expect(datasync).toHaveBeenCalledTimes(1);
      expect(synced).toEqual(["a:1", "b:1"]); // resolved only after the log was synced
      await log.close();
      db.close();
    } finally {
      vi.restoreAllMocks();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("in a WAL file, a group committed while the log is being synced gets a sync of its own, two at most at once, and a sync makes the older syncs' groups durable too", async () => {
    await withHeldSyncs({}, async ({ log, syncs, syncsStarted }) => {
      const durable: string[] = [];
      const append = (client: string) =>
        log.append({ client, route: "/x", outcome: "granted" }).then((r) => durable.push(r.client));
      const a = append("a");
      await syncsStarted(1);
      const b = append("b"); // committed while a's sync is under way
      await syncsStarted(2);
      const c = append("c");
      await new Promise((r) => setTimeout(r, 20));
      expect(syncs).toHaveLength(2); // c waits: two syncs are under way
      expect(log.tail(10).map((r) => r.client)).toEqual(["a", "b", "c"]); // all committed
      syncs[1]?.resolve();
      await Promise.all([a, b]);
      // b did not wait for a's sync, which started before its commit; and b's sync, which
      // started after a's commit, made a durable too, before a's own sync ended
      expect(durable).toEqual(["a", "b"]);
      await syncsStarted(3); // c's sync starts when one finishes
      syncs[0]?.resolve(); // a's own sync: nothing is left waiting on it
      await new Promise((r) => setTimeout(r, 20));
      expect(durable).toEqual(["a", "b"]);
      syncs[2]?.resolve();
      await c;
      expect(durable).toEqual(["a", "b", "c"]);
    });
  });

  it("in a WAL file, a failed sync refuses the decisions waiting on it and every later one, and each sync under way has a handle of its own", async () => {
    const reported: string[] = [];
    const onSyncFailure = (error: KPartyError) => reported.push(error.code);
    await withHeldSyncs({ onSyncFailure }, async ({ log, syncs, syncsStarted, datasync }) => {
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
      expect(datasync).toHaveBeenCalledTimes(2);
      expect(reported).toEqual(["audit_unavailable"]); // once
      expect(log.failure?.cause).toBe(eio); // for the gateway's log
    });
  });

  it("survives a restart: the chain continues from the records on disk", async () => {
    const { mkdtemp, rm } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
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
