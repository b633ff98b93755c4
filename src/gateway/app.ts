import type { KeyObject } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { Readable } from "node:stream";
import { JsonRpcProvider } from "ethers";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import { type ChainClient, createRegistryWatcher, getChainStatus } from "../chain/index.ts";
import { ACTIONS, type Action, CREDENTIAL_TYPE, isModelSelector, STATUS_TYPE } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import type { FileModelStore } from "../models/index.ts";
import { redactSecrets, secretsOfUrl } from "../util/redact.ts";
import { AuditLog } from "./audit.ts";
import { integerHeader, jsonObject } from "./body.ts";
import { fastifyTrustProxy, rateLimitKey, type TrustProxy } from "./client-address.ts";
import { createDidCache } from "./did-cache.ts";
import { errorResponse, isInternalError } from "./errors.ts";
import { createAccessGuard, grantCoversModel } from "./guard.ts";
import { LoadShedder } from "./load-shedding.ts";
import { openApiDocument } from "./openapi.ts";
import { createOperatorLog, type OperatorLogStream } from "./operator-log.ts";
import { grantScope, type ScopeRequest } from "./policy.ts";
import { RateLimiter } from "./rate-limit.ts";
import { ChallengeStore } from "./state.ts";
import { createStatusCache } from "./status-cache.ts";
import { createTokenService } from "./tokens.ts";
import { parseVerifyRequest, vcApiChallenge, verification } from "./vc-api.ts";
import { verifyEs256kAsync } from "./verify/es256k.ts";
import { createEs256kPool } from "./verify/es256k-pool.ts";
import type { RemovedIssuerPolicy } from "./verify/judge.ts";
import { createVerifier, type DidResolver } from "./verify/verifier.ts";
import { resolveClockSkew } from "./verify/window.ts";

declare module "fastify" {
  interface FastifyInstance {
    /** Every route the gateway registered (method, Fastify URL pattern). */
    kpartyRoutes: { method: string; url: string }[];
    /** The last block whose registry events the gateway has applied (what /healthz reports, without HTTP). */
    kpartySyncedBlock(): number;
  }
}

export interface GatewayOptions {
  /** A Veramo agent (or anything) that resolves DIDs against the deployment's chain. */
  agent: DidResolver;
  chain: ChainClient;
  models: FileModelStore;
  /** The gateway's database (see `openGatewayDatabase`). */
  db: DatabaseSync;
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
  /** Ed25519 key for access tokens (default: a fresh key per process). */
  tokenKey?: KeyObject;
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
}

const TOKEN_BODY_KEYS = new Set(["presentation", "scope", "models"]);

/** The JSON-RPC URL behind an ethers provider, whose secrets the operator's log must never show. */
function rpcUrlOf(provider: unknown): string | null {
  return provider instanceof JsonRpcProvider ? provider._getConnection().url : null;
}

function parseTokenRequest(body: unknown): { presentation: string; request: ScopeRequest } {
  const { presentation, scope, models } = jsonObject(
    body,
    [...TOKEN_BODY_KEYS],
    "{presentation, scope?, models?}",
  );
  if (typeof presentation !== "string" || presentation.length === 0) {
    throw new KPartyError("malformed", "presentation must be a VP JWT string");
  }
  let actions: Action[] | null = null;
  if (scope !== undefined) {
    const requested = typeof scope === "string" ? scope.split(" ").filter(Boolean) : [];
    if (requested.length === 0 || !requested.every((a) => ACTIONS.includes(a as Action))) {
      throw new KPartyError(
        "malformed",
        `scope must be a space-separated list of actions among ${ACTIONS.join(", ")}`,
      );
    }
    actions = [...new Set(requested)] as Action[];
  }
  if (
    models !== undefined &&
    (!Array.isArray(models) || models.length === 0 || !models.every(isModelSelector))
  ) {
    throw new KPartyError("malformed", 'models must be a non-empty list of model ids or ["*"]');
  }
  return {
    presentation,
    request: { actions, models: models === undefined ? null : [...new Set(models as string[])] },
  };
}

