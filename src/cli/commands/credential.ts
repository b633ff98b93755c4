import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import type { IssuedCredential, IssueItem, IssuerAgent } from "../../../agent/index.ts";
import { MAX_BATCH } from "../../../agent/plugins/kparty-issuer.ts";
import { getCredentialState } from "../../chain/index.ts";
import { type Action, isObject, parseDidEthr, type Role } from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { credentialVerdict, credentialWindowOf } from "../../gateway/verify/judge.ts";
import {
  bundleOfRecord,
  type CredentialBundle,
  credentialIdArg,
  readBundle,
  writeBundle,
} from "../bundle.ts";
import { AGENT_DATABASE, type CliContext, identityOf } from "../context.ts";
import { table } from "../output.ts";
import { list, positiveInt, run } from "../run.ts";

interface IssueOptions {
  as?: string;
  subject?: string;
  subjects?: string;
  role: string;
  models?: string;
  actions: string;
  quota?: number;
  validDays: number;
  out?: string;
  outDir: string;
  batchSize: number;
}

const ITEM_KEYS = new Set(["subject", "role", "models", "actions", "quota", "validDays"]);

/** The items to issue: one subject from the flags, or every entry of a subjects file over the flags' defaults. */
function issueItems(options: IssueOptions, now: Date): IssueItem[] {
  const defaults = {
    role: options.role as Role,
    models: options.models ? list(options.models) : [],
    actions: list(options.actions) as Action[],
    ...(options.quota ? { quota: { requestsPerMinute: options.quota } } : {}),
  };
  const window = (days: number) => ({
    validFrom: now,
    validUntil: new Date(now.getTime() + days * 86_400_000),
  });
  if (options.subject && options.subjects) {
    throw new KPartyError("invalid_argument", "give either --subject or --subjects, not both");
  }
  if (options.subject) return [{ subject: options.subject, ...defaults, ...window(options.validDays) }];
  if (!options.subjects)
    throw new KPartyError("invalid_argument", "--subject <did> or --subjects <file> is required");
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(options.subjects, "utf8"));
  } catch (cause) {
    const reason =
      (cause as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : (cause as Error).message;
    throw new KPartyError("invalid_argument", `subjects file ${options.subjects}: ${reason}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw new KPartyError(
      "invalid_argument",
      `subjects file ${options.subjects} must be a non-empty JSON array of DIDs or {subject, role?, models?, actions?, quota?, validDays?}`,
    );
  }
  return parsed.map((entry, i) => {
    if (typeof entry === "string") return { subject: entry, ...defaults, ...window(options.validDays) };
    if (!isObject(entry) || typeof entry.subject !== "string") {
      throw new KPartyError("invalid_argument", `subjects file entry ${i}: needs a "subject" DID`);
    }
    const unknown = Object.keys(entry).find((k) => !ITEM_KEYS.has(k));
    if (unknown)
      throw new KPartyError("invalid_argument", `subjects file entry ${i}: unknown field "${unknown}"`);
    const days = entry.validDays ?? options.validDays;
    if (typeof days !== "number" || !Number.isSafeInteger(days) || days < 1) {
      throw new KPartyError(
        "invalid_argument",
        `subjects file entry ${i}: validDays must be a positive integer`,
      );
    }
    return {
      ...defaults,
      subject: entry.subject,
      ...(entry.role !== undefined ? { role: entry.role as Role } : {}),
      ...(entry.models !== undefined ? { models: entry.models as string[] } : {}),
      ...(entry.actions !== undefined ? { actions: entry.actions as Action[] } : {}),
      ...(entry.quota !== undefined ? { quota: entry.quota as { requestsPerMinute: number } } : {}),
      ...window(days),
    };
  });
}

function statusCommand(
  parent: Command,
  verb: "revoke" | "suspend" | "reinstate",
  describe: string,
  method: "kpartyRevokeCredential" | "kpartySuspendCredential" | "kpartyReinstateCredential",
) {
  parent
    .command(verb)
    .description(describe)
    .option(...AGENT_DATABASE)
    .argument("<credential-id-or-file>", "the credential's id (0x…) or its bundle file")
    .addHelpText("after", `\nExamples:\n  $ kparty credential ${verb} 0x3f…c1 --data-dir .kparty/org-a`)
    .action(
      run(async (ctx, _options, target: string) => {
        const credentialId = credentialIdArg(target);
        const { agent } = await ctx.agent("issuer");
        const change = await agent[method]({ credentialId });
        const past = verb === "revoke" ? "revoked" : verb === "suspend" ? "suspended" : "reinstated";
        ctx.out.result(
          {
            credentialId,
            statusIndex: change.statusIndex,
            transactionHash: change.transactionHash,
            blockNumber: change.blockNumber,
          },
          `${past} ${credentialId} (status index ${change.statusIndex}) in block ${change.blockNumber}`,
        );
      }),
    );
}

async function writeBundles(
  issued: IssuedCredential[],
  items: IssueItem[],
  issuer: { did: string; account: string },
  options: IssueOptions,
  offset: number,
): Promise<string[]> {
  const dir = resolve(options.outDir);
  const files: string[] = [];
  for (const [i, c] of issued.entries()) {
    const bundle: CredentialBundle = {
      type: "kparty-credential",
      credentialId: c.credentialId,
      issuer: issuer.did,
      issuerAccount: issuer.account,
      subject: (items[i] as IssueItem).subject,
      statusIndex: c.statusIndex,
      jwt: c.jwt,
      anchor: c.anchor,
    };
    const file =
      options.out && items.length === 1 && offset === 0
        ? resolve(options.out)
        : join(dir, `${c.credentialId.slice(2, 18)}.json`);
    await writeBundle(file, bundle);
    files.push(file);
  }
  return files;
}

/** One issued credential, as `credential issue` reports it. */
interface IssuedRow {
  credentialId: string;
  subject: string;
  file: string;
  blockNumber: number;
  root: string | null;
}

/** Issues one chunk (one anchoring transaction) and writes its bundles. */
async function issueChunk(
  agent: IssuerAgent,
  issuer: { did: string; account: string },
  chunk: IssueItem[],
  options: IssueOptions & { single: boolean },
  start: number,
): Promise<IssuedRow[]> {
  const issued =
    chunk.length === 1 && options.single
      ? [await agent.kpartyIssueCredential({ issuer: issuer.did, ...(chunk[0] as IssueItem) })]
      : await agent.kpartyIssueCredentials({ issuer: issuer.did, credentials: chunk });
  const files = await writeBundles(issued, chunk, issuer, options, start);
  return issued.map((c, i) => ({
    credentialId: c.credentialId,
    subject: (chunk[i] as IssueItem).subject,
    file: files[i] as string,
    blockNumber: c.anchor.blockNumber,
    root: c.anchor.root,
  }));
}

/** After a failed issuance: what was written, and what is signed but waits for `credential resume`. */
async function reportInterruptedIssue(ctx: CliContext, agent: IssuerAgent, done: number, total: number) {
  if (done > 0) {
    ctx.out.info(`${done} of ${total} credential(s) were issued and written before the failure`);
  }
  const pending = (await agent.kpartyListIssuedCredentials({}).catch(() => [])).filter(
    (r) => r.anchoredBlock === null,
  );
  if (pending.length > 0) {
    ctx.out.info(
      `${pending.length} credential(s) are signed but not anchored: \`kparty credential resume\` anchors them, ` +
        "then `kparty credential export` writes their bundles",
    );
  }
}

