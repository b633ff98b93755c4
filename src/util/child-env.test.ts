import { describe, expect, it } from "vitest";
import { childEnv, SECRET_ENV_VARS } from "./child-env.ts";

const parent: NodeJS.ProcessEnv = {
  PATH: "/usr/bin:/bin",
  HOME: "/home/op",
  KPARTY_PASSPHRASE: "the passphrase",
  KPARTY_DEPLOYER_KEY: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  KPARTY_RPC_URL: "https://rpc.example.org/v3/apikey",
  KPARTY_CONFIG: "kparty.json",
  UNSET: undefined,
};

describe("childEnv", () => {
  it("names the passphrase and the deployer key as the secrets", () => {
    expect(SECRET_ENV_VARS).toEqual(["KPARTY_PASSPHRASE", "KPARTY_DEPLOYER_KEY"]);
  });

  it("gives a foreign program no KPARTY_* variable, plus what is set", () => {
    expect(childEnv({ program: "foreign", parent, set: { FORCE_COLOR: "0" } })).toEqual({
      PATH: "/usr/bin:/bin",
      HOME: "/home/op",
      FORCE_COLOR: "0",
    });
  });

  it("gives a kparty process its KPARTY_* settings but not the secrets", () => {
    expect(childEnv({ program: "kparty", parent, set: { KPARTY_GATEWAY_CONFIG: "{}" } })).toEqual({
      PATH: "/usr/bin:/bin",
      HOME: "/home/op",
      KPARTY_RPC_URL: "https://rpc.example.org/v3/apikey",
      KPARTY_CONFIG: "kparty.json",
      KPARTY_GATEWAY_CONFIG: "{}",
    });
  });

  it("hands a secret only to a child it is set for by name", () => {
    expect(
      childEnv({ program: "kparty", parent: {}, set: { KPARTY_PASSPHRASE: "handed on purpose" } }),
    ).toEqual({
      KPARTY_PASSPHRASE: "handed on purpose",
    });
  });

  it("starts from this process's environment by default", () => {
    const env = childEnv({ program: "foreign" });
    expect(env.PATH).toBe(process.env.PATH);
    expect(Object.keys(env).filter((name) => name.startsWith("KPARTY_"))).toEqual([]);
  });

  it("refuses an unknown kind of program: TypeError", () => {
    expect(() => childEnv({ program: "hardhat" as never })).toThrow(
      new TypeError('program must be "kparty" or "foreign"'),
    );
  });
});