/**
 * Builds the kparty gateway (Fastify). Routes: `GET /healthz`, `GET /.well-known/kparty`,
 * `POST /auth/challenge`, `POST /auth/token`, `GET /models`, `GET /models/:id`,
 * `GET /models/:id/weights`. Errors are JSON `{error: {code, message, checks?}}`.
 *
 * @example
 * ```ts
 * const app = await buildGateway({ agent, chain, models, db: openGatewayDatabase(":memory:"), domain: "gw.local" });
 * await app.listen({ host: "127.0.0.1", port: 0 });
 * ```
 */
export async function buildGateway(options: GatewayOptions): Promise<FastifyInstance> {
  const { agent, chain, models, db, domain } = options;
  if (!agent || !chain || !models || !db) throw new TypeError("agent, chain, models and db are required");
  if (typeof domain !== "string" || domain.length === 0) throw new TypeError("domain is required");
  const now = options.now ?? Date.now;
  const trustProxy = fastifyTrustProxy(options.trustProxy);
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
  // Everything that validates its options comes before the event watcher starts polling.
  const clockSkewSeconds = resolveClockSkew(options.clockSkewSeconds);
  const tokens = createTokenService({
    domain,
    now,
    clockSkewSeconds,
    ...(options.tokenTtlSeconds !== undefined ? { ttlSeconds: options.tokenTtlSeconds } : {}),
    ...(options.tokenKey ? { privateKey: options.tokenKey } : {}),
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
  let verifier: ReturnType<typeof createVerifier>;
  const pool = verifyThreads > 0 ? createEs256kPool(verifyThreads) : null;
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
  const challengesPerMinute = options.challengesPerMinute ?? 60;
  const requireAccess = createAccessGuard({
    tokens,
    states,
    audit,
    limiter,
    ...(options.defaultRequestsPerMinute
      ? { defaultRequestsPerMinute: options.defaultRequestsPerMinute }
      : {}),
    ...(options.removedIssuerPolicy ? { removedIssuerPolicy: options.removedIssuerPolicy } : {}),
  });

  const app = Fastify({
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    trustProxy,
    logger: options.logger
      ? {
          redact: ["req.headers.authorization"],
          serializers: {
            err: (e: Error) => ({
              type: e.name,
              message: redactSecrets(e.message),
              stack: redactSecrets(e.stack ?? ""),
            }),
          },
        }
      : false,
  });

  app.addHook("onClose", async () => {
    watcher.stop();
    await audit.close(); // every decision is on disk before the caller closes the database
    await pool?.close();
  });
  // Load shedding: refuse before parsing or verifying anything (see LoadShedder).
  const shedder = new LoadShedder({ maxInFlight, maxEventLoopDelayMs });
  shedder.start();
  app.addHook("onClose", async () => shedder.stop());
  const admitted = new WeakSet<FastifyRequest>();
  app.addHook("onRequest", (request, reply, done) => {
    if (shedder.shouldShed()) {
      const [status, body] = errorResponse(
        new KPartyError("overloaded", "the gateway is at capacity; retry shortly"),
      );
      reply.code(status).header("retry-after", "1").send(body);
      return;
    }
    shedder.enter();
    admitted.add(request);
    done();
  });
  const release = (request: FastifyRequest) => {
    if (admitted.delete(request)) shedder.leave();
  };
  app.addHook("onResponse", (request, _reply, done) => {
    release(request);
    done();
  });
  app.addHook("onRequestAbort", (request, done) => {
    release(request);
    done();
  });
  const routes: { method: string; url: string }[] = [];
  app.addHook("onRoute", (route) => {
    for (const method of [route.method].flat())
      if (method !== "HEAD") routes.push({ method, url: route.url });
  });
  app.decorate("kpartyRoutes", routes);
  app.decorate("kpartySyncedBlock", () => watcher.syncedBlock);
  const openapi = openApiDocument({ domain, clockSkewSeconds });

  app.setErrorHandler(async (error, request, reply) => {
    let mapped: unknown = error;
    const fastifyCode = (error as { code?: string }).code;
    if (fastifyCode === "FST_ERR_CTP_BODY_TOO_LARGE") {
      mapped = new KPartyError("payload_too_large", `the body exceeds ${app.initialConfig.bodyLimit} bytes`);
    } else if (
      fastifyCode === "FST_ERR_CTP_INVALID_MEDIA_TYPE" ||
      fastifyCode === "FST_ERR_CTP_EMPTY_JSON_BODY" ||
      fastifyCode === "FST_ERR_CTP_INVALID_JSON_BODY" ||
      error instanceof SyntaxError
    ) {
      mapped = new KPartyError("malformed", "the body must be JSON (Content-Type: application/json)");
    } else if (!(error instanceof KPartyError)) {
      const status = (error as { statusCode?: unknown }).statusCode;
      if (typeof status === "number" && status >= 400 && status < 500) {
        // another client error from the HTTP layer (bad Content-Length, bad URL encoding, …)
        mapped = new KPartyError(
          status === 413 ? "payload_too_large" : "malformed",
          "the request is malformed",
        );
      }
    }
    const route = request.routeOptions.url ?? "(no route)";
    if (isInternalError(mapped)) operatorLog.failure(`${request.method} ${route}`, error);
    // Access was granted, then the operation itself was refused: that is a decision too.
    if (request.kparty && mapped instanceof KPartyError) {
      try {
        await audit.append({
          client: request.kparty.client ?? request.ip ?? "unknown",
          route: request.routeOptions.url ?? request.url,
          holder: request.kparty.holder,
          credentialId: request.kparty.credentialId,
          action: request.kparty.action ?? null,
          model: (request.params as { id?: string }).id ?? null,
          outcome: "denied",
          code: mapped.code,
        });
      } catch (auditError) {
        // the request is refused either way; never let the error path itself fail
        operatorLog.failure(`${request.method} ${route} (audit)`, auditError);
      }
    }
    const [status, body] = errorResponse(mapped);
    if (status === 503) reply.header("retry-after", "5");
    const retryAfter = mapped instanceof KPartyError ? mapped.details.retryAfterSeconds : undefined;
    if (status === 429 && typeof retryAfter === "number") reply.header("retry-after", String(retryAfter));
    return reply.code(status).send(body);
  });
  // Weights travel as raw float32 bytes; the handler streams them (never buffered whole).
  app.addContentTypeParser("application/octet-stream", (_request, payload, done) => done(null, payload));

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: { code: "not_found", message: `no route ${request.method} ${request.url}` } }),
  );

  const clientOf = (request: FastifyRequest) => request.ip;
  const bucketOf = (request: FastifyRequest) => rateLimitKey(request.ip);

  app.get("/healthz", async (_request, reply) => {
    // unavailable while the chain cannot be read, and for good once the audit log has failed
    const unavailable = (error: unknown) => {
      operatorLog.failure("GET /healthz", error);
      return reply.code(503).send({
        status: "unavailable",
        chainId: chain.deployment.chainId,
        blockNumber: null,
        syncedBlock: watcher.syncedBlock,
        ...errorResponse(error)[1],
      });
    };
    if (audit.failure) return unavailable(audit.failure);
    try {
      const { chainId, blockNumber } = await getChainStatus(chain);
      return { status: "ok", chainId, blockNumber, syncedBlock: watcher.syncedBlock };
    } catch (error) {
      return unavailable(error);
    }
  });

  app.get("/.well-known/kparty", async () => ({
    domain,
    chainId: chain.deployment.chainId,
    contracts: chain.deployment.contracts,
    credentialTypes: ["VerifiableCredential", CREDENTIAL_TYPE],
    statusType: STATUS_TYPE,
    actions: ACTIONS,
    presentation: {
      format: "jwt_vp",
      alg: ["ES256K"],
      challengeEndpoint: "/auth/challenge",
      audience: domain,
    },
    accessToken: {
      format: "jwt",
      alg: "EdDSA",
      expiresIn: tokens.ttlSeconds,
      clockSkewSeconds,
      key: tokens.publicJwk,
    },
  }));

  app.get("/openapi.json", async () => openapi);

  const issueChallenge = (request: FastifyRequest) => {
    limiter.take(`challenge:${bucketOf(request)}`, challengesPerMinute, "challenges from this address");
    const { challenge, expiresAt } = challenges.issue(clientOf(request));
    return { challenge, domain, expiresAt: expiresAt.toISOString() };
  };
  app.post("/auth/challenge", async (request) => issueChallenge(request));
  // VC-API's name for the same single-use challenge (for POST /presentations/verify)
  app.post("/challenges", async (request) => issueChallenge(request));

  app.post("/auth/token", async (request) => {
    let holder: string | null = null;
    let credentialId: string | null = null;
    try {
      const { presentation, request: asked } = parseTokenRequest(request.body);
      const verified = await verifier.verifyPresentation(presentation, {
        domain,
        precheckChallenge: (nonce) => challenges.check(nonce),
        consumeChallenge: (nonce) => challenges.consume(nonce),
      });
      holder = verified.holder;
      credentialId = verified.credential.credentialId;
      let scope: { actions: Action[]; models: string[] };
      try {
        scope = grantScope(asked, verified.credential.claims);
      } catch (error) {
        const checks = [...verified.checks, { check: "scope", passed: false, code: "scope_denied" as const }];
        throw new KPartyError("scope_denied", (error as KPartyError).shortMessage, { details: { checks } });
      }
      const { actions } = scope;
      const { credential } = verified;
      let issued: ReturnType<typeof tokens.issue>;
      try {
        // capped at the credential's and the presentation's exp; `expired` if that is already past
        issued = tokens.issue(
          {
            holder,
            credentialId: credential.credentialId,
            anchorKey: credential.anchorKey,
            issuerAccount: credential.issuerAccount,
            revocationIndex: credential.revocationIndex,
            suspensionIndex: credential.suspensionIndex,
            actions,
            models: scope.models,
            ...(credential.claims.quota
              ? { requestsPerMinute: credential.claims.quota.requestsPerMinute }
              : {}),
            credentialNotBefore: credential.notBefore,
            credentialExpiresAt: credential.expires,
          },
          verified.expires !== undefined ? { presentationExpiresAt: verified.expires } : {},
        );
      } catch (error) {
        if (!(error instanceof KPartyError)) throw error;
        const checks = [...verified.checks, { check: "token.lifetime", passed: false, code: error.code }];
        throw new KPartyError(error.code, error.shortMessage, { details: { checks } });
      }
      await audit.append({
        client: clientOf(request),
        route: "/auth/token",
        holder,
        credentialId,
        action: actions.join(" "),
        outcome: "granted",
      });
      return {
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expiresIn,
        scope: actions.join(" "),
        holder,
        models: scope.models,
        credential_id: credential.credentialId,
      };
    } catch (error) {
      await audit.append({
        client: clientOf(request),
        route: "/auth/token",
        holder,
        credentialId,
        outcome: "denied",
        code: error instanceof KPartyError ? error.code : "internal",
      });
      throw error;
    }
  });

  const verificationsPerMinute = options.verificationsPerMinute ?? 600;

  app.post("/credentials/verify", async (request) => {
    limiter.take(`verify:${bucketOf(request)}`, verificationsPerMinute, "verifications from this address");
    const { jwt, options: opts } = parseVerifyRequest(request.body, "verifiableCredential", ["anchorProof"]);
    return verification(
      () => verifier.verifyCredential(jwt, opts.anchorProof),
      (c) => ({
        credential: {
          id: c.credentialId,
          issuer: c.issuer,
          subject: c.subject,
          anchoredAt: c.state.anchoredAt,
          claims: c.claims,
        },
      }),
    );
  });

  app.post("/presentations/verify", async (request) => {
    limiter.take(`verify:${bucketOf(request)}`, verificationsPerMinute, "verifications from this address");
    const { jwt, options: opts } = parseVerifyRequest(request.body, "verifiablePresentation", [
      "challenge",
      "domain",
    ]);
    const { challenge, domain } = opts;
    if (challenge !== undefined && (typeof challenge !== "string" || challenge.length === 0)) {
      throw new KPartyError("malformed", "options.challenge must be a non-empty string");
    }
    if (domain !== undefined && (typeof domain !== "string" || domain.length === 0)) {
      throw new KPartyError("malformed", "options.domain must be a non-empty string");
    }
    const challengeCheck = vcApiChallenge(challenges, jwt, challenge as string | undefined);
    return verification(
      () =>
        verifier.verifyPresentation(jwt, {
          domain: (domain as string | undefined) ?? null,
          ...challengeCheck.expectations,
        }),
      (p) => ({
        ...(challengeCheck.warning ? { warnings: [challengeCheck.warning] } : {}),
        holder: p.holder,
        credential: { id: p.credential.credentialId, issuer: p.credential.issuer },
      }),
    );
  });

  app.get("/models", { preHandler: requireAccess("model:read") }, async (request) => {
    const claims = request.kparty as NonNullable<FastifyRequest["kparty"]>;
    const all = await models.list();
    return { models: all.filter((m) => grantCoversModel(claims, m.id)) };
  });

  app.get<{ Params: { id: string } }>(
    "/models/:id",
    { preHandler: requireAccess("model:read") },
    async (request) => models.get(request.params.id),
  );

  app.post("/models", { preHandler: requireAccess("round:aggregate") }, async (request, reply) => {
    const claims = request.kparty as NonNullable<FastifyRequest["kparty"]>;
    const body = jsonObject(request.body, ["id", "description", "shape"], "{id, description, shape}");
    if (typeof body.id !== "string" || !grantCoversModel(claims, body.id)) {
      throw new KPartyError("scope_denied", `the access token does not cover model ${String(body.id)}`);
    }
    const info = await models.register({
      id: body.id,
      description: String(body.description ?? ""),
      shape: body.shape as number[],
    });
    return reply.code(201).send(info);
  });

  app.post<{ Params: { id: string } }>(
    "/models/:id/updates",
    { preHandler: requireAccess("model:contribute") },
    async (request, reply) => {
      const claims = request.kparty as NonNullable<FastifyRequest["kparty"]>;
      const body = request.body;
      if (!(body instanceof Readable)) {
        throw new KPartyError(
          "malformed",
          "an update is raw float32 bytes (Content-Type: application/octet-stream)",
        );
      }
      const round = integerHeader(request.headers["x-kparty-round"], "x-kparty-round");
      const sampleCount = integerHeader(request.headers["x-kparty-sample-count"], "x-kparty-sample-count");
      const info = await models.get(request.params.id);
      const declared = Number(request.headers["content-length"] ?? Number.NaN);
      if (declared > info.parameterCount * 4) {
        throw new KPartyError(
          "payload_too_large",
          `the update exceeds the model's ${info.parameterCount * 4} bytes`,
        );
      }
      const receipt = await models.submitUpdate(request.params.id, {
        round,
        participant: claims.holder,
        sampleCount,
        body,
      });
      return reply.code(201).send(receipt);
    },
  );

  app.post<{ Params: { id: string; round: string } }>(
    "/models/:id/rounds/:round/close",
    { preHandler: requireAccess("round:aggregate") },
    async (request) => models.closeRound(request.params.id, integerHeader(request.params.round, "round")),
  );

  app.get<{ Params: { id: string } }>(
    "/models/:id/weights",
    { preHandler: requireAccess("model:read") },
    async (request, reply) => {
      const { info, size, stream } = await models.openWeights(request.params.id);
      return reply
        .header("content-type", "application/octet-stream")
        .header("content-length", String(size))
        .header("x-kparty-model-version", String(info.version))
        .header("x-kparty-model-shape", info.shape.join(","))
        .header("x-kparty-model-dtype", info.dtype)
        .send(stream);
    },
  );

  return app;
}
