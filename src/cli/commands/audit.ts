import type { Command } from "commander";
import { EXIT, table } from "../output.ts";
import { NO_CONTRACTS, positiveInt, run } from "../run.ts";
import { DATABASE_OPTION, openCliState } from "../state.ts";

export function registerAudit(program: Command): void {
  const audit = program
    .command("audit")
    .description("read and check the gateway's hash-chained audit log")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty audit verify --data-dir .kparty/gateway\n  $ kparty audit tail -n 50 --db /var/lib/kparty/gateway.sqlite\n  $ kparty audit verify --database postgres://kparty@db.internal/kparty   # the replicas' one chain`,
    );

  audit
    .command("tail")
    .description("the newest access decisions")
    .option("--db <file>", "the gateway's database (default: <data dir>/gateway.sqlite)")
    .option("--database <url>", DATABASE_OPTION)
    .option("-n, --lines <n>", "how many", positiveInt("--lines", 100_000), 20)
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty audit tail --data-dir .kparty/gateway -n 50\n  $ kparty audit tail --db /var/lib/kparty/gateway.sqlite --json`,
    )
    .action(
      run(async (ctx, options: { db?: string; database?: string; lines: number }) => {
        const { state } = await openCliState(ctx, {
          ...(options.db ? { file: options.db } : {}),
          ...(options.database ? { database: options.database } : {}),
          mustExist: true,
        });
        const records = await state.auditReader().tail(options.lines);
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
    .option("--database <url>", DATABASE_OPTION)
    .addHelpText(
      "after",
      `\nWith PostgreSQL the chain is the deployment's one chain (every replica's decisions), and its
head row must name the last record (a chain cut at its end is caught).

Examples:\n  $ kparty audit verify --data-dir .kparty/gateway\n  $ KPARTY_DATABASE_URL=postgres://kparty@db.internal/kparty kparty audit verify`,
    )
    .action(
      run(async (ctx, options: { db?: string; database?: string }) => {
        const { state, where } = await openCliState(ctx, {
          ...(options.db ? { file: options.db } : {}),
          ...(options.database ? { database: options.database } : {}),
          mustExist: true,
        });
        const result = await state.auditReader().verify();
        ctx.out.result(
          { file: where, ...result },
          result.valid
            ? `audit log intact: ${result.records} record(s), head ${result.head}`
            : `audit log BROKEN at record #${result.broken?.seq}: ${result.broken?.reason}`,
        );
        if (!result.valid) process.exitCode = EXIT.auditBroken;
      }, NO_CONTRACTS),
    );
}