async function issue(ctx: CliContext, options: IssueOptions): Promise<void> {
  const items = issueItems(options, new Date());
  const { agent } = await ctx.agent("issuer");
  const { did } = await identityOf(agent, options.as, ctx.config.dataDir);
  const issuer = { did, account: parseDidEthr(did).account };
  const progress = ctx.out.progress("issuing and anchoring", items.length);
  const results: IssuedRow[] = [];
  try {
    for (let start = 0; start < items.length; start += options.batchSize) {
      const chunk = items.slice(start, start + options.batchSize);
      results.push(
        ...(await issueChunk(agent, issuer, chunk, { ...options, single: items.length === 1 }, start)),
      );
      progress.tick(results.length);
    }
  } catch (error) {
    progress.done();
    await reportInterruptedIssue(ctx, agent, results.length, items.length);
    throw error;
  }
  progress.done();
  ctx.out.result(
    { issuer: did, issued: results },
    results.length === 1
      ? [`${results[0]?.credentialId}`]
      : table(results.map((r) => [r.credentialId, r.subject, r.file])),
  );
  ctx.out.info(
    `issued ${results.length} credential(s), anchored in block(s) ${[...new Set(results.map((r) => r.blockNumber))].join(", ")}; bundles in ${results.length === 1 ? results[0]?.file : resolve(options.outDir)}`,
  );
}

