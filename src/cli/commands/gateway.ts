import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, InvalidArgumentError as InvalidOptionArgument } from "commander";
import { createChainClient, createProvider, getChainStatus } from "../../chain/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { parseTrustProxy } from "../../gateway/client-address.ts";
import type { GatewayState } from "../../state/port.ts";
import {
  GATEWAY_MALLOC_ARENAS,
  GATEWAY_SEMI_SPACE_MB,
  restartWithGatewaySettings,
} from "../../util/gateway-memory.ts";
import { integerIn } from "../../util/integer.ts";
import { redactUrl } from "../../util/redact.ts";
import { MAX_CONFIRMATIONS } from "../config.ts";
import type { CliContext } from "../context.ts";
import { parseModelSpec } from "../model-settings.ts";
import { NO_CONTRACTS, positiveInt, readyUntilSignal, run } from "../run.ts";
import {
  DATABASE_OPTION,
  databaseUrl,
  openCliState,
  readTokenKeySecret,
  stateLocation,
  tokenKeySecretRequired,
} from "../state.ts";
import { registerGatewayClients } from "./gateway-clients.ts";

/** The `kparty` command's script: only that process restarts itself (not a test running the CLI). */
const KPARTY_BIN = fileURLToPath(new URL("../../../bin/kparty.js", import.meta.url));

interface ServeOptions {
  host?: string;
  port?: number;
  domain?: string;
  trustProxy?: number | string;
  confirmations?: number;
  model: string[];
  tokenTtl: number;
  tokenBinding?: "dpop" | "bearer";
  publicUrl?: string;
  requireDpopNonce?: boolean;
  verifyThreads?: number;
  database?: string;
  modelsDir?: string;
  auditAnchorEvery?: number;
  auditAnchorInterval?: number;
  rpcWs?: string;
}

const SERVE_HELP = `
State: by default in the data dir, gateway.sqlite (challenges, the hash-chained audit log,
the access-token keys) and models/; rate limits in memory. With --database postgres://…
(or KPARTY_DATABASE_URL) the state is in PostgreSQL instead, shared by every replica on it:
challenges redeem once whichever replica sees them, quotas are one per credential, the audit
log is one chain, and any replica verifies any replica's tokens (keys at
/.well-known/jwks.json). Replicas share the model store through --models-dir on a shared
file system, locked per model in the database. See docs/scale-out.md.
Token keys: stored only encrypted under the passphrase (KPARTY_PASSPHRASE, or asked for at a
terminal; the same on every replica; a wrong one is refused at start). Tokens then survive a
restart; \`kparty gateway keys rotate\` adds a signing key. Without a passphrase an embedded
gateway keeps one key in memory (its tokens end with the process); on PostgreSQL it refuses.
Tokens are DPoP-bound by default (docs/tokens.md); the DPoP replay cache is in the state too.
Audit: with a passphrase each record is signed with the deployment's audit key (stored
encrypted beside the token keys) and the chain's head is anchored on chain (AuditAnchors) every
--audit-anchor-every records or --audit-anchor-interval seconds, from an account of its own whose
address the ready line prints (auditAnchorer): fund it. \`kparty audit verify\` checks both
(docs/security.md, "Audit log").

Memory: the command restarts itself at once (same PID) with MALLOC_ARENA_MAX=${GATEWAY_MALLOC_ARENAS} and
--max-semi-space-size=${GATEWAY_SEMI_SPACE_MB}, unless the environment, GLIBC_TUNABLES or NODE_OPTIONS sets them.

Examples:
  $ kparty gateway serve --data-dir .kparty/gateway --model fl-demo:101
  $ kparty gateway serve --model fl-demo:101:max-samples=5000:rule=trimmed-mean:trim=0.2:clip-norm=5
  $ kparty gateway serve --port 0 --json     # prints {"url": …} once listening
  $ kparty gateway serve --trust-proxy 127.0.0.1   # behind nginx or HAProxy on this host
  $ kparty gateway serve --confirmations 12        # on a public network: apply events 12 blocks deep
  $ kparty gateway serve --rpc-ws ws://127.0.0.1:8545   # revocations pushed over WebSocket
  $ kparty gateway serve --database postgres://kparty@db.internal/kparty --models-dir /mnt/shared/models
  $ kparty gateway serve --public-url https://gw.example --require-dpop-nonce
  $ kparty gateway serve --token-binding bearer    # unbound bearer tokens (explicit opt-in)`;

