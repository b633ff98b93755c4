import { createHash } from "node:crypto";
// synchronous syncs through the module object (tests replace fdatasyncSync there)
import fs from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { KPartyError } from "../errors/index.ts";
import { signAuditHash } from "../state/audit-keys.ts";
import type { AuditEntry, AuditRecord, AuditSigner, AuditVerification } from "../state/port.ts";
import { threadPoolSize } from "../util/thread-pool.ts";

export type { AuditEntry, AuditRecord, AuditVerification };

export const GENESIS_HASH = "0".repeat(64);

/**
 * The hash that chains audit records: SHA-256 (hex) of the JSON array
 * `[seq, at, client, route, holder, credentialId, action, model, outcome, code, prevHash]`.
 */
export function auditHash(r: Omit<AuditRecord, "hash">): string {
  const fields = [
    r.seq,
    r.at,
    r.client,
    r.route,
    r.holder,
    r.credentialId,
    r.action,
    r.model,
    r.outcome,
    r.code,
    r.prevHash,
  ];
  return createHash("sha256").update(JSON.stringify(fields)).digest("hex");
}

/** An audit row (snake_case columns) as a record. */
export function auditRecordFromRow(r: Record<string, unknown>): AuditRecord {
  return {
    seq: Number(r.seq),
    at: r.at as string,
    client: r.client as string,
    route: r.route as string,
    holder: (r.holder as string | null) ?? null,
    credentialId: (r.credential_id as string | null) ?? null,
    action: (r.action as string | null) ?? null,
    model: (r.model as string | null) ?? null,
    outcome: r.outcome as "granted" | "denied",
    code: (r.code as string | null) ?? null,
    prevHash: r.prev_hash as string,
    hash: r.hash as string,
    kid: (r.kid as string | null | undefined) ?? null,
    sig: (r.sig as string | null | undefined) ?? null,
  };
}

/** Most records committed in one transaction (the rest wait for the next one). */
const MAX_GROUP = 512;
/**
 * Most syncs of the write-ahead log under way at once on libuv's thread pool, which also
 * serves the gateway's signature checks and file reads: half of its threads, at least one.
 */
const MAX_SYNCS = Math.max(1, Math.floor(threadPoolSize() / 2));
/** Syncs on the event loop whose median decides where the next ones run (see the class comment). */
const LOOP_SYNC_WINDOW = 32;
/** Default median (ms) of a window of syncs on the event loop above which the pool takes over. */
const LOOP_SYNC_MAX_MS = 2;
/** How long syncs first stay on the pool before the event loop tries again; doubled while the disk stays slow, up to 16 times. */
const POOL_SYNC_MS = 10_000;

/** How a committed group learns whether it became durable. */
interface Settle {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** An entry waiting for its group's commit (both backends' audit logs). */
export interface Pending {
  entry: AuditEntry;
  at: number;
  resolve: (record: AuditRecord) => void;
  reject: (error: unknown) => void;
}

/** The head of an empty audit chain. */
export const GENESIS_HEAD = { seq: 0, hash: GENESIS_HASH } as const;

/**
 * The records of `group`, in order, chained after `head` (the chain's last record, or
 * {@link GENESIS_HEAD}): each numbered after the previous and hashing it, and signed by
 * `signer` when given. The one way both backends turn decisions into records.
 */
export function chainedRecords(
  group: readonly { entry: AuditEntry; at: number }[],
  head: { seq: number; hash: string },
  signer?: AuditSigner,
): AuditRecord[] {
  let seq = head.seq;
  let prevHash = head.hash;
  return group.map(({ entry, at }) => {
    seq += 1;
    const base: Omit<AuditRecord, "hash"> = {
      seq,
      at: new Date(at).toISOString(),
      client: entry.client,
      route: entry.route,
      holder: entry.holder ?? null,
      credentialId: entry.credentialId ?? null,
      action: entry.action ?? null,
      model: entry.model ?? null,
      outcome: entry.outcome,
      code: entry.code ?? null,
      prevHash,
    };
    const hash = auditHash(base);
    const record: AuditRecord = {
      ...base,
      hash,
      kid: signer?.kid ?? null,
      sig: signer ? signAuditHash(signer.key, hash) : null,
    };
    prevHash = record.hash;
    return record;
  });
}

