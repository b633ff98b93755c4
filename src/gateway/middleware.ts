import type { preHandlerAsyncHookHandler } from "fastify";
import { type ChainClient, createRegistryWatcher } from "../chain/index.ts";
import type { Action } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import type { AuditLog } from "./audit.ts";
import { createDpopNonces, createDpopVerifier, type DpopReplayStore, MemoryDpopReplayStore } from "./dpop.ts";
import { createAccessGuard, resolvePublicUrl, resolveTokenBinding, type TokenBinding } from "./guard.ts";
import { RateLimiter } from "./rate-limit.ts";
import { createStatusCache } from "./status-cache.ts";
import { createTokenVerifier, type TokenPublicKey } from "./tokens.ts";
import type { RemovedIssuerPolicy } from "./verify/judge.ts";
import { resolveClockSkew } from "./verify/window.ts";

export interface ProtectionOptions {
  /** Base URL of the kparty gateway that issues the tokens (its domain and key come from `/.well-known/kparty`). */
  gateway: string;
  /** The same deployment as the gateway's, for credential states and registry events. */
  chain: ChainClient;
  now?: () => number;
  /**
   * Tolerated clock difference between this server and the gateway and issuers, in seconds,
   * applied to the token's expiry and to the credential window it carries. Default: the
   * gateway's own (`accessToken.clockSkewSeconds` of `/.well-known/kparty`), else
   * `DEFAULT_CLOCK_SKEW_SECONDS` (60).
   */
  clockSkewSeconds?: number;
  removedIssuerPolicy?: RemovedIssuerPolicy;
  /** Honour cached status only while the event feed is this fresh (default 5000 ms). */
  maxStalenessMs?: number;
  /** Blocks on top of a block before its registry events apply (default 0; see the gateway's `confirmations`). */
  confirmations?: number;
  /** Record decisions here (recommended; see `AuditLog`). */
  audit?: AuditLog;
  /** Requests a minute per credential without a quota (default 600). */
  defaultRequestsPerMinute?: number;
  /**
   * `dpop`: only DPoP-bound tokens, each request with a fresh proof; `bearer`: unbound tokens
   * too. Default: the gateway's mode (`accessToken.tokenBinding` of `/.well-known/kparty`).
   */
  tokenBinding?: TokenBinding;
  /**
   * This server's public base URL (e.g. `https://models.example`), which proofs' `htu` must
   * name followed by the request's path. Default: each request's scheme and `Host` (through a
   * proxy, only as far as Fastify's `trustProxy` believes it): set it behind a proxy.
   */
  publicUrl?: string;
  /**
   * Where accepted proofs' `jti`s are kept (default: in this process's memory). Several
   * instances behind one URL must share one (e.g. a `SqliteDpopReplayStore` on a shared database).
   */
  dpopReplay?: DpopReplayStore;
  /** Require server nonces in proofs (`use_dpop_nonce`, `DPoP-Nonce`); default false. */
  requireDpopNonce?: boolean;
  fetch?: typeof fetch;
}

/** The `kid` in a compact JWS header, or null. */
function tokenKid(token: unknown): string | null {
  if (typeof token !== "string") return null;
  try {
    const header = JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString("utf8")) as {
      kid?: unknown;
    };
    return typeof header.kid === "string" ? header.kid : null;
  } catch {
    return null;
  }
}

/**
 * Protects routes of any Fastify server with kparty access tokens, without running the
 * gateway: tokens are checked with the gateway's public keys (`/.well-known/jwks.json`, read
 * again when a token names a key not seen yet, at most once a second); a DPoP-bound token (`cnf.jkt`)
 * only as `Authorization: DPoP` with a fresh proof of its key for this request's method and URL
 * (`htu` from `publicUrl`), `ath` of the token, `iat` within the clock skew and a `jti` this
 * server has not seen (bearer tokens only with `tokenBinding: "bearer"`); the credential's validity window
 * they carry is re-checked on every request (`credential_expired` once it has ended, with the
 * same clock skew as the gateway), credential states come from the chain through a cache
 * invalidated by the registry's events (so a revocation refuses live tokens within a poll),
 * rate limits follow each credential's quota. Errors are `KPartyError`s; map them with
 * `errorResponse` and `errorHeaders` (see docs/middleware.md).
 *
 * @example
 * ```ts
 * const kparty = await createKPartyProtection({ gateway: "https://gw.example", chain });
 * app.get("/infer/:id", { preHandler: kparty.requireAccess("model:infer") }, handler);
 * app.addHook("onClose", () => kparty.close());
 * ```
 */
