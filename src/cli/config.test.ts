import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isKPartyError } from "../errors/index.ts";
import { DEFAULTS, loadConfig } from "./config.ts";

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return isKPartyError(error) ? `${error.code}: ${error.shortMessage}` : String(error);
  }
  return "no error";
}

describe("loadConfig", () => {
  it("without a file: the defaults, with paths from the working directory", () => {
    const cwd = mkdtempSync(join(tmpdir(), "kparty-config-"));
    expect(loadConfig({ env: {}, cwd })).toEqual({
      ...DEFAULTS,
      deployment: join(cwd, "deployment.json"),
      dataDir: join(cwd, ".kparty/agent"),
      file: null,
    });
  });

  it("file, then environment, then flags; relative paths from the file's folder", () => {
    const cwd = mkdtempSync(join(tmpdir(), "kparty-config-"));
    const sub = join(cwd, "etc");
    writeFileSync(
      join(cwd, "k.json"),
      JSON.stringify({ dataDir: "data", gateway: { port: 9000, domain: "gw.example" } }),
    );
    const config = loadConfig({
      explicitFile: "k.json",
      cwd,
      env: {
        KPARTY_GATEWAY_PORT: "9100",
        KPARTY_RPC_URL: "http://10.0.0.1:8545/",
        KPARTY_DATA_DIR: "env-data",
      },
      flags: { dataDir: "flag-data" },
    });
    expect(config.gateway).toEqual({
      url: DEFAULTS.gateway.url,
      host: "127.0.0.1",
      port: 9100,
      domain: "gw.example",
    });
    expect(config.rpcUrl).toBe("http://10.0.0.1:8545");
    expect(config.dataDir).toBe(join(cwd, "flag-data"));
    expect(config.deployment).toBe(join(cwd, "deployment.json"));
    expect(config.file).toBe(join(cwd, "k.json"));
    expect(sub).not.toBe(config.dataDir);
  });

  it("gateway.trustProxy: hops or addresses, from the file or KPARTY_GATEWAY_TRUST_PROXY; nothing else", () => {
    const cwd = mkdtempSync(join(tmpdir(), "kparty-config-"));
    const file = join(cwd, "t.json");
    writeFileSync(file, JSON.stringify({ gateway: { trustProxy: "127.0.0.1, 10.0.0.0/8" } }));
    expect(loadConfig({ explicitFile: file, cwd, env: {} }).gateway.trustProxy).toBe("127.0.0.1, 10.0.0.0/8");
    writeFileSync(file, JSON.stringify({ gateway: { trustProxy: 2 } }));
    expect(loadConfig({ explicitFile: file, cwd, env: {} }).gateway.trustProxy).toBe(2);
    expect(loadConfig({ cwd, env: { KPARTY_GATEWAY_TRUST_PROXY: "1" } }).gateway.trustProxy).toBe(1);
    expect(loadConfig({ cwd, env: {} }).gateway.trustProxy).toBeUndefined();
    for (const trustProxy of ["everyone", true, ["127.0.0.1"], 1.5]) {
      writeFileSync(file, JSON.stringify({ gateway: { trustProxy } }));
      expect(codeOf(() => loadConfig({ explicitFile: file, cwd, env: {} }))).toBe(
        `config_invalid: gateway.trustProxy in ${file} must be a number of hops or comma-separated addresses and CIDR ranges`,
      );
    }
  });

  it("gateway.confirmations: an integer from 0 to 1024, from the file or KPARTY_GATEWAY_CONFIRMATIONS", () => {
    const cwd = mkdtempSync(join(tmpdir(), "kparty-config-"));
    const file = join(cwd, "c.json");
    writeFileSync(file, JSON.stringify({ gateway: { confirmations: 12 } }));
    expect(loadConfig({ explicitFile: file, cwd, env: {} }).gateway.confirmations).toBe(12);
    expect(loadConfig({ cwd, env: { KPARTY_GATEWAY_CONFIRMATIONS: "0" } }).gateway.confirmations).toBe(0);
    expect(loadConfig({ cwd, env: {} }).gateway.confirmations).toBeUndefined();
    for (const confirmations of [-1, 1.5, "two", 1025, true]) {
      writeFileSync(file, JSON.stringify({ gateway: { confirmations } }));
      expect(codeOf(() => loadConfig({ explicitFile: file, cwd, env: {} }))).toBe(
        `config_invalid: gateway.confirmations in ${file} must be an integer from 0 to 1024`,
      );
    }
  });

  it("gateway.tokenBinding (dpop or bearer) and gateway.publicUrl, from the file or the environment", () => {
    const cwd = mkdtempSync(join(tmpdir(), "kparty-config-"));
    const file = join(cwd, "c.json");
    writeFileSync(
      file,
      JSON.stringify({ gateway: { tokenBinding: "bearer", publicUrl: "https://gw.example/kp/" } }),
    );
    const loaded = loadConfig({ explicitFile: file, cwd, env: {} }).gateway;
    expect([loaded.tokenBinding, loaded.publicUrl]).toEqual(["bearer", "https://gw.example/kp"]);
    expect(loadConfig({ cwd, env: { KPARTY_GATEWAY_TOKEN_BINDING: "dpop" } }).gateway.tokenBinding).toBe(
      "dpop",
    );
    expect(loadConfig({ cwd, env: {} }).gateway.tokenBinding).toBeUndefined();
    writeFileSync(file, JSON.stringify({ gateway: { tokenBinding: "none" } }));
    expect(codeOf(() => loadConfig({ explicitFile: file, cwd, env: {} }))).toBe(
      `config_invalid: gateway.tokenBinding in ${file} must be dpop or bearer`,
    );
    expect(codeOf(() => loadConfig({ cwd, env: { KPARTY_GATEWAY_PUBLIC_URL: "https://gw/?q=1" } }))).toBe(
      "config_invalid: gateway.publicUrl in KPARTY_GATEWAY_PUBLIC_URL must be an http(s) URL without query or fragment",
    );
  });

  it("KPARTY_CONFIG names the file; a named file that is missing is config_invalid", () => {
    const cwd = mkdtempSync(join(tmpdir(), "kparty-config-"));
    expect(codeOf(() => loadConfig({ cwd, env: { KPARTY_CONFIG: "nope.json" } }))).toBe(
      "config_invalid: config file nope.json not found",
    );
  });

  it("refuses unknown settings, wrong types and bad environment values", () => {
    const cwd = mkdtempSync(join(tmpdir(), "kparty-config-"));
    const file = join(cwd, "c.json");
    const withFile = (content: unknown) => {
      writeFileSync(file, JSON.stringify(content));
      return codeOf(() => loadConfig({ explicitFile: file, cwd, env: {} }));
    };
    expect(withFile({ rpcUrl: "ftp://x" })).toBe(`config_invalid: rpcUrl in ${file} must be an http(s) URL`);
    expect(withFile({ chainId: 0 })).toBe(
      `config_invalid: chainId in ${file} must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}`,
    );
    for (const chainId of [1.5, -3, true, "7 ", 2 ** 53]) {
      expect(withFile({ chainId })).toBe(
        `config_invalid: chainId in ${file} must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}`,
      );
    }
    expect(withFile({ gateway: { port: 65536 } })).toBe(
      `config_invalid: gateway.port in ${file} must be an integer from 1 to 65535`,
    );
    expect(withFile({ gateway: { colour: "red" } })).toBe(
      `config_invalid: unknown setting "gateway.colour" in ${file}`,
    );
    expect(withFile({ gateway: 3 })).toBe(`config_invalid: gateway in ${file} must be a JSON object`);
    expect(withFile([1])).toBe(`config_invalid: the config in ${file} must be a JSON object`);
    writeFileSync(file, "{");
    expect(codeOf(() => loadConfig({ explicitFile: file, cwd, env: {} }))).toMatch(
      new RegExp(`^config_invalid: config file ${file} is not valid JSON`),
    );
    expect(codeOf(() => loadConfig({ cwd, env: { KPARTY_CHAIN_ID: "0x7a69" } }))).toBe(
      `config_invalid: chainId in KPARTY_CHAIN_ID must be an integer from 1 to ${Number.MAX_SAFE_INTEGER}`,
    );
  });
});
