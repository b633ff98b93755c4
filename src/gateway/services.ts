import { JsonRpcProvider } from "ethers";
import {
  type ChainClient,
  createRegistryWatcher,
  keyWalletClient,
  type RegistryWatcher,
} from "../chain/index.ts";
import type { FileModelStore } from "../models/index.ts";
import type { AuditKeys, AuditPublicKey } from "../state/audit-keys.ts";
import { createEmbeddedState } from "../state/embedded/index.ts";
import { memoryTokenKeys, TokenKeyRing } from "../state/keys.ts";
import type {
  AuditStore,
  ChallengeStore,
  GatewayState,
  OAuthClientStore,
  RateLimits,
  RevokedTokenStore,
} from "../state/port.ts";
import { secretsOfUrl } from "../util/redact.ts";
import { type AuditAnchorer, anchoredAuditStore, createAuditAnchorer } from "./audit-anchor.ts";
import { createDidCache } from "./did-cache.ts";
import { createDpopNonces, createDpopVerifier, type DpopVerifier } from "./dpop.ts";
import {
  createAccessGuard,
  createLiveTokenCheck,
  createTokenAuthenticator,
  resolvePublicUrl,
  resolveTokenBinding,
  type TokenBinding,
} from "./guard.ts";
import { LoadShedder } from "./load-shedding.ts";
import { createOid4vpSigner, type Oid4vpSigner } from "./oid4vp.ts";
import { createOperatorLog, type OperatorLog } from "./operator-log.ts";
import { type CacheBounds, DEFAULT_CACHE_BOUNDS, type GatewayOptions } from "./options.ts";
import type { Oid4vpTransactionStore } from "./state.ts";
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
  /** The audit keys' public half (null without a passphrase: records unsigned, not anchored). */
  auditKey: AuditPublicKey | null;
  /** Anchors the audit chain's head on chain (null: off, see `GatewayOptions.auditAnchor`). */
  auditAnchorer: AuditAnchorer | null;
  limiter: RateLimits;
  /** The state backend the stores above come from. */
  state: GatewayState;
  /** The pre-handler that admits a live access token for an action (see `createAccessGuard`). */
  requireAccess: ReturnType<typeof createAccessGuard>;
  /** A request's access token and its DPoP proof, as the guard checks them (`POST /oauth/revoke`). */
  authenticate: ReturnType<typeof createTokenAuthenticator>;
  /** The guard's per-use checks of a live token: revocation, credential state (introspection too). */
  liveToken: ReturnType<typeof createLiveTokenCheck>;
  /** Revoked access-token ids, shared by the replicas. */
  revokedTokens: RevokedTokenStore;
  /** The clients allowed to introspect and revoke tokens (`kparty gateway clients`). */
  oauthClients: OAuthClientStore;
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

/** The options checked before anything starts (misconfiguration is a TypeError): the settings they give. */
function checkOptions(options: GatewayOptions) {
  const { agent, chain, models, db, domain } = options;
  if (!agent || !chain || !models) throw new TypeError("agent, chain and models are required");
  if (!db === !options.state) throw new TypeError("one of db (embedded) or state is required");
  if (typeof domain !== "string" || domain.length === 0) throw new TypeError("domain is required");
  const numbers = checkNumbers(options);
  const bounds: CacheBounds = { ...DEFAULT_CACHE_BOUNDS, ...options.cacheBounds };
  for (const [name, bound] of Object.entries(bounds)) {
    if (!Number.isSafeInteger(bound) || bound < 1)
      throw new TypeError(`cacheBounds.${name} must be a positive integer`);
  }
  const refreshMs = options.tokenKeyRefreshMs ?? 10_000;
  if (!Number.isFinite(refreshMs) || refreshMs < 0)
    throw new TypeError("tokenKeyRefreshMs must be a non-negative number");
  if (options.tokenKey && options.tokenKeySecret !== undefined)
    throw new TypeError("pass tokenKey or tokenKeySecret, not both");
  const requestTtlSeconds = options.oid4vp?.requestTtlSeconds ?? 300;
  if (!Number.isSafeInteger(requestTtlSeconds) || requestTtlSeconds <= 0)
    throw new TypeError("oid4vp.requestTtlSeconds must be a positive integer");
  const oid4vpPublicUrl = options.oid4vp?.publicUrl?.replace(/\/+$/, "") ?? null;
  if (oid4vpPublicUrl !== null && !/^https?:\/\/[^\s/]+/.test(oid4vpPublicUrl))
    throw new TypeError("oid4vp.publicUrl must be an http(s) URL");
  return {
    ...numbers,
    bounds,
    refreshMs,
    requestTtlSeconds,
    oid4vpPublicUrl,
    domain,
    clockSkewSeconds: resolveClockSkew(options.clockSkewSeconds),
    tokenBinding: resolveTokenBinding(options.tokenBinding),
    publicUrl: resolvePublicUrl(options.publicUrl),
  };
}

