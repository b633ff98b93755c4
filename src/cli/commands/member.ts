import type { Command } from "commander";
import { getAddress, isAddress } from "ethers";
import { getChainStatus, listMembers, listProposals, type Proposal } from "../../chain/index.ts";
import { parseDidEthr } from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { integerIn } from "../../util/integer.ts";
import { AGENT_DATABASE, identityOf } from "../context.ts";
import { table } from "../output.ts";
import { run } from "../run.ts";
import { accountOf } from "./chain.ts";

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

export function registerMember(program: Command): void {
  const member = program
    .command("member")
    .description("consortium governance: propose, approve, execute, rotate-key, list")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty member propose add did:ethr:0x7a69:0x… --name "Org C"\n  $ kparty member approve 0 --data-dir .kparty/org-b\n  $ kparty member rotate-key 0xNewKey…\n  $ kparty member list`,
    );

  const propose = member
    .command("propose")
    .description("propose a change; the proposer's approval counts at once")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty member propose add did:ethr:0x7a69:0x… --name "Org C"\n  $ kparty member propose quorum 2`,
    );

  const outcome = (kind: string) =>
    run(
      async (
        ctx,
        options: { as?: string; name?: string; issuer?: string; indexes?: string },
        target: string,
      ) => {
        const { agent } = await ctx.agent("issuer");
        const { did } = await identityOf(agent, options.as, ctx.config.dataDir);
        let result: { proposalId: number; transactionHash: string; blockNumber: number };
        if (kind === "add") {
          const { account } = parseOrInvalid(target);
          if (!options.name)
            throw new KPartyError("invalid_argument", "--name is required to admit a member");
          result = await agent.kpartyProposeMember({ member: did, account, did: target, name: options.name });
        } else if (kind === "remove") {
          result = await agent.kpartyProposeRemoval({ member: did, account: accountOf(target) });
        } else if (kind === "quorum") {
          result = await agent.kpartyProposeQuorum({ member: did, quorum: integerArg("quorum", target) });
        } else {
          const indexes = (options.indexes ?? "").split(",").map((v) => integerArg("--indexes", v.trim(), 0));
          result = await agent.kpartyProposeRevocation({ member: did, issuer: accountOf(target), indexes });
        }
        ctx.out.info(`proposal #${result.proposalId} created in block ${result.blockNumber}`);
        ctx.out.result(
          {
            proposalId: result.proposalId,
            transactionHash: result.transactionHash,
            blockNumber: result.blockNumber,
          },
          String(result.proposalId),
        );
      },
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
    .action(outcome("add"));
  propose
    .command("remove")
    .description("propose to remove a member")
    .argument("<did-or-address>", "the member")
    .option(...AS)
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty member propose remove did:ethr:0x7a69:0x…`)
    .action(outcome("remove"));
  propose
    .command("quorum")
    .description("propose a new quorum")
    .argument("<n>", "approvals a proposal will need")
    .option(...AS)
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty member propose quorum 2`)
    .action(outcome("quorum"));
  propose
    .command("revoke")
    .description("propose that the consortium revoke credentials of an issuer by status index")
    .argument("<issuer>", "the issuer's did:ethr or account")
    .requiredOption("--indexes <list>", "status indexes, comma-separated")
    .option(...AS)
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty member propose revoke did:ethr:0x7a69:0x… --indexes 0,1,7`)
    .action(outcome("revoke"));

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
    .action(
      run(async (ctx, options: { as?: string; member?: string }, newAccount: string) => {
        if (!isAddress(newAccount))
          throw new KPartyError(
            "invalid_argument",
            `<new-account> must be a 0x address, got "${newAccount}"`,
          );
        const { agent } = await ctx.agent("issuer");
        const { did } = await identityOf(agent, options.as, ctx.config.dataDir);
        const account = accountOf(options.member ?? did);
        const result = await agent.kpartyProposeKeyRotation({
          member: did,
          account,
          newOperator: getAddress(newAccount),
        });
        ctx.out.info(`proposal #${result.proposalId} created in block ${result.blockNumber}`);
        ctx.out.result(
          {
            proposalId: result.proposalId,
            member: account,
            newOperator: getAddress(newAccount),
            transactionHash: result.transactionHash,
            blockNumber: result.blockNumber,
          },
          String(result.proposalId),
        );
      }),
    );

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

function parseOrInvalid(did: string): { account: string } {
  try {
    return parseDidEthr(did);
  } catch {
    throw new KPartyError("invalid_argument", `not a did:ethr DID: ${did}`);
  }
}

function integerArg(name: string, value: string, min = 1): number {
  const n = integerIn(value, min);
  if (n === null)
    throw new KPartyError("invalid_argument", `${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}
