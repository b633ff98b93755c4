import { existsSync, readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { type LocalChain, startHardhatNode } from "../src/devnet/index.ts";

/** A process's environment as the kernel holds it (what the process was started with). */
const environment = (pid: number) =>
  Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );

const SECRETS = {
  KPARTY_PASSPHRASE: "a passphrase only kparty may read",
  KPARTY_DEPLOYER_KEY: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  KPARTY_RPC_URL: "http://127.0.0.1:1/v3/apikey0123456789",
};
const onLinux = existsSync("/proc/self/environ");
if (!onLinux) console.warn("test/child-env.test.ts: skipped, no /proc/<pid>/environ on this platform");

let node: LocalChain | undefined;
afterAll(async () => {
  await node?.stop();
});

describe.skipIf(!onLinux)("the hardhat node child's environment (/proc/<pid>/environ)", () => {
  it("has no KPARTY_PASSPHRASE, KPARTY_DEPLOYER_KEY or other KPARTY_* variable though this process has them", async () => {
    const saved = Object.fromEntries(Object.keys(SECRETS).map((name) => [name, process.env[name]]));
    Object.assign(process.env, SECRETS);
    try {
      node = await startHardhatNode();
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
    const cmdline = readFileSync(`/proc/${node.pid}/cmdline`, "utf8").split("\0");
    expect(cmdline.slice(2, 4)).toEqual(["node", "--hostname"]);
    const env = environment(node.pid);
    // read correctly: what the child was given is there
    expect(env.FORCE_COLOR).toBe("0");
    expect(env.PATH).toBe(process.env.PATH);
    expect(Object.keys(env).filter((name) => name.startsWith("KPARTY_"))).toEqual([]);
    const raw = readFileSync(`/proc/${node.pid}/environ`, "utf8");
    for (const secret of Object.values(SECRETS)) expect(raw.includes(secret)).toBe(false);
  });
});