type Settings = ReturnType<typeof checkOptions>;

/** The access-token keys (loaded: a store that cannot be read fails here), the token service and the DPoP verifier. */
async function tokenServices(
  options: GatewayOptions,
  settings: Settings,
  state: GatewayState,
  now: () => number,
) {
  const { domain, clockSkewSeconds, refreshMs } = settings;
  const keys = new TokenKeyRing(
    options.tokenKey
      ? memoryTokenKeys(options.tokenKey, now)
      : state.tokenKeys(options.tokenKeySecret !== undefined ? { secret: options.tokenKeySecret } : {}),
    { now, refreshMs },
  );
  await keys.reload();
  const tokens = createTokenService({
    domain,
    now,
    clockSkewSeconds,
    keys,
    ...(options.tokenTtlSeconds !== undefined ? { ttlSeconds: options.tokenTtlSeconds } : {}),
  });
  const nonces = options.requireDpopNonce
    ? createDpopNonces({
        now,
        ...(options.dpopNonceLifetimeSeconds !== undefined
          ? { lifetimeSeconds: options.dpopNonceLifetimeSeconds }
          : {}),
        ...(options.dpopNonceSecret ? { secret: options.dpopNonceSecret } : {}),
      })
    : null;
  const dpop = createDpopVerifier({
    now,
    clockSkewSeconds,
    replay: options.dpopReplay ?? state.dpopReplay({ now }),
    ...(nonces ? { nonces } : {}),
  });
  return { tokens, dpop };
}

/**
 * The chain side: the registry watcher and the status and DID caches it invalidates, and the
 * verifier over them (ES256K checks on libuv's pool, key recoveries on `verifyThreads` workers).
 * A verifier that cannot be built stops the watcher and the pool again.
 */
