import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KPartyError } from "../src/errors/index.ts";
import { openAgentDatabase } from "./store.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-store-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

async function refusal(p: Promise<unknown>) {
  try {
    await p;
  } catch (error) {
    if (error instanceof KPartyError) return { code: error.code, message: error.shortMessage };
    throw error;
  }
  throw new Error("opened");
}

describe("one process per agent data dir", () => {
  it("refuses a data dir another live process holds with data_dir_in_use, and takes over once it is gone", async () => {
    const file = join(dir, "agent.sqlite");
    const other = spawn("sleep", ["30"], { stdio: "ignore" });
    const exited = new Promise((resolve) => other.once("exit", resolve));
    try {
      await writeFile(`${file}.lock`, String(other.pid));
      expect(await refusal(openAgentDatabase(file))).toEqual({
        code: "data_dir_in_use",
        message: `${file} is in use by process ${other.pid}`,
      });
    } finally {
      other.kill("SIGKILL");
      await exited;
    }
    const db = await openAgentDatabase(file);
    expect(await refusal(openAgentDatabase(file))).toEqual({
      code: "data_dir_in_use",
      message: `${file} is in use by this process`,
    });
    await db.destroy();
  });
});

describe("the agent database on PostgreSQL", () => {
  it("fails closed when the server cannot be reached: state_unavailable, the password never in the message", async () => {
    const { freePort } = await import("../src/devnet/index.ts");
    const port = await freePort();
    const url = `postgres://kparty:s3cret-password@127.0.0.1:${port}/issuer`;
    const error = await openAgentDatabase(url).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KPartyError);
    expect({ code: (error as KPartyError).code, message: (error as KPartyError).shortMessage }).toEqual({
      code: "state_unavailable",
      message: `cannot open the agent database postgres://127.0.0.1:${port}/issuer`,
    });
    expect(JSON.stringify((error as KPartyError).details)).not.toContain("s3cret");
  });
});
