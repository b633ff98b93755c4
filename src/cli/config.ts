import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { KPartyError } from "../errors/index.ts";
import { parseTrustProxy } from "../gateway/client-address.ts";
import { writeFileAtomic } from "../util/atomic-file.ts";
import { integerIn } from "../util/integer.ts";

/** What `kparty init` writes (paths relative to the config file's folder). */
export interface ConfigFile {
  /** JSON-RPC endpoint of the chain. */
  rpcUrl: string;
  /** The chain's id: DIDs are `did:ethr:<hex id>:…`. */
  chainId: number;
  /** The deployment file `kparty chain up` / `kparty deploy` write and every chain command reads. */
  deployment: string;
  /** This party's agent data (encrypted keys, DIDs, issued credentials, gateway state). */
  dataDir: string;
  gateway: {
    /** Where participants reach the gateway. */
    url: string;
    /** Where `kparty gateway serve` listens. */
    host: string;
    port: number;
    /** The audience presentations name. */
    domain: string;
    /** Reverse proxies believed about the client's address: hops, or addresses and CIDRs (default: none). */
    trustProxy?: number | string;
    /** Blocks on top of a block before the gateway applies its registry events (default 0; see `GatewayOptions.confirmations`). */
    confirmations?: number;
    /** `dpop` (default) or `bearer`: how access tokens are bound (see `GatewayOptions.tokenBinding`). */
    tokenBinding?: "dpop" | "bearer";
    /** The URL DPoP proofs must name, behind a proxy (see `GatewayOptions.publicUrl`). */
    publicUrl?: string;
  };
}

/** The configuration in force, with every path absolute. */
export interface Config extends ConfigFile {
  /** The config file read, or null when only defaults and the environment apply. */
  file: string | null;
}

export const DEFAULT_CONFIG_FILE = "kparty.json";

export const DEFAULTS: ConfigFile = {
  rpcUrl: "http://127.0.0.1:8545",
  chainId: 31337,
  deployment: "deployment.json",
  dataDir: ".kparty/agent",
  gateway: { url: "http://127.0.0.1:8080", host: "127.0.0.1", port: 8080, domain: "gateway.kparty.local" },
};

/** Environment variables that override the file (and are overridden by flags). */
export const ENVIRONMENT = {
  KPARTY_RPC_URL: "rpcUrl",
  KPARTY_CHAIN_ID: "chainId",
  KPARTY_DEPLOYMENT: "deployment",
  KPARTY_DATA_DIR: "dataDir",
  KPARTY_GATEWAY_URL: "gateway.url",
  KPARTY_GATEWAY_HOST: "gateway.host",
  KPARTY_GATEWAY_PORT: "gateway.port",
  KPARTY_GATEWAY_DOMAIN: "gateway.domain",
  KPARTY_GATEWAY_TRUST_PROXY: "gateway.trustProxy",
  KPARTY_GATEWAY_CONFIRMATIONS: "gateway.confirmations",
  KPARTY_GATEWAY_TOKEN_BINDING: "gateway.tokenBinding",
  KPARTY_GATEWAY_PUBLIC_URL: "gateway.publicUrl",
} as const;

/** The largest confirmation depth accepted (far above any public network's finality). */
export const MAX_CONFIRMATIONS = 1024;

type Key = (typeof ENVIRONMENT)[keyof typeof ENVIRONMENT];

function invalid(message: string, hint?: string): KPartyError {
  return new KPartyError("config_invalid", message, hint ? { details: { hint } } : {});
}

function checkUrl(key: string, value: unknown, source: string): string {
  if (typeof value !== "string" || !/^https?:\/\/[^\s/]+/.test(value)) {
    throw invalid(`${key} in ${source} must be an http(s) URL`);
  }
  return value.replace(/\/+$/, "");
}

function checkInteger(key: string, value: unknown, source: string, max: number): number {
  // a JSON number or a string of digits (environment variables)
  const n = typeof value === "number" || typeof value === "string" ? integerIn(String(value), 1, max) : null;
  if (n === null) throw invalid(`${key} in ${source} must be an integer from 1 to ${max}`);
  return n;
}

function checkString(key: string, value: unknown, source: string): string {
  if (typeof value !== "string" || value.trim() === "")
    throw invalid(`${key} in ${source} must be a non-empty string`);
  return value;
}

