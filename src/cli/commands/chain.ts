import type { Command } from "commander";
import { type JsonRpcProvider, type Signer, Wallet } from "ethers";
import {
  createProvider,
  type Deployment,
  deployKParty,
  type FoundingMember,
  getBalance,
  getChainStatus,
  getQuorum,
  listMembers,
  listProposals,
  sendEther,
} from "../../chain/index.ts";
import { ethrNetworkName, parseDidEthr } from "../../credential/index.ts";
// From the modules themselves: devnet/index.ts also loads the Veramo agent, which these commands do not need.
import { startHardhatNode } from "../../devnet/hardhat-node.ts";
import { KPartyError } from "../../errors/index.ts";
import { redactUrl } from "../../util/redact.ts";
import { accountOf, ethAmountArg } from "../args.ts";
import type { CliContext } from "../context.ts";
import { table } from "../output.ts";
import { positiveInt, readyUntilSignal, run } from "../run.ts";

/** `Name=did:ethr:…` → a founding member, checked against the chain the DID must live on. */
function parseFounder(value: string, chainId: number): FoundingMember {
  const at = value.lastIndexOf("=");
  const name = at > 0 ? value.slice(0, at).trim() : "";
  const did = at > 0 ? value.slice(at + 1).trim() : "";
  if (!name || !did) {
    throw new KPartyError("invalid_argument", `--founder must be NAME=DID, got "${value}"`);
  }
  let parsed: { network: string; account: string };
  try {
    parsed = parseDidEthr(did);
  } catch {
    throw new KPartyError("invalid_argument", `founder ${name}: not a did:ethr DID: ${did}`);
  }
  if (parsed.network !== ethrNetworkName(chainId)) {
    throw new KPartyError(
      "invalid_argument",
      `founder ${name}: ${did} is on network ${parsed.network}, the chain is ${ethrNetworkName(chainId)}`,
    );
  }
  return { name, did, account: parsed.account };
}

function checkQuorum(quorum: number | undefined, founders: number): number {
  const q = quorum ?? founders;
  if (founders === 0) {
    throw new KPartyError("invalid_argument", "at least one --founder NAME=DID is required", {
      details: { hint: "create members' DIDs first with `kparty did create`" },
    });
  }
  if (q > founders)
    throw new KPartyError("invalid_argument", `--quorum ${q} exceeds the ${founders} founders`);
  return q;
}

/** Funds the founders (when `fund` is given), then deploys: one progress step per transaction batch. */
async function deployWithProgress(
  ctx: CliContext,
  deployer: Signer,
  founders: FoundingMember[],
  quorum: number,
  fund?: bigint,
): Promise<Deployment> {
  const steps = (fund ? founders.length : 0) + 1;
  const progress = ctx.out.progress("funding founders and deploying contracts", steps);
  try {
    let done = 0;
    if (fund) {
      for (const f of founders) {
        await sendEther(deployer, { to: f.account, value: fund });
        progress.tick(++done);
      }
    }
    const deployment = await deployKParty({ deployer, founders, quorum });
    progress.tick(++done);
    return deployment;
  } finally {
    progress.done();
  }
}

function deploymentLines(file: string, rpcUrl: string, deployment: Deployment, founders: FoundingMember[]) {
  return [
    `chain ${deployment.chainId} at ${rpcUrl}, deployed in block ${deployment.deployedAtBlock}`,
    ...table(Object.entries(deployment.contracts).map(([name, address]) => [`  ${name}`, address])),
    `founders: ${founders.map((f) => f.name).join(", ")}`,
    `deployment written to ${file}`,
  ];
}

/** The chain id a JSON-RPC endpoint serves; `registry_unavailable` if it does not answer. */
async function chainIdAt(rpcUrl: string): Promise<number> {
  try {
    const response = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(5_000),
    });
    const body = (await response.json()) as { result?: string };
    if (typeof body.result !== "string") throw new Error(`no chain id in ${JSON.stringify(body)}`);
    return Number(body.result);
  } catch (cause) {
    throw new KPartyError("registry_unavailable", `no JSON-RPC answer from ${redactUrl(rpcUrl)}`, { cause });
  }
}

function deployerFromEnv(provider: JsonRpcProvider): Wallet | null {
  const key = process.env.KPARTY_DEPLOYER_KEY;
  if (!key) return null;
  try {
    return new Wallet(key.startsWith("0x") ? key : `0x${key}`, provider);
  } catch {
    // never echo the value
    throw new KPartyError("config_invalid", "KPARTY_DEPLOYER_KEY is not a valid private key", {
      details: { hint: "it must be 32 bytes as 64 hex digits, with or without 0x" },
    });
  }
}

interface ChainUpOptions {
  port?: number;
  founder: string[];
  quorum?: number;
  fundEth: string;
}

