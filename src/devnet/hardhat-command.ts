import type { SpawnOptions } from "node:child_process";
import { fileURLToPath } from "node:url";
import { childEnv } from "../util/child-env.ts";

const projectRoot = fileURLToPath(new URL("../../", import.meta.url));

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
  return {
    file: process.execPath,
    args: [`${projectRoot}node_modules/hardhat/dist/src/cli.js`, ...args],
    options: {
      cwd: projectRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: childEnv({ program: "foreign", set: { FORCE_COLOR: "0" }, parent }),
    },
  };
}