const KEYS_ROTATE_HELP = `
The new key is stored with the others (PostgreSQL, or the embedded gateway.sqlite) and becomes
the newest: every gateway on that state signs new tokens with it within its key refresh time
(10 s), and serves it at GET /.well-known/jwks.json at once. The older keys stay, so every
token they signed verifies at any replica until it expires (at most the token lifetime,
--token-ttl). Resource servers that cache the JWKS fetch it again on an unknown kid.
The keys are stored encrypted under the passphrase (KPARTY_PASSPHRASE, or asked for at a
terminal): the gateway's, required. Keys an unreleased build stored in the clear are deleted.
Prints the new kid and every kid now valid; never a private key or the passphrase.

Examples:
  $ kparty gateway keys rotate --data-dir .kparty/gateway
  $ KPARTY_DATABASE_URL=postgres://kparty@db.internal/kparty kparty gateway keys rotate --json`;

function trustProxyOption(v: string): number | string {
  try {
    return parseTrustProxy(v);
  } catch {
    throw new InvalidOptionArgument(
      `--trust-proxy must be a number of hops or comma-separated addresses and CIDR ranges, got "${v}"`,
    );
  }
}

function confirmationsOption(v: string): number {
  const n = integerIn(v, 0, MAX_CONFIRMATIONS);
  if (n === null)
    throw new InvalidOptionArgument(
      `--confirmations must be an integer from 0 to ${MAX_CONFIRMATIONS}, got "${v}"`,
    );
  return n;
}

function rpcWsOption(v: string): string {
  if (!/^wss?:\/\/[^\s/]+/.test(v))
    throw new InvalidOptionArgument(`--rpc-ws must be a ws:// or wss:// URL, got "${redactUrl(v)}"`);
  return v;
}

function tokenBindingOption(v: string): "dpop" | "bearer" {
  if (v !== "dpop" && v !== "bearer")
    throw new KPartyError("invalid_argument", `--token-binding must be dpop or bearer, got "${v}"`);
  return v;
}

/**
 * The token keys' passphrase, read before the chain: a gateway that cannot keep its token
 * keys does not start (PostgreSQL needs one; the embedded backend then keeps a key in memory).
 */
