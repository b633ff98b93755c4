import type { SpawnOptions } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { childEnv } from "../util/child-env.ts";

export const projectRoot = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Hardhat's CLI wherever npm put it (the project's node_modules, or beside kparty's own folder
 * when kparty is installed as a package), and the config to run it with: the checkout's
 * hardhat.config.ts, found by Hardhat itself; in the package, dist/hardhat.config.js, named
 * explicitly since Hardhat would otherwise prefer any hardhat.config.ts above it.
 */
function hardhatCli(): { cli: string; config: string[] } {
  const cli = `${dirname(createRequire(import.meta.url).resolve("hardhat/package.json"))}/dist/src/cli.js`;
  const compiled = `${projectRoot}hardhat.config.js`;
  const config =
    existsSync(`${projectRoot}hardhat.config.ts`) || !existsSync(compiled) ? [] : ["--config", compiled];
  return { cli, config };
}

/** How kparty starts Hardhat: the program, its arguments and the spawn options. */
export interface HardhatCommand {
  file: string;
  args: string[];
  options: SpawnOptions & { cwd: string; env: Record<string, string> };
}

/**
 * The command that runs Hardhat's CLI with `args` (`node …`, `build …`) on this Node, in the
 * project folder, its output piped. Its environment is `parent`'s without any KPARTY_*
 * variable ({@link childEnv}, "foreign"): Hardhat needs neither the key passphrase nor the
 * deployer key.
 */
export function hardhatCommand(
  args: readonly string[],
  parent: NodeJS.ProcessEnv = process.env,
): HardhatCommand {
  const { cli, config } = hardhatCli();
  return {
    file: process.execPath,
    args: [cli, ...config, ...args],
    options: {
      cwd: projectRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: childEnv({ program: "foreign", set: { FORCE_COLOR: "0" }, parent }),
    },
  };
}