export async function createKPartyProtection(options: ProtectionOptions) {
  const fetchFn = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  if (options.clockSkewSeconds !== undefined) resolveClockSkew(options.clockSkewSeconds); // TypeError before any request
  const base = options.gateway.replace(/\/$/, "");
  const wellKnown = await readWellKnown(fetchFn, base, options.chain);
  const clockSkewSeconds = resolveClockSkew(
    options.clockSkewSeconds ?? wellKnown.accessToken.clockSkewSeconds,
  );
  const tokens = await gatewayTokenVerifier({ fetchFn, base, wellKnown, now, clockSkewSeconds });
  const tokenBinding = resolveTokenBinding(options.tokenBinding ?? wellKnown.accessToken.tokenBinding);
  const publicUrl = resolvePublicUrl(options.publicUrl);
  const dpop = createDpopVerifier({
    now,
    clockSkewSeconds,
    replay: options.dpopReplay ?? new MemoryDpopReplayStore({ now }),
    ...(options.requireDpopNonce ? { nonces: createDpopNonces({ now }) } : {}),
  });
  const watcher = createRegistryWatcher(options.chain, {
    now,
    ...(options.confirmations !== undefined ? { confirmations: options.confirmations } : {}),
  });
  const states = createStatusCache({
    chain: options.chain,
    watcher,
    now,
    ...(options.maxStalenessMs !== undefined ? { maxStalenessMs: options.maxStalenessMs } : {}),
  });
  const requireAccess = createAccessGuard({
    tokens,
    tokenBinding,
    dpop,
    ...(publicUrl !== undefined ? { publicUrl } : {}),
    states,
    limiter: new RateLimiter({ now }),
    ...(options.audit ? { audit: options.audit } : {}),
    ...(options.removedIssuerPolicy ? { removedIssuerPolicy: options.removedIssuerPolicy } : {}),
    ...(options.defaultRequestsPerMinute
      ? { defaultRequestsPerMinute: options.defaultRequestsPerMinute }
      : {}),
  });
  return {
    /** A preHandler admitting only tokens that grant `action` (and cover `:id` when the route has one). */
    requireAccess: (action: Action): preHandlerAsyncHookHandler => requireAccess(action),
    /** The gateway's domain (the tokens' issuer and audience). */
    domain: wellKnown.domain,
    /** The last block whose registry events were applied. */
    get syncedBlock() {
      return watcher.syncedBlock;
    },
    close: () => watcher.stop(),
  };
}

/**
 * GETs a JSON document of the gateway: its status and body (null when the answer is not
 * JSON). `registry_unavailable` when the gateway cannot be reached: the protection is not
 * made (fails closed) rather than made without the gateway's keys and deployment.
 */
async function fetchGateway(
  fetchFn: typeof fetch,
  url: string,
): Promise<{ ok: boolean; status: number; body: unknown }> {
  let res: Response;
  try {
    res = await fetchFn(url);
  } catch (cause) {
    throw new KPartyError("registry_unavailable", `the gateway cannot be reached at ${new URL(url).origin}`, {
      cause,
    });
  }
  const body: unknown = await res.json().catch(() => null);
  return { ok: res.ok, status: res.status, body };
}

/** What the middleware reads from the gateway's `/.well-known/kparty`. */
interface GatewayWellKnown {
  domain: string;
  chainId: number;
  contracts: Record<string, string>;
  accessToken: { key: TokenPublicKey; clockSkewSeconds?: number; tokenBinding?: TokenBinding };
}

/**
 * The gateway's `/.well-known/kparty`, which must name `chain`'s deployment: `config_invalid`
 * when it names another chain or registry (the two are configured for different deployments).
 */
async function readWellKnown(
  fetchFn: typeof fetch,
  base: string,
  chain: ChainClient,
): Promise<GatewayWellKnown> {
  const answer = await fetchGateway(fetchFn, `${base}/.well-known/kparty`);
  if (!answer.ok || typeof answer.body !== "object" || answer.body === null) {
    throw new KPartyError(
      "registry_unavailable",
      `the gateway at ${base} does not serve its /.well-known/kparty (HTTP ${answer.status})`,
    );
  }
  const wellKnown = answer.body as GatewayWellKnown;
  const { deployment } = chain;
  if (
    wellKnown.chainId !== deployment.chainId ||
    wellKnown.contracts?.CredentialRegistry?.toLowerCase() !==
      deployment.contracts.CredentialRegistry.toLowerCase()
  ) {
    throw new KPartyError(
      "config_invalid",
      "the gateway serves another chain or registry than the configured deployment",
      {
        details: {
          gateway: { chainId: wellKnown.chainId, registry: wellKnown.contracts?.CredentialRegistry ?? null },
          configured: { chainId: deployment.chainId, registry: deployment.contracts.CredentialRegistry },
        },
      },
    );
  }
  return wellKnown;
}

/**
 * Verifies the gateway's access tokens with every key of its JWKS, read again for a `kid` not
 * seen yet (a rotation), at most once a second. A gateway from before JWKS (404) has only the
 * key of its `/.well-known/kparty`; any other failed read is `registry_unavailable` (at start,
 * the protection is not made; on a later read, the keys known stay in use).
 */
async function gatewayTokenVerifier(args: {
  fetchFn: typeof fetch;
  base: string;
  wellKnown: GatewayWellKnown;
  now: () => number;
  clockSkewSeconds: number;
}) {
  const { fetchFn, base, wellKnown, now, clockSkewSeconds } = args;
  const verifierFor = (keys: TokenPublicKey[]) =>
    createTokenVerifier({ domain: wellKnown.domain, keys, now, clockSkewSeconds });
  const readJwks = async (): Promise<TokenPublicKey[]> => {
    const answer = await fetchGateway(fetchFn, `${base}/.well-known/jwks.json`);
    if (answer.status === 404) return [wellKnown.accessToken.key]; // a gateway from before JWKS
    if (!answer.ok) {
      throw new KPartyError(
        "registry_unavailable",
        `the gateway at ${base} does not serve its JWKS (HTTP ${answer.status})`,
      );
    }
    const keys = (answer.body as { keys?: unknown } | null)?.keys;
    if (!Array.isArray(keys))
      throw new KPartyError("registry_unavailable", "the gateway's JWKS is not a key set");
    return keys as TokenPublicKey[];
  };
  let keys = await readJwks();
  let verifier = verifierFor(keys);
  let lastRead = now();
  return {
    async verify(token: unknown) {
      const kid = tokenKid(token);
      if (kid !== null && !keys.some((k) => k.kid === kid) && now() - lastRead >= 1_000) {
        lastRead = now();
        try {
          keys = await readJwks();
          verifier = verifierFor(keys);
        } catch {
          // the gateway cannot be reached: the token is judged with the keys known
        }
      }
      return verifier.verify(token);
    },
  };
}
