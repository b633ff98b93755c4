import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";

/**
 * The file a benchmark script was asked to write its result to (`--out <file>`), or null.
 * docs cite figures from such files (bench/results/*.json) and test/docs.test.ts reads them.
 */
export function resultFileArgument(argv = process.argv): string | null {
  const at = argv.indexOf("--out");
  if (at < 0) return null;
  const file = argv[at + 1];
  if (!file || file.startsWith("--")) throw new TypeError("--out needs a file name");
  return resolve(file);
}

/** The commit this checkout is at, with `-dirty` when it has uncommitted changes (null: not a git checkout). */
function commitOfCheckout(): string | null {
  try {
    const git = (...args: string[]) => execFileSync("git", args, { encoding: "utf8" }).trim();
    return `${git("rev-parse", "--short", "HEAD")}${git("status", "--porcelain", "--untracked-files=no") ? "-dirty" : ""}`;
  } catch {
    return null;
  }
}

/**
 * Writes `result` to the `--out` file, if one was given, as pretty JSON under a `run` record
 * of where it came from (script, time, commit, Node, the script's flags).
 */
export async function writeResultFile(script: string, result: object): Promise<void> {
  const file = resultFileArgument();
  if (!file) return;
  const run = {
    script,
    date: new Date().toISOString(),
    commit: commitOfCheckout(),
    node: process.version,
    flags: process.argv.slice(2).filter((a, i, all) => a !== "--out" && all[i - 1] !== "--out"),
  };
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify({ run, ...result }, null, 2)}\n`);
}
