import { realpathSync } from "node:fs";

/**
 * The most MB each of V8's two semi-spaces (its young generation) may grow to in a gateway
 * process. V8's default on 64-bit is 16; the gateway's young objects are short-lived request
 * state, and at 8 the heap it commits under load is 16 MB smaller.
 */
export const GATEWAY_SEMI_SPACE_MB = 8;

/**
 * glibc's malloc arenas in a gateway process. glibc's default allows 8 per core and gives
 * each thread that allocates one of its own (the event loop, libuv's pool, V8's helpers), and
 * each keeps the pages its thread has freed.
 */
export const GATEWAY_MALLOC_ARENAS = 2;

/** What a process must be started with: environment variables and Node options. */
export interface StartSettings {
  env: Record<string, string>;
  execArgv: string[];
}

const SEMI_SPACE_FLAG = /(?:^|\s)--max[-_]semi[-_]space[-_]size(?:[=\s]|$)/;
const ARENA_TUNABLE = /(?:^|:)glibc\.malloc\.arena_max=/;

/**
 * The memory settings a gateway process should start with that `env` and `execArgv` (its
 * environment and Node options) do not already set. Both take effect only when a process
 * starts. An operator's own value wins: `--max-semi-space-size` in `execArgv` or in
 * NODE_OPTIONS, and MALLOC_ARENA_MAX or `glibc.malloc.arena_max` in GLIBC_TUNABLES.
 * (docs/performance.md, "Gateway memory": peak RSS under load 144.9–165.7 MB in ten runs
 * of `npm run bench` with both, against 173–185.7 MB in seven without.)
 */
export function gatewayStartSettings(
  env: NodeJS.ProcessEnv = process.env,
  execArgv: readonly string[] = process.execArgv,
): StartSettings {
  const settings: StartSettings = { env: {}, execArgv: [] };
  if (!execArgv.some((arg) => SEMI_SPACE_FLAG.test(arg)) && !SEMI_SPACE_FLAG.test(env.NODE_OPTIONS ?? "")) {
    settings.execArgv.push(`--max-semi-space-size=${GATEWAY_SEMI_SPACE_MB}`);
  }
  if (env.MALLOC_ARENA_MAX === undefined && !ARENA_TUNABLE.test(env.GLIBC_TUNABLES ?? "")) {
    settings.env.MALLOC_ARENA_MAX = String(GATEWAY_MALLOC_ARENAS);
  }
  return settings;
}

const samePath = (a: string, b: string) => {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
};

/**
 * When this process is the command whose script is `entry` (`kparty`, not a test that runs
 * the CLI in-process) and lacks some of {@link gatewayStartSettings}, replaces it with the same
 * command started with them (`process.execve`: same PID, same stdio; called before the
 * command has done any of its work, only Node's start-up and the parsing of the arguments are
 * run twice; it returns only if it cannot). Where the platform cannot, the gateway runs without them and
 * says so on stderr.
 */
export function restartWithGatewaySettings(entry: string): void {
  const script = process.argv[1];
  if (script === undefined || !samePath(script, entry)) return;
  const settings = gatewayStartSettings();
  if (settings.execArgv.length === 0 && Object.keys(settings.env).length === 0) return;
  const env = Object.fromEntries(
    Object.entries({ ...process.env, ...settings.env }).filter(
      (e): e is [string, string] => typeof e[1] === "string",
    ),
  );
  try {
    if (typeof process.execve !== "function") throw new Error("process.execve unavailable");
    process.execve(
      process.execPath,
      [process.execPath, ...process.execArgv, ...settings.execArgv, ...process.argv.slice(1)],
      env,
    );
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    process.stderr.write(`kparty: gateway memory settings not applied (${code}); running without them\n`);
  }
}
