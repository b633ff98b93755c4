import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { KPartyError } from "../errors/index.ts";
import { childEnv } from "../util/child-env.ts";
import { projectRoot } from "./hardhat-command.ts";

/** Why Hardhat's native runtime (EDR) does not load on this Node, in a fresh process; null when it loads. */
export function edrProblem(root: string = projectRoot): string | null {
  const probe = spawnSync(process.execPath, ["-e", 'require("@nomicfoundation/edr")'], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
    env: childEnv({ program: "foreign" }),
  });
  if (probe.status === 0) return null;
  const lines = (probe.stderr || probe.error?.message || "").trim().split("\n");
  // the error's own line, not the stack's first (a file position)
  return lines.find((l) => /^\w*Error:/.test(l)) ?? lines[0] ?? `exit ${probe.status}`;
}

/** The project's setup step (what `npm run setup` runs) on this Node, its output on stderr; true when it succeeded. */
export function runSetup(root: string = projectRoot): boolean {
  const script = join(root, "scripts", "ensure-platform.mjs");
  if (!existsSync(script)) return false; // kparty installed as a package: no setup step to run
  // npm runs install scripts of dependencies: no KPARTY_* variable (passphrase, deployer key) reaches them
  const run = spawnSync(process.execPath, [script], {
    cwd: root,
    stdio: ["ignore", 2, 2],
    timeout: 300_000,
    env: childEnv({ program: "foreign" }),
  });
  return run.status === 0;
}

/**
 * After Hardhat failed to start: false when its native runtime (EDR) loads, so the failure is
 * something else; true once the binding npm skipped (npm on Node < 22 skips it silently) has
 * been installed by the project's setup step. `config_invalid`, naming the fix, when it cannot
 * be (kparty installed as a package, or the setup failed).
 */
export function repairEdr(probe: () => string | null = edrProblem, setup: () => boolean = runSetup): boolean {
  const problem = probe();
  if (problem === null) return false;
  if (setup() && probe() === null) return true;
  throw new KPartyError("config_invalid", `Hardhat's native runtime (EDR) does not load here: ${problem}`, {
    details: {
      hint: "run `npm run setup` in the kparty checkout, or install kparty with npm running on Node 22 or later (npm on an older Node skips the platform binding)",
    },
  });
}