async function serveTokenKeySecret(ctx: CliContext, options: ServeOptions): Promise<string | null> {
  if (options.publicUrl !== undefined && !/^https?:\/\/[^\s/?#]+[^\s?#]*$/.test(options.publicUrl)) {
    throw new KPartyError(
      "invalid_argument",
      `--public-url must be an http(s) URL without query or fragment, got "${options.publicUrl}"`,
    );
  }
  const onPostgres = databaseUrl(options.database) !== null;
  const secret = await readTokenKeySecret(
    stateLocation(ctx, options.database ? { database: options.database } : {}),
  );
  if (secret === null && onPostgres) throw tokenKeySecretRequired("a gateway on PostgreSQL");
  return secret;
}

/** The model store (in the data dir unless --models-dir), with the --model models registered unless they exist. */
async function openModelStore(
  ctx: CliContext,
  state: GatewayState,
  options: ServeOptions,
  models: ReturnType<typeof parseModelSpec>[],
) {
  const { FileModelStore } = await import("../../models/index.ts");
  // metadata in the state backend, weights in the directory (see docs/deployment.md)
  const store = new FileModelStore(options.modelsDir ?? join(ctx.config.dataDir, "models"), { state });
  for (const m of models) {
    const existing = await store.get(m.id).catch(() => null);
    if (!existing) await store.register({ ...m, description: `registered by kparty gateway serve` });
  }
  return store;
}

/** The gateway's settings: the options over the configuration's gateway section. */
function gatewaySettings(ctx: CliContext, options: ServeOptions) {
  const trustProxy = options.trustProxy ?? ctx.config.gateway.trustProxy;
  const confirmations = options.confirmations ?? ctx.config.gateway.confirmations;
  const publicUrl = options.publicUrl ?? ctx.config.gateway.publicUrl;
  return {
    domain: options.domain ?? ctx.config.gateway.domain,
    tokenTtlSeconds: options.tokenTtl,
    tokenBinding: options.tokenBinding ?? ctx.config.gateway.tokenBinding ?? "dpop",
    ...(publicUrl !== undefined ? { publicUrl } : {}),
    ...(options.requireDpopNonce ? { requireDpopNonce: true } : {}),
    ...(trustProxy !== undefined ? { trustProxy } : {}),
    ...(confirmations !== undefined ? { confirmations } : {}),
    ...(options.verifyThreads !== undefined ? { verifyThreads: options.verifyThreads } : {}),
  };
}

/** Listens on host:port; `invalid_argument` when the address cannot be had. */
async function listen(
  app: { listen(o: { host: string; port: number }): Promise<string> },
  host: string,
  port: number,
) {
  return app.listen({ host, port }).catch((error: NodeJS.ErrnoException) => {
    if (!["EADDRINUSE", "EADDRNOTAVAIL", "EACCES"].includes(error.code ?? "")) throw error;
    throw new KPartyError("invalid_argument", `cannot listen on ${host}:${port} (${error.code})`, {
      details: { hint: "choose another with --host/--port or gateway.port, or stop what listens there" },
    });
  });
}

async function serve(ctx: CliContext, options: ServeOptions): Promise<void> {
  const models = options.model.map(parseModelSpec);
  const tokenKeySecret = await serveTokenKeySecret(ctx, options);
  const deployment = ctx.deployment();
  const provider = ctx.provider();
  const chain = createChainClient({ provider, deployment });
  await getChainStatus(chain);
  // The agent, Fastify and the model store load only for this command.
  const { createKPartyAgent } = await import("../../../agent/index.ts");
  const { buildGateway } = await import("../../gateway/index.ts");
  const verifier = await createKPartyAgent({ role: "verifier", chain: { provider, deployment } });
  const { state, where } = await openCliState(ctx, {
    ...(options.database ? { database: options.database } : {}),
    onError: (error) => ctx.out.info(`database connection lost (${error.message}); reconnecting`),
  });
  if (tokenKeySecret === null) {
    ctx.out.info(
      "no passphrase (KPARTY_PASSPHRASE): the access-token key lives in this process only; its tokens end with it",
    );
  }
  const store = await openModelStore(ctx, state, options, models);
  const watcherProvider = createProvider(ctx.config.rpcUrl, deployment.chainId);
  ctx.onClose(() => watcherProvider.destroy());
  const settings = gatewaySettings(ctx, options);
  const app = await buildGateway({
    agent: verifier.agent,
    chain,
    models: store,
    state,
    ...(tokenKeySecret !== null ? { tokenKeySecret } : {}),
    ...settings,
    watcherChain: createChainClient({ provider: watcherProvider, deployment }),
    ...(options.rpcWs ? { eventPushUrl: options.rpcWs } : {}),
    // without a passphrase there is no audit key: the ready line says heads are not anchored
    ...(tokenKeySecret !== null ? auditAnchorOption(options) : {}),
  });
  ctx.onClose(() => app.close());
  const host = options.host ?? ctx.config.gateway.host;
  const url = await listen(app, host, options.port ?? ctx.config.gateway.port);
  const signal = await readyUntilSignal(
    ctx.out,
    {
      url,
      domain: settings.domain,
      dataDir: ctx.config.dataDir,
      state: state.backend,
      pid: process.pid,
      auditAnchorer: app.kpartyAuditAnchorer?.address ?? null,
    },
    [
      `gateway listening on ${url} (domain ${settings.domain}, state in ${where})`,
      auditLine(app.kpartyAuditAnchorer?.address ?? null, tokenKeySecret !== null),
      "running; Ctrl-C stops it",
    ],
  );
  ctx.out.info(`${signal}: stopping the gateway`);
}

function serveCommand(gateway: Command): void {
  gateway
    .command("serve")
    .description("verify presentations against the chain and guard the model store; runs until Ctrl-C")
    .option("--host <host>", "listen address (default: gateway.host, 127.0.0.1)")
    .option("--port <port>", "listen port (default: gateway.port; 0 for any free port)", (v) =>
      v === "0" ? 0 : positiveInt("--port", 65535)(v),
    )
    .option("--domain <domain>", "the audience presentations must name (default: gateway.domain)")
    .option(
      "--trust-proxy <hops|addresses>",
      "believe X-Forwarded-For from these reverse proxies: comma-separated addresses and CIDR ranges, or a number of hops (default: gateway.trustProxy; none, the socket's address is the client's)",
      trustProxyOption,
    )
    .option(
      "--confirmations <n>",
      "blocks on top of a block before its registry events (a revocation among them) apply and before status is read from it; 0 on a local chain, e.g. 12+ on a public network (default: gateway.confirmations, 0)",
      confirmationsOption,
    )
    .option(
      "--model <id:shape[:key=value…]>",
      "register this model at start unless it exists (repeatable); keys: max-samples (per-update sample cap, default 1000000), rule (fedavg, median or trimmed-mean; default fedavg), trim (trimmed-mean's β, default 0.2), clip-norm (L2 bound on each update's delta)",
      (v, acc: string[]) => [...acc, v],
      [],
    )
    .option(
      "--rpc-ws <url>",
      "a ws:// or wss:// JSON-RPC URL of the same chain: registry logs are pushed over it (eth_subscribe): a revocation, suspension or member removal is denied as soon as pushed, what may grant waits for the checked poll; polling takes over while it is down (default: none, polling every 100 ms; a local `kparty chain up` node serves WebSocket on its RPC port)",
      rpcWsOption,
    )
    .option("--token-ttl <seconds>", "access token lifetime", positiveInt("--token-ttl", 86_400), 300)
    .option("--database <url>", DATABASE_OPTION)
    .option(
      "--models-dir <dir>",
      "the model store (default: <data dir>/models); replicas share one on a file system they all mount",
    )
    .option(
      "--token-binding <mode>",
      "dpop: tokens bound to the client's DPoP key, every request with a fresh proof (RFC 9449); bearer: an explicit opt-in to unbound bearer tokens (a token request with a DPoP proof still gets a bound token) (default: gateway.tokenBinding, dpop)",
      tokenBindingOption,
    )
    .option(
      "--public-url <url>",
      "the URL clients reach the gateway at, which DPoP proofs must name (set it behind a proxy that changes the host or path; default: gateway.publicUrl, else each request's scheme and Host)",
    )
    .option("--require-dpop-nonce", "require server nonces in DPoP proofs (DPoP-Nonce, use_dpop_nonce)")
    .option(
      "--verify-threads <n>",
      "worker threads that recover the public keys of did:ethr addresses, once per address (default 0: on the event loop, about 1.5 ms each); signature checks always run on libuv's thread pool",
      (v) => (v === "0" ? 0 : positiveInt("--verify-threads", 64)(v)),
    )
    .option(
      "--audit-anchor-every <records>",
      "anchor the audit chain's head on chain once this many records are not anchored (default 1000)",
      positiveInt("--audit-anchor-every", 1_000_000),
    )
    .option(
      "--audit-anchor-interval <seconds>",
      "anchor whatever is new in the audit chain at least this often (default 60)",
      positiveInt("--audit-anchor-interval", 86_400),
    )
    .addHelpText("after", SERVE_HELP)
    // before anything runs: both settings take effect only when a process starts
    .hook("preAction", () => restartWithGatewaySettings(KPARTY_BIN))
    .action(run(serve));
}

async function rotateKeys(ctx: CliContext, options: { database?: string; db?: string }): Promise<void> {
  const at = {
    ...(options.database ? { database: options.database } : {}),
    ...(options.db ? { file: options.db } : {}),
  };
  const where = stateLocation(ctx, at);
  const secret = await readTokenKeySecret(where);
  if (secret === null) throw tokenKeySecretRequired("kparty gateway keys rotate");
  const { state } = await openCliState(ctx, at);
  const store = state.tokenKeys({ secret });
  // adds the first key if there was none; discards keys a development build stored in the clear
  const added = await store.add();
  const all = await store.load();
  ctx.out.result({ kid: added.kid, kids: all.map((k) => k.kid), state: where }, [
    `added token key ${added.kid} (${all.length} keys valid) in ${where}`,
  ]);
}

function keysCommand(gateway: Command): void {
  const keys = gateway
    .command("keys")
    .description("the access-token signing keys")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty gateway keys rotate --database postgres://kparty@db.internal/kparty`,
    );
  keys
    .command("rotate")
    .description(
      "add a new access-token signing key; new tokens use it, older tokens stay valid until they expire",
    )
    .option("--database <url>", DATABASE_OPTION)
    .option("--db <file>", "the embedded gateway database (default: <data dir>/gateway.sqlite)")
    .addHelpText("after", KEYS_ROTATE_HELP)
    .action(run(rotateKeys, NO_CONTRACTS));
}

