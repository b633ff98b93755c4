import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { hardhatCommand } from "./hardhat-command.ts";

const projectRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Whether kparty's contract artifacts have been compiled. */
export function contractsBuilt(): boolean {
  return ["ConsortiumRegistry", "CredentialRegistry"].every((name) =>
    existsSync(`${projectRoot}artifacts/contracts/${name}.sol/${name}.json`),
  );
}

/**
 * Compiles the contracts with Hardhat (offline, with the bundled solc) unless their
 * artifacts exist, in a child process without any KPARTY_* variable ({@link hardhatCommand}).
 * Resolves when they do; rejects with Hardhat's output if compilation fails.
 *
 * @example
 * ```ts
 * await ensureContractsBuilt();
 * const deployment = await deployKParty({ … });
 * ```
 */
export async function ensureContractsBuilt(): Promise<void> {
  if (contractsBuilt()) return;
  const command = hardhatCommand(["build", "--quiet"]);
  const child = spawn(command.file, command.args, command.options);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0 || !contractsBuilt()) {
    throw new Error(`compiling the contracts failed (exit ${code}):\n${output.slice(-2000)}`);
  }
}
