import type { KeyObject } from "node:crypto";
import type { KPartyError } from "../errors/index.ts";
import type { Aggregation } from "../models/aggregation.ts";
import type { UpdateReceipt } from "../models/store.ts";
import type { AuditKeyStore, AuditKeyStoreOptions, AuditPublicKey } from "./audit-keys.ts";
import type { TokenKeyStoreOptions } from "./sealed.ts";

/**
 * The gateway's shared-state port: everything a decision depends on that is not on chain —
 * single-use challenges, rate limits and quotas, the audit log, the access-token keys, the
 * model store's metadata and its lock — behind one interface with two backends: `embedded` (node:sqlite, one
 * process, zero set-up; see `createEmbeddedState`) and `postgres` (any number of gateway
 * replicas on one PostgreSQL database; see `openPostgresState`).
 *
 * A backend is a set of store factories: the gateway builds each store with its own options
 * (clock, lifetimes): challenges, rate limits, the audit log, token keys, the DPoP `jti` replay
 * store, revoked token ids, introspection clients, OID4VP transactions and the model metadata. Further stores join
 * as further factories with the same shape: embedded in the gateway's SQLite file, shared in
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

/**
 * Where the `jti`s of accepted DPoP proofs are kept until their proofs could no longer be
 * accepted: one store for the deployment makes a proof single-use across replicas. `use`
 * records `key` until `expiresAtMs` and answers whether it was new (false: a replay), atomically:
 * of concurrent uses of one key on any replica exactly one is new. An entry past its expiry
 * counts as absent (and is pruned).
 */
export interface DpopReplayStore {
  use(key: string, expiresAtMs: number): Awaitable<boolean>;
}

/**
 * Access-token ids (`jti`) revoked before their expiry (`POST /oauth/revoke`), shared by every
 * replica. An id is kept until `keepUntilMs` (the token's `exp` plus the clock skew), then
 * pruned: by then the token is refused for its time anyway.
 */
export interface RevokedTokenStore {
  /** Records `tokenId` as revoked; answers whether it was newly revoked (false: it already was). */
  revoke(tokenId: string, keepUntilMs: number): Awaitable<boolean>;
  /** Whether `tokenId` is revoked (exact: read from the store, not a cache). */
  isRevoked(tokenId: string): Awaitable<boolean>;
}

/** A client the operator allows to introspect (and, with `canRevoke`, revoke) access tokens. */
export interface OAuthClient {
  /** The `client_id` (12 hex digits). */
  id: string;
  name: string;
  /** May revoke any token at `POST /oauth/revoke` (every client may introspect). */
  canRevoke: boolean;
  createdAt: string;
}

/** One stored client: its secret only as a SHA-256 hash. */
export interface OAuthClientRow extends OAuthClient {
  /** SHA-256 of the client secret, hex. */
  secretHash: string;
}

/**
 * The introspection clients of the deployment (`kparty gateway clients add|list|remove`):
 * resource servers that authenticate with HTTP Basic `client_id:client_secret` (RFC 6749
 * §2.3.1). Secrets are shown once and stored as hashes; every replica sees every client.
 */
export interface OAuthClientStore {
  /** Adds a client; the secret is returned once and not kept. `conflict` for a name in use. */
  add(name: string, options?: { canRevoke?: boolean }): Promise<{ client: OAuthClient; secret: string }>;
  /** Every client, oldest first. */
  list(): Promise<OAuthClient[]>;
  /** Removes the client with this id or name (`not_found` if none); its secret stops working at once. */
  remove(idOrName: string): Promise<OAuthClient>;
  /** The client when `id` exists and `secret` is its secret; else null (compared in constant time). */
  authenticate(id: string, secret: string): Promise<OAuthClient | null>;
}

/** One OID4VP authorization request of this gateway and what became of it. */
export interface Oid4vpTransaction {
  /** The caller's handle on the transaction (256 random bits): whoever holds it collects the token. */
  id: string;
  /** The request's `state`, echoed by the wallet; also names its `request_uri`. */
  state: string;
  /** The request's single-use `nonce`: the challenge the presentation must carry. */
  nonce: string;
  /** Who created it (client address). */
  client: string;
  /** What the route keeps about the request (JSON: client_id, scope, DCQL query, signed request object). */
  request: string;
  createdAt: number;
  expiresAt: number;
  /** When the wallet's response consumed the nonce. */
  respondedAt: number | null;
  outcome: "granted" | "denied" | null;
  /** JSON: the grant (granted) or the error (denied). */
  result: string | null;
  /** When the caller collected the token (once). */
  redeemedAt: number | null;
}

/**
 * OID4VP transactions: create, look up, consume the nonce once, settle, redeem once. Every
 * single-use step is one conditional write, so it holds across concurrent requests and, on
 * PostgreSQL, across replicas (a request created at one replica is answered and collected at
 * any). Transactions expired a day ago are pruned.
 */