/**
 * The durable, hash-chained record of every access decision. `append` resolves only when
 * the record is on disk; each record's hash covers the previous one, so editing, deleting or
 * reordering records breaks the chain (see {@link verifyAuditChain}).
 *
 * Group commit: the records appended while the event loop is busy are written in one
 * transaction at the end of the loop's turn (`setImmediate`). If the commit fails, all of them
 * reject and nothing of the group is kept.
 *
 * Durability: in a WAL database file (as `openGatewayDatabase` makes), the transaction is
 * committed without a sync of its own, and the write-ahead log is then synced (`fdatasync`);
 * promises resolve after a sync that started after their commit. SQLite also syncs the log
 * before any checkpoint copies it into the database. Any other database (`:memory:`, rollback
 * journal) commits under the connection's own `synchronous` setting. Where the sync runs:
 * - On the event loop, right after the commit, while syncs are quick: every answer waits for
 *   one anyway, and a sync handed to libuv's thread pool costs two thread wake-ups, each of
 *   which can leave the answer waiting for a core (docs/performance.md). One sync covers
 *   every group committed in the turn, and the groups of syncs still under way on the pool.
 * - On libuv's thread pool while the disk is slow: when the median of a window of 32 syncs on
 *   the event loop is over `loopSyncMaxMs` (2 ms), so that the loop keeps serving while the
 *   disk works. The loop tries again after 10 s (doubled each time the disk is still slow, up
 *   to 160 s). A group committed while the log is being synced there gets a sync of its own
 *   rather than waiting for the current one to end (two at most at once).
 *
 * A failed sync is final. Linux reports a write-back error once per open file, and the data
 * it concerned may be lost while a later sync succeeds; so after one failure every decision
 * waiting, and every later one, is refused until the gateway restarts (SQLite then recovers
 * the log from what reached the disk). Each sync under way uses a handle on the log of its
 * own (and the event loop one more), so an error is reported to every sync that could have
 * covered the lost data.
 */
export class AuditLog {
  readonly #db: DatabaseSync;
  readonly #now: () => number;
  readonly #elapsedMs: () => number;
  readonly #last: StatementSync;
  readonly #insert: StatementSync;
  readonly #level: StatementSync;
  /** The write-ahead log this connection writes to, or null when commits sync themselves. */
  readonly #walFile: string | null;
  /** A handle on the log per sync that can be under way at once (see the class comment). */
  readonly #wals: (Promise<FileHandle> | null)[] = Array.from({ length: MAX_SYNCS }, () => null);
  /** Indexes into #wals of the handles no sync is using. */
  readonly #idleWals = Array.from({ length: MAX_SYNCS }, (_, i) => i);
  /** The event loop's handle on the log, once it has synced it. */
  #loopWal: number | null = null;
  /** Median (ms) of a window of syncs on the event loop above which syncs go to the pool; 0: always there. */
  readonly #loopSyncMaxMs: number;
  /** How long each sync of the current window on the event loop took (ms). */
  #loopSyncMs: number[] = [];
  /** Until when (by `now`) syncs go to the pool, and for how long they will next time. */
  #poolUntil = 0;
  #poolMs = POOL_SYNC_MS;
  /** Set by the first failed sync; from then on every decision is refused. */
  #failure: KPartyError | null = null;
  readonly #onSyncFailure: (error: KPartyError) => void;
  readonly #signer: AuditSigner | undefined;
  #pending: Pending[] = [];
  #scheduled: NodeJS.Immediate | null = null;
  /** Committed groups waiting for the next sync of the log. */
  #unsynced: Settle[] = [];
  /** Syncs under way, oldest first, each with the groups still waiting on it. */
  readonly #syncs: { done: Promise<void>; waiting: Settle[] }[] = [];
  #closed = false;

