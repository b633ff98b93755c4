import type { Command } from "commander";
import { getAddress, isAddress } from "ethers";
import type { IssuerAgent } from "../../../agent/index.ts";
import { getChainStatus, listMembers, listProposals, type Proposal } from "../../chain/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { accountOf, didEthrArg, integerArg } from "../args.ts";
import { AGENT_DATABASE, type CliContext, identityOf } from "../context.ts";
import { table } from "../output.ts";
import { run } from "../run.ts";

const AS = ["--as <did-or-alias>", "the member DID to act as (default: the data dir's only DID)"] as const;

function proposalLine(p: Proposal): string[] {
  const what =
    p.kind === "add-member"
      ? `add ${p.name} (${p.did})`
      : p.kind === "remove-member"
        ? `remove ${p.account}`
        : p.kind === "change-quorum"
          ? `quorum → ${p.quorum}`
          : p.kind === "rotate-key"
            ? `rotate the key of ${p.account} to ${p.newOperator}`
            : `revoke ${p.indexes.length} credential(s) of ${p.account}`;
  const state = p.executed ? "executed" : p.expiresAt.getTime() <= Date.now() ? "expired" : "open";
  return [`  #${p.id}`, state, `${p.approvals} approval(s)`, what];
}

type ProposeKind = "add" | "remove" | "quorum" | "revoke";
interface ProposeOptions {
  as?: string;
  name?: string;
  indexes?: string;
}
type Proposed = { proposalId: number; transactionHash: string; blockNumber: number };

/** Each `member propose` subcommand's call of the agent, as member `did`. */
const PROPOSERS: Record<
  ProposeKind,
  (agent: IssuerAgent, did: string, target: string, options: ProposeOptions) => Promise<Proposed>
> = {
  add: (agent, did, target, options) => {
    const { account } = didEthrArg(target);
    if (!options.name) throw new KPartyError("invalid_argument", "--name is required to admit a member");
    return agent.kpartyProposeMember({ member: did, account, did: target, name: options.name });
  },
  remove: (agent, did, target) => agent.kpartyProposeRemoval({ member: did, account: accountOf(target) }),
  quorum: (agent, did, target) =>
    agent.kpartyProposeQuorum({ member: did, quorum: integerArg("quorum", target) }),
  revoke: (agent, did, target, options) => {
    const indexes = (options.indexes ?? "").split(",").map((v) => integerArg("--indexes", v.trim(), 0));
    return agent.kpartyProposeRevocation({ member: did, issuer: accountOf(target), indexes });
  },
};

/** The action of `member propose <kind>`: prints the new proposal's id. */
function proposeAction(kind: ProposeKind) {
  return run(async (ctx: CliContext, options: ProposeOptions, target: string) => {
    const { agent } = await ctx.agent("issuer");
    const { did } = await identityOf(agent, options.as, ctx.config.dataDir);
    const result = await PROPOSERS[kind](agent, did, target, options);
    ctx.out.info(`proposal #${result.proposalId} created in block ${result.blockNumber}`);
    ctx.out.result(
      {
        proposalId: result.proposalId,
        transactionHash: result.transactionHash,
        blockNumber: result.blockNumber,
      },
      String(result.proposalId),
    );
  });
}

