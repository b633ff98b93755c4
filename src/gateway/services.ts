import { JsonRpcProvider } from "ethers";
import { type ChainClient, createRegistryWatcher, type RegistryWatcher } from "../chain/index.ts";
import type { FileModelStore } from "../models/index.ts";
import { createEmbeddedState } from "../state/embedded/index.ts";
import { memoryTokenKeys, TokenKeyRing } from "../state/keys.ts";
import type { AuditStore, ChallengeStore, GatewayState, RateLimits } from "../state/port.ts";
import { secretsOfUrl } from "../util/redact.ts";
import { createDidCache } from "./did-cache.ts";
import { createDpopNonces, createDpopVerifier, type DpopVerifier, SqliteDpopReplayStore } from "./dpop.ts";
import { createAccessGuard, resolvePublicUrl, resolveTokenBinding, type TokenBinding } from "./guard.ts";
import { LoadShedder } from "./load-shedding.ts";
import { createOid4vpSigner, type Oid4vpSigner } from "./oid4vp.ts";
import { createOperatorLog, type OperatorLog } from "./operator-log.ts";
import { type CacheBounds, DEFAULT_CACHE_BOUNDS, type GatewayOptions } from "./options.ts";
import { type Oid4vpTransactionStore, openGatewayDatabase, SqliteOid4vpTransactions } from "./state.ts";
import { createStatusCache, type StatusCache } from "./status-cache.ts";
import { createTokenService, type TokenService } from "./tokens.ts";
import { verifyEs256kAsync } from "./verify/es256k.ts";
import { createEs256kPool } from "./verify/es256k-pool.ts";
import { createVerifier, type Verifier } from "./verify/verifier.ts";
import { resolveClockSkew } from "./verify/window.ts";

/**
 * Everything the gateway's routes work with, built once from the options by
 * {@link createGatewayServices} and handed to each route plugin: the composition root holds
 * the wiring, the route files hold the routes.
 */
export interface GatewayServices {
  domain: string;
  chain: ChainClient;
  models: FileModelStore;
  now: () => number;
  clockSkewSeconds: number;
  tokens: TokenService;
  /** `dpop` (default) or `bearer` (see `GatewayOptions.tokenBinding`). */
  tokenBinding: TokenBinding;
  /** Checks DPoP proofs, at the token endpoint and on protected routes. */
  dpop: DpopVerifier;
  /** The public base URL proofs' `htu` name, if configured (else each request's own). */
  publicUrl: string | undefined;
  challenges: ChallengeStore;
  /** The OID4VP verifier: its signing identity, its transactions, its settings (see `GatewayOptions.oid4vp`). */
  oid4vp: {
    signer: Oid4vpSigner;
    transactions: Oid4vpTransactionStore;
    publicUrl: string | null;
    requestTtlSeconds: number;
  };
  watcher: RegistryWatcher;
  states: StatusCache;
  verifier: Verifier;
  audit: AuditStore;
  limiter: RateLimits;
  /** The state backend the stores above come from. */
  state: GatewayState;
  /** The pre-handler that admits a live access token for an action (see `createAccessGuard`). */
  requireAccess: ReturnType<typeof createAccessGuard>;
  operatorLog: OperatorLog;
  shedder: LoadShedder;
  challengesPerMinute: number;
  verificationsPerMinute: number;
  /** How many entries each cache holds now (each at most its bound in `cacheBounds`). */
  cacheSizes(): GatewayCacheSizes;
  /** Stops the watcher and the shedder, syncs the audit log and ends the verification threads. */
  close(): Promise<void>;
}

/** Entries held by each of the gateway's caches (see `CacheBounds`). */
export interface GatewayCacheSizes extends Record<keyof CacheBounds, number> {
  /** Entry keys in the status cache's per-issuer index (always the two status segments' sum). */
  credentialStatesIndexed: number;
}

/** The JSON-RPC URL behind an ethers provider, whose secrets the operator's log must never show. */
function rpcUrlOf(provider: unknown): string | null {
  return provider instanceof JsonRpcProvider ? provider._getConnection().url : null;
}

/** The options that are plain numbers, checked before anything starts (misconfiguration is a TypeError). */
function checkNumbers(options: GatewayOptions) {
  const maxInFlight = options.maxInFlight ?? 256;
  if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) {
    throw new TypeError("maxInFlight must be a positive integer");
  }
  const verifyThreads = options.verifyThreads ?? 0;
  if (!Number.isSafeInteger(verifyThreads) || verifyThreads < 0) {
    throw new TypeError("verifyThreads must be a non-negative integer");
  }
  const maxEventLoopDelayMs = options.maxEventLoopDelayMs ?? 200;
  if (!Number.isFinite(maxEventLoopDelayMs) || maxEventLoopDelayMs <= 0) {
    throw new TypeError("maxEventLoopDelayMs must be a positive number");
  }
  for (const name of ["tokenFreshnessMs", "maxStalenessMs", "statusPollingIntervalMs"] as const) {
    const value = options[name];
    if (value !== undefined && (!Number.isFinite(value) || value <= 0))
      throw new TypeError(`${name} must be a positive number`);
  }
  return { maxInFlight, verifyThreads, maxEventLoopDelayMs };
}

