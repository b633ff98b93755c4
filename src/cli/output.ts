import { CommanderError } from "commander";
import { KPartyError, type KPartyErrorCode } from "../errors/index.ts";
import { redactSecrets } from "../util/redact.ts";

/**
 * The `kparty` exit codes (documented in the README). Scripts switch on these; the error
 * code printed with the message tells them apart within one class.
 */
export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  config: 3,
  passphrase: 4,
  notFound: 5,
  unreachable: 6,
  chainRefused: 7,
  accessRefused: 8,
  auditBroken: 9,
  conflict: 10,
  interrupted: 130,
} as const;

const EXIT_BY_CODE: Partial<Record<KPartyErrorCode, number>> = {
  invalid_argument: EXIT.usage,
  malformed: EXIT.usage,
  jwt_mismatch: EXIT.usage,
  invalid_update: EXIT.usage,
  payload_too_large: EXIT.usage,
  config_invalid: EXIT.config,
  data_dir_in_use: EXIT.config,
  wrong_passphrase: EXIT.passphrase,
  passphrase_required: EXIT.passphrase,
  not_found: EXIT.notFound,
  did_unresolvable: EXIT.notFound,
  registry_unavailable: EXIT.unreachable,
  audit_unavailable: EXIT.unreachable,
  state_unavailable: EXIT.unreachable,
  overloaded: EXIT.unreachable,
  unreachable: EXIT.unreachable,
  unexpected_response: EXIT.unreachable,
  chain_reverted: EXIT.chainRefused,
  chain_rejected: EXIT.chainRefused,
  insufficient_funds: EXIT.chainRefused,
  conflict: EXIT.conflict,
  unsupported_alg: EXIT.accessRefused,
  invalid_signature: EXIT.accessRefused,
  expired: EXIT.accessRefused,
  not_yet_valid: EXIT.accessRefused,
  not_anchored: EXIT.accessRefused,
  revoked: EXIT.accessRefused,
  suspended: EXIT.accessRefused,
  issuer_not_member: EXIT.accessRefused,
  holder_mismatch: EXIT.accessRefused,
  challenge_invalid: EXIT.accessRefused,
  challenge_reused: EXIT.accessRefused,
  domain_mismatch: EXIT.accessRefused,
  scope_denied: EXIT.accessRefused,
  dcql_unsatisfied: EXIT.accessRefused,
  token_invalid: EXIT.accessRefused,
  token_revoked: EXIT.accessRefused,
  invalid_client: EXIT.accessRefused,
  credential_expired: EXIT.accessRefused,
  invalid_dpop_proof: EXIT.accessRefused,
  use_dpop_nonce: EXIT.accessRefused,
  rate_limited: EXIT.accessRefused,
};

/** The exit code for an error code (1 for anything unexpected). */
export function exitCodeOf(code: KPartyErrorCode): number {
  return EXIT_BY_CODE[code] ?? EXIT.internal;
}

const HINTS: Partial<Record<KPartyErrorCode, string>> = {
  config_invalid: "run `kparty init`, or pass --config FILE",
  wrong_passphrase: "set KPARTY_PASSPHRASE to the passphrase this data dir was created with",
  passphrase_required: "set KPARTY_PASSPHRASE, or run in a terminal to be asked",
  registry_unavailable: "is the chain running? check rpcUrl in the config or KPARTY_RPC_URL",
  overloaded: "the gateway is at capacity; retry in a second",
  audit_unavailable: "the gateway cannot record decisions on its disk; its operator must restart it",
  state_unavailable: "is the database reachable? check --database or KPARTY_DATABASE_URL",
  unreachable: "is the gateway running? check gateway.url in the config or pass --gateway URL",
  insufficient_funds: "fund the account: `kparty chain fund <did>` on a local chain",
  issuer_not_member: "only consortium members issue; see `kparty member list`",
  token_invalid: "get a new access token with `kparty present`",
  credential_expired: "the credential behind the access token has expired; ask its issuer for a new one",
  invalid_dpop_proof: "the session's proof key does not match its token; get a new one with `kparty present`",
  chain_reverted: "the contract refused the transaction; see `kparty status` and `kparty member list`",
};

