import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { JsonRpcProvider } from "ethers";
import type { AgentHandle, HolderAgent, IssuerAgent } from "../../agent/index.ts";
import { type ChainClient, createChainClient, createProvider, type Deployment } from "../chain/index.ts";
import { KPartyError } from "../errors/index.ts";
import { writeFileAtomic } from "../util/atomic-file.ts";
import { type Config, loadConfig } from "./config.ts";
import { Output } from "./output.ts";
import { readPassphrase } from "./passphrase.ts";
import { databaseUrl } from "./state.ts";

/** Options every command accepts. */
export interface GlobalOptions {
  config?: string;
  dataDir?: string;
  rpc?: string;
  json?: boolean;
  debug?: boolean;
  /** The agent database (`--database` of the commands that open an agent, {@link AGENT_DATABASE}). */
  database?: string;
}

/**
 * `--database` of every command that opens this party's agent: its data store on PostgreSQL
 * (see `AgentConfig.database`), else `KPARTY_AGENT_DATABASE_URL`, else the embedded file.
 */
export const AGENT_DATABASE = [
  "--database <url>",
  "the agent's data store in PostgreSQL (postgres://…; default: KPARTY_AGENT_DATABASE_URL, else <data dir>/agent.sqlite)",
] as const;

/** A deployment file: the deployment plus where its chain was served when it was written. */
export interface DeploymentFile extends Deployment {
  rpcUrl: string;
}

const ZERO = "0x0000000000000000000000000000000000000000";

/**
 * What a command runs with: the configuration in force, its output, and the chain and
 * agents it opens on demand (each once). `close()` releases everything opened.
 */
export class CliContext {
  readonly config: Config;
  readonly out: Output;
  readonly #cleanups: (() => Promise<unknown> | unknown)[] = [];
  #provider: JsonRpcProvider | undefined;
  #deployment: DeploymentFile | undefined;
  #passphrase: string | undefined;
  readonly #database: string | undefined;

  constructor(options: GlobalOptions) {
    this.out = new Output({ json: options.json === true, debug: options.debug === true });
    this.#database = options.database;
    this.config = loadConfig({
      explicitFile: options.config,
      flags: {
        ...(options.dataDir ? { dataDir: options.dataDir } : {}),
        ...(options.rpc ? { rpcUrl: options.rpc } : {}),
      },
    });
  }

  /** Registers something to release when the command ends. */
  onClose(fn: () => Promise<unknown> | unknown): void {
    this.#cleanups.push(fn);
  }

  async close(): Promise<void> {
    for (const fn of this.#cleanups.splice(0).reverse()) {
      try {
        await fn();
      } catch {
        // keep releasing the rest
      }
    }
  }

  /** The deployment file named by the configuration; `config_invalid` when there is none. */
  deployment(): DeploymentFile {
    if (this.#deployment) return this.#deployment;
    const file = this.config.deployment;
    if (!existsSync(file)) {
      throw new KPartyError("config_invalid", `no deployment file at ${file}`, {
        details: { hint: "start a local chain with `kparty chain up`, or deploy with `kparty deploy`" },
      });
    }
    let parsed: DeploymentFile;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8")) as DeploymentFile;
    } catch (cause) {
      throw new KPartyError("config_invalid", `deployment file ${file} is not valid JSON`, { cause });
    }
    const addresses = parsed?.contracts;
    if (
      !Number.isSafeInteger(parsed?.chainId) ||
      !addresses ||
      !["EthereumDIDRegistry", "ConsortiumRegistry", "CredentialRegistry"].every((k) =>
        /^0x[0-9a-fA-F]{40}$/.test(String(addresses[k as keyof typeof addresses])),
      )
    ) {
      throw new KPartyError("config_invalid", `deployment file ${file} lacks chainId or contract addresses`);
    }
    if (parsed.chainId !== this.config.chainId) {
      throw new KPartyError(
        "config_invalid",
        `deployment ${file} is on chain ${parsed.chainId}, the configuration says ${this.config.chainId}`,
        { details: { hint: "set chainId in the config or KPARTY_CHAIN_ID" } },
      );
    }
    this.#deployment = parsed;
    return parsed;
  }

  /** Writes a deployment file where the configuration expects it. */
  async saveDeployment(deployment: Deployment, rpcUrl: string): Promise<string> {
    const file = this.config.deployment;
    await mkdir(dirname(file), { recursive: true });
    await writeFileAtomic(file, `${JSON.stringify({ ...deployment, rpcUrl }, null, 2)}\n`, 0o644);
    this.#deployment = { ...deployment, rpcUrl };
    return file;
  }

