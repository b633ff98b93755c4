import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, InvalidArgumentError as InvalidOptionArgument } from "commander";
import { createChainClient, createProvider, getChainStatus } from "../../chain/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { parseTrustProxy } from "../../gateway/client-address.ts";
import {
  GATEWAY_MALLOC_ARENAS,
  GATEWAY_SEMI_SPACE_MB,
  restartWithGatewaySettings,
} from "../../util/gateway-memory.ts";
import { integerIn } from "../../util/integer.ts";
import { redactUrl } from "../../util/redact.ts";
import { MAX_CONFIRMATIONS } from "../config.ts";
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

/** The `kparty` command's script: only that process restarts itself (not a test running the CLI). */
const KPARTY_BIN = fileURLToPath(new URL("../../../bin/kparty.js", import.meta.url));

export function registerGateway(program: Command): void {
  const gateway = program
    .command("gateway")
    .description("the access gateway in front of the shared models")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty gateway serve --data-dir .kparty/gateway --model fl-demo:101\n  $ kparty gateway keys rotate --database postgres://kparty@db.internal/kparty`,
    );

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
      (v) => {
        try {
          return parseTrustProxy(v);
        } catch {
          throw new InvalidOptionArgument(
            `--trust-proxy must be a number of hops or comma-separated addresses and CIDR ranges, got "${v}"`,
          );
        }
      },
    )
    .option(
      "--confirmations <n>",
      "blocks on top of a block before its registry events (a revocation among them) apply and before status is read from it; 0 on a local chain, e.g. 12+ on a public network (default: gateway.confirmations, 0)",
      (v) => {
        const n = integerIn(v, 0, MAX_CONFIRMATIONS);
        if (n === null)
          throw new InvalidOptionArgument(
            `--confirmations must be an integer from 0 to ${MAX_CONFIRMATIONS}, got "${v}"`,
          );
        return n;
      },
    )
    .option(
      "--model <id:shape[:key=value…]>",
      "register this model at start unless it exists (repeatable); keys: max-samples (per-update sample cap, default 1000000), rule (fedavg, median or trimmed-mean; default fedavg), trim (trimmed-mean's β, default 0.2), clip-norm (L2 bound on each update's delta)",
      (v, acc: string[]) => [...acc, v],
      [],
    )
    .option(
      "--rpc-ws <url>",
      "a ws:// or wss:// JSON-RPC URL of the same chain: registry logs (a revocation) are pushed over it (eth_subscribe) and apply as soon as pushed; polling takes over while it is down (default: none, polling every 100 ms; a local `kparty chain up` node serves WebSocket on its RPC port)",
      (v) => {
        if (!/^wss?:\/\/[^\s/]+/.test(v))
          throw new InvalidOptionArgument(`--rpc-ws must be a ws:// or wss:// URL, got "${redactUrl(v)}"`);
        return v;
      },
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
      (v) => {
        if (v !== "dpop" && v !== "bearer")
          throw new KPartyError("invalid_argument", `--token-binding must be dpop or bearer, got "${v}"`);
        return v;
      },
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
    .addHelpText(
      "after",
      `
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
Tokens are DPoP-bound by default (docs/tokens.md); the DPoP replay cache is in gateway.sqlite.

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
  $ kparty gateway serve --token-binding bearer    # unbound bearer tokens (explicit opt-in)`,
    )
    // before anything runs: both settings take effect only when a process starts
    .hook("preAction", () => restartWithGatewaySettings(KPARTY_BIN))
    .action(
      run(
        async (
          ctx,
          options: {
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
            rpcWs?: string;
          },
        ) => {
          const models = options.model.map(parseModelSpec);
          if (options.publicUrl !== undefined && !/^https?:\/\/[^\s/?#]+[^\s?#]*$/.test(options.publicUrl)) {
            throw new KPartyError(
              "invalid_argument",
              `--public-url must be an http(s) URL without query or fragment, got "${options.publicUrl}"`,
            );
          }
          // before the chain: a gateway that cannot keep its token keys does not start
          const onPostgres = databaseUrl(options.database) !== null;
          const tokenKeySecret = await readTokenKeySecret(
            stateLocation(ctx, options.database ? { database: options.database } : {}),
          );
          if (tokenKeySecret === null && onPostgres) throw tokenKeySecretRequired("a gateway on PostgreSQL");
          const deployment = ctx.deployment();
          const provider = ctx.provider();
          const chain = createChainClient({ provider, deployment });
          await getChainStatus(chain);
          // The agent, Fastify and the model store load only for this command.
          const { createKPartyAgent } = await import("../../../agent/index.ts");
          const { buildGateway } = await import("../../gateway/index.ts");
          const { FileModelStore } = await import("../../models/index.ts");
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
          const store = new FileModelStore(options.modelsDir ?? join(ctx.config.dataDir, "models"), {
            lock: state.modelLock(),
          });
          for (const m of models) {
            const existing = await store.get(m.id).catch(() => null);
            if (!existing) await store.register({ ...m, description: `registered by kparty gateway serve` });
          }
          const watcherProvider = createProvider(ctx.config.rpcUrl, deployment.chainId);
          ctx.onClose(() => watcherProvider.destroy());
          const domain = options.domain ?? ctx.config.gateway.domain;
          const trustProxy = options.trustProxy ?? ctx.config.gateway.trustProxy;
          const confirmations = options.confirmations ?? ctx.config.gateway.confirmations;
          const publicUrl = options.publicUrl ?? ctx.config.gateway.publicUrl;
          const app = await buildGateway({
            agent: verifier.agent,
            chain,
            models: store,
            state,
            ...(tokenKeySecret !== null ? { tokenKeySecret } : {}),
            domain,
            tokenTtlSeconds: options.tokenTtl,
            tokenBinding: options.tokenBinding ?? ctx.config.gateway.tokenBinding ?? "dpop",
            ...(publicUrl !== undefined ? { publicUrl } : {}),
            ...(options.requireDpopNonce ? { requireDpopNonce: true } : {}),
            ...(trustProxy !== undefined ? { trustProxy } : {}),
            ...(confirmations !== undefined ? { confirmations } : {}),
            ...(options.verifyThreads !== undefined ? { verifyThreads: options.verifyThreads } : {}),
            watcherChain: createChainClient({ provider: watcherProvider, deployment }),
            ...(options.rpcWs ? { eventPushUrl: options.rpcWs } : {}),
          });
          ctx.onClose(() => app.close());
          const host = options.host ?? ctx.config.gateway.host;
          const port = options.port ?? ctx.config.gateway.port;
          const url = await app.listen({ host, port }).catch((error: NodeJS.ErrnoException) => {
            if (!["EADDRINUSE", "EADDRNOTAVAIL", "EACCES"].includes(error.code ?? "")) throw error;
            throw new KPartyError("invalid_argument", `cannot listen on ${host}:${port} (${error.code})`, {
              details: {
                hint: "choose another with --host/--port or gateway.port, or stop what listens there",
              },
            });
          });
          const signal = await readyUntilSignal(
            ctx.out,
            { url, domain, dataDir: ctx.config.dataDir, state: state.backend, pid: process.pid },
            [`gateway listening on ${url} (domain ${domain}, state in ${where})`, "running; Ctrl-C stops it"],
          );
          ctx.out.info(`${signal}: stopping the gateway`);
        },
      ),
    );

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
    .addHelpText(
      "after",
      `
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
  $ KPARTY_DATABASE_URL=postgres://kparty@db.internal/kparty kparty gateway keys rotate --json`,
    )
    .action(
      run(async (ctx, options: { database?: string; db?: string }) => {
        const where = stateLocation(ctx, {
          ...(options.database ? { database: options.database } : {}),
          ...(options.db ? { file: options.db } : {}),
        });
        const secret = await readTokenKeySecret(where);
        if (secret === null) throw tokenKeySecretRequired("kparty gateway keys rotate");
        const { state } = await openCliState(ctx, {
          ...(options.database ? { database: options.database } : {}),
          ...(options.db ? { file: options.db } : {}),
        });
        const store = state.tokenKeys({ secret });
        // adds the first key if there was none; discards keys a development build stored in the clear
        const added = await store.add();
        const all = await store.load();
        ctx.out.result({ kid: added.kid, kids: all.map((k) => k.kid), state: where }, [
          `added token key ${added.kid} (${all.length} keys valid) in ${where}`,
        ]);
      }, NO_CONTRACTS),
    );
}
