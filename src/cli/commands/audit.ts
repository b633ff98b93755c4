import type { Command } from "commander";
import { type AuditAnchor, listAuditAnchors } from "../../chain/actions/audit-anchors.ts";
import { KPartyError } from "../../errors/index.ts";
import { type AuditReport, verifyAuditLog } from "../../gateway/audit-verify.ts";
import type { AuditPublicKey } from "../../state/audit-keys.ts";
import type { CliContext } from "../context.ts";
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

  registerVerify(audit);
}

/** `kparty audit verify`: signatures, links and the anchored heads (see `verifyAuditLog`). */
function registerVerify(audit: Command): void {
  audit
    .command("verify")
    .description(
      `check every record's chain link, hash and signature, and the chain against the heads anchored on chain; exits ${EXIT.auditBroken} if anything is wrong`,
    )
    .option("--db <file>", "the gateway's database (default: <data dir>/gateway.sqlite)")
    .option("--database <url>", DATABASE_OPTION)
    .option(
      "--anchorer <address>",
      "the audit anchoring account you expect (as the gateway printed it at its first start); a state whose audit key was replaced is reported",
    )
    .option(
      "--offline",
      "do not read the anchored heads from the chain: truncation and re-hashing are then NOT detected (the report says anchorsChecked: false)",
    )
    .addHelpText(
      "after",
      `\nThe report (--json): {valid, records, head, key, unsigned, anchorsChecked, anchoredThrough: {seq, txHash?},
unanchored: {fromSeq, toSeq} | null, problems: [{kind, seq, toSeq?, txHash?}]}. Problem kinds: missing,
broken_link, edited, bad_signature, unsigned, unknown_key, rehashed, truncated, key_replaced, head_row (see
docs/security.md, "Audit log"). Records from before records were signed are reported in
\`unsigned\`, not as problems. The anchors are read through the configured RPC URL and deployment;
if they cannot be read the command fails (exit 6) rather than report a chain it could not check.

Examples:\n  $ kparty audit verify --data-dir .kparty/gateway --json\n  $ KPARTY_DATABASE_URL=postgres://kparty@db.internal/kparty kparty audit verify --anchorer 0x…`,
    )
    .action(
      run(async (ctx, options: { db?: string; database?: string; anchorer?: string; offline?: boolean }) => {
        if (options.anchorer !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(options.anchorer))
          throw new KPartyError("invalid_argument", "--anchorer must be a 0x-prefixed 20-byte address");
        const { state, where } = await openCliState(ctx, {
          ...(options.db ? { file: options.db } : {}),
          ...(options.database ? { database: options.database } : {}),
          mustExist: true,
        });
        const reader = state.auditReader();
        const key = (await reader.publicKeys())[0] ?? null;
        const anchors = options.offline ? null : await anchoredHeads(ctx, key, options.anchorer);
        const report = await verifyAuditLog({
          reader,
          key,
          anchors,
          ...(options.anchorer ? { expectedAnchorer: options.anchorer } : {}),
        });
        ctx.out.result({ file: where, ...report }, humanReport(report));
        if (!report.valid) process.exitCode = EXIT.auditBroken;
      }),
    );
}

/** The heads anchored for the key's log (null: the deployment has no AuditAnchors, or no key yet). */
async function anchoredHeads(
  ctx: CliContext,
  key: AuditPublicKey | null,
  anchorer: string | undefined,
): Promise<AuditAnchor[] | null> {
  if (!key) return null;
  const chain = ctx.chain();
  if (!chain.contracts.auditAnchors) return null;
  const byLog = await listAuditAnchors(chain, { anchorer: anchorer ?? key.anchorer, log: key.log });
  return byLog.get(key.log.toLowerCase()) ?? [];
}

function humanReport(report: AuditReport): string[] {
  const lines: string[] = [];
  const first = report.problems[0];
  if (first) {
    const run = first.toSeq !== undefined ? `-#${first.toSeq}` : "";
    lines.push(`audit log BROKEN at record #${first.seq}${run}: ${first.kind}`);
    for (const p of report.problems.slice(1))
      lines.push(`  ${p.kind} at #${p.seq}${p.toSeq !== undefined ? `-#${p.toSeq}` : ""}`);
  } else {
    lines.push(`audit log intact: ${report.records} record(s), head ${report.head?.hash ?? "(none)"}`);
  }
  if (report.unsigned)
    lines.push(`unsigned (from before signing): #${report.unsigned.fromSeq}-#${report.unsigned.toSeq}`);
  if (!report.anchorsChecked) lines.push("anchors NOT checked: truncation and re-hashing are not detected");
  else {
    const tx = report.anchoredThrough.txHash ? ` (tx ${report.anchoredThrough.txHash})` : "";
    lines.push(`anchored through #${report.anchoredThrough.seq}${tx}`);
  }
  if (report.unanchored)
    lines.push(`not anchored yet: #${report.unanchored.fromSeq}-#${report.unanchored.toSeq}`);
  return lines;
}
