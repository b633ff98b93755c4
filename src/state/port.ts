import type { KeyObject } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import type { KPartyError } from "../errors/index.ts";
import type { AuditKeyStore, AuditKeyStoreOptions, AuditPublicKey } from "./audit-keys.ts";
import type { TokenKeyStoreOptions } from "./sealed.ts";

/**
 * The gateway's shared-state port: everything a decision depends on that is not on chain —
 * single-use challenges, rate limits and quotas, the audit log, the access-token keys and the
 * model store's lock — behind one interface with two backends: `embedded` (node:sqlite, one
 * process, zero set-up; see `createEmbeddedState`) and `postgres` (any number of gateway
 * replicas on one PostgreSQL database; see `openPostgresState`).
 *
 * A backend is a set of store factories: the gateway builds each store with its own options
 * (clock, lifetimes). Further stores (a DPoP `jti` replay store, OID4VP request state) join as
 * further factories with the same shape: embedded in the gateway's SQLite file, shared in
 * PostgreSQL.
 *
 * Methods return `Awaitable<T>`: the embedded backend answers synchronously (no promise, no
 * extra turn of the event loop on the hot path), the PostgreSQL backend with a promise; callers
 * always `await`.
 */
export type Awaitable<T> = T | Promise<T>;

/** A freshly minted challenge. */
export interface Challenge {
  challenge: string;
  expiresAt: Date;
}

/** Single-use, short-lived challenges (nonces of presentations). */
export interface ChallengeStore {
  /** Mints a fresh challenge for `client`. */
  issue(client: string): Awaitable<Challenge>;
  /** Throws `challenge_reused` / `challenge_invalid` unless `challenge` was issued here, is unexpired and unused. */
  check(challenge: string): Awaitable<void>;
  /** Whether `challenge` was issued by this deployment (used or not, until pruned). */
  issuedHere(challenge: string): Awaitable<boolean>;
  /**
   * Marks `challenge` used, atomically: of any number of concurrent calls (on any replica)
   * exactly one returns. Throws like {@link check} otherwise.
   */
  consume(challenge: string): Awaitable<void>;
}

/** Token buckets keyed by string: per-credential quotas and per-address rate limits. */
export interface RateLimits {
  /**
   * Takes one request from `key`'s bucket (`perMinute` a minute, bursts up to `perMinute`);
   * throws `rate_limited` with `details.retryAfterSeconds` when it is empty. One bucket per key
   * for the whole deployment.
   */
  take(key: string, perMinute: number, what: string): Awaitable<void>;
  /** Buckets held in this process (an embedded store); absent where they live in a database. */
  readonly size?: number;
}

/** One access decision. */
export interface AuditEntry {
  client: string;
  route: string;
  holder?: string | null;
  credentialId?: string | null;
  action?: string | null;
  model?: string | null;
  outcome: "granted" | "denied";
  code?: string | null;
}

/** A stored decision, chained to the previous one. */
export interface AuditRecord extends Required<AuditEntry> {
  seq: number;
  at: string;
  /** Hash of the previous record (64 zeros for the first). */
  prevHash: string;
  /** SHA-256 over this record's fields and `prevHash` (see `auditHash`). */
  hash: string;
  /** The audit key that signed `hash` (null: a record from before records were signed). */
  kid?: string | null;
  /** Ed25519 signature of `hash` by that key (see `signAuditHash`), base64url. */
  sig?: string | null;
}

/** The key records are signed with as they are chained. */
export interface AuditSigner {
  kid: string;
  key: KeyObject;
}

/** The result of walking an audit chain. */
export interface AuditVerification {
  valid: boolean;
  /** Records checked. */
  records: number;
  /** Hash of the last record (publish it elsewhere to detect truncation). */
  head: string;
  /** The first record that breaks the chain, and why. */
  broken?: { seq: number; reason: string };
}

/**
 * The durable, hash-chained record of every access decision: one chain for the deployment,
 * whatever the number of replicas (no forks: records in one order, each hashing the previous).
 */