/** The port `chain up` serves: --port, else rpcUrl's; `config_invalid` unless the configuration is a local chain's. */
function localChainPort(ctx: CliContext, port: number | undefined): number {
  if (ctx.config.chainId !== 31337) {
    throw new KPartyError(
      "config_invalid",
      `a local chain has id 31337, the configuration says ${ctx.config.chainId}`,
    );
  }
  const rpc = new URL(ctx.config.rpcUrl);
  if (!["127.0.0.1", "localhost"].includes(rpc.hostname)) {
    throw new KPartyError(
      "config_invalid",
      `chain up serves 127.0.0.1, but rpcUrl is ${redactUrl(ctx.config.rpcUrl)}`,
      {
        details: {
          hint: "use `kparty deploy` for a remote network, or set rpcUrl to http://127.0.0.1:<port>",
        },
      },
    );
  }
  return port ?? Number(rpc.port || 8545);
}

async function chainUp(ctx: CliContext, options: ChainUpOptions): Promise<void> {
  const founders = options.founder.map((f) => parseFounder(f, 31337));
  const quorum = checkQuorum(options.quorum, founders.length);
  const port = localChainPort(ctx, options.port);
  await assertPortFree(port, "--port or the port of rpcUrl");
  const amount = ethAmountArg(options.fundEth);
  ctx.out.info(`starting a local chain on 127.0.0.1:${port}…`);
  const node = await startHardhatNode({ port });
  ctx.onClose(() => node.stop());
  const provider = createProvider(node.url, node.chainId);
  ctx.onClose(() => provider.destroy());
  const funder = await provider.getSigner(0);
  const deployment = await deployWithProgress(ctx, funder, founders, quorum, amount);
  const file = await ctx.saveDeployment(deployment, node.url);
  const signal = await readyUntilSignal(
    ctx.out,
    { rpcUrl: node.url, deploymentFile: file, ...deployment, founders, quorum, pid: process.pid },
    [...deploymentLines(file, node.url, deployment, founders), "running; Ctrl-C stops the chain"],
  );
  ctx.out.info(`${signal}: stopping the chain`);
}

function chainUpCommand(chain: Command): void {
  chain
    .command("up")
    .description(
      "start a local chain on 127.0.0.1, fund the founders and deploy all contracts; runs until Ctrl-C",
    )
    .option("--port <port>", "JSON-RPC port (default: the port of rpcUrl)", positiveInt("--port", 65535))
    .option(
      "--founder <name=did>",
      "a founding member (repeat for each)",
      (v, acc: string[]) => [...acc, v],
      [],
    )
    .option("--quorum <n>", "approvals a proposal needs (default: all founders)", positiveInt("--quorum"))
    .option("--fund-eth <eth>", "ETH each founder receives for gas", "10")
    .addHelpText(
      "after",
      `
The chain lives in memory: stopping it (Ctrl-C, SIGTERM) ends it, and the next
\`kparty chain up\` deploys afresh and rewrites the deployment file.

Examples:
  $ kparty chain up --founder "Org A=did:ethr:0x7a69:0x…" --founder "Org B=did:ethr:0x7a69:0x…" --quorum 2
  $ kparty chain up --port 8546 --founder "Solo=$(kparty did create --alias solo)" &`,
    )
    .action(run(chainUp));
}

async function chainFund(ctx: CliContext, options: { eth: string }, target: string): Promise<void> {
  const to = accountOf(target);
  const value = ethAmountArg(options.eth);
  await chainIdAt(ctx.config.rpcUrl);
  const provider = ctx.provider();
  const funder = deployerFromEnv(provider) ?? (await unlockedAccount(provider));
  const { transactionHash, blockNumber } = await sendEther(funder, { to, value });
  const balance = await getBalance(provider, to);
  ctx.out.result(
    { account: to, transactionHash, blockNumber, balanceWei: balance.toString() },
    `sent ${options.eth} ETH to ${to} in block ${blockNumber}`,
  );
}

function chainFundCommand(chain: Command): void {
  chain
    .command("fund")
    .description(
      "send ETH for gas to a DID's account (from KPARTY_DEPLOYER_KEY, or the node's first unlocked account)",
    )
    .argument("<did-or-address>", "who receives it")
    .option("--eth <eth>", "how much", "10")
    .addHelpText("after", `\nExamples:\n  $ kparty chain fund did:ethr:0x7a69:0x… --eth 5`)
    .action(run(chainFund));
}