function set(config: ConfigFile, key: Key, value: unknown, source: string): void {
  switch (key) {
    case "rpcUrl":
      config.rpcUrl = checkUrl(key, value, source);
      break;
    case "chainId":
      config.chainId = checkInteger(key, value, source, Number.MAX_SAFE_INTEGER);
      break;
    case "deployment":
    case "dataDir":
      config[key] = checkString(key, value, source);
      break;
    case "gateway.url":
      config.gateway.url = checkUrl(key, value, source);
      break;
    case "gateway.port":
      config.gateway.port = checkInteger(key, value, source, 65535);
      break;
    case "gateway.trustProxy":
      try {
        if (typeof value !== "string" && typeof value !== "number") throw new TypeError();
        config.gateway.trustProxy = parseTrustProxy(value);
      } catch {
        throw invalid(
          `${key} in ${source} must be a number of hops or comma-separated addresses and CIDR ranges`,
        );
      }
      break;
    case "gateway.confirmations": {
      const n =
        typeof value === "number" || typeof value === "string"
          ? integerIn(String(value), 0, MAX_CONFIRMATIONS)
          : null;
      if (n === null) throw invalid(`${key} in ${source} must be an integer from 0 to ${MAX_CONFIRMATIONS}`);
      config.gateway.confirmations = n;
      break;
    }
    case "gateway.tokenBinding":
      if (value !== "dpop" && value !== "bearer") throw invalid(`${key} in ${source} must be dpop or bearer`);
      config.gateway.tokenBinding = value;
      break;
    case "gateway.publicUrl":
      if (typeof value !== "string" || !/^https?:\/\/[^\s/?#]+[^\s?#]*$/.test(value))
        throw invalid(`${key} in ${source} must be an http(s) URL without query or fragment`);
      config.gateway.publicUrl = value.replace(/\/+$/, "");
      break;
    case "gateway.host":
    case "gateway.domain":
      config.gateway[key === "gateway.host" ? "host" : "domain"] = checkString(key, value, source);
      break;
  }
}

const KEYS = new Set<string>(Object.values(ENVIRONMENT));

function flatten(value: unknown, prefix: string, out: Map<string, unknown>, source: string): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(`${prefix || "the config"} in ${source} must be a JSON object`);
  }
  for (const [k, v] of Object.entries(value)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (key === "gateway") flatten(v, key, out, source);
    else if (KEYS.has(key)) out.set(key, v);
    else throw invalid(`unknown setting "${key}" in ${source}`, `settings: ${[...KEYS].join(", ")}`);
  }
}

/** Checks a config file's content (unknown settings, types) and returns it over the defaults. */
export function checkConfig(content: unknown, source: string): ConfigFile {
  const config: ConfigFile = structuredClone(DEFAULTS);
  const values = new Map<string, unknown>();
  flatten(content, "", values, source);
  for (const [key, value] of values) set(config, key as Key, value, source);
  return config;
}

/**
 * The configuration in force: defaults, then the config file, then the environment, then
 * `flags`. The file is `explicitFile` (from --config or KPARTY_CONFIG, which must exist) or
 * `./kparty.json` when present. Relative paths are taken from the file's folder (or the
 * working directory). Throws `config_invalid` for a missing explicit file, unknown
 * settings and values of the wrong type.
 */
export function loadConfig(options: {
  explicitFile?: string | undefined;
  env?: NodeJS.ProcessEnv;
  flags?: Partial<Record<Key, string>>;
  cwd?: string;
}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const named = options.explicitFile ?? env.KPARTY_CONFIG;
  let file: string | null = null;
  if (named) {
    file = resolve(cwd, named);
    if (!existsSync(file)) throw invalid(`config file ${named} not found`);
  } else if (existsSync(resolve(cwd, DEFAULT_CONFIG_FILE))) {
    file = resolve(cwd, DEFAULT_CONFIG_FILE);
  }
  const config: ConfigFile = structuredClone(DEFAULTS);
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (cause) {
      throw invalid(`config file ${file} is not valid JSON: ${(cause as Error).message}`);
    }
    Object.assign(config, checkConfig(parsed, file));
  }
  for (const [name, key] of Object.entries(ENVIRONMENT)) {
    const value = env[name];
    if (value !== undefined && value !== "") set(config, key, value, name);
  }
  for (const [key, value] of Object.entries(options.flags ?? {})) {
    if (value !== undefined) set(config, key as Key, value, `--${key}`);
  }
  const base = file ? dirname(file) : cwd;
  return {
    ...config,
    deployment: resolve(base, config.deployment),
    dataDir: resolve(base, config.dataDir),
    file,
  };
}

/** Writes a config file (refusing to replace one unless `force`). */
export async function writeConfig(file: string, config: ConfigFile, force: boolean): Promise<void> {
  if (existsSync(file) && !force) {
    throw new KPartyError("invalid_argument", `${file} exists`, {
      details: { hint: "pass --force to replace it" },
    });
  }
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, `${JSON.stringify(config, null, 2)}\n`, 0o644);
}