/** One error, as the CLI reports it. */
export interface ReportedError {
  code: KPartyErrorCode;
  message: string;
  hint?: string;
  exitCode: number;
}

/** Turns anything thrown into a one-line report (the stack only matters with --debug). */
export function reportOf(error: unknown): ReportedError {
  if (error instanceof KPartyError) {
    const hint = typeof error.details.hint === "string" ? error.details.hint : HINTS[error.code];
    return {
      code: error.code,
      message: oneLine(error.shortMessage),
      ...(hint ? { hint } : {}),
      exitCode: exitCodeOf(error.code),
    };
  }
  if (error instanceof CommanderError) {
    return {
      code: "invalid_argument",
      message: oneLine(error.message.replace(/^error: /, "")),
      hint: "see `kparty <command> --help`",
      exitCode: EXIT.usage,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: "internal", message: oneLine(message), exitCode: EXIT.internal };
}

/** The first line, with the credentials, path and query of any URL in it redacted. */
function oneLine(text: string): string {
  return redactSecrets((text.split("\n")[0] ?? "").trim()).slice(0, 500);
}

/**
 * Where a command's output goes. With `json`, the command's one result is printed as one
 * JSON value on stdout and everything for humans goes to stderr; otherwise the result's
 * human form goes to stdout. Progress is drawn only on a terminal.
 */
export class Output {
  readonly json: boolean;
  readonly debug: boolean;
  readonly #stdout: NodeJS.WritableStream;
  readonly #stderr: NodeJS.WriteStream | NodeJS.WritableStream;

  constructor(options: {
    json: boolean;
    debug: boolean;
    stdout?: NodeJS.WritableStream;
    stderr?: NodeJS.WriteStream | NodeJS.WritableStream;
  }) {
    this.json = options.json;
    this.debug = options.debug;
    this.#stdout = options.stdout ?? process.stdout;
    this.#stderr = options.stderr ?? process.stderr;
  }

  /** Narration for humans: always stderr, so stdout stays the result. */
  info(text: string): void {
    this.#stderr.write(`${text}\n`);
  }

  /** The command's result: `value` as JSON, or the `human` lines on stdout. */
  result(value: unknown, human: string | string[]): void {
    if (this.json) {
      this.#stdout.write(`${JSON.stringify(value)}\n`);
      return;
    }
    const lines = Array.isArray(human) ? human : [human];
    if (lines.length > 0) this.#stdout.write(`${lines.join("\n")}\n`);
  }

  /** Reports a failure: one line on stderr (plus the stack with --debug), and with --json an error object on stdout. */
  error(error: unknown): number {
    const report = reportOf(error);
    const hint = report.hint ? ` (hint: ${report.hint})` : "";
    this.#stderr.write(`kparty: ${report.code}: ${report.message}${hint}\n`);
    if (this.debug && error instanceof Error) {
      let e: unknown = error;
      while (e instanceof Error) {
        this.#stderr.write(`${redactSecrets(e.stack ?? e.message)}\n`);
        e = e.cause;
        if (e) this.#stderr.write("caused by: ");
      }
    }
    if (this.json) {
      const { exitCode, ...body } = report;
      this.#stdout.write(`${JSON.stringify({ error: { ...body, exitCode } })}\n`);
    }
    return report.exitCode;
  }

  /** A progress line for long chain work, redrawn in place on a terminal and silent elsewhere. */
  progress(label: string, total: number): { tick(done: number): void; done(): void } {
    const stream = this.#stderr as NodeJS.WriteStream;
    if (!stream.isTTY) return { tick() {}, done() {} };
    let last = -1;
    const draw = (n: number) => {
      const pct = total > 0 ? Math.floor((n / total) * 100) : 100;
      if (pct === last) return;
      last = pct;
      stream.write(`\r${label} ${n}/${total} (${pct}%)`);
    };
    draw(0);
    return {
      tick: draw,
      done: () => stream.write(`\r${" ".repeat(label.length + 30)}\r`),
    };
  }
}

/** Formats rows as aligned columns. */
export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  }
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
}
