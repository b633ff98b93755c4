import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { hardhatCommand } from "./hardhat-command.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const parent: NodeJS.ProcessEnv = {
  PATH: "/usr/bin:/bin",
  HOME: "/home/op",
  KPARTY_PASSPHRASE: "the passphrase",
  KPARTY_DEPLOYER_KEY: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  KPARTY_RPC_URL: "https://user:pass@rpc.example.org/v3/apikey",
  FORCE_COLOR: "1",
};

describe("hardhatCommand (how `hardhat node` and `hardhat build` are spawned)", () => {
  it("starts the node with exactly the parent's environment minus every KPARTY_* variable, colours off", () => {
    expect(hardhatCommand(["node", "--hostname", "127.0.0.1", "--port", "8545"], parent)).toEqual({
      file: process.execPath,
      args: [
        `${root}node_modules/hardhat/dist/src/cli.js`,
        "node",
        "--hostname",
        "127.0.0.1",
        "--port",
        "8545",
      ],
      options: {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: "/usr/bin:/bin", HOME: "/home/op", FORCE_COLOR: "0" },
      },
    });
  });

  it("builds the contracts with the same environment", () => {
    expect(hardhatCommand(["build", "--quiet"], parent).options.env).toEqual({
      PATH: "/usr/bin:/bin",
      HOME: "/home/op",
      FORCE_COLOR: "0",
    });
  });
});
