import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { KPartyError } from "../errors/index.ts";
import type { GatewayState } from "../state/port.ts";
import type { CliContext } from "./context.ts";
import { readPassphrase } from "./passphrase.ts";

/** `--database`'s description, shared by the commands that open the gateway's state. */
export const DATABASE_OPTION =
  "the gateway's shared state in PostgreSQL (postgres://…; default: KPARTY_DATABASE_URL, else the embedded <data dir>/gateway.sqlite)";

/**
 * The PostgreSQL URL from `--database` or the environment variable `env` (`KPARTY_DATABASE_URL`
 * for the gateway's state, `KPARTY_AGENT_DATABASE_URL` for an agent's data store: two variables,
 * so that a host running both never puts one in the other's database by accident), or null for
 * the embedded backend.
 */
export function databaseUrl(
  option: string | undefined,
  env: "KPARTY_DATABASE_URL" | "KPARTY_AGENT_DATABASE_URL" = "KPARTY_DATABASE_URL",
): string | null {
  const url = option ?? process.env[env] ?? null;
  if (url !== null && !/^postgres(ql)?:\/\//.test(url)) {
    throw new KPartyError("invalid_argument", `--database / ${env} must be a postgres:// URL`);
  }
  return url;
}

/**
 * Opens the gateway's state: PostgreSQL when a URL is given (migrations run on open), else the
 * embedded database in the data dir (or `file`). `mustExist`: refuse a missing embedded file
 * (reading commands) instead of creating it. Closed with the command.
 */
export async function openCliState(
  ctx: CliContext,
  options: { database?: string; file?: string; mustExist?: boolean; onError?: (error: Error) => void },
): Promise<{ state: GatewayState; where: string }> {
  const url = databaseUrl(options.database);
  if (url !== null) {
    const { openPostgresState } = await import("../state/postgres/index.ts");
    const state = await openPostgresState({ url, ...(options.onError ? { onError: options.onError } : {}) });
    ctx.onClose(() => state.close());
    const { host, pathname } = new URL(url); // never the password
    return { state, where: `postgres://${host}${pathname}` };
  }
  const file = resolve(options.file ?? join(ctx.config.dataDir, "gateway.sqlite"));
  if (options.mustExist && !existsSync(file)) {
    throw new KPartyError("not_found", `no gateway database at ${file}`, {
      details: { hint: "pass --db <gateway.sqlite>, --data-dir of the gateway, or --database postgres://…" },
    });
  }
  const { openGatewayDatabase } = await import("../gateway/state.ts");
  const { createEmbeddedState } = await import("../state/embedded/index.ts");
  const db = openGatewayDatabase(file);
  ctx.onClose(() => db.close());
  return { state: createEmbeddedState(db), where: file };
}

/** Where the gateway's state is, as shown to the operator (never a database password). */
export function stateLocation(ctx: CliContext, options: { database?: string; file?: string }): string {
  const url = databaseUrl(options.database);
  if (url !== null) {
    const { host, pathname } = new URL(url);
    return `postgres://${host}${pathname}`;
  }
  return resolve(options.file ?? join(ctx.config.dataDir, "gateway.sqlite"));
}

/**
 * The secret the gateway's access-token keys are stored encrypted under: the passphrase, read
 * like a data dir's (`KPARTY_PASSPHRASE`, else the hidden prompt when stdin is a terminal; asked
 * twice when no key is stored yet in an embedded database). Null when neither is possible: the
 * caller decides (`gateway serve` on the embedded backend then keeps its key in memory;
 * PostgreSQL and `keys rotate` refuse with {@link tokenKeySecretRequired}). Never printed.
 */
export async function readTokenKeySecret(where: string): Promise<string | null> {
  if (!process.env.KPARTY_PASSPHRASE && !process.stdin.isTTY) return null;
  const fresh = !where.startsWith("postgres://") && !existsSync(where);
  return readPassphrase({ label: `the gateway's token keys in ${where}`, confirm: fresh });
}

/** `config_invalid`: token keys that must be stored (PostgreSQL, a rotation) and no passphrase. */
export function tokenKeySecretRequired(why: string): KPartyError {
  return new KPartyError(
    "config_invalid",
    `${why} stores the access-token keys encrypted under a passphrase, and none was given`,
    {
      details: {
        hint: "set KPARTY_PASSPHRASE (the same for every gateway replica of a deployment), or run in a terminal to be asked",
      },
    },
  );
}