export interface Oid4vpTransactionStore {
  create(
    transaction: Pick<Oid4vpTransaction, "id" | "state" | "nonce" | "client" | "request" | "expiresAt">,
  ): Awaitable<void>;
  byId(id: string): Awaitable<Oid4vpTransaction | undefined>;
  byState(state: string): Awaitable<Oid4vpTransaction | undefined>;
  /**
   * Marks the nonce of the transaction `state` names used; throws `challenge_invalid` (unknown
   * state, another nonce, expired request) or `challenge_reused` (already answered).
   */
  consumeNonce(state: string, nonce: string): Awaitable<void>;
  /** Like {@link consumeNonce} without writing: a made-up nonce costs nothing. */
  checkNonce(state: string, nonce: string): Awaitable<void>;
  /** Records the decision on a responded transaction (once). */
  settle(id: string, outcome: "granted" | "denied", result: string): Awaitable<void>;
  /** Marks a granted transaction's token collected; false if it was already (or is not granted). */
  redeem(id: string): Awaitable<boolean>;
}

/**
 * A model's stored metadata: what a model store keeps per model besides its weight files. The
 * parameter count, the open round (always `version`) and the count of updates are derived.
 */
export interface ModelRecord {
  id: string;
  description: string;
  /** Version of the current global weights (1 for the initial weights); its round is the open one. */
  version: number;
  shape: number[];
  dtype: "float32";
  maxSamplesPerUpdate: number;
  aggregation: Aggregation;
  updatedAt: string;
}

/** One accepted update: its receipt and the file (in its round's directory) that holds its values. */
export interface ModelUpdateRecord extends UpdateReceipt {
  /** The update's file name in the round's directory of the model store (written before this row). */
  blob: string;
}

/**
 * The model store's metadata (models, versions, update receipts), shared by every replica; the
 * weights themselves are files in the model store's directory (see `FileModelStore`). Each
 * write is one conditional statement, so it holds across concurrent callers on any replica.
 */
export interface ModelMetadataStore {
  /** Adds a model; false when its id is taken (of concurrent adds of one id, exactly one is true). */
  insert(model: ModelRecord): Awaitable<boolean>;
  get(id: string): Awaitable<ModelRecord | undefined>;
  /** Every model, by id. */
  list(): Awaitable<ModelRecord[]>;
  /**
   * Records an accepted update, atomically: `accepted` when `round` is the model's open round and
   * the participant has no update in it (a unique key on model, round and participant: of
   * concurrent adds for one participant, on any replica, exactly one is accepted); `duplicate`
   * when it has one; `closed` when the round is not open (or the model is unknown).
   */
  addUpdate(update: ModelUpdateRecord): Awaitable<"accepted" | "duplicate" | "closed">;
  /** Whether `participant` has an update in `round`. */
  hasUpdate(model: string, round: number, participant: string): Awaitable<boolean>;
  /** The updates of `round`, in the order they were accepted. */
  updates(model: string, round: number): Awaitable<ModelUpdateRecord[]>;
  countUpdates(model: string, round: number): Awaitable<number>;
  /**
   * Moves the model from version `round` to `round + 1` (closing the round), atomically, only
   * if the round holds exactly `aggregated` updates — the ones the caller read and aggregated
   * (updates are never removed, so the same count is the same updates). False, changing
   * nothing, if the model is not at `round` or an update was accepted since they were read. An
   * update is accepted before the advance (and counted) or refused as `closed` after it, never
   * between the count and the advance.
   */
  advance(model: string, round: number, updatedAt: string, aggregated: number): Awaitable<boolean>;
  /**
   * Adds a model with the updates of its open round (an import of files a store wrote before
   * its metadata moved here), in one transaction, unless the id is taken (false).
   */
  importModel(model: ModelRecord, updates: ModelUpdateRecord[]): Awaitable<boolean>;
}

/** Serialises work on one model across the deployment (round closing, accepting an update). */
export type ModelLock = <T>(model: string, fn: () => Promise<T>) => Promise<T>;

/** A state backend: the factories of the gateway's stores. */
export interface GatewayState {
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
  /** The DPoP `jti` replay store (`INSERT … ON CONFLICT`, pruned once proofs have expired). */
  dpopReplay(options: { now: () => number }): DpopReplayStore;
  /** Revoked access-token ids, until their tokens' expiry. */
  revokedTokens(options: { now: () => number }): RevokedTokenStore;
  /** The introspection clients (`POST /oauth/introspect`, `/oauth/revoke`). */
  oauthClients(options?: { now?: () => number }): OAuthClientStore;
  /** OID4VP transactions (`/oid4vp/…`). */
  oid4vpTransactions(options: { now: () => number }): Oid4vpTransactionStore;
  /** The model store's metadata (models, versions, update receipts); weights stay files. */
  modelMetadata(): ModelMetadataStore;
  /** A lock for model stores whose files are shared between replicas (null: one process). */
  modelLock(): ModelLock | null;
  /** Releases what the backend holds (the pool); the embedded backend leaves its database to its opener. */
  close(): Promise<void>;
}