export interface AuditStore {
  /** Resolves with the record once it is durable; rejects if it could not be stored (refuse then). */
  append(entry: AuditEntry): Promise<AuditRecord>;
  /** Why the log refuses every decision until a restart, or null while it records them. */
  readonly failure: KPartyError | null;
  /** Commits what is pending and stops; later appends reject. */
  close(): Promise<void>;
}

/** Reads of the audit chain (`kparty audit tail|verify`). */
export interface AuditReader {
  /** The newest `limit` records, oldest first. */
  tail(limit: number): Awaitable<AuditRecord[]>;
  /** Walks the whole chain (see `verifyAuditRecords`). */
  verify(): Awaitable<AuditVerification>;
  /** Up to `limit` records after `afterSeq`, in seq order (for `kparty audit verify`). */
  page(afterSeq: number, limit: number): Awaitable<AuditRecord[]>;
  /** The public audit keys stored (none before a gateway with a passphrase first ran). */
  publicKeys(): Awaitable<AuditPublicKey[]>;
  /** The chain's head row where the backend keeps one (PostgreSQL), else null. */
  headRow(): Awaitable<{ seq: number; hash: string } | null>;
}

/** The public half of an access-token key, as JWKS publishes it. */
export interface TokenPublicKey {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  kid: string;
}

/** One stored access-token key. */
export interface StoredTokenKey {
  kid: string;
  /** Ed25519 private key. */
  privateKey: KeyObject;
  /** When it was added (ms); the newest key signs new tokens. */
  createdAt: number;
}

/**
 * The access-token keys of the deployment. Every replica verifies with every key; the newest
 * signs. Adding a key (rotation) leaves the older ones valid for the tokens they signed.
 */
export interface TokenKeyStore {
  /** Every key, oldest first; adds a first key if there is none (once, whatever the replicas). */
  load(): Promise<StoredTokenKey[]>;
  /** Adds a fresh key, which becomes the newest; returns it. */
  add(): Promise<StoredTokenKey>;
}

/** Serialises work on one model across the deployment (round closing, accepting an update). */
export type ModelLock = <T>(model: string, fn: () => Promise<T>) => Promise<T>;

/** A state backend: the factories of the gateway's stores. */
export interface GatewayState {
  /**
   * The embedded backend's node:sqlite database, where the stores not yet behind this port
   * (the DPoP replay cache, OID4VP transactions) are kept too; absent on PostgreSQL, where they
   * stay in a database of the process for now.
   */
  readonly localDatabase?: DatabaseSync;
  readonly backend: "embedded" | "postgres";
  challenges(options: { ttlSeconds: number; now: () => number }): ChallengeStore;
  /** `maxKeys` bounds the buckets an embedded store keeps in memory (least recently used out). */
  rateLimits(options: { now: () => number; maxKeys?: number }): RateLimits;
  /** With `signer`, each record is signed as it is chained (see `src/state/audit-keys.ts`). */
  audit(options: {
    now: () => number;
    onSyncFailure?: (error: KPartyError) => void;
    signer?: AuditSigner;
  }): AuditStore;
  /** The deployment's audit signing and anchoring keys, stored encrypted under `secret`. */
  auditKeys(options: AuditKeyStoreOptions): AuditKeyStore;
  auditReader(): AuditReader;
  /**
   * The access-token keys. With `secret` they are stored encrypted under it (see
   * `src/state/sealed.ts`; `wrong_passphrase` at the first load under another secret). Without
   * it the embedded backend keeps one fresh key in memory (tokens end with the process) and the
   * PostgreSQL backend throws a `TypeError` (replicas must share the keys).
   */
  tokenKeys(options?: TokenKeyStoreOptions): TokenKeyStore;
  /** A lock for model stores whose files are shared between replicas (null: one process). */
  modelLock(): ModelLock | null;
  /** Releases what the backend holds (the pool); the embedded backend leaves its database to its opener. */
  close(): Promise<void>;
}