/**
 * Builds the gateway's services from its options: token service, challenge store, registry
 * watcher with the status and DID caches it invalidates, the verifier (ES256K checks on
 * libuv's pool, key recoveries on `verifyThreads` workers), the audit log, rate limits, the
 * access guard, the operator's log and the load shedder. Every option is validated before the
 * watcher starts polling, so a misconfigured gateway leaves no timer behind.
 */
export async function createGatewayServices(options: GatewayOptions): Promise<GatewayServices> {
  const { agent, chain, models, db, domain } = options;
  if (!agent || !chain || !models) throw new TypeError("agent, chain and models are required");
  if (!db === !options.state) throw new TypeError("one of db (embedded) or state is required");
  if (typeof domain !== "string" || domain.length === 0) throw new TypeError("domain is required");
  const now = options.now ?? Date.now;
  const { maxInFlight, verifyThreads, maxEventLoopDelayMs } = checkNumbers(options);
  const bounds: CacheBounds = { ...DEFAULT_CACHE_BOUNDS, ...options.cacheBounds };
  for (const [name, bound] of Object.entries(bounds)) {
    if (!Number.isSafeInteger(bound) || bound < 1)
      throw new TypeError(`cacheBounds.${name} must be a positive integer`);
  }
  const clockSkewSeconds = resolveClockSkew(options.clockSkewSeconds);
  const refreshMs = options.tokenKeyRefreshMs ?? 10_000;
  if (!Number.isFinite(refreshMs) || refreshMs < 0)
    throw new TypeError("tokenKeyRefreshMs must be a non-negative number");
  const state = options.state ?? createEmbeddedState(db as NonNullable<typeof db>);
  if (options.tokenKey && options.tokenKeySecret !== undefined)
    throw new TypeError("pass tokenKey or tokenKeySecret, not both");
  const keys = new TokenKeyRing(
    options.tokenKey
      ? memoryTokenKeys(options.tokenKey, now)
      : state.tokenKeys(options.tokenKeySecret !== undefined ? { secret: options.tokenKeySecret } : {}),
    { now, refreshMs },
  );
  await keys.reload(); // before anything starts: a store that cannot be read leaves nothing behind
  const tokens = createTokenService({
    domain,
    now,
    clockSkewSeconds,
    keys,
    ...(options.tokenTtlSeconds !== undefined ? { ttlSeconds: options.tokenTtlSeconds } : {}),
  });
  // OID4VP transactions and the DPoP replay cache live in the embedded database; a gateway on
  // PostgreSQL keeps them in a database of its own process until they have PostgreSQL stores
  // (one replica per OID4VP request; a proof's jti single-use per replica)
  const local = db ?? state.localDatabase ?? openGatewayDatabase(":memory:");
  const tokenBinding = resolveTokenBinding(options.tokenBinding);
  const publicUrl = resolvePublicUrl(options.publicUrl);
  const dpop = createDpopVerifier({
    now,
    clockSkewSeconds,
    replay: options.dpopReplay ?? new SqliteDpopReplayStore(local, { now }),
    ...(options.requireDpopNonce
      ? {
          nonces: createDpopNonces({
            now,
            ...(options.dpopNonceLifetimeSeconds !== undefined
              ? { lifetimeSeconds: options.dpopNonceLifetimeSeconds }
              : {}),
            ...(options.dpopNonceSecret ? { secret: options.dpopNonceSecret } : {}),
          }),
        }
      : {}),
  });
  const challenges = state.challenges({ ttlSeconds: options.challengeTtlSeconds ?? 60, now });
  const requestTtlSeconds = options.oid4vp?.requestTtlSeconds ?? 300;
  if (!Number.isSafeInteger(requestTtlSeconds) || requestTtlSeconds <= 0)
    throw new TypeError("oid4vp.requestTtlSeconds must be a positive integer");
  const oid4vpPublicUrl = options.oid4vp?.publicUrl?.replace(/\/+$/, "") ?? null;
  if (oid4vpPublicUrl !== null && !/^https?:\/\/[^\s/]+/.test(oid4vpPublicUrl))
    throw new TypeError("oid4vp.publicUrl must be an http(s) URL");
  const oid4vp = {
    signer: createOid4vpSigner(options.oid4vp?.key),
    transactions: new SqliteOid4vpTransactions(local, { now }),
    publicUrl: oid4vpPublicUrl,
    requestTtlSeconds,
  };
  const watcher = createRegistryWatcher(options.watcherChain ?? chain, {
    now,
    ...(options.statusPollingIntervalMs ? { pollingIntervalMs: options.statusPollingIntervalMs } : {}),
    ...(options.eventPushUrl ? { pushUrl: options.eventPushUrl } : {}),
    ...(options.confirmations !== undefined ? { confirmations: options.confirmations } : {}),
    ...(options.reorgWindowBlocks !== undefined ? { reorgWindowBlocks: options.reorgWindowBlocks } : {}),
  });
  const states = createStatusCache({
    chain,
    watcher,
    now,
    maxEntries: bounds.credentialStates,
    maxUnauthenticatedEntries: bounds.credentialStatesUnauthenticated,
    ...(options.maxStalenessMs !== undefined ? { maxStalenessMs: options.maxStalenessMs } : {}),
  });
  const tokenFreshnessMs = options.tokenFreshnessMs ?? 1_000;
  const dids = createDidCache({
    resolver: agent,
    watcher,
    now,
    maxStalenessMs: tokenFreshnessMs,
    maxEntries: bounds.didDocuments,
    maxUnauthenticatedEntries: bounds.didDocumentsUnauthenticated,
  });
  const pool = verifyThreads > 0 ? createEs256kPool(verifyThreads) : null;
  let verifier: Verifier;
  try {
    verifier = createVerifier({
      verifySignature: pool
        ? pool.verify
        : (input, signature, keys) => verifyEs256kAsync(input, signature, keys),
      // reads for input not yet authenticated go to the caches' small segments until the
      // verifier names them authenticated (docs/security.md, "Before authentication")
      resolver: dids.unauthenticated,
      states: { get: (key) => states.unauthenticated.get(key, { maxStalenessMs: tokenFreshnessMs }) },
      onAuthenticated: ({ didUrls, statusKeys }) => {
        for (const didUrl of didUrls) dids.promote(didUrl);
        for (const key of statusKeys) states.promote(key);
      },
      chain,
      now,
      clockSkewSeconds,
      maxKnownCredentials: bounds.verifiedCredentials,
      ...(options.removedIssuerPolicy ? { removedIssuerPolicy: options.removedIssuerPolicy } : {}),
    });
  } catch (error) {
    watcher.stop(); // a misconfigured gateway leaves no polling timer behind
    await pool?.close();
    throw error;
  }
  const operatorLog = createOperatorLog({
    stream: options.operatorLog ?? process.stderr,
    secrets: [
      ...[chain, options.watcherChain].flatMap((c) => secretsOfUrl(rpcUrlOf(c?.provider) ?? "")),
      ...secretsOfUrl(options.eventPushUrl ?? ""),
    ],
    now,
  });
  const audit = state.audit({
    now,
    // in the operator's log whatever the request logging: the operator has to restart the gateway
    onSyncFailure: (error) =>
      operatorLog.note(
        `audit log sync failed (${error.cause instanceof Error ? error.cause.message : String(error.cause)}); refusing every decision until restarted`,
      ),
  });
  const limiter = state.rateLimits({ now, maxKeys: bounds.rateLimitBuckets });
  const requireAccess = createAccessGuard({
    tokens: { verify: tokens.verifyFresh },
    tokenBinding,
    dpop,
    ...(publicUrl !== undefined ? { publicUrl } : {}),
    states,
    audit,
    limiter,
    ...(options.defaultRequestsPerMinute
      ? { defaultRequestsPerMinute: options.defaultRequestsPerMinute }
      : {}),
    ...(options.removedIssuerPolicy ? { removedIssuerPolicy: options.removedIssuerPolicy } : {}),
  });
  const shedder = new LoadShedder({ maxInFlight, maxEventLoopDelayMs });
  return {
    domain,
    chain,
    models,
    now,
    clockSkewSeconds,
    tokens,
    tokenBinding,
    dpop,
    publicUrl,
    challenges,
    oid4vp,
    watcher,
    states,
    verifier,
    audit,
    limiter,
    state,
    requireAccess,
    operatorLog,
    shedder,
    challengesPerMinute: options.challengesPerMinute ?? 60,
    verificationsPerMinute: options.verificationsPerMinute ?? 600,
    cacheSizes() {
      const didSizes = dids.sizes;
      const stateSizes = states.sizes;
      return {
        didDocuments: didSizes.main,
        didDocumentsUnauthenticated: didSizes.unauthenticated,
        credentialStates: stateSizes.main,
        credentialStatesUnauthenticated: stateSizes.unauthenticated,
        credentialStatesIndexed: stateSizes.indexed,
        verifiedCredentials: verifier.knownCredentials,
        // buckets held in this process; none when they live in PostgreSQL
        rateLimitBuckets: limiter.size ?? 0,
      };
    },
    async close() {
      watcher.stop();
      shedder.stop();
      await audit.close(); // every decision is on disk before the caller closes the database
      await pool?.close();
    },
  };
}