export function registerGateway(program: Command): void {
  const gateway = program
    .command("gateway")
    .description("the access gateway in front of the shared models")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty gateway serve --data-dir .kparty/gateway --model fl-demo:101\n  $ kparty gateway keys rotate --database postgres://kparty@db.internal/kparty`,
    );
  serveCommand(gateway);
  keysCommand(gateway);
  registerGatewayClients(gateway);
}

/** The audit-anchoring settings of `gateway serve`'s options (the defaults when none is given). */
function auditAnchorOption(options: { auditAnchorEvery?: number; auditAnchorInterval?: number }) {
  const settings = {
    ...(options.auditAnchorEvery !== undefined ? { everyRecords: options.auditAnchorEvery } : {}),
    ...(options.auditAnchorInterval !== undefined ? { intervalSeconds: options.auditAnchorInterval } : {}),
  };
  return Object.keys(settings).length > 0 ? { auditAnchor: settings } : {};
}

/** The ready line's word on the audit log: who anchors its heads, or why nobody does. */
function auditLine(anchorer: string | null, signed: boolean): string {
  if (anchorer) return `audit heads anchored on chain by ${anchorer} (it pays for the transactions: fund it)`;
  return signed
    ? "audit heads NOT anchored on chain: the deployment has no AuditAnchors contract"
    : "audit records NOT signed nor anchored on chain: no passphrase (KPARTY_PASSPHRASE)";
}
