import { KPartyError } from "../errors/index.ts";
import { redactSecrets } from "../util/redact.ts";

/** Where the gateway's operator lines go: anything with `write(line)` (default `process.stderr`). */
export interface OperatorLogStream {
  write(line: string): unknown;
}

export interface OperatorLogOptions {
  stream: OperatorLogStream;
  /** Strings never written, wherever they appear (the RPC URLs' credentials; see `secretsOfUrl`). URLs are redacted anyway. */
  secrets: readonly string[];
  now: () => number;
  /** A failure of the same route and code is written once in this window, and counted (default 10 s). */
  quietMs?: number;
}

/** Causes followed down from an error, and the characters kept of each. */
const MAX_CAUSES = 4;
const MAX_CAUSE_CHARS = 600;

/**
 * The gateway's log for its operator: what clients are not told. Each internal failure (chain
 * unreachable, a crashed check, a failed audit write) is one line with the route, the code and
 * the chain of causes (node messages, the RPC URL); an unexpected error adds its stack. Every
 * line passes through `redactSecrets`: URLs lose their credentials, path and query, and the
 * known secrets are replaced wherever they appear (a node that echoes the path it was called on).
 * During an outage every request fails the same way: one line per route and code is written
 * per `quietMs`, and the next one says how many were left out.
 */
export function createOperatorLog(options: OperatorLogOptions) {
  const { stream, secrets, now } = options;
  const quietMs = options.quietMs ?? 10_000;
  const recent = new Map<string, { at: number; suppressed: number }>();
  const write = (text: string) => stream.write(`${redactSecrets(text, secrets)}\n`);

  return {
    /** A line as it is (redacted). */
    note(text: string): void {
      write(`kparty gateway: ${text}`);
    },

    /** An internal failure while answering `route`: one line per route and code per `quietMs`. */
    failure(route: string, error: unknown): void {
      const code = error instanceof KPartyError ? error.code : "internal";
      const key = `${route} ${code}`;
      const t = now();
      const last = recent.get(key);
      if (last && t - last.at < quietMs) {
        last.suppressed += 1;
        return;
      }
      if (recent.size >= 1_000) recent.clear(); // routes and codes are few; bounded all the same
      recent.set(key, { at: t, suppressed: 0 });
      const more = last?.suppressed ? ` (${last.suppressed} more since the last line)` : "";
      const stack = unexpectedStack(error);
      write(`kparty gateway: ${route}: ${code}: ${causes(error)}${more}${stack ? `\n${stack}` : ""}`);
    },
  };
}

export type OperatorLog = ReturnType<typeof createOperatorLog>;

/** `message <- cause <- cause…`, each on one line and bounded. */
function causes(error: unknown): string {
  const parts: string[] = [];
  let e: unknown = error;
  for (let i = 0; i < MAX_CAUSES && e !== undefined && e !== null; i++) {
    const text = e instanceof KPartyError ? e.shortMessage : e instanceof Error ? e.message : String(e);
    parts.push(text.replace(/\s+/g, " ").trim().slice(0, MAX_CAUSE_CHARS));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" <- ");
}

/** The stack of the innermost error when it is not a `KPartyError` nor a network failure (a bug, then). */
function unexpectedStack(error: unknown): string | null {
  let e: unknown = error;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  if (!(e instanceof Error) || e instanceof KPartyError) return null;
  if (typeof (e as { code?: unknown }).code === "string") return null; // ethers or system errors: the message says it
  return e.stack ?? null;
}
