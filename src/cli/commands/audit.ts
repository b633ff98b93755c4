import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { KPartyError } from "../../errors/index.ts";
// From the modules themselves, not gateway/index.ts: the CLI loads only what a command uses.
import { AuditLog, verifyAuditChain } from "../../gateway/audit.ts";
import { openGatewayDatabase } from "../../gateway/state.ts";
import type { CliContext } from "../context.ts";
import { EXIT, table } from "../output.ts";
import { NO_CONTRACTS, positiveInt, run } from "../run.ts";

function openLog(ctx: CliContext, db: string | undefined) {
  const file = resolve(db ?? join(ctx.config.dataDir, "gateway.sqlite"));
  if (!existsSync(file)) {
    throw new KPartyError("not_found", `no gateway database at ${file}`, {
      details: { hint: "pass --db <gateway.sqlite>, or --data-dir of the gateway" },
    });
  }
  const handle = openGatewayDatabase(file);
  ctx.onClose(() => handle.close());
  return { file, handle };
}

export function registerAudit(program: Command): void {
  const audit = program
    .command("audit")
    .description("read and check the gateway's hash-chained audit log")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty audit verify --data-dir .kparty/gateway\n  $ kparty audit tail -n 50 --db /var/lib/kparty/gateway.sqlite`,
    );

  audit
    .command("tail")
    .description("the newest access decisions")
    .option("--db <file>", "the gateway's database (default: <data dir>/gateway.sqlite)")
    .option("-n, --lines <n>", "how many", positiveInt("--lines", 100_000), 20)
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty audit tail --data-dir .kparty/gateway -n 50\n  $ kparty audit tail --db /var/lib/kparty/gateway.sqlite --json`,
    )
    .action(
      run(async (ctx, options: { db?: string; lines: number }) => {
        const { handle } = openLog(ctx, options.db);
        const records = new AuditLog(handle, { now: Date.now }).tail(options.lines);
        ctx.out.result(
          { records },
          records.length === 0
            ? ["(no entries)"]
            : table(
                records.map((r) => [
                  `#${r.seq}`,
                  r.at,
                  r.outcome,
                  r.code ?? "",
                  r.route,
                  r.holder ?? "-",
                  r.model ?? "",
                ]),
              ),
        );
      }, NO_CONTRACTS),
    );

  audit
    .command("verify")
    .description(`check every record's hash chain; exits ${EXIT.auditBroken} if it is broken`)
    .option("--db <file>", "the gateway's database (default: <data dir>/gateway.sqlite)")
    .addHelpText("after", `\nExamples:\n  $ kparty audit verify --data-dir .kparty/gateway`)
    .action(
      run(async (ctx, options: { db?: string }) => {
        const { file, handle } = openLog(ctx, options.db);
        const result = verifyAuditChain(handle);
        ctx.out.result(
          { file, ...result },
          result.valid
            ? `audit log intact: ${result.records} record(s), head ${result.head}`
            : `audit log BROKEN at record #${result.broken?.seq}: ${result.broken?.reason}`,
        );
        if (!result.valid) process.exitCode = EXIT.auditBroken;
      }, NO_CONTRACTS),
    );
}