  constructor(
    db: DatabaseSync,
    options: {
      now: () => number;
      /** Called once, when a sync fails and the log starts refusing every decision. */
      onSyncFailure?: (error: KPartyError) => void;
      /**
       * Median (ms) of a window of syncs on the event loop above which the log is synced on
       * libuv's thread pool instead, for a while (see the class comment); 0: always on the pool.
       */
      loopSyncMaxMs?: number;
      /** The monotonic clock (ms) that times syncs on the event loop; `performance.now` by default. */
      elapsedMs?: () => number;
      /** Signs each record as it is chained. */
      signer?: AuditSigner;
    },
  ) {
    this.#db = db;
    this.#signer = options.signer;
    this.#now = options.now;
    this.#elapsedMs = options.elapsedMs ?? (() => performance.now());
    this.#onSyncFailure = options.onSyncFailure ?? (() => {});
    const loopSyncMaxMs = options.loopSyncMaxMs ?? LOOP_SYNC_MAX_MS;
    if (!(loopSyncMaxMs >= 0 && Number.isFinite(loopSyncMaxMs))) {
      throw new TypeError("loopSyncMaxMs must be a non-negative number");
    }
    this.#loopSyncMaxMs = loopSyncMaxMs;
    this.#last = db.prepare("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    this.#insert = db.prepare(
      `INSERT INTO audit (seq, at, client, route, holder, credential_id, action, model, outcome, code, prev_hash, hash, kid, sig)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#level = db.prepare("PRAGMA synchronous");
    const file = db.location();
    const { journal_mode: mode } = db.prepare("PRAGMA journal_mode").get() as { journal_mode: string };
    this.#walFile = file && mode === "wal" ? `${file}-wal` : null;
  }

  /**
   * Records one decision, timed now; resolves with the record once it is on disk, rejects
   * if it could not be stored (the caller must then refuse what it was about to allow).
   */
  append(entry: AuditEntry): Promise<AuditRecord> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ entry, at: this.#now(), resolve, reject });
      this.#scheduled ??= setImmediate(() => this.#commitPending());
    });
  }

  /** Why the log refuses every decision (a failed sync), or null while it records them. */
  get failure(): KPartyError | null {
    return this.#failure;
  }

  /**
   * Commits every pending record now and resolves once everything committed is on disk;
   * then stops (the gateway calls it before its database closes). Appends after it reject.
   */
  async close(): Promise<void> {
    this.#commitPending();
    this.#closed = true;
    while (this.#syncs.length > 0) await Promise.all(this.#syncs.map((s) => s.done));
    const wals = [...this.#wals];
    this.#wals.fill(null);
    for (const wal of wals) await (await wal?.catch(() => null))?.close();
    if (this.#loopWal !== null) fs.closeSync(this.#loopWal);
    this.#loopWal = null;
  }

  #commitPending(): void {
    if (this.#scheduled) clearImmediate(this.#scheduled);
    this.#scheduled = null;
    while (this.#pending.length > 0) {
      const group = this.#pending.splice(0, MAX_GROUP);
      let records: AuditRecord[];
      try {
        if (this.#closed) throw new Error("the audit log is closed");
        if (this.#failure) throw this.#failure;
        records = this.#commit(group);
      } catch (error) {
        for (const p of group) p.reject(error);
        continue;
      }
      const settle = {
        resolve: () => {
          for (const [i, p] of group.entries()) p.resolve(records[i] as AuditRecord);
        },
        reject: (error: unknown) => {
          for (const p of group) p.reject(error);
        },
      };
      if (this.#walFile === null) settle.resolve();
      else this.#unsynced.push(settle);
    }
    if (this.#unsynced.length === 0) return;
    if (this.#loopSyncMaxMs > 0 && this.#now() >= this.#poolUntil) this.#syncOnLoop();
    else this.#startSync();
  }

  /** The first failed sync makes the log refuse every decision from then on (see the class comment). */
  #syncFailed(error: unknown): void {
    if (this.#failure) return;
    this.#failure = new KPartyError(
      "audit_unavailable",
      // the cause (the system's error) goes to the gateway's log, not to clients
      "the audit log could not be synced to disk, so no decision is recorded until the gateway restarts",
      { cause: error },
    );
    this.#onSyncFailure(this.#failure);
  }

  /**
   * Syncs the log here, on the event loop, for every group committed so far: those of this
   * turn and those still waiting on syncs under way on the pool (it started after their
   * commits too). Each window of syncs here decides whether the next ones stay here.
   */
  #syncOnLoop(): void {
    const waiting = [...this.#syncs.flatMap((sync) => sync.waiting.splice(0)), ...this.#unsynced.splice(0)];
    try {
      this.#loopWal ??= fs.openSync(this.#walFile as string, "r");
    } catch (error) {
      for (const w of waiting) w.reject(error); // nothing was lost: the next sync tries again
      return;
    }
    const started = this.#elapsedMs();
    try {
      fs.fdatasyncSync(this.#loopWal);
    } catch (error) {
      this.#syncFailed(error);
    }
    this.#timeLoopSync(this.#elapsedMs() - started);
    if (this.#failure) for (const w of waiting) w.reject(this.#failure);
    else for (const w of waiting) w.resolve();
  }

  #timeLoopSync(ms: number): void {
    this.#loopSyncMs.push(ms);
    if (this.#loopSyncMs.length < LOOP_SYNC_WINDOW) return;
    const median = this.#loopSyncMs.sort((a, b) => a - b)[LOOP_SYNC_WINDOW / 2] as number;
    this.#loopSyncMs = [];
    if (median <= this.#loopSyncMaxMs) {
      this.#poolMs = POOL_SYNC_MS;
      return;
    }
    this.#poolUntil = this.#now() + this.#poolMs;
    this.#poolMs = Math.min(2 * this.#poolMs, 16 * POOL_SYNC_MS);
  }

  /**
   * Starts a sync of the log on libuv's thread pool for the groups committed so far, unless
   * MAX_SYNCS are already under way (the first to finish starts the next). A sync that starts
   * after a group's commit makes that group durable, whatever syncs are under way, so a group
   * waits for one sync rather than for the end of the current one and then its own; and a
   * sync that ends first makes durable the groups of the older syncs still under way too
   * (each has a handle of its own, so its success also says no write-back of theirs failed).
   */
  #startSync(): void {
    if (this.#unsynced.length === 0 || this.#syncs.length >= MAX_SYNCS) return;
    const sync = { done: Promise.resolve(), waiting: this.#unsynced };
    this.#unsynced = [];
    const waiting = sync.waiting;
    const slot = this.#idleWals.pop() as number; // fewer than MAX_SYNCS are under way
    sync.done = (async () => {
      let wal: FileHandle;
      try {
        this.#wals[slot] ??= open(this.#walFile as string, "r").catch((error: unknown) => {
          this.#wals[slot] = null; // the next sync tries again: nothing was lost
          throw error;
        });
        wal = await (this.#wals[slot] as Promise<FileHandle>);
      } catch (error) {
        for (const w of waiting.splice(0)) w.reject(error);
        return;
      }
      try {
        await wal.datasync();
      } catch (error) {
        this.#syncFailed(error);
      }
      // a sync that ended after another failed proves nothing for what it covered
      if (this.#failure) for (const w of waiting.splice(0)) w.reject(this.#failure);
      else
        for (const older of this.#syncs.slice(0, this.#syncs.indexOf(sync) + 1))
          for (const w of older.waiting.splice(0)) w.resolve();
    })().finally(() => {
      this.#idleWals.push(slot);
      this.#syncs.splice(this.#syncs.indexOf(sync), 1);
      this.#startSync();
    });
    this.#syncs.push(sync);
  }

  #commit(group: Pending[]): AuditRecord[] {
    // the log is synced afterwards, off the event loop (see the class comment)
    const level = this.#walFile ? (this.#level.get() as { synchronous: number }).synchronous : null;
    if (level !== null) this.#db.exec("PRAGMA synchronous = NORMAL");
    try {
      return this.#transaction(group);
    } finally {
      if (level !== null) this.#db.exec(`PRAGMA synchronous = ${level}`);
    }
  }

  #transaction(group: Pending[]): AuditRecord[] {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const last = this.#last.get() as { seq: number; hash: string } | undefined;
      const records = chainedRecords(
        group,
        last ? { seq: Number(last.seq), hash: last.hash } : GENESIS_HEAD,
        this.#signer,
      );
      for (const record of records) {
        this.#insert.run(
          record.seq,
          record.at,
          record.client,
          record.route,
          record.holder,
          record.credentialId,
          record.action,
          record.model,
          record.outcome,
          record.code,
          record.prevHash,
          record.hash,
          record.kid ?? null,
          record.sig ?? null,
        );
      }
      this.#db.exec("COMMIT");
      return records;
    } catch (error) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  /** The newest `limit` entries, oldest first. */
  tail(limit = 100): AuditRecord[] {
    const rows = this.#db
      .prepare("SELECT * FROM (SELECT * FROM audit ORDER BY seq DESC LIMIT ?) ORDER BY seq")
      .all(limit) as Record<string, unknown>[];
    return rows.map(auditRecordFromRow);
  }
}

/**
 * Walks the audit log from the first record and checks that sequence numbers are
 * consecutive from 1, that each record links to its predecessor's hash, and that each
 * hash matches the record's content.
 * @example
 * ```ts
 * const { valid, broken } = verifyAuditChain(openGatewayDatabase(".kparty/gateway/gateway.sqlite"));
 * ```
 */
export function verifyAuditChain(db: DatabaseSync): AuditVerification {
  return verifyAuditRecords(
    (db.prepare("SELECT * FROM audit ORDER BY seq").iterate() as Iterable<Record<string, unknown>>)[
      Symbol.iterator
    ](),
    auditRecordFromRow,
  );
}

/** The chain check of {@link verifyAuditChain} over rows from any store, in `seq` order. */
export function verifyAuditRecords<Row>(
  rows: Iterator<Row>,
  parse: (row: Row) => AuditRecord = (row) => row as unknown as AuditRecord,
): AuditVerification {
  const walk = auditChainWalker();
  for (let next = rows.next(); !next.done; next = rows.next()) {
    const broken = walk.add(parse(next.value));
    if (broken) return broken;
  }
  return walk.result();
}

/**
 * The chain check one record at a time (for stores read page by page): `add` returns the
 * verdict at the first record that breaks the chain, `result` the verdict of an intact one.
 */
export function auditChainWalker() {
  let previous = GENESIS_HASH;
  let expectedSeq = 1;
  let records = 0;
  return {
    add(r: AuditRecord): AuditVerification | null {
      const fail = (reason: string): AuditVerification => ({
        valid: false,
        records,
        head: previous,
        broken: { seq: r.seq, reason },
      });
      if (r.seq !== expectedSeq) return fail(`expected record ${expectedSeq}, found ${r.seq}`);
      if (r.prevHash !== previous) return fail("does not link to the previous record");
      if (auditHash(r) !== r.hash) return fail("content does not match its hash");
      previous = r.hash;
      expectedSeq += 1;
      records += 1;
      return null;
    },
    result(): AuditVerification {
      return { valid: true, records, head: previous };
    },
  };
}