function issueCommand(credential: Command): void {
  credential
    .command("issue")
    .description("sign credentials for one subject or many (batch-anchored), and write one bundle file each")
    .option(...AGENT_DATABASE)
    .option("--subject <did>", "the holder's DID")
    .option(
      "--subjects <file>",
      "a JSON array of DIDs or {subject, role?, models?, actions?, quota?, validDays?}",
    )
    .option("--role <role>", "participant, coordinator or observer", "participant")
    .option("--models <ids>", 'model ids, comma-separated, or "*"')
    .option("--actions <list>", "model:read, model:infer, model:contribute, round:aggregate", "model:read")
    .option("--quota <rpm>", "requests a minute the gateway allows", positiveInt("--quota"))
    .option("--valid-days <n>", "validity from now", positiveInt("--valid-days", 3650), 30)
    .option("--out <file>", "bundle file for a single credential")
    .option("--out-dir <dir>", "folder for bundle files", "credentials")
    .option(
      "--batch-size <n>",
      "credentials per anchoring transaction",
      positiveInt("--batch-size", MAX_BATCH),
      1000,
    )
    .option("--as <did-or-alias>", "the issuer DID (default: the data dir's only DID)")
    .addHelpText(
      "after",
      `
Examples:
  $ kparty credential issue --subject did:ethr:0x7a69:0x… --models fl-demo --actions model:read,model:contribute --out alice.json
  $ kparty credential issue --subjects participants.json --models fl-demo --out-dir creds/ --batch-size 512`,
    )
    .action(run(issue));
}

/** What `credential status` reads the chain for: from a bundle file, or this data dir's record of an id. */
async function credentialRef(
  ctx: CliContext,
  target: string,
): Promise<{
  credentialId: string;
  issuerAccount: string;
  statusIndex: number;
  root: string | null;
  jwt: string;
}> {
  if (/^0x/.test(target)) {
    const { agent } = await ctx.agent("issuer");
    const r = await agent.kpartyGetIssuedCredential({ credentialId: credentialIdArg(target) });
    return {
      credentialId: r.credentialId,
      issuerAccount: r.issuerAccount,
      statusIndex: r.statusIndex,
      root: r.anchorRoot,
      jwt: r.jwt,
    };
  }
  const b = readBundle(target);
  return {
    credentialId: b.credentialId,
    issuerAccount: b.issuerAccount,
    statusIndex: b.statusIndex,
    root: b.anchor.root,
    jwt: b.jwt,
  };
}

