import type { Command } from "commander";
import type { CliContext } from "../context.ts";
import { table } from "../output.ts";
import { NO_CONTRACTS, run } from "../run.ts";
import { DATABASE_OPTION, openCliState } from "../state.ts";

interface StateOptions {
  database?: string;
  db?: string;
}

const DB_OPTION = "the embedded gateway database (default: <data dir>/gateway.sqlite)";

/** The gateway clients of the state these options name (PostgreSQL, or the embedded file). */
async function clientsOf(ctx: CliContext, options: StateOptions, mustExist = false) {
  const { state, where } = await openCliState(ctx, {
    ...(options.database ? { database: options.database } : {}),
    ...(options.db ? { file: options.db } : {}),
    ...(mustExist ? { mustExist: true } : {}),
  });
  return { clients: state.oauthClients(), where };
}

/**
 * `kparty gateway clients add|list|remove`: the clients that may call `POST /oauth/introspect`
 * (resource servers) and, added with `--revoke`, `POST /oauth/revoke` for any token (operators).
 * They live in the gateway's state, so every replica on it sees a change at once.
 */
export function registerGatewayClients(gateway: Command): void {
  const clients = gateway
    .command("clients")
    .description("the clients that may introspect (and, with --revoke, revoke) access tokens")
    .addHelpText(
      "after",
      `
Clients authenticate with HTTP Basic client_id:client_secret (RFC 6749 §2.3.1) at
POST /oauth/introspect (RFC 7662) and POST /oauth/revoke (RFC 7009); see docs/tokens.md.

Examples:
  $ kparty gateway clients add model-server --data-dir .kparty/gateway   # prints id:secret once
  $ kparty gateway clients add ops --revoke --database postgres://kparty@db.internal/kparty
  $ kparty gateway clients list --data-dir .kparty/gateway`,
    );
  addCommand(clients);
  listCommand(clients);
  removeCommand(clients);
}

function addCommand(clients: Command): void {
  clients
    .command("add <name>")
    .description("add a client and print client_id:client_secret (shown once; only a hash is kept)")
    .option("--revoke", "may also revoke any access token at POST /oauth/revoke")
    .option("--database <url>", DATABASE_OPTION)
    .option("--db <file>", DB_OPTION)
    .addHelpText(
      "after",
      `
The secret is 256 random bits; the state keeps only its SHA-256. The line printed is
client_id:client_secret, ready for curl -u. With --json: {id, name, canRevoke, createdAt, secret}.

Examples:
  $ kparty gateway clients add model-server --data-dir .kparty/gateway
  $ kparty gateway clients add ops --revoke --database postgres://kparty@db.internal/kparty
  $ CLIENT=$(kparty gateway clients add model-server --data-dir .kparty/gateway)
  $ curl -u "$CLIENT" -d "token=$TOKEN" http://127.0.0.1:8080/oauth/introspect`,
    )
    .action(
      run(async (ctx, options: StateOptions & { revoke?: boolean }, name: string) => {
        const { clients: store, where } = await clientsOf(ctx, options);
        const { client, secret } = await store.add(name, { canRevoke: options.revoke === true });
        ctx.out.result({ ...client, secret }, `${client.id}:${secret}`);
        ctx.out.info(
          `client ${client.name} (${client.id}${client.canRevoke ? ", may revoke" : ""}) added in ${where}; the secret above is not shown again`,
        );
      }, NO_CONTRACTS),
    );
}

function listCommand(clients: Command): void {
  clients
    .command("list")
    .description("the clients (ids, names, permission; no secrets)")
    .option("--database <url>", DATABASE_OPTION)
    .option("--db <file>", DB_OPTION)
    .addHelpText("after", "\nExamples:\n  $ kparty gateway clients list --data-dir .kparty/gateway --json")
    .action(
      run(async (ctx, options: StateOptions) => {
        const all = await (await clientsOf(ctx, options, true)).clients.list();
        ctx.out.result(
          all,
          all.length === 0
            ? "no clients"
            : table(
                all.map((c) => [
                  c.id,
                  c.name,
                  c.canRevoke ? "introspect, revoke" : "introspect",
                  c.createdAt,
                ]),
              ),
        );
      }, NO_CONTRACTS),
    );
}

function removeCommand(clients: Command): void {
  clients
    .command("remove <id-or-name>")
    .description("remove a client: its secret stops working at once, at every replica")
    .option("--database <url>", DATABASE_OPTION)
    .option("--db <file>", DB_OPTION)
    .addHelpText(
      "after",
      "\nExamples:\n  $ kparty gateway clients remove model-server --data-dir .kparty/gateway",
    )
    .action(
      run(async (ctx, options: StateOptions, which: string) => {
        const removed = await (await clientsOf(ctx, options, true)).clients.remove(which);
        ctx.out.result(removed, `removed ${removed.name} (${removed.id})`);
      }, NO_CONTRACTS),
    );
}