function proposeCommands(member: Command): void {
  const propose = member
    .command("propose")
    .description("propose a change; the proposer's approval counts at once")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty member propose add did:ethr:0x7a69:0x… --name "Org C"\n  $ kparty member propose quorum 2`,
    );
  propose
    .command("add")
    .description("propose to admit a member; prints the proposal id")
    .argument("<did>", "the new member's did:ethr")
    .requiredOption("--name <name>", "the member's display name")
    .option(...AS)
    .option(...AGENT_DATABASE)
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty member propose add did:ethr:0x7a69:0x… --name "Org C" --data-dir .kparty/org-a`,
    )
    .action(proposeAction("add"));
  propose
    .command("remove")
    .description("propose to remove a member")
    .argument("<did-or-address>", "the member")
    .option(...AS)
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty member propose remove did:ethr:0x7a69:0x…`)
    .action(proposeAction("remove"));
  propose
    .command("quorum")
    .description("propose a new quorum")
    .argument("<n>", "approvals a proposal will need")
    .option(...AS)
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty member propose quorum 2`)
    .action(proposeAction("quorum"));
  propose
    .command("revoke")
    .description("propose that the consortium revoke credentials of an issuer by status index")
    .argument("<issuer>", "the issuer's did:ethr or account")
    .requiredOption("--indexes <list>", "status indexes, comma-separated")
    .option(...AS)
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty member propose revoke did:ethr:0x7a69:0x… --indexes 0,1,7`)
    .action(proposeAction("revoke"));
}

function voteCommands(member: Command): void {
  for (const [verb, describe] of [
    ["approve", "approve a proposal"],
    ["execute", "execute a proposal that reached the quorum"],
  ] as const) {
    member
      .command(verb)
      .description(describe)
      .argument("<proposal-id>", "the proposal's number")
      .option(...AS)
      .option(...AGENT_DATABASE)
      .addHelpText("after", `\nExamples:\n  $ kparty member ${verb} 1 --data-dir .kparty/org-b`)
      .action(
        run(async (ctx, options: { as?: string }, id: string) => {
          const proposalId = integerArg("proposal id", id, 0);
          const { agent } = await ctx.agent("issuer");
          const { did } = await identityOf(agent, options.as, ctx.config.dataDir);
          const args = { member: did, id: proposalId };
          const result =
            verb === "approve"
              ? await agent.kpartyApproveProposal(args)
              : await agent.kpartyExecuteProposal(args);
          ctx.out.result(
            { proposalId, transactionHash: result.transactionHash, blockNumber: result.blockNumber },
            `proposal #${proposalId} ${verb === "approve" ? "approved" : "executed"} in block ${result.blockNumber}`,
          );
        }),
      );
  }
}

async function rotateKey(ctx: CliContext, options: { as?: string; member?: string }, newAccount: string) {
  if (!isAddress(newAccount))
    throw new KPartyError("invalid_argument", `<new-account> must be a 0x address, got "${newAccount}"`);
  const { agent } = await ctx.agent("issuer");
  const { did } = await identityOf(agent, options.as, ctx.config.dataDir);
  const account = accountOf(options.member ?? did);
  const newOperator = getAddress(newAccount);
  const result = await agent.kpartyProposeKeyRotation({ member: did, account, newOperator });
  ctx.out.info(`proposal #${result.proposalId} created in block ${result.blockNumber}`);
  ctx.out.result(
    {
      proposalId: result.proposalId,
      member: account,
      newOperator,
      transactionHash: result.transactionHash,
      blockNumber: result.blockNumber,
    },
    String(result.proposalId),
  );
}

function rotateKeyCommand(member: Command): void {
  member
    .command("rotate-key")
    .description(
      "propose a key rotation: <new-account> becomes the member's operating account once the quorum executes it " +
        "(the member's anchors and status lists stay; its previous key loses every right; do the DID's ERC-1056 " +
        "changeOwner to the new key first); prints the proposal id",
    )
    .argument("<new-account>", "the new operating account (0x address)")
    .option(
      "--member <did-or-address>",
      "the member whose key rotates (default: the member acting, --as); any member may propose it for another",
    )
    .option(...AS)
    .option(...AGENT_DATABASE)
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty member rotate-key 0x…new --data-dir .kparty/org-a\n  $ kparty member rotate-key 0x…new --member did:ethr:0x7a69:0x…lost --data-dir .kparty/org-b\n  $ kparty member approve 3 --data-dir .kparty/org-c && kparty member execute 3 --data-dir .kparty/org-c`,
    )
    .action(run(rotateKey));
}

function listCommand(member: Command): void {
  member
    .command("list")
    .description("current members and proposals")
    .addHelpText("after", `\nExamples:\n  $ kparty member list\n  $ kparty member list --json`)
    .action(
      run(async (ctx) => {
        const client = ctx.chain();
        await getChainStatus(client);
        const [members, proposals] = await Promise.all([listMembers(client), listProposals(client)]);
        ctx.out.result({ members, proposals }, [
          `members (${members.length}):`,
          ...table(
            members.map((m) => [
              `  ${m.name}`,
              m.did,
              m.operator !== null && m.operator !== m.account ? `operated by ${m.operator}` : "",
            ]),
          ),
          `proposals (${proposals.length}):`,
          ...table(proposals.map(proposalLine)),
        ]);
      }),
    );
}

export function registerMember(program: Command): void {
  const member = program
    .command("member")
    .description("consortium governance: propose, approve, execute, rotate-key, list")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty member propose add did:ethr:0x7a69:0x… --name "Org C"\n  $ kparty member approve 0 --data-dir .kparty/org-b\n  $ kparty member rotate-key 0xNewKey…\n  $ kparty member list`,
    );
  proposeCommands(member);
  voteCommands(member);
  rotateKeyCommand(member);
  listCommand(member);
}
