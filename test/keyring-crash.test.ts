import { fork } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openKeyring } from "../agent/keyring.ts";
import { childEnv } from "../src/util/child-env.ts";
import { writeLegacyKeyring } from "./fixtures/legacy-keyring.ts";

const PASSPHRASE = "correct horse battery staple";
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-keyring-crash-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Opens `file` in a child process, SIGKILLed `killAfterMs` after it starts to (never when undefined). */
async function openInChild(
  file: string,
  killAfterMs?: number,
): Promise<{ key?: string; signal: string | null }> {
  const child = fork(fileURLToPath(new URL("./fixtures/keyring-process.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx", "--disable-warning=ExperimentalWarning"],
    env: childEnv({
      program: "kparty",
      set: { KPARTY_KEYRING_TEST: JSON.stringify({ file, passphrase: PASSPHRASE }) },
    }),
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  let key: string | undefined;
  child.on("message", (m: { type: string; key?: string }) => {
    if (m.type === "opening" && killAfterMs !== undefined)
      setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    if (m.type === "opened") key = m.key;
  });
  const signal = await new Promise<string | null>((resolve) => child.once("exit", (_code, s) => resolve(s)));
  return { ...(key ? { key } : {}), signal };
}

describe("a re-encryption killed at any point (SIGKILL, real processes)", () => {
  it("leaves either the old keyring or the new one, and either unlocks to the same key", async () => {
    // kill points across the re-encryption (scrypt N = 2^15, scrypt N = 2^17, write, rename), and one run not killed
    for (const killAfterMs of [0, 50, 150, 300, 450, 600, 900, undefined]) {
      const file = join(dir, `keyring-${killAfterMs ?? "whole"}.json`);
      const legacyKey = await writeLegacyKeyring(file, PASSPHRASE);
      const legacy = await readFile(file, "utf8");
      const run = await openInChild(file, killAfterMs);
      const after = await readFile(file, "utf8");
      if (after !== legacy) expect(JSON.parse(after)).toMatchObject({ version: 2, N: 131072, r: 8, p: 1 });
      if (killAfterMs === undefined) {
        expect(run).toEqual({ key: legacyKey, signal: null });
        expect(JSON.parse(after)).toMatchObject({ version: 2, N: 131072 });
      }
      expect(await openKeyring(file, PASSPHRASE)).toBe(legacyKey);
    }
  });
});