async function deploy(ctx: CliContext, options: { founder: string[]; quorum?: number }): Promise<void> {
  const chainId = await chainIdAt(ctx.config.rpcUrl);
  if (chainId !== ctx.config.chainId) {
    throw new KPartyError(
      "config_invalid",
      `${redactUrl(ctx.config.rpcUrl)} serves chain ${chainId}, the configuration says ${ctx.config.chainId}`,
      { details: { hint: "set chainId in the config or KPARTY_CHAIN_ID" } },
    );
  }
  const founders = options.founder.map((f) => parseFounder(f, chainId));
  const quorum = checkQuorum(options.quorum, founders.length);
  const deployer = deployerFromEnv(ctx.provider());
  if (!deployer) {
    throw new KPartyError("config_invalid", "KPARTY_DEPLOYER_KEY is not set", {
      details: { hint: "export KPARTY_DEPLOYER_KEY with the private key of a funded account" },
    });
  }
  const deployment = await deployWithProgress(ctx, deployer, founders, quorum);
  // the deployment file is shared with other parties: it names the node without its credentials
  const rpcUrl = redactUrl(ctx.config.rpcUrl);
  const file = await ctx.saveDeployment(deployment, rpcUrl);
  ctx.out.result(
    { rpcUrl, deploymentFile: file, ...deployment, founders, quorum },
    deploymentLines(file, rpcUrl, deployment, founders),
  );
}

function deployCommand(program: Command): void {
  program
    .command("deploy")
    .description(
      "deploy all contracts to the EVM JSON-RPC network of --rpc (or rpcUrl), paid by KPARTY_DEPLOYER_KEY",
    )
    .option(
      "--founder <name=did>",
      "a founding member (repeat for each)",
      (v, acc: string[]) => [...acc, v],
      [],
    )
    .option("--quorum <n>", "approvals a proposal needs (default: all founders)", positiveInt("--quorum"))
    .addHelpText(
      "after",
      `
The deployer's private key comes from KPARTY_DEPLOYER_KEY and is never printed.
Founders need their own ETH for gas on a public network.

Examples:
  $ KPARTY_DEPLOYER_KEY=0x… kparty deploy --rpc https://rpc.example.org --founder "Org A=did:ethr:0xaa36a7:0x…"
  $ KPARTY_DEPLOYER_KEY=0x… kparty deploy --rpc http://127.0.0.1:8545 --founder "Org A=did:ethr:0x7a69:0x…"`,
    )
    .action(run(deploy));
}

async function status(ctx: CliContext): Promise<void> {
  const client = ctx.chain();
  const { chainId, blockNumber } = await getChainStatus(client);
  const [members, proposals, quorum] = await Promise.all([
    listMembers(client),
    listProposals(client),
    getQuorum(client),
  ]);
  const now = Date.now();
  const open = proposals.filter((p) => !p.executed && p.expiresAt.getTime() > now);
  ctx.out.result(
    {
      rpcUrl: ctx.config.rpcUrl,
      chainId,
      blockNumber,
      contracts: client.deployment.contracts,
      deployedAtBlock: client.deployment.deployedAtBlock,
      quorum,
      members,
      counts: { members: members.length, proposals: proposals.length, openProposals: open.length },
    },
    [
      `chain ${chainId} at ${ctx.config.rpcUrl}, block ${blockNumber}`,
      ...table(Object.entries(client.deployment.contracts).map(([n, a]) => [`  ${n}`, a])),
      `members: ${members.length} (quorum ${quorum}); proposals: ${proposals.length}, ${open.length} open`,
      ...table(members.map((m) => [`  ${m.name}`, m.did])),
    ],
  );
}

export function registerChain(program: Command): void {
  const chain = program
    .command("chain")
    .description("run a local chain for development")
    .addHelpText(
      "after",
      `\nExamples:\n  $ kparty chain up --founder "Org A=did:ethr:0x7a69:0x…" &\n  $ kparty chain fund did:ethr:0x7a69:0x…`,
    );
  chainUpCommand(chain);
  chainFundCommand(chain);
  deployCommand(program);
  program
    .command("status")
    .description("the chain, the contracts, the members and the open proposals")
    .addHelpText("after", `\nExamples:\n  $ kparty status\n  $ kparty status --json`)
    .action(run(status));
}

/** Refuses a port another process listens on, before starting anything on it. */
export async function assertPortFree(port: number, what: string): Promise<void> {
  const { createServer } = await import("node:net");
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new KPartyError("invalid_argument", `port ${port} on 127.0.0.1 is in use (${error.code})`, {
          details: { hint: `choose another with ${what}, or stop what listens there` },
        }),
      ),
    );
    server.listen(port, "127.0.0.1", () => server.close(() => resolve()));
  });
}

async function unlockedAccount(provider: JsonRpcProvider): Promise<Signer> {
  const accounts = (await provider.send("eth_accounts", [])) as string[];
  if (accounts.length === 0) {
    throw new KPartyError(
      "config_invalid",
      "the node has no unlocked account and KPARTY_DEPLOYER_KEY is not set",
      {
        details: { hint: "export KPARTY_DEPLOYER_KEY with the private key of a funded account" },
      },
    );
  }
  return provider.getSigner(accounts[0]);
}