async function credentialStatus(ctx: CliContext, _options: unknown, target: string): Promise<void> {
  const ref = await credentialRef(ctx, target);
  const state = await getCredentialState(ctx.chain(), {
    anchorKey: ref.root ?? ref.credentialId,
    issuer: ref.issuerAccount,
    revocationIndex: ref.statusIndex,
    suspensionIndex: ref.statusIndex,
  });
  // the gateway's own verdict, times included (default policy: credentials of removed issuers are refused)
  const judged = credentialVerdict(state, ref.issuerAccount, "deny", credentialWindowOf(ref.jwt, Date.now()));
  const verdict = judged.valid ? "valid" : judged.code;
  ctx.out.result({ credentialId: ref.credentialId, verdict, ...state }, [
    `${ref.credentialId}: ${verdict}`,
    `  anchored   ${state.anchoredAt === null ? "no" : `block ${state.anchoredAt}`}`,
    `  revoked    ${state.revoked}`,
    `  suspended  ${state.suspended}`,
    `  issuer is a member: ${state.issuerIsMember} (at anchoring: ${state.issuerWasMemberAtAnchor})`,
  ]);
}

function statusReadCommand(credential: Command): void {
  credential
    .command("status")
    .description("a credential's anchor, issuer membership and status, read from the chain")
    .option(...AGENT_DATABASE)
    .argument("<credential-id-or-file>", "a bundle file, or the id of a credential this data dir issued")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty credential status alice.json\n  $ kparty credential status 0x3f…c1 --data-dir .kparty/org-a`,
    )
    .action(run(credentialStatus));
}

function listCommand(credential: Command): void {
  credential
    .command("list")
    .description("credentials this data dir issued")
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty credential list --data-dir .kparty/org-a --json`)
    .action(
      run(async (ctx) => {
        const { agent } = await ctx.agent("issuer");
        const records = await agent.kpartyListIssuedCredentials({});
        const rows = records.map(({ jwt: _jwt, anchorProof: _proof, ...r }) => r);
        ctx.out.result(
          { credentials: rows },
          rows.length === 0
            ? ["(none)"]
            : table(
                rows.map((r) => [
                  r.credentialId,
                  r.subject,
                  `#${r.statusIndex}`,
                  r.anchoredBlock === null ? "pending" : `block ${r.anchoredBlock}`,
                ]),
              ),
        );
      }),
    );
}

function exportCommand(credential: Command): void {
  credential
    .command("export")
    .description("write the bundle of a credential this data dir issued (e.g. after `credential resume`)")
    .option(...AGENT_DATABASE)
    .argument("<credential-id>", "the credential's id (0x…)")
    .requiredOption("--out <file>", "where to write it")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty credential export 0x3f…c1 --out alice.json --data-dir .kparty/org-a`,
    )
    .action(
      run(async (ctx, options: { out: string }, target: string) => {
        const { agent } = await ctx.agent("issuer");
        const r = await agent.kpartyGetIssuedCredential({ credentialId: credentialIdArg(target) });
        const bundle = bundleOfRecord(r);
        const file = resolve(options.out);
        await writeBundle(file, bundle);
        ctx.out.result({ credentialId: r.credentialId, subject: r.subject, file }, file);
      }),
    );
}

function resumeCommand(credential: Command): void {
  credential
    .command("resume")
    .description("anchor what an interrupted issuance left signed but not anchored")
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty credential resume --data-dir .kparty/org-a`)
    .action(
      run(async (ctx) => {
        const { agent } = await ctx.agent("issuer");
        const resumed = await agent.kpartyResumeAnchoring({});
        ctx.out.result(
          resumed,
          `anchored ${resumed.credentials} credential(s) and ${resumed.batches} batch root(s)`,
        );
      }),
    );
}

export function registerCredential(program: Command): void {
  const credential = program
    .command("credential")
    .description("issue K-th Party tokens and change their status on chain")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty credential issue --subject did:ethr:0x7a69:0x… --models fl-demo --out alice.json\n  $ kparty credential status alice.json\n  $ kparty credential revoke alice.json`,
    );
  issueCommand(credential);
  statusCommand(credential, "revoke", "revoke a credential (final)", "kpartyRevokeCredential");
  statusCommand(credential, "suspend", "suspend a credential (reversible)", "kpartySuspendCredential");
  statusCommand(credential, "reinstate", "lift a suspension", "kpartyReinstateCredential");
  statusReadCommand(credential);
  listCommand(credential);
  exportCommand(credential);
  resumeCommand(credential);
}
