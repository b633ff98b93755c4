import { Command, CommanderError, Option } from "commander";
import pkg from "../../package.json" with { type: "json" };
import { registerAudit } from "./commands/audit.ts";
import { registerChain } from "./commands/chain.ts";
import { registerCredential } from "./commands/credential.ts";
import { registerDid } from "./commands/did.ts";
import { registerGateway } from "./commands/gateway.ts";
import { registerInit } from "./commands/init.ts";
import { registerIssuer } from "./commands/issuer.ts";
import { registerMember } from "./commands/member.ts";
import { registerModel } from "./commands/model.ts";
import { registerPresent } from "./commands/present.ts";
import { EXIT, Output } from "./output.ts";

const EXIT_CODES = `
Exit codes:
  0  success                      5  not found (DID, credential, proposal, model)
  1  internal error               6  chain or gateway unreachable
  2  usage or invalid input       7  refused by the chain (revert, funds)
  3  configuration                8  refused access (revoked, expired, scope…)
  4  passphrase missing or wrong  9  audit log broken
  130 interrupted

Errors are one line on stderr: "kparty: <code>: <message> (hint: …)"; with --json
an {"error": {code, message, hint, exitCode}} object is also printed on stdout.`;

/** The `kparty` program with every command (exported for tests and documentation). */
export function buildProgram(): Command {
  const program = new Command("kparty")
    .description("K-th Party tokens: decentralized identity and access for federated-learning consortia")
    .version(pkg.version)
    .option("-c, --config <file>", "config file (default: ./kparty.json, or KPARTY_CONFIG)")
    .option("-d, --data-dir <dir>", "this party's agent data (overrides dataDir and KPARTY_DATA_DIR)")
    .addOption(new Option("--rpc <url>", "the chain's JSON-RPC URL (overrides rpcUrl and KPARTY_RPC_URL)"))
    .option("--json", "print the result as one JSON value on stdout; human text goes to stderr")
    .option("--debug", "print stack traces with errors")
    .addHelpText(
      "after",
      `
Examples:
  $ kparty init
  $ kparty did create --alias "Org A" --data-dir .kparty/org-a
  $ kparty chain up --founder "Org A=did:ethr:0x7a69:0x…" &
  $ kparty status
${EXIT_CODES}

Secrets: the passphrase that encrypts a data dir's keys comes from KPARTY_PASSPHRASE or
a prompt; a deployer's key from KPARTY_DEPLOYER_KEY. Neither is ever printed.`,
    );
  registerInit(program);
  registerChain(program);
  registerDid(program);
  registerMember(program);
  registerCredential(program);
  registerIssuer(program);
  registerPresent(program);
  registerModel(program);
  registerGateway(program);
  registerAudit(program);
  const quiet = (cmd: Command) => {
    cmd.exitOverride();
    cmd.configureOutput({ outputError: () => {} });
    for (const sub of cmd.commands) quiet(sub);
  };
  quiet(program);
  return program;
}

/** Runs the CLI on `argv` (as `process.argv`) and resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const out = new Output({ json: argv.includes("--json"), debug: argv.includes("--debug") });
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (
      error instanceof CommanderError &&
      ["commander.helpDisplayed", "commander.version", "commander.help"].includes(error.code)
    ) {
      return EXIT.ok;
    }
    if (error instanceof CommanderError && error.code === "commander.executeSubCommandAsync") return EXIT.ok;
    return out.error(error);
  }
}
