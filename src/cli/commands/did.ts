import type { Command } from "commander";
import { computeAddress } from "ethers";
import { AGENT_DATABASE } from "../context.ts";
import { table } from "../output.ts";
import { run } from "../run.ts";

export function registerDid(program: Command): void {
  const did = program
    .command("did")
    .description("this party's did:ethr identifiers (keys encrypted in the data dir)")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty did create --alias "Org A" --data-dir .kparty/org-a\n  $ kparty did list --json`,
    );

  did
    .command("create")
    .description("create a did:ethr with a new key; prints the DID")
    .option(...AGENT_DATABASE)
    .option("--alias <name>", "a name to refer to it by (--as)")
    .addHelpText(
      "after",
      `
The data dir's keys are encrypted with KPARTY_PASSPHRASE (or a passphrase typed at the
prompt, twice for a new data dir). No chain is needed: the DID depends only on the key
and the chain id.

Examples:
  $ kparty did create --alias "Org A" --data-dir .kparty/org-a
  $ ALICE=$(kparty did create --alias alice --data-dir .kparty/alice)`,
    )
    .action(
      run(async (ctx, options: { alias?: string }) => {
        const { agent, didProvider } = await ctx.agent("holder", { allowUndeployed: true });
        const id = await agent.didManagerCreate({
          provider: didProvider,
          ...(options.alias ? { alias: options.alias } : {}),
        });
        const account = computeAddress(`0x${id.keys[0]?.publicKeyHex}`);
        ctx.out.info(`created ${id.alias ?? "a DID"} in ${ctx.config.dataDir} (account ${account})`);
        ctx.out.result(
          { did: id.did, alias: id.alias ?? null, account, dataDir: ctx.config.dataDir },
          id.did,
        );
      }),
    );

  did
    .command("list")
    .description("the DIDs this data dir holds")
    .option(...AGENT_DATABASE)
    .addHelpText("after", `\nExamples:\n  $ kparty did list --data-dir .kparty/org-a --json`)
    .action(
      run(async (ctx) => {
        const { agent } = await ctx.agent("holder", { allowUndeployed: true });
        const ids = (await agent.didManagerFind()).map((id) => ({
          did: id.did,
          alias: id.alias ?? null,
          account: computeAddress(`0x${id.keys[0]?.publicKeyHex}`),
        }));
        ctx.out.result(
          { dids: ids },
          ids.length === 0 ? ["(none)"] : table(ids.map((i) => [i.alias ?? "-", i.did])),
        );
      }),
    );
}
