import { join } from "node:path";
import type { Command } from "commander";
import { getChainStatus } from "../../chain/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { IssuerClientStore } from "../../issuer/clients.ts";
import type { CliContext } from "../context.ts";
import { AGENT_DATABASE, identityOf } from "../context.ts";
import { table } from "../output.ts";
import { NO_CONTRACTS, positiveInt, readyUntilSignal, run } from "../run.ts";

const AS = ["--as <did-or-alias>", "the member DID to issue as (default: the data dir's only DID)"] as const;
const DEFAULT_PORT = 8090;

/** The API keys of the issuer service of this data dir. */
const clientsOf = (ctx: CliContext) => new IssuerClientStore(join(ctx.config.dataDir, "issuer-clients.json"));

const SERVE_HELP = `
Routes: POST /credentials/issue, POST /credentials/issue/batch, POST /credentials/status,
GET /credentials/:id (each needs an API key: kparty issuer clients add), GET /openapi.json.
Credentials of type KPartyCredential are checked by the registry's rules; other W3C
credentials are signed as drafted. Every credential is anchored and can be revoked or
suspended. docs/standards.md has request examples.

Examples:
  $ kparty issuer serve --data-dir .kparty/org-a
  $ kparty issuer serve --port 0 --json      # prints {"url": …} once listening`;

export function registerIssuer(program: Command): void {
  const issuer = program
    .command("issuer")
    .description("a member's issuer service over HTTP (VC-API issue and status) and its API keys")
    .addHelpText(
      "after",
      `
Examples:
  $ kparty issuer clients add portal --data-dir .kparty/org-a     # prints the API key once
  $ kparty issuer serve --data-dir .kparty/org-a                   # http://127.0.0.1:${DEFAULT_PORT}
  $ curl -X POST http://127.0.0.1:${DEFAULT_PORT}/credentials/issue -H "authorization: Bearer $KEY" \\
      -H 'content-type: application/json' -d @credential-request.json`,
    );
  serveCommand(issuer);
  clientsCommands(issuer);
}

function serveCommand(issuer: Command): void {
  issuer
    .command("serve")
    .description("serve this member's agent over HTTP (VC-API); runs until Ctrl-C")
    .option(...AS)
    .option(...AGENT_DATABASE)
    .option(
      "--host <host>",
      "listen address (loopback by default: put a TLS proxy in front to expose it)",
      "127.0.0.1",
    )
    .option(
      "--port <port>",
      `listen port (0 for any free port)`,
      (v) => (v === "0" ? 0 : positiveInt("--port", 65535)(v)),
      DEFAULT_PORT,
    )
    .addHelpText("after", SERVE_HELP)
    .action(run(serve));
}

async function serve(ctx: CliContext, options: { as?: string; host: string; port: number }): Promise<void> {
  const deployment = ctx.deployment();
  await getChainStatus(ctx.chain());
  const clients = clientsOf(ctx);
  if (clients.list().length === 0) {
    throw new KPartyError("config_invalid", `no API key for the issuer service of ${ctx.config.dataDir}`, {
      details: { hint: "add one with `kparty issuer clients add <name>`" },
    });
  }
  const { agent } = await ctx.agent("issuer");
  const { did } = await identityOf(agent, options.as, ctx.config.dataDir);
  const { buildIssuerService } = await import("../../issuer/app.ts");
  const app = await buildIssuerService({ agent, issuer: did, deployment, clients });
  ctx.onClose(() => app.close());
  const url = await app
    .listen({ host: options.host, port: options.port })
    .catch((error: NodeJS.ErrnoException) => {
      if (!["EADDRINUSE", "EADDRNOTAVAIL", "EACCES"].includes(error.code ?? "")) throw error;
      throw new KPartyError(
        "invalid_argument",
        `cannot listen on ${options.host}:${options.port} (${error.code})`,
        {
          details: { hint: "choose another with --host/--port, or stop what listens there" },
        },
      );
    });
  const signal = await readyUntilSignal(
    ctx.out,
    { url, issuer: did, dataDir: ctx.config.dataDir, pid: process.pid },
    [`issuer service for ${did} listening on ${url}`, "running; Ctrl-C stops it"],
  );
  ctx.out.info(`${signal}: stopping the issuer service`);
}

function clientsCommands(issuer: Command): void {
  const clients = issuer
    .command("clients")
    .description("the API keys that may call this data dir's issuer service")
    .addHelpText(
      "after",
      "\nExamples:\n  $ kparty issuer clients add portal\n  $ kparty issuer clients list",
    );

  clients
    .command("add <name>")
    .description("add a client and print its API key (shown once; only its hash is kept)")
    .addHelpText(
      "after",
      "\nExamples:\n  $ kparty issuer clients add portal --data-dir .kparty/org-a\n  $ KEY=$(kparty issuer clients add training-portal)",
    )
    .action(
      run(async (ctx, _options, name: string) => {
        const { client, apiKey } = await clientsOf(ctx).add(name);
        ctx.out.result({ ...client, apiKey }, apiKey);
        ctx.out.info(`client ${client.name} (${client.id}) added; the key above is not shown again`);
      }, NO_CONTRACTS),
    );

  clients
    .command("list")
    .description("the clients (names and ids; no keys)")
    .addHelpText("after", "\nExamples:\n  $ kparty issuer clients list --data-dir .kparty/org-a")
    .action(
      run(async (ctx) => {
        const all = clientsOf(ctx).list();
        ctx.out.result(
          all,
          all.length === 0 ? "no clients" : table(all.map((c) => [c.id, c.name, c.createdAt])),
        );
      }, NO_CONTRACTS),
    );

  clients
    .command("remove <id-or-name>")
    .description("remove a client: its key stops working at once, also for a running service")
    .addHelpText("after", "\nExamples:\n  $ kparty issuer clients remove portal --data-dir .kparty/org-a")
    .action(
      run(async (ctx, _options, which: string) => {
        const removed = await clientsOf(ctx).remove(which);
        ctx.out.result(removed, `removed ${removed.name} (${removed.id})`);
      }, NO_CONTRACTS),
    );
}
