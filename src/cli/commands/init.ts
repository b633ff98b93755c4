import { resolve } from "node:path";
import type { Command } from "commander";
import { redactUrl } from "../../util/redact.ts";
import { checkConfig, DEFAULT_CONFIG_FILE, DEFAULTS, writeConfig } from "../config.ts";
import { Output } from "../output.ts";
import { positiveInt } from "../run.ts";

interface InitOptions {
  config?: string;
  json?: boolean;
  debug?: boolean;
  rpc?: string;
  chainId?: number;
  deployment?: string;
  dataDir?: string;
  gateway?: string;
  force?: boolean;
}

export function registerInit(program: Command): void {
  program
    .command("init")
    .description("write a config file (kparty.json) with defaults for a local chain and gateway")
    .option("--chain-id <id>", "the chain's id", positiveInt("--chain-id"))
    .option("--deployment <file>", "where the deployment file is written and read", DEFAULTS.deployment)
    .option("--gateway <url>", "the gateway participants talk to", DEFAULTS.gateway.url)
    .option("--force", "replace an existing config file")
    .addHelpText(
      "after",
      `
Examples:
  $ kparty init
  $ kparty init --config org-a.json --data-dir .kparty/org-a
  $ kparty init --rpc https://rpc.example.org --chain-id 11155111 --force

Environment variables override the file: KPARTY_RPC_URL, KPARTY_CHAIN_ID,
KPARTY_DEPLOYMENT, KPARTY_DATA_DIR, KPARTY_GATEWAY_URL, KPARTY_GATEWAY_HOST,
KPARTY_GATEWAY_PORT, KPARTY_GATEWAY_DOMAIN, KPARTY_GATEWAY_TRUST_PROXY,
KPARTY_GATEWAY_CONFIRMATIONS; flags override both.`,
    )
    .action(async (_options: unknown, command: Command) => {
      const options = command.optsWithGlobals() as InitOptions;
      const out = new Output({ json: options.json === true, debug: options.debug === true });
      const file = resolve(options.config ?? process.env.KPARTY_CONFIG ?? DEFAULT_CONFIG_FILE);
      const content = {
        ...structuredClone(DEFAULTS),
        ...(options.rpc ? { rpcUrl: options.rpc } : {}),
        ...(options.chainId ? { chainId: options.chainId } : {}),
        ...(options.dataDir ? { dataDir: options.dataDir } : {}),
        deployment: options.deployment ?? DEFAULTS.deployment,
      };
      if (options.gateway) content.gateway.url = options.gateway;
      checkConfig(content, "the options");
      await writeConfig(file, content, options.force === true);
      // the file keeps the URL as given; what is printed names the node without its credentials
      const rpcUrl = redactUrl(content.rpcUrl);
      out.result({ config: file, ...content, rpcUrl }, [
        `wrote ${file}`,
        `  rpcUrl      ${rpcUrl}`,
        `  chainId     ${content.chainId}`,
        `  deployment  ${content.deployment}`,
        `  dataDir     ${content.dataDir}`,
        `  gateway     ${content.gateway.url}`,
      ]);
    });
}
