import { JsonRpcProvider } from "ethers";
import { type ChainClient, createRegistryWatcher, type RegistryWatcher } from "../chain/index.ts";
import type { FileModelStore } from "../models/index.ts";
import { secretsOfUrl } from "../util/redact.ts";
import { AuditLog } from "./audit.ts";
import { createDidCache } from "./did-cache.ts";
import { createDpopNonces, createDpopVerifier, type DpopVerifier, SqliteDpopReplayStore } from "./dpop.ts";
import { createAccessGuard, resolvePublicUrl, resolveTokenBinding, type TokenBinding } from "./guard.ts";
import { LoadShedder } from "./load-shedding.ts";
import { createOperatorLog, type OperatorLog } from "./operator-log.ts";
import type { GatewayOptions } from "./options.ts";
import { RateLimiter } from "./rate-limit.ts";
import { ChallengeStore } from "./state.ts";
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
  watcher: RegistryWatcher;
  states: StatusCache;
  verifier: Verifier;
  audit: AuditLog;
  limiter: RateLimiter;
  /** The pre-handler that admits a live access token for an action (see `createAccessGuard`). */
  requireAccess: ReturnType<typeof createAccessGuard>;
  operatorLog: OperatorLog;
  shedder: LoadShedder;
  challengesPerMinute: number;
  verificationsPerMinute: number;
  /** Stops the watcher and the shedder, syncs the audit log and ends the verification threads. */
  close(): Promise<void>;
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
  if (!agent || !chain || !models || !db) throw new TypeError("agent, chain, models and db are required");
  if (typeof domain !== "string" || domain.length === 0) throw new TypeError("domain is required");
  const now = options.now ?? Date.now;
  const { maxInFlight, verifyThreads, maxEventLoopDelayMs } = checkNumbers(options);
  const clockSkewSeconds = resolveClockSkew(options.clockSkewSeconds);
  const tokens = createTokenService({
    domain,
    now,
    clockSkewSeconds,
    ...(options.tokenTtlSeconds !== undefined ? { ttlSeconds: options.tokenTtlSeconds } : {}),
    ...(options.tokenKey ? { privateKey: options.tokenKey } : {}),
  });
  const tokenBinding = resolveTokenBinding(options.tokenBinding);
  const publicUrl = resolvePublicUrl(options.publicUrl);
  const dpop = createDpopVerifier({
    now,
    clockSkewSeconds,
    replay: options.dpopReplay ?? new SqliteDpopReplayStore(db, { now }),
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
  const challenges = new ChallengeStore(db, { ttlSeconds: options.challengeTtlSeconds ?? 60, now });
  const watcher = createRegistryWatcher(options.watcherChain ?? chain, {
    now,
    ...(options.statusPollingIntervalMs ? { pollingIntervalMs: options.statusPollingIntervalMs } : {}),
    ...(options.confirmations !== undefined ? { confirmations: options.confirmations } : {}),
    ...(options.reorgWindowBlocks !== undefined ? { reorgWindowBlocks: options.reorgWindowBlocks } : {}),
  });
  const states = createStatusCache({
    chain,
    watcher,
    now,
    ...(options.maxStalenessMs !== undefined ? { maxStalenessMs: options.maxStalenessMs } : {}),
  });
  const tokenFreshnessMs = options.tokenFreshnessMs ?? 1_000;
  const dids = createDidCache({ resolver: agent, watcher, now, maxStalenessMs: tokenFreshnessMs });
  const pool = verifyThreads > 0 ? createEs256kPool(verifyThreads) : null;
  let verifier: Verifier;
  try {
    verifier = createVerifier({
      verifySignature: pool
        ? pool.verify
        : (input, signature, keys) => verifyEs256kAsync(input, signature, keys),
      resolver: dids,
      states: { get: (key) => states.get(key, { maxStalenessMs: tokenFreshnessMs }) },
      chain,
      now,
      clockSkewSeconds,
      ...(options.removedIssuerPolicy ? { removedIssuerPolicy: options.removedIssuerPolicy } : {}),
    });
  } catch (error) {
    watcher.stop(); // a misconfigured gateway leaves no polling timer behind
    await pool?.close();
    throw error;
  }
  const operatorLog = createOperatorLog({
    stream: options.operatorLog ?? process.stderr,
    secrets: [chain, options.watcherChain].flatMap((c) => secretsOfUrl(rpcUrlOf(c?.provider) ?? "")),
    now,
  });
  const audit = new AuditLog(db, {
    now,
    // in the operator's log whatever the request logging: the operator has to restart the gateway
    onSyncFailure: (error) =>
      operatorLog.note(
        `audit log sync failed (${error.cause instanceof Error ? error.cause.message : String(error.cause)}); refusing every decision until restarted`,
      ),
  });
  const limiter = new RateLimiter({ now });
  const requireAccess = createAccessGuard({
    tokens,
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
    watcher,
    states,
    verifier,
    audit,
    limiter,
    requireAccess,
    operatorLog,
    shedder,
    challengesPerMinute: options.challengesPerMinute ?? 60,
    verificationsPerMinute: options.verificationsPerMinute ?? 600,
    async close() {
      watcher.stop();
      shedder.stop();
      await audit.close(); // every decision is on disk before the caller closes the database
      await pool?.close();
    },
  };
}
