import type { KeyObject } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import type { ChainClient } from "../chain/index.ts";
import type { FileModelStore } from "../models/index.ts";
import type { GatewayState } from "../state/port.ts";
import type { AuditAnchorSettings } from "./audit-anchor.ts";
import type { TrustProxy } from "./client-address.ts";
import type { DpopReplayStore } from "./dpop.ts";
import type { TokenBinding } from "./guard.ts";
import type { OperatorLogStream } from "./operator-log.ts";
import type { RemovedIssuerPolicy } from "./verify/judge.ts";
import type { DidResolver } from "./verify/verifier.ts";

export interface GatewayOptions {
  /** A Veramo agent (or anything) that resolves DIDs against the deployment's chain. */
  agent: DidResolver;
  chain: ChainClient;
  models: FileModelStore;
  /**
   * The gateway's embedded database (see `openGatewayDatabase`): the zero-set-up backend of its
   * shared state. Pass this or `state`.
   */
  db?: DatabaseSync;
  /**
   * The gateway's state backend (`createEmbeddedState`, or `openPostgresState` for replicas
   * sharing one PostgreSQL database). Pass this or `db`; the caller closes it.
   */
  state?: GatewayState;
  /**
   * How old the in-memory copy of the token keys may be before a token is signed or the JWKS is
   * served (default 10 s): a key added by `kparty gateway keys rotate` (or another replica)
   * signs this replica's new tokens within this time. Tokens under a key not yet known are
   * verified after re-reading the keys at once.
   */
  tokenKeyRefreshMs?: number;
  /**
   * The secret the access-token keys are stored encrypted under (at least 8 characters;
   * `kparty gateway serve` uses the passphrase, `KPARTY_PASSPHRASE`): AES-256-GCM under a data
   * key wrapped by a key scrypt derives from it (see `src/state/sealed.ts`). Every replica of a
   * deployment must use the same one. A wrong secret against stored keys is refused at start
   * with `wrong_passphrase`. Without it the embedded backend keeps one fresh key in memory
   * (tokens end with the process; two gateways on one database file do not share it) and the
   * PostgreSQL backend refuses to start (`TypeError`).
   */
  tokenKeySecret?: string;
  /**
   * Anchoring of the audit chain's head on chain (see `createAuditAnchorer`): every
   * `everyRecords` records (default 1000) or `intervalSeconds` (default 60), whichever comes
   * first; `false` turns it off. Needs `tokenKeySecret` (the audit keys are stored encrypted
   * under it; without it records are neither signed nor anchored) and a deployment with an
   * AuditAnchors contract. The anchoring account's address must be funded.
   */
  auditAnchor?: AuditAnchorSettings | false;
  /** The gateway's domain: the audience presentations must name. */
  domain: string;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Access token lifetime (default 300 s). */
  tokenTtlSeconds?: number;
  /** Challenge lifetime (default 60 s). */
  challengeTtlSeconds?: number;
  /**
   * The one tolerated clock difference (default `DEFAULT_CLOCK_SKEW_SECONDS`, 60 s) for
   * credential and presentation windows and for access tokens and the credential window they
   * carry; never added to a token's lifetime (see `createTokenService`).
   */
  clockSkewSeconds?: number;
  /** Credentials of issuers removed after issuance: `deny` (default) or `honor-issued-while-member`. */
  removedIssuerPolicy?: RemovedIssuerPolicy;
  /** Largest JSON request body (default 64 KiB). */
  bodyLimitBytes?: number;
  /**
   * Ed25519 key for access tokens, kept in memory only (default: the state backend's keys,
   * created on first start, stored encrypted under `tokenKeySecret` and rotated with
   * `kparty gateway keys rotate`).
   */
  tokenKey?: KeyObject;
  /**
   * The OID4VP verifier (`routes/oid4vp.ts`): `publicUrl` is the gateway's base URL as wallets
   * reach it (for `response_uri` and `request_uri`; default: from each creating request's
   * protocol and Host); `requestTtlSeconds` how long a request stays open (default 300);
   * `key` the Ed25519 key of its `did:jwk` client identifier (default: a fresh key per process).
   */
  oid4vp?: { publicUrl?: string; requestTtlSeconds?: number; key?: KeyObject };
  /**
   * `dpop` (default): access tokens are bound to the key of the DPoP proof (RFC 9449) sent to
   * `POST /auth/token` (`cnf.jkt`, `token_type: "DPoP"`), and every protected request needs a
   * fresh proof of that key. `bearer` (an explicit opt-in): a token request without a proof gets
   * a bearer token, honoured as `Authorization: Bearer`; one with a proof still gets a bound token.
   */
  tokenBinding?: TokenBinding;
  /**
   * The URL clients reach the gateway at (scheme, host and any path prefix, e.g.
   * `https://gw.example/kparty`), which DPoP proofs' `htu` must name. Set it behind a proxy
   * that rewrites the host or the path. Default: each request's scheme and `Host` (with
   * `trustProxy`, the proxy's `X-Forwarded-Proto` and `X-Forwarded-Host`).
   */
  publicUrl?: string;
  /**
   * Require server nonces in DPoP proofs (default false): a proof without a current nonce is
   * refused with `use_dpop_nonce` and the nonce in `DPoP-Nonce`, which every answer of the
   * token endpoint and of protected routes also carries. Nonces rotate every
   * `dpopNonceLifetimeSeconds` (default 60) and are accepted for two periods.
   */
  requireDpopNonce?: boolean;
  dpopNonceLifetimeSeconds?: number;
  /** HMAC key of the nonces (at least 16 bytes); give replicas the same one. Default: random per process. */
  dpopNonceSecret?: Buffer;
  /**
   * Where the `jti`s of accepted DPoP proofs are kept (default: the state's DPoP replay store,
   * `state.dpopReplay()`: the table `dpop_jti` of `db`, or PostgreSQL's `kparty_dpop_jti`, which
   * replicas on one database share, so a proof is single-use across them).
   */
  dpopReplay?: DpopReplayStore;
  /** Fastify request logging (default off). Bodies and headers are never logged. */
  logger?: boolean;
  /**
   * Where the causes of internal failures go (default `process.stderr`): clients get a fixed
   * message per code (see `CLIENT_MESSAGES`), the operator one line per route and code every
   * 10 s with the node's message, redacted: the credentials, path and query of URLs, and the
   * secrets of the chain clients' JSON-RPC URLs wherever they appear, are replaced by `***`.
   */
  operatorLog?: OperatorLogStream;
  /** Requests a minute per credential without a `quota` (default 600). */
  defaultRequestsPerMinute?: number;
  /**
   * Which reverse proxies are believed about the client's address (`X-Forwarded-For`): their
   * addresses and CIDR ranges (a list, or comma-separated), or a number of hops (safe only when
   * nothing reaches the gateway but through the proxies). Default: none, the socket's address
   * is the client's. Rate limits and the audit log's `client` use that address; rate limits
   * count an IPv6 client by its /64.
   */
  trustProxy?: TrustProxy;
  /** Challenges a minute one client address may mint (default 60). */
  challengesPerMinute?: number;
  /** VC-API verifications a minute per client address (default 600). */
  verificationsPerMinute?: number;
  /**
   * The chain client the event watcher polls (default: `chain`). A separate provider keeps the
   * watcher's background polling apart from request traffic (and could be a WebSocket one).
   */
  watcherChain?: ChainClient;
  /** How often the registry's events are polled (default 100 ms). */
  statusPollingIntervalMs?: number;
  /**
   * A `ws://` or `wss://` JSON-RPC URL of the chain (Hardhat's node serves WebSocket on its HTTP
   * port): the event watcher subscribes to the registries' logs there (`eth_subscribe`) and
   * applies a revocation as soon as its log is pushed; polling every `statusPollingIntervalMs`
   * takes over while the socket is down (default: none, polling alone). See `createRegistryWatcher`.
   */
  eventPushUrl?: string;
  /**
   * Blocks that must be on top of a block before its registry events are applied and before
   * credential status is read from it (default 0, right for a local chain; e.g. 12 or more on a
   * public network). A revocation then takes effect only once it is that deep. The freshness
   * bounds (`tokenFreshnessMs`, `maxStalenessMs`) measure the event feed's last poll, not the
   * depth: they add to it. See docs/security.md, "Chain reorganisations".
   */
  confirmations?: number;
  /**
   * How many of the last applied blocks the event watcher keeps the hashes of to detect a
   * reorganisation and find where it forked (default 128). A fork deeper than that drops every
   * cached DID document and credential state.
   */
  reorgWindowBlocks?: number;
  /** Live tokens are honoured from cached status only while the event feed is this fresh (default 5000 ms). */
  maxStalenessMs?: number;
  /**
   * A new token is issued from cached DID documents and status only while the event feed is
   * this fresh (default 1000 ms); otherwise the chain is read, and if it cannot be, the
   * request is refused with 503.
   */
  tokenFreshnessMs?: number;
  /**
   * Requests the gateway works on at once (default 256). Past it, a request is refused at once
   * with 503 `overloaded` and `Retry-After: 1`, before any work: excess load is shed instead of
   * queueing without bound, so admitted requests keep a bounded latency.
   */
  maxInFlight?: number;
  /**
   * Event-loop delay past which new requests are shed the same way (default 200 ms), once the
   * loop has stayed that late for a second (and until it has been on time for a second). Under
   * overload the queue forms before the gateway sees a request (in socket buffers), where
   * `maxInFlight` cannot count it; a loop that stays late is the sign of that queue.
   */
  maxEventLoopDelayMs?: number;
  /**
   * Worker threads that recover the public keys of did:ethr addresses (default 0: on the event
   * loop, about 1.5 ms once per address, after which the key is known). The ES256K checks
   * themselves, the most expensive step of `POST /auth/token`, always run in OpenSSL on
   * libuv's thread pool, off the event loop.
   */
  verifyThreads?: number;
  /**
   * Entries each of the gateway's caches keeps at most, least recently used out (defaults in
   * {@link DEFAULT_CACHE_BOUNDS}). Chain reads for input not yet authenticated are kept apart,
   * in the `unauthenticated` segments, until its signature verifies (docs/security.md, "Before
   * authentication").
   */
  cacheBounds?: Partial<CacheBounds>;
}

export interface CacheBounds {
  /** DID documents resolved for authenticated input. */
  didDocuments: number;
  /** DID documents resolved for input not yet authenticated. */
  didDocumentsUnauthenticated: number;
  /** Credential states read for authenticated input and live access tokens. */
  credentialStates: number;
  /** Credential states read for input not yet authenticated. */
  credentialStatesUnauthenticated: number;
  /** Credentials whose signature verified, remembered by their bytes. */
  verifiedCredentials: number;
  /** Rate-limit buckets (client addresses, credentials). */
  rateLimitBuckets: number;
}

export const DEFAULT_CACHE_BOUNDS: CacheBounds = {
  didDocuments: 10_000,
  didDocumentsUnauthenticated: 1_000,
  credentialStates: 100_000,
  credentialStatesUnauthenticated: 1_000,
  verifiedCredentials: 10_000,
  rateLimitBuckets: 100_000,
};
