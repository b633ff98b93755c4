import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const projectRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Whether kparty's contract artifacts have been compiled. */
export function contractsBuilt(): boolean {
  return ["ConsortiumRegistry", "CredentialRegistry"].every((name) =>
    existsSync(`${projectRoot}artifacts/contracts/${name}.sol/${name}.json`),
  );
}

/**
 * Compiles the contracts with Hardhat (offline, with the bundled solc) unless their
 * artifacts exist. Resolves when they do; rejects with Hardhat's output if compilation fails.
 *
 * @example
 * ```ts
 * await ensureContractsBuilt();
 * const deployment = await deployKParty({ … });
 * ```
 */
export async function ensureContractsBuilt(): Promise<void> {
  if (contractsBuilt()) return;
  const child = spawn(
    process.execPath,
    [`${projectRoot}node_modules/hardhat/dist/src/cli.js`, "build", "--quiet"],
    { cwd: projectRoot, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" } },
  );
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0 || !contractsBuilt()) {
    throw new Error(`compiling the contracts failed (exit ${code}):\n${output.slice(-2000)}`);
  }
}