  /**
   * The key that encrypts this data dir's private keys at rest (its `keyring.json`, see
   * `openKeyring`), from the passphrase the agent was opened with or read now. Other keys kept
   * beside the agent's (the session's DPoP key) are encrypted with it, the same way.
   */
  async keyringKey(): Promise<string> {
    const dataDir = this.config.dataDir;
    const passphrase = this.#passphrase ?? (await readPassphrase({ label: dataDir, confirm: false }));
    this.#passphrase = passphrase;
    const { openKeyring } = await import("../../agent/keyring.ts");
    return openKeyring(join(dataDir, "keyring.json"), passphrase);
  }

  /** A provider for the configured chain (the RPC URL of the configuration). */
  provider(): JsonRpcProvider {
    if (!this.#provider) {
      const provider = createProvider(this.config.rpcUrl, this.config.chainId);
      this.#provider = provider;
      this.onClose(() => provider.destroy());
    }
    return this.#provider;
  }

  chain(): ChainClient {
    return createChainClient({ provider: this.provider(), deployment: this.deployment() });
  }

  /**
   * Opens this party's agent (keys in `dataDir`, unlocked with the passphrase; its data store in
   * PostgreSQL with `--database` or `KPARTY_AGENT_DATABASE_URL`, else in `dataDir`). Without a
   * deployment yet (`allowUndeployed`), DIDs can still be created and listed: they depend
   * only on the chain id.
   */
  async agent(role: "issuer", options?: { allowUndeployed?: boolean }): Promise<AgentHandle<IssuerAgent>>;
  async agent(role: "holder", options?: { allowUndeployed?: boolean }): Promise<AgentHandle<HolderAgent>>;
  async agent(
    role: "issuer" | "holder",
    options: { allowUndeployed?: boolean } = {},
  ): Promise<AgentHandle<IssuerAgent> | AgentHandle<HolderAgent>> {
    const dataDir = this.config.dataDir;
    const deployment: Deployment =
      options.allowUndeployed && !existsSync(this.config.deployment)
        ? {
            chainId: this.config.chainId,
            contracts: { EthereumDIDRegistry: ZERO, ConsortiumRegistry: ZERO, CredentialRegistry: ZERO },
            deployedAtBlock: 0,
          }
        : this.deployment();
    const database = databaseUrl(this.#database, "KPARTY_AGENT_DATABASE_URL");
    const fresh = !existsSync(join(dataDir, "keyring.json"));
    const passphrase = await readPassphrase({ label: dataDir, confirm: fresh });
    this.#passphrase = passphrase;
    const chain = { provider: this.provider(), deployment };
    const where = database ? { database } : {};
    // Veramo, TypeORM and sql.js take a second to load: only commands that open an agent pay for it.
    const { createKPartyAgent } = await import("../../agent/index.ts");
    const handle =
      role === "issuer"
        ? await createKPartyAgent({ role, dataDir, passphrase, chain, ...where })
        : await createKPartyAgent({ role, dataDir, passphrase, chain, ...where });
    this.onClose(() => handle.close());
    return handle;
  }
}

/**
 * The DID a command acts as: `as` (a DID or an alias this agent manages), or the agent's
 * only DID. `not_found` when it does not manage it; `invalid_argument` when several could be meant.
 */
export async function identityOf(
  agent: IssuerAgent | HolderAgent,
  as: string | undefined,
  dataDir: string,
): Promise<{ did: string; alias: string | undefined }> {
  const ids = await agent.didManagerFind();
  if (as) {
    const hit = ids.find((id) => id.did === as || id.alias === as);
    if (!hit) {
      throw new KPartyError("not_found", `${as} is not a DID of the agent in ${dataDir}`, {
        details: { hint: "see `kparty did list`" },
      });
    }
    return { did: hit.did, alias: hit.alias };
  }
  const [only, ...more] = ids;
  if (!only) {
    throw new KPartyError("not_found", `the agent in ${dataDir} has no DID yet`, {
      details: { hint: "create one with `kparty did create`" },
    });
  }
  if (more.length > 0) {
    throw new KPartyError("invalid_argument", `the agent in ${dataDir} has ${ids.length} DIDs`, {
      details: { hint: "choose one with --as <did or alias>" },
    });
  }
  return { did: only.did, alias: only.alias };
}