async function chainServices(options: GatewayOptions, settings: Settings, now: () => number) {
  const { chain, agent } = options;
  const { bounds, verifyThreads, clockSkewSeconds } = settings;
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
  try {
    const verifier = createVerifier({
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
    return { watcher, states, dids, pool, verifier };
  } catch (error) {
    watcher.stop(); // a misconfigured gateway leaves no polling timer behind
    await pool?.close();
    throw error;
  }
}

/** The audit log: signed with the audit key when there is one, its heads anchored on chain when the deployment allows. */
function auditServices(
  options: GatewayOptions,
  state: GatewayState,
  auditKeys: AuditKeys | null,
  operatorLog: OperatorLog,
  now: () => number,
) {
  const auditAnchorer = startAuditAnchorer(options, auditKeys, state, (text) => operatorLog.note(text));
  const signedAudit = state.audit({
    now,
    ...(auditKeys ? { signer: { kid: auditKeys.kid, key: auditKeys.signingKey } } : {}),
    // in the operator's log whatever the request logging: the operator has to restart the gateway
    onSyncFailure: (error) =>
      operatorLog.note(
        `audit log sync failed (${error.cause instanceof Error ? error.cause.message : String(error.cause)}); refusing every decision until restarted`,
      ),
  });
  const audit = auditAnchorer ? anchoredAuditStore(signedAudit, auditAnchorer) : signedAudit;
  return { audit, auditAnchorer };
}

/** The checks of a protected request: the access guard, and its two halves for the OAuth routes. */
function accessServices(
  options: GatewayOptions,
  settings: Settings,
  parts: Pick<GatewayServices, "tokens" | "dpop" | "states" | "audit" | "limiter" | "revokedTokens">,
) {
  const { tokenBinding, publicUrl } = settings;
  const { dpop, states, audit, limiter, revokedTokens } = parts;
  const tokens = { verify: parts.tokens.verifyFresh };
  const removed = options.removedIssuerPolicy ? { removedIssuerPolicy: options.removedIssuerPolicy } : {};
  const url = publicUrl !== undefined ? { publicUrl } : {};
  const requireAccess = createAccessGuard({
    tokens,
    revoked: revokedTokens,
    tokenBinding,
    dpop,
    ...url,
    states,
    audit,
    limiter,
    ...(options.defaultRequestsPerMinute
      ? { defaultRequestsPerMinute: options.defaultRequestsPerMinute }
      : {}),
    ...removed,
  });
  const authenticate = createTokenAuthenticator({ tokens, tokenBinding, dpop, ...url });
  const liveToken = createLiveTokenCheck({ states, revoked: revokedTokens, ...removed });
  return { requireAccess, authenticate, liveToken };
}

/**
 * Builds the gateway's services from its options: token service, challenge store, registry
 * watcher with the status and DID caches it invalidates, the verifier, the audit log, rate
 * limits, the access guard, the operator's log and the load shedder. Every option is validated
 * and every stored key loaded before the watcher starts polling, so a misconfigured gateway
 * leaves no timer behind.
 */
export async function createGatewayServices(options: GatewayOptions): Promise<GatewayServices> {
  const settings = checkOptions(options);
  const { chain, models } = options;
  const { domain, clockSkewSeconds, tokenBinding, publicUrl, bounds } = settings;
  const now = options.now ?? Date.now;
  const state = options.state ?? createEmbeddedState(options.db as NonNullable<GatewayOptions["db"]>);
  const { tokens, dpop } = await tokenServices(options, settings, state, now);
  const auditKeys =
    options.tokenKeySecret !== undefined
      ? await state.auditKeys({ secret: options.tokenKeySecret }).load()
      : null;
  const { watcher, states, dids, pool, verifier } = await chainServices(options, settings, now);
  const operatorLog = createOperatorLog({
    stream: options.operatorLog ?? process.stderr,
    secrets: [
      ...[chain, options.watcherChain].flatMap((c) => secretsOfUrl(rpcUrlOf(c?.provider) ?? "")),
      ...secretsOfUrl(options.eventPushUrl ?? ""),
    ],
    now,
  });
  const { audit, auditAnchorer } = auditServices(options, state, auditKeys, operatorLog, now);
  const limiter = state.rateLimits({ now, maxKeys: bounds.rateLimitBuckets });
  const revokedTokens = state.revokedTokens({ now });
  const access = accessServices(options, settings, { tokens, dpop, states, audit, limiter, revokedTokens });
  const shedder = new LoadShedder(settings);
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
    challenges: state.challenges({ ttlSeconds: options.challengeTtlSeconds ?? 60, now }),
    oid4vp: {
      signer: createOid4vpSigner(options.oid4vp?.key),
      transactions: state.oid4vpTransactions({ now }),
      publicUrl: settings.oid4vpPublicUrl,
      requestTtlSeconds: settings.requestTtlSeconds,
    },
    watcher,
    states,
    verifier,
    audit,
    auditKey: auditKeys
      ? { kid: auditKeys.kid, x: auditKeys.x, anchorer: auditKeys.anchorer, log: auditKeys.log }
      : null,
    auditAnchorer,
    limiter,
    state,
    ...access,
    revokedTokens,
    oauthClients: state.oauthClients({ now }),
    operatorLog,
    shedder,
    challengesPerMinute: options.challengesPerMinute ?? 60,
    verificationsPerMinute: options.verificationsPerMinute ?? 600,
    cacheSizes: () => cacheSizesOf(dids, states, verifier, limiter),
    async close() {
      watcher.stop();
      shedder.stop();
      await auditAnchorer?.stop();
      await audit.close(); // every decision is on disk before the caller closes the database
      await pool?.close();
    },
  };
}

/** The entries each cache holds now. */
function cacheSizesOf(
  dids: { sizes: { main: number; unauthenticated: number } },
  states: GatewayServices["states"] & { sizes: { main: number; unauthenticated: number; indexed: number } },
  verifier: Verifier,
  limiter: RateLimits,
): GatewayCacheSizes {
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
}

/** The audit anchorer the options ask for, if the keys and the deployment allow it. */
function startAuditAnchorer(
  options: GatewayOptions,
  keys: AuditKeys | null,
  state: GatewayState,
  note: (text: string) => void,
): AuditAnchorer | null {
  if (options.auditAnchor === false) return null;
  if (!keys) {
    if (options.auditAnchor)
      throw new TypeError("auditAnchor needs tokenKeySecret (the audit keys are stored under it)");
    return null;
  }
  if (!options.chain.contracts.auditAnchors) {
    note("the deployment has no AuditAnchors contract: the audit chain's head is not anchored");
    return null;
  }
  return createAuditAnchorer({
    // background work, like the watcher's polls: through its provider, so request-time calls are counted alone
    wallet: keyWalletClient({
      privateKey: keys.anchorKey,
      provider: (options.watcherChain ?? options.chain).provider,
      deployment: options.chain.deployment,
    }),
    keys,
    reader: state.auditReader(),
    lock: state.modelLock(),
    now: options.now ?? Date.now,
    note,
    ...(options.auditAnchor ? { settings: options.auditAnchor } : {}),
  });
}
