import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { computeAddress, getAddress } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../src/devnet/index.ts";
import { createGatewayClient } from "../src/gateway/index.ts";
import { defaultThreadPoolSize, threadPoolSize } from "../src/util/thread-pool.ts";
import { BIN, type CliResult, kparty, startKparty } from "./fixtures/cli.ts";

/**
 * The real `kparty` binary, spawned for every command group against a chain that
 * `kparty chain up` started, including its refusals: exact exit codes and error lines.
 */

const PASSPHRASE = "cli test passphrase";
const DID = /^did:ethr:0x7a69:0x[0-9a-f]{66}$/;

let dir: string;
let env: Record<string, string>;
let chain: Awaited<ReturnType<typeof startKparty<{ rpcUrl: string; founders: unknown[] }>>>;
let orgA: string;

/** Unsets every variable that carries a gateway memory setting (src/util/gateway-memory.ts). */
const NO_MEMORY_SETTINGS = {
  MALLOC_ARENA_MAX: undefined,
  GLIBC_TUNABLES: undefined,
  NODE_OPTIONS: undefined,
};
/** The tests that read /proc (a process's arguments, environment, threads) run on Linux only. */
const onLinux = process.platform === "linux";
const itOnLinux = onLinux ? it : it.skip;
if (!onLinux) console.warn("test/cli.test.ts: 4 tests skipped, they read /proc, which this platform lacks");

/** A running process's arguments and environment, from /proc. */
const commandLine = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, -1);
const environment = (pid: number) =>
  Object.fromEntries(
    readFileSync(`/proc/${pid}/environ`, "utf8")
      .split("\0")
      .filter((kv) => kv.includes("="))
      .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );

/** The processes whose parent is `pid`, from /proc. */
const childrenOf = (pid: number) =>
  readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        // pid (comm) state ppid …: comm may hold spaces, so read after its closing parenthesis
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid;
      } catch {
        return false; // it has exited since
      }
    })
    .map(Number);
/** Hardhat's well-known development account #1, only ever set in chain up's environment. */
const CHAIN_UP_DEPLOYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

const run = (args: string[], extra: Record<string, string | undefined> = {}) =>
  kparty(args, { cwd: dir, env: { ...env, ...extra } });
const as = (dataDir: string, args: string[], extra: Record<string, string | undefined> = {}) =>
  run([...args, "--data-dir", `.kparty/${dataDir}`], extra);
const json = <T = Record<string, unknown>>(r: CliResult): T => {
  expect(r.stderr.includes("kparty: ") ? r.stderr : "", "no error expected").toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-cli-"));
  const rpcPort = await freePort();
  env = { KPARTY_PASSPHRASE: PASSPHRASE, KPARTY_RPC_URL: `http://127.0.0.1:${rpcPort}` };
  expect((await run(["init"])).code).toBe(0);
  orgA = (await as("org-a", ["did", "create", "--alias", "Org A"])).stdout.trim();
  expect(orgA).toMatch(DID);
  // chain up is given a deployer key too, to show that its hardhat node child gets neither secret
  chain = await startKparty(["chain", "up", "--founder", `Org A=${orgA}`, "--quorum", "1"], {
    cwd: dir,
    env: { ...env, KPARTY_DEPLOYER_KEY: CHAIN_UP_DEPLOYER_KEY },
  });
});

afterAll(async () => {
  const code = await chain?.stop();
  expect(code).toBe(0);
  await rm(dir, { recursive: true, force: true });
});

describe("kparty init and configuration", () => {
  it("writes kparty.json with the defaults and refuses to replace it without --force", async () => {
    const config = JSON.parse(readFileSync(join(dir, "kparty.json"), "utf8"));
    expect(config).toEqual({
      rpcUrl: "http://127.0.0.1:8545",
      chainId: 31337,
      deployment: "deployment.json",
      dataDir: ".kparty/agent",
      gateway: {
        url: "http://127.0.0.1:8080",
        host: "127.0.0.1",
        port: 8080,
        domain: "gateway.kparty.local",
      },
    });
    const again = await run(["init"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(
      `kparty: invalid_argument: ${join(dir, "kparty.json")} exists (hint: pass --force to replace it)\n`,
    );
  });

  it("a missing --config file is exit 3 with the file named", async () => {
    const r = await run(["status", "--config", "missing.json"]);
    expect(r).toEqual({
      code: 3,
      stdout: "",
      stderr:
        "kparty: config_invalid: config file missing.json not found (hint: run `kparty init`, or pass --config FILE)\n",
    });
  });

  it("an unknown setting or a bad value in the config file is exit 3", async () => {
    writeFileSync(join(dir, "odd.json"), JSON.stringify({ rpcUrl: "http://127.0.0.1:1", colour: "blue" }));
    const unknown = await run(["status", "--config", "odd.json"]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(
      /^kparty: config_invalid: unknown setting "colour" in .*odd\.json \(hint: settings: rpcUrl, chainId/,
    );
    writeFileSync(join(dir, "bad-port.json"), JSON.stringify({ gateway: { port: 70000 } }));
    const port = await run(["status", "--config", "bad-port.json"]);
    expect(port.code).toBe(3);
    expect(port.stderr).toMatch(
      /^kparty: config_invalid: gateway\.port in .*bad-port\.json must be an integer from 1 to 65535/,
    );
  });

  it("the environment overrides the file and flags override the environment", async () => {
    const r = await run(["status", "--json"], { KPARTY_RPC_URL: "http://127.0.0.1:1" });
    expect(r.code).toBe(6);
    const flagged = json(
      await run(["status", "--json", "--rpc", env.KPARTY_RPC_URL as string], {
        KPARTY_RPC_URL: "http://127.0.0.1:1",
      }),
    );
    expect(flagged.chainId).toBe(31337);
  });

  it("an unreachable RPC is exit 6 registry_unavailable, as a JSON error too", async () => {
    const r = await run(["status", "--rpc", "http://127.0.0.1:1", "--json"]);
    expect(r.code).toBe(6);
    expect(r.stderr).toBe(
      "kparty: registry_unavailable: read chain status: chain unavailable: connect ECONNREFUSED 127.0.0.1:1 (hint: is the chain running? check rpcUrl in the config or KPARTY_RPC_URL)\n",
    );
    expect(JSON.parse(r.stdout)).toEqual({
      error: {
        code: "registry_unavailable",
        message: "read chain status: chain unavailable: connect ECONNREFUSED 127.0.0.1:1",
        hint: "is the chain running? check rpcUrl in the config or KPARTY_RPC_URL",
        exitCode: 6,
      },
    });
  });

  it("unknown commands and options are exit 2; --help shows examples and exits 0", async () => {
    expect(await run(["frobnicate"])).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "kparty: invalid_argument: unknown command 'frobnicate' (hint: see `kparty <command> --help`)\n",
    });
    const option = await run(["did", "create", "--colour"]);
    expect(option.code).toBe(2);
    expect(option.stderr).toBe(
      "kparty: invalid_argument: unknown option '--colour' (hint: see `kparty <command> --help`)\n",
    );
    for (const command of [
      ["credential", "issue"],
      ["member", "propose", "add"],
      ["member", "rotate-key"],
      ["gateway", "serve"],
      ["audit", "verify"],
    ]) {
      const help = await run([...command, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`Usage: kparty ${command.join(" ")}`);
      expect(help.stdout).toContain("Examples:");
    }
  });
});

describe("kparty chain up, status, did", () => {
  it("chain up funded the founder, deployed and wrote the deployment file", async () => {
    const deployment = JSON.parse(readFileSync(join(dir, "deployment.json"), "utf8"));
    expect(deployment.chainId).toBe(31337);
    expect(deployment.rpcUrl).toBe(env.KPARTY_RPC_URL);
    expect(Object.keys(deployment.contracts).sort()).toEqual([
      "AuditAnchors",
      "ConsortiumRegistry",
      "CredentialRegistry",
      "EthereumDIDRegistry",
    ]);
    expect(chain.ready.founders).toHaveLength(1);
    const status = json<{
      quorum: number;
      members: { did: string; name: string; active: boolean }[];
      counts: { members: number };
    }>(await run(["status", "--json"]));
    expect(status.quorum).toBe(1);
    expect(status.members).toEqual([expect.objectContaining({ did: orgA, name: "Org A", active: true })]);
  });

  itOnLinux(
    "chain up's hardhat node child runs without KPARTY_PASSPHRASE, KPARTY_DEPLOYER_KEY or any KPARTY_* variable",
    () => {
      const kpartyPid = chain.child.pid as number;
      expect(environment(kpartyPid)).toMatchObject({
        KPARTY_PASSPHRASE: PASSPHRASE,
        KPARTY_DEPLOYER_KEY: CHAIN_UP_DEPLOYER_KEY,
      });
      const [node, ...others] = childrenOf(kpartyPid);
      expect(others).toEqual([]);
      expect(commandLine(node as number).slice(2, 3)).toEqual(["node"]);
      expect(commandLine(node as number)[1]).toMatch(/node_modules\/hardhat\/dist\/src\/cli\.js$/);
      const nodeEnv = environment(node as number);
      expect(nodeEnv.FORCE_COLOR).toBe("0");
      expect(Object.keys(nodeEnv).filter((name) => name.startsWith("KPARTY_"))).toEqual([]);
      const raw = readFileSync(`/proc/${node}/environ`, "utf8");
      expect(raw.includes(PASSPHRASE)).toBe(false);
      expect(raw.includes(CHAIN_UP_DEPLOYER_KEY.slice(2))).toBe(false);
    },
  );

  it("deploy puts a second deployment on a chain, paid by KPARTY_DEPLOYER_KEY, which is never printed", async () => {
    // Hardhat's well-known development account #0 (funded on every local chain).
    const key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const second = { KPARTY_DEPLOYMENT: "second.json" };
    const founder = ["--founder", `Org A=${orgA}`];
    expect(await run(["deploy", ...founder], second)).toEqual({
      code: 3,
      stdout: "",
      stderr:
        "kparty: config_invalid: KPARTY_DEPLOYER_KEY is not set (hint: export KPARTY_DEPLOYER_KEY with the private key of a funded account)\n",
    });
    expect(await run(["deploy", ...founder], { ...second, KPARTY_DEPLOYER_KEY: "0x1234abcd" })).toEqual({
      code: 3,
      stdout: "",
      stderr:
        "kparty: config_invalid: KPARTY_DEPLOYER_KEY is not a valid private key (hint: it must be 32 bytes as 64 hex digits, with or without 0x)\n",
    });
    const otherNetwork = "did:ethr:0x1:0x0000000000000000000000000000000000000abc";
    expect(
      await run(["deploy", "--founder", `X=${otherNetwork}`], { ...second, KPARTY_DEPLOYER_KEY: key }),
    ).toEqual({
      code: 2,
      stdout: "",
      stderr: `kparty: invalid_argument: founder X: ${otherNetwork} is on network 0x1, the chain is 0x7a69\n`,
    });
    const deployed = await run(["deploy", ...founder, "--json"], { ...second, KPARTY_DEPLOYER_KEY: key });
    expect(deployed.stdout + deployed.stderr).not.toContain(key.slice(2));
    const d = json<{ contracts: Record<string, string>; deploymentFile: string }>(deployed);
    const first = JSON.parse(readFileSync(join(dir, "deployment.json"), "utf8"));
    expect(d.deploymentFile).toBe(join(dir, "second.json"));
    expect(d.contracts.ConsortiumRegistry).not.toBe(first.contracts.ConsortiumRegistry);
    const status = json<{ contracts: Record<string, string>; members: { did: string }[] }>(
      await run(["status", "--json"], second),
    );
    expect(status.contracts).toEqual(d.contracts);
    expect(status.members.map((m) => m.did)).toEqual([orgA]);
  });

  it("chain fund sends ETH from the node's unlocked account", async () => {
    const to = "0x0000000000000000000000000000000000000aBc";
    const funded = json<{ account: string; balanceWei: string }>(
      await run(["chain", "fund", to, "--eth", "2", "--json"]),
    );
    expect(funded).toMatchObject({ account: to, balanceWei: "2000000000000000000" });
    expect(await run(["chain", "fund", to, "--eth", "-1"])).toEqual({
      code: 2,
      stdout: "",
      stderr: "kparty: invalid_argument: not an ETH amount: -1\n",
    });
  });

  it("a port in use is exit 2 for chain up and gateway serve; --debug adds the stack", async () => {
    const port = new URL(env.KPARTY_RPC_URL as string).port;
    expect(await run(["chain", "up", "--founder", `Org A=${orgA}`])).toEqual({
      code: 2,
      stdout: "",
      stderr: `kparty: invalid_argument: port ${port} on 127.0.0.1 is in use (EADDRINUSE) (hint: choose another with --port or the port of rpcUrl, or stop what listens there)\n`,
    });
    expect(await run(["gateway", "serve", "--port", port, "--data-dir", ".kparty/busy"])).toEqual({
      code: 2,
      stdout: "",
      stderr: `kparty: invalid_argument: cannot listen on 127.0.0.1:${port} (EADDRINUSE) (hint: choose another with --host/--port or gateway.port, or stop what listens there)\n`,
    });
    const debug = await run(["status", "--rpc", "http://127.0.0.1:1", "--debug"]);
    expect(debug.code).toBe(6);
    expect(debug.stderr).toMatch(
      /^kparty: registry_unavailable: .*\nKPartyError: read chain status: .*\n {4}at /s,
    );
  });

  it("gateway serve takes a confirmation depth from 0 to 1024 (exit 2 otherwise)", async () => {
    for (const depth of ["-1", "1025", "two"]) {
      expect(
        await run(["gateway", "serve", "--confirmations", depth, "--data-dir", ".kparty/depth"]),
      ).toEqual({
        code: 2,
        stdout: "",
        stderr: `kparty: invalid_argument: option '--confirmations <n>' argument '${depth}' is invalid. --confirmations must be an integer from 0 to 1024, got "${depth}" (hint: see \`kparty <command> --help\`)\n`,
      });
    }
  });

  it("did create prints the DID alone; did list shows it; the keys are encrypted at rest", async () => {
    const listed = json<{ dids: { did: string; alias: string }[] }>(
      await as("org-a", ["did", "list", "--json"]),
    );
    expect(listed.dids).toEqual([expect.objectContaining({ did: orgA, alias: "Org A" })]);
    const keyring = readFileSync(join(dir, ".kparty/org-a/keyring.json"), "utf8");
    expect(keyring).not.toContain(PASSPHRASE);
    expect(JSON.parse(keyring)).toMatchObject({ version: 2, kdf: "scrypt", N: 131072, r: 8, p: 1 });
    expect(statSync(join(dir, ".kparty/org-a/keyring.json")).mode & 0o077).toBe(0);
  });

  it("a keyring whose scrypt parameters are out of bounds is exit 3 config_invalid, with the field named", async () => {
    const tampered = join(dir, ".kparty/tampered");
    mkdirSync(tampered, { recursive: true });
    const keyring = JSON.parse(readFileSync(join(dir, ".kparty/org-a/keyring.json"), "utf8"));
    writeFileSync(join(tampered, "keyring.json"), JSON.stringify({ ...keyring, N: 2 ** 40 }));
    expect(await as("tampered", ["did", "list"])).toEqual({
      code: 3,
      stdout: "",
      stderr: `kparty: config_invalid: keyring ${join(tampered, "keyring.json")}: N must be a power of two within [2^15, 2^20], not 1099511627776 (hint: the keyring file is damaged or was edited; restore this data dir's keyring.json from a backup)\n`,
    });
  });

  it("a wrong passphrase is exit 4 and a missing one (no terminal) too", async () => {
    const wrong = await as("org-a", ["did", "list"], { KPARTY_PASSPHRASE: "not the passphrase" });
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toMatch(
      /^kparty: wrong_passphrase: .* \(hint: set KPARTY_PASSPHRASE to the passphrase this data dir was created with\)\n$/,
    );
    const missing = await as("org-a", ["did", "list"], { KPARTY_PASSPHRASE: undefined });
    expect(missing).toEqual({
      code: 4,
      stdout: "",
      stderr: `kparty: passphrase_required: no passphrase for ${join(dir, ".kparty/org-a")} (hint: set KPARTY_PASSPHRASE, or run in a terminal to be asked)\n`,
    });
  });
});

describe("kparty member", () => {
  let orgB: string;

  it("admits a member: propose (quorum 1 counts the proposer) and execute; list shows both", async () => {
    orgB = (await as("org-b", ["did", "create", "--alias", "Org B"])).stdout.trim();
    const proposed = await as("org-a", ["member", "propose", "add", orgB, "--name", "Org B"]);
    expect(proposed.code).toBe(0);
    const id = proposed.stdout.trim();
    expect(id).toMatch(/^\d+$/);
    const executed = json<{ proposalId: number }>(await as("org-a", ["member", "execute", id, "--json"]));
    expect(executed.proposalId).toBe(Number(id));
    const listed = json<{ members: { did: string }[]; proposals: { kind: string; executed: boolean }[] }>(
      await run(["member", "list", "--json"]),
    );
    expect(listed.members.map((m) => m.did)).toEqual([orgA, orgB]);
    expect(listed.proposals).toEqual([
      expect.objectContaining({ kind: "add-member", executed: true, did: orgB }),
    ]);
  });

  it("rotate-key proposes moving a member's rights to a new account; executed, list shows the operator", async () => {
    const newKey = "0x00000000000000000000000000000000000a11ce";
    const proposed = json<{ proposalId: number; member: string; newOperator: string }>(
      await as("org-a", ["member", "rotate-key", newKey, "--member", orgB, "--json"]),
    );
    const orgBAccount = computeAddress(`0x${orgB.split(":").at(-1)?.slice(2)}`);
    expect(proposed).toMatchObject({ member: orgBAccount, newOperator: getAddress(newKey) });
    await as("org-a", ["member", "execute", String(proposed.proposalId), "--json"]);
    const listed = json<{
      members: { did: string; account: string; operator: string }[];
      proposals: { kind: string; executed: boolean; account: string; newOperator: string | null }[];
    }>(await run(["member", "list", "--json"]));
    expect(listed.members.find((m) => m.did === orgB)).toMatchObject({
      account: orgBAccount,
      operator: getAddress(newKey),
    });
    expect(listed.proposals.at(-1)).toMatchObject({
      kind: "rotate-key",
      executed: true,
      account: orgBAccount,
      newOperator: getAddress(newKey),
    });
    const text = await run(["member", "list"]);
    expect(text.stdout).toContain(`operated by ${getAddress(newKey)}`);
    const bad = await as("org-a", ["member", "rotate-key", "not-an-address"]);
    expect(bad).toEqual({
      code: 2,
      stdout: "",
      stderr: 'kparty: invalid_argument: <new-account> must be a 0x address, got "not-an-address"\n',
    });
  });

  it("acting as a DID the data dir does not hold is exit 5", async () => {
    const stranger = "did:ethr:0x7a69:0x000000000000000000000000000000000000dead";
    const r = await as("org-a", ["member", "propose", "quorum", "2", "--as", stranger]);
    expect(r).toEqual({
      code: 5,
      stdout: "",
      stderr: `kparty: not_found: ${stranger} is not a DID of the agent in ${join(dir, ".kparty/org-a")} (hint: see \`kparty did list\`)\n`,
    });
  });

  it("a proposal the contract refuses is exit 7 chain_reverted; a bad DID is exit 2", async () => {
    const r = await as("org-a", ["member", "execute", "99"]);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/^kparty: chain_reverted: .*ConsortiumRegistry/);
    const bad = await as("org-a", ["member", "propose", "add", "did:web:example.org", "--name", "X"]);
    expect(bad).toEqual({
      code: 2,
      stdout: "",
      stderr: "kparty: invalid_argument: not a did:ethr DID: did:web:example.org\n",
    });
  });
});

describe("kparty credential, present, model, gateway serve, audit", () => {
  let alice: string;
  let coordinator: string;
  let gateway: Awaited<ReturnType<typeof startKparty<{ url: string; domain: string; pid: number }>>>;

  beforeAll(async () => {
    alice = (await as("alice", ["did", "create", "--alias", "alice"])).stdout.trim();
    coordinator = (await as("coord", ["did", "create"])).stdout.trim();
    gateway = await startKparty(
      [
        "gateway",
        "serve",
        "--port",
        "0",
        "--data-dir",
        ".kparty/gateway",
        "--model",
        "fl-demo:4:max-samples=100",
        "--verify-threads",
        "1",
        "--confirmations",
        "0",
        // a day: longer than the remaining life of a one-day credential presented after its issuance
        "--token-ttl",
        "86400",
      ],
      // none of the memory settings set, whatever this machine's environment says
      { cwd: dir, env: { ...env, ...NO_MEMORY_SETTINGS } },
    );
    env.KPARTY_GATEWAY_URL = gateway.ready.url;
  });

  afterAll(async () => {
    expect(await gateway?.stop()).toBe(0);
  });

  it("issues one credential to a bundle file whose status reads valid", async () => {
    const issued = await as("org-a", [
      "credential",
      "issue",
      "--subject",
      alice,
      "--models",
      "fl-demo",
      "--actions",
      "model:read,model:contribute",
      "--out",
      "alice.json",
    ]);
    expect(issued.code).toBe(0);
    const bundle = JSON.parse(readFileSync(join(dir, "alice.json"), "utf8"));
    expect(bundle).toMatchObject({
      type: "kparty-credential",
      credentialId: issued.stdout.trim(),
      issuer: orgA,
      subject: alice,
      statusIndex: 0,
    });
    const status = json<{ verdict: string; revoked: boolean }>(
      await run(["credential", "status", "alice.json", "--json"]),
    );
    expect(status).toMatchObject({
      verdict: "valid",
      revoked: false,
      suspended: false,
      issuerIsMember: true,
    });
    expect(
      (await as("org-a", ["credential", "export", bundle.credentialId, "--out", "again.json"])).code,
    ).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "again.json"), "utf8"))).toEqual(bundle);
    expect(await as("org-a", ["credential", "export", `0x${"cd".repeat(32)}`, "--out", "none.json"])).toEqual(
      {
        code: 5,
        stdout: "",
        stderr: `kparty: not_found: no credential 0x${"cd".repeat(32)} issued by this agent\n`,
      },
    );
  });

  it("issuer serve: an API key issues a K-th Party token over VC-API; a removed key stops at once", async () => {
    const without = await as("org-a", ["issuer", "serve", "--port", "0"]);
    expect({ code: without.code, stderr: without.stderr }).toEqual({
      code: 3,
      stderr: `kparty: config_invalid: no API key for the issuer service of ${join(dir, ".kparty/org-a")} (hint: add one with \`kparty issuer clients add <name>\`)\n`,
    });
    const added = await as("org-a", ["issuer", "clients", "add", "portal"]);
    expect(added.code).toBe(0);
    const apiKey = added.stdout.trim();
    expect(apiKey).toMatch(/^kpi_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$/);
    const service = await startKparty<{ url: string; issuer: string }>(
      ["issuer", "serve", "--port", "0", "--data-dir", ".kparty/org-a"],
      { cwd: dir, env },
    );
    try {
      expect(service.ready.issuer).toBe(orgA);
      const issue = () =>
        fetch(`${service.ready.url}/credentials/issue`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
          body: JSON.stringify({
            credential: {
              "@context": ["https://www.w3.org/2018/credentials/v1"],
              type: ["VerifiableCredential", "KPartyCredential"],
              issuer: orgA,
              credentialSubject: {
                id: alice,
                kParty: { role: "participant", models: ["fl-demo"], actions: ["model:read"] },
              },
            },
          }),
        });
      const res = await issue();
      expect(res.status).toBe(201);
      const body = (await res.json()) as { verifiableCredential: { credentialSubject: { id: string } } };
      expect(body.verifiableCredential.credentialSubject.id).toBe(alice);
      expect((await as("org-a", ["issuer", "clients", "remove", "portal"])).code).toBe(0);
      expect((await issue()).status).toBe(401);
    } finally {
      expect(await service.stop()).toBe(0);
    }
  });

  it("batch-issues from a subjects file: one anchored root, one bundle each", async () => {
    const subjects = [coordinator, { subject: alice, role: "observer", actions: ["model:read"] }, alice];
    writeFileSync(join(dir, "subjects.json"), JSON.stringify(subjects));
    const r = json<{
      issued: {
        credentialId: string;
        subject: string;
        file: string;
        root: string | null;
        blockNumber: number;
      }[];
    }>(
      await as("org-a", [
        "credential",
        "issue",
        "--subjects",
        "subjects.json",
        "--models",
        "fl-demo",
        "--out-dir",
        "batch",
        "--json",
      ]),
    );
    expect(r.issued.map((i) => i.subject)).toEqual([coordinator, alice, alice]);
    expect(new Set(r.issued.map((i) => i.root)).size).toBe(1);
    expect(r.issued[0]?.root).toMatch(/^0x[0-9a-f]{64}$/);
    expect((await readdir(join(dir, "batch"))).sort()).toEqual(
      r.issued.map((i) => `${i.credentialId.slice(2, 18)}.json`).sort(),
    );
    const observer = JSON.parse(readFileSync(r.issued[1]?.file as string, "utf8"));
    expect(
      json<{ verdict: string }>(await run(["credential", "status", r.issued[1]?.file as string, "--json"]))
        .verdict,
    ).toBe("valid");
    expect(observer.anchor.proof).toHaveLength(2); // a tree of three leaves is two levels deep
  });

  it("refuses malformed subjects files with exit 2 and issues nothing", async () => {
    const issuedBefore = json<{ credentials: unknown[] }>(await as("org-a", ["credential", "list", "--json"]))
      .credentials.length;
    writeFileSync(join(dir, "broken.json"), '["did:ethr:0x7a69:0x1",');
    const broken = await as("org-a", [
      "credential",
      "issue",
      "--subjects",
      "broken.json",
      "--models",
      "fl-demo",
    ]);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toMatch(/^kparty: invalid_argument: subjects file broken\.json: .*JSON/);
    writeFileSync(join(dir, "field.json"), JSON.stringify([{ subject: alice, admin: true }]));
    const field = await as("org-a", [
      "credential",
      "issue",
      "--subjects",
      "field.json",
      "--models",
      "fl-demo",
    ]);
    expect(field).toEqual({
      code: 2,
      stdout: "",
      stderr: 'kparty: invalid_argument: subjects file entry 0: unknown field "admin"\n',
    });
    const grant = await as("org-a", [
      "credential",
      "issue",
      "--subject",
      alice,
      "--models",
      "fl-demo",
      "--actions",
      "model:delete",
    ]);
    expect(grant.code).toBe(2);
    expect(grant.stderr).toMatch(
      /^kparty: invalid_argument: actions must be distinct values among model:read/,
    );
    const listed = json<{ credentials: unknown[] }>(await as("org-a", ["credential", "list", "--json"]));
    expect(listed.credentials).toHaveLength(issuedBefore);
  });

  it("present saves an access token (never printed); model list, pull and push use it", async () => {
    const presented = await as("alice", ["present", "--credential", "alice.json", "--json"]);
    const session = json<{ scope: string; models: string[]; sessionFile: string }>(presented);
    expect(session.scope).toBe("model:read model:contribute");
    expect(session.models).toEqual(["fl-demo"]);
    const saved = JSON.parse(readFileSync(session.sessionFile, "utf8"));
    expect(presented.stdout + presented.stderr).not.toContain(saved.accessToken);
    expect(statSync(session.sessionFile).mode & 0o077).toBe(0);
    // the token is bound to the session's DPoP key, kept beside it with its private half encrypted
    expect(saved.tokenType).toBe("DPoP");
    const tokenPayload = JSON.parse(Buffer.from(saved.accessToken.split(".")[1], "base64url").toString());
    const keyFile = (session as unknown as { dpopKeyFile: string }).dpopKeyFile;
    expect(keyFile).toBe(join(dirname(session.sessionFile), "session-key.json"));
    const keyRecord = JSON.parse(readFileSync(keyFile, "utf8"));
    expect(statSync(keyFile).mode & 0o077).toBe(0);
    expect(tokenPayload.cnf).toEqual({ jkt: keyRecord.jkt });
    expect(keyRecord).toMatchObject({ version: 1, alg: "EdDSA", publicJwk: { kty: "OKP", crv: "Ed25519" } });
    expect(keyRecord.publicJwk.d).toBeUndefined();
    expect(readFileSync(keyFile, "utf8")).not.toContain('"d"');

    const models = json<{ models: { id: string; version: number }[] }>(
      await as("alice", ["model", "list", "--json"]),
    );
    expect(models.models.map((m) => [m.id, m.version])).toEqual([["fl-demo", 1]]);
    const pulled = json<{ bytes: number; file: string }>(
      await as("alice", ["model", "pull", "fl-demo", "--out", "w.f32", "--json"]),
    );
    expect(pulled.bytes).toBe(16);
    expect([...new Float32Array(new Uint8Array(readFileSync(join(dir, "w.f32"))).buffer)]).toEqual([
      0, 0, 0, 0,
    ]);
    writeFileSync(join(dir, "local.f32"), new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer));
    // gateway serve --model fl-demo:4:max-samples=100
    expect(
      await as("alice", [
        "model",
        "push",
        "fl-demo",
        "--file",
        "local.f32",
        "--round",
        "1",
        "--samples",
        "101",
      ]),
    ).toEqual({
      code: 2,
      stdout: "",
      stderr: "kparty: invalid_update: the sample count 101 exceeds this model's cap of 100 per update\n",
    });
    const pushed = json<{ round: number; sampleCount: number; bytes: number }>(
      await as("alice", [
        "model",
        "push",
        "fl-demo",
        "--file",
        "local.f32",
        "--round",
        "1",
        "--samples",
        "10",
        "--json",
      ]),
    );
    expect(pushed).toMatchObject({ round: 1, sampleCount: 10, bytes: 16, participant: alice });
    writeFileSync(join(dir, "odd.f32"), new Uint8Array(5));
    expect(
      await as("alice", ["model", "push", "fl-demo", "--file", "odd.f32", "--round", "1", "--samples", "1"]),
    ).toEqual({
      code: 2,
      stdout: "",
      stderr: "kparty: invalid_argument: weights file odd.f32 is not float32 values (5 bytes)\n",
    });
  });

  it("present --oid4vp answers a gateway's OID4VP request; the caller that opened it collects the token", async () => {
    const base = gateway.ready.url;
    const open = async (scope: string) => {
      const res = await fetch(`${base}/oid4vp/requests`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ scope, models: ["fl-demo"] }),
      });
      expect(res.status).toBe(201);
      return (await res.json()) as {
        transaction_id: string;
        authorization_request: string;
        request_uri: string;
        client_id: string;
      };
    };
    // the caller collects with its own DPoP key (the gateway's default binding)
    const caller = createGatewayClient(base);
    const poll = async (id: string) => (await caller.oid4vpTransaction(id)) as Record<string, unknown>;

    const opened = await open("model:read");
    const answered = json<{
      presented: boolean;
      holder: string;
      clientId: string;
      credentialQueryId: string;
    }>(
      await as("alice", [
        "present",
        "--credential",
        "alice.json",
        "--oid4vp",
        opened.authorization_request,
        "--json",
      ]),
    );
    expect(answered).toMatchObject({
      presented: true,
      holder: alice,
      clientId: opened.client_id,
      credentialQueryId: "kparty",
    });
    const collected = await poll(opened.transaction_id);
    expect(collected).toMatchObject({
      status: "granted",
      holder: alice,
      scope: "model:read",
      models: ["fl-demo"],
      token_type: "DPoP",
    });
    expect(typeof collected.access_token).toBe("string");

    // the bare request URI works too
    const byUri = await open("model:read model:contribute");
    expect(
      json(
        await as("alice", ["present", "--credential", "alice.json", "--oid4vp", byUri.request_uri, "--json"]),
      ),
    ).toMatchObject({ presented: true });
    expect(await poll(byUri.transaction_id)).toMatchObject({
      status: "granted",
      scope: "model:read model:contribute",
    });

    // a request the credential cannot satisfy is refused by the wallet before anything is signed
    const aggregate = await open("round:aggregate");
    expect(
      await as("alice", [
        "present",
        "--credential",
        "alice.json",
        "--oid4vp",
        aggregate.authorization_request,
      ]),
    ).toEqual({
      code: 8,
      stdout: "",
      stderr: "kparty: dcql_unsatisfied: the credential does not satisfy the request's DCQL query\n",
    });
    expect(await poll(aggregate.transaction_id)).toMatchObject({ status: "pending" });
    // an unsigned request (a hand-made openid4vp:// URL) is refused
    const unsigned = `openid4vp://?${new URLSearchParams({
      client_id: `redirect_uri:${base}/oid4vp/responses`,
      response_type: "vp_token",
      response_mode: "direct_post",
      response_uri: `${base}/oid4vp/responses`,
      nonce: "n",
      dcql_query: JSON.stringify({
        credentials: [
          { id: "kparty", format: "jwt_vc_json", meta: { type_values: [["VerifiableCredential"]] } },
        ],
      }),
    })}`;
    const refused = await as("alice", ["present", "--credential", "alice.json", "--oid4vp", unsigned]);
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({
      code: 8,
      stderr: "kparty: invalid_signature: the authorization request is not signed\n",
    });
  });

  it("present caps the token at the credential's expiry even when --token-ttl outlives it", async () => {
    const issued = await as("org-a", [
      "credential",
      "issue",
      "--subject",
      alice,
      "--models",
      "fl-demo",
      "--actions",
      "model:read",
      "--valid-days",
      "1",
      "--out",
      "alice-1d.json",
    ]);
    expect(issued.code).toBe(0);
    const jwt = JSON.parse(readFileSync(join(dir, "alice-1d.json"), "utf8")).jwt as string;
    const exp = JSON.parse(Buffer.from(jwt.split(".")[1] as string, "base64url").toString()).exp as number;
    const presented = await as("alice", ["present", "--credential", "alice-1d.json", "--json"]);
    const shown = json<{
      tokenType: string;
      expiresAt: string;
      credentialExpiresAt: string;
      sessionFile: string;
    }>(presented);
    expect(shown.tokenType).toBe("DPoP");
    expect(shown.credentialExpiresAt).toBe(new Date(exp * 1000).toISOString());
    const saved = JSON.parse(readFileSync(shown.sessionFile, "utf8"));
    // the gateway's 86,400 s TTL would end after the credential: the token ends with it, exactly
    const token = JSON.parse(Buffer.from(saved.accessToken.split(".")[1], "base64url").toString());
    expect(token.exp).toBe(exp);
    // the client counts expires_in from the moment it sent the request, before the grant: never later
    expect(Date.parse(shown.expiresAt)).toBeLessThanOrEqual(exp * 1000);
    expect(saved).toMatchObject({
      tokenType: "DPoP",
      expiresAt: shown.expiresAt,
      credentialExpiresAt: shown.credentialExpiresAt,
    });
    const human = await as("alice", ["present", "--credential", "alice-1d.json", "--dpop-alg", "ES256"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`  token       DPoP, expires `);
    expect(human.stdout).toContain(
      `  DPoP key    ES256, ${join(dirname(shown.sessionFile), "session-key.json")} (encrypted)`,
    );
    expect(human.stdout).toContain(
      `  credential  expires ${shown.credentialExpiresAt} (no token of it lives longer)`,
    );
    // alice's later tests use the token of her 30-day credential
    json(await as("alice", ["present", "--credential", "alice.json", "--json"]));
  });

  itOnLinux(
    "the gateway runs libuv's thread pool with one thread per core, at least 2, unless UV_THREADPOOL_SIZE is set",
    async () => {
      // a pull reads the weights file on the pool, which starts all its threads at its first job
      expect((await as("alice", ["model", "pull", "fl-demo", "--out", "w2.f32"])).code).toBe(0);
      const pid = gateway.child.pid as number;
      const threads = (await readdir(`/proc/${pid}/task`)).map((tid) =>
        readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim(),
      );
      expect(threads.filter((name) => name === "libuv-worker")).toHaveLength(
        process.env.UV_THREADPOOL_SIZE === undefined ? defaultThreadPoolSize() : threadPoolSize(),
      );
    },
  );

  itOnLinux(
    "the gateway restarted itself, same PID, with MALLOC_ARENA_MAX=2 and --max-semi-space-size=8",
    () => {
      const pid = gateway.child.pid as number;
      expect(gateway.ready.pid).toBe(pid);
      expect(commandLine(pid).slice(0, 5)).toEqual([
        process.execPath,
        "--max-semi-space-size=8",
        BIN,
        "gateway",
        "serve",
      ]);
      expect(environment(pid).MALLOC_ARENA_MAX).toBe("2");
    },
  );

  itOnLinux("the gateway keeps an operator's own memory settings and does not restart", async () => {
    const own = await startKparty<{ pid: number }>(
      ["gateway", "serve", "--port", "0", "--data-dir", ".kparty/gateway-own"],
      {
        cwd: dir,
        env: {
          ...env,
          ...NO_MEMORY_SETTINGS,
          MALLOC_ARENA_MAX: "4",
          NODE_OPTIONS: "--max-semi-space-size=16",
        },
      },
    );
    try {
      const pid = own.child.pid as number;
      expect(own.ready.pid).toBe(pid);
      expect(commandLine(pid).slice(0, 4)).toEqual([process.execPath, BIN, "gateway", "serve"]);
      expect(environment(pid)).toMatchObject({
        MALLOC_ARENA_MAX: "4",
        NODE_OPTIONS: "--max-semi-space-size=16",
      });
    } finally {
      expect(await own.stop()).toBe(0);
    }
  });

  it("a coordinator registers a model and aggregates a round; a participant may not (exit 8)", async () => {
    const aggregate = await as("alice", ["model", "aggregate", "fl-demo", "--round", "1"]);
    expect(aggregate.code).toBe(8);
    expect(aggregate.stderr).toMatch(/^kparty: scope_denied: /);
    await as("org-a", [
      "credential",
      "issue",
      "--subject",
      coordinator,
      "--role",
      "coordinator",
      "--models",
      "*",
      "--actions",
      "model:read,round:aggregate",
      "--out",
      "coord.json",
    ]);
    json(await as("coord", ["present", "--credential", "coord.json", "--json"]));
    const closed = json<{ version: number; aggregated: number }>(
      await as("coord", ["model", "aggregate", "fl-demo", "--round", "1", "--json"]),
    );
    expect(closed).toMatchObject({ version: 2, aggregated: 1 });
    // the model store's conflicts are exit 10 conflict, not a refusal by the chain (7)
    expect(await as("coord", ["model", "aggregate", "fl-demo", "--round", "1"])).toEqual({
      code: 10,
      stdout: "",
      stderr: "kparty: conflict: round 1 is not open (round 2 is)\n",
    });
    const registered = json<{ id: string; parameterCount: number }>(
      await as("coord", [
        "model",
        "register",
        "other",
        "--shape",
        "2,3",
        "--max-samples",
        "500",
        "--rule",
        "trimmed-mean",
        "--clip-norm",
        "2.5",
        "--json",
      ]),
    );
    expect(registered).toMatchObject({
      id: "other",
      parameterCount: 6,
      version: 1,
      maxSamplesPerUpdate: 500,
      aggregation: { rule: "trimmed-mean", trimFraction: 0.2, clipNorm: 2.5 },
    });
    expect(await as("coord", ["model", "register", "other", "--shape", "2"])).toEqual({
      code: 10,
      stdout: "",
      stderr: "kparty: conflict: model other already exists\n",
    });
  });

  it("a gateway that does not answer is exit 6; model commands without a token are exit 8", async () => {
    expect(
      await as("alice", ["present", "--credential", "alice.json", "--gateway", "http://127.0.0.1:1"]),
    ).toEqual({
      code: 6,
      stdout: "",
      stderr:
        "kparty: unreachable: no answer from the gateway at http://127.0.0.1:1 (hint: is the gateway running? check gateway.url in the config or pass --gateway URL)\n",
    });
    expect(await as("alice", ["present", "--credential", "alice.json", "--gateway", "ftp://gw"])).toEqual({
      code: 2,
      stdout: "",
      stderr: 'kparty: invalid_argument: --gateway must be an http(s) URL, got "ftp://gw"\n',
    });
    expect(await as("org-b", ["model", "list"])).toEqual({
      code: 8,
      stdout: "",
      stderr: `kparty: token_invalid: no access token in ${join(dir, ".kparty/org-b")} (hint: get a new access token with \`kparty present\`)\n`,
    });
  });

  it("presenting from a data dir that does not hold the subject DID is exit 5; a bad bundle exit 2", async () => {
    const r = await as("coord", ["present", "--credential", "alice.json"]);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe(
      `kparty: not_found: the credential's subject ${alice} is not a DID of ${join(dir, ".kparty/coord")} (hint: present from the data dir of the DID the credential was issued to)\n`,
    );
    const bundle = JSON.parse(readFileSync(join(dir, "alice.json"), "utf8"));
    writeFileSync(
      join(dir, "forged.json"),
      JSON.stringify({ ...bundle, credentialId: `0x${"1".repeat(64)}` }),
    );
    expect(await as("alice", ["present", "--credential", "forged.json"])).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "kparty: invalid_argument: credential file forged.json: credentialId does not match the credential\n",
    });
  });

  it("suspend, reinstate and revoke change the status; then alice is refused with exit 8", async () => {
    const id = JSON.parse(readFileSync(join(dir, "alice.json"), "utf8")).credentialId as string;
    const verdict = async () =>
      json<{ verdict: string }>(await run(["credential", "status", "alice.json", "--json"])).verdict;
    expect((await as("org-a", ["credential", "suspend", id])).code).toBe(0);
    expect(await verdict()).toBe("suspended");
    expect((await as("org-a", ["credential", "reinstate", "alice.json"])).code).toBe(0);
    expect(await verdict()).toBe("valid");
    const revoked = json<{ blockNumber: number }>(await as("org-a", ["credential", "revoke", id, "--json"]));
    expect(revoked.blockNumber).toBeGreaterThan(0);
    expect(await verdict()).toBe("revoked");

    let pull = await as("alice", ["model", "pull", "fl-demo", "--out", "w2.f32"]);
    for (let i = 0; i < 20 && pull.code === 0; i++)
      pull = await as("alice", ["model", "pull", "fl-demo", "--out", "w2.f32"]);
    expect(pull).toEqual({
      code: 8,
      stdout: "",
      stderr: "kparty: revoked: the credential has been revoked\n",
    });
    expect(await as("alice", ["present", "--credential", "alice.json"])).toEqual({
      code: 8,
      stdout: "",
      stderr: "kparty: revoked: the credential has been revoked\n",
    });
    const unknown = await as("org-a", ["credential", "revoke", `0x${"ab".repeat(32)}`]);
    expect(unknown.code).toBe(5);
    expect(unknown.stderr).toBe(
      `kparty: not_found: no credential 0x${"ab".repeat(32)} issued by this agent\n`,
    );
  });

  it("audit tail shows the decisions; audit verify passes, and exits 9 once a record is edited", async () => {
    const tail = json<{ records: { outcome: string; code: string | null; route: string }[] }>(
      await as("gateway", ["audit", "tail", "-n", "2", "--json"]),
    );
    expect(tail.records.map((r) => [r.outcome, r.code, r.route])).toEqual([
      ["denied", "revoked", "/models/:id/weights"],
      ["denied", "revoked", "/auth/token"],
    ]);
    const verified = json<{ valid: boolean; records: number }>(
      await as("gateway", ["audit", "verify", "--json"]),
    );
    expect(verified.valid).toBe(true);
    const db = new DatabaseSync(join(dir, ".kparty/gateway/gateway.sqlite"));
    db.prepare("UPDATE audit SET outcome = 'granted' WHERE seq = ?").run(verified.records);
    db.close();
    const broken = await as("gateway", ["audit", "verify"]);
    expect(broken.code).toBe(9);
    expect(broken.stdout).toMatch(new RegExp(`^audit log BROKEN at record #${verified.records}: `));
    expect(await run(["audit", "verify", "--db", "nowhere.sqlite"])).toEqual({
      code: 5,
      stdout: "",
      stderr: `kparty: not_found: no gateway database at ${join(dir, "nowhere.sqlite")} (hint: pass --db <gateway.sqlite>, --data-dir of the gateway, or --database postgres://…)\n`,
    });
  });
});

describe("kparty credential resume, member propose revoke and remove, one data dir per process", () => {
  /** Hardhat's accounts hold ETH; this key's account never does. */
  const UNFUNDED_KEY = `0x${"42".repeat(32)}`;
  const FUNDS_HINT = "(hint: fund the account: `kparty chain fund <did>` on a local chain)";
  // spawns a dozen agent-opening processes on a shared 2-core machine: a bound, not a measure
  const SLOW = 180_000;
  let orgC: string;
  let orgCAccount: string;
  let credentialId: string;

  it("a payment from an unfunded account is exit 7 insufficient_funds, through src/chain's mapping", async () => {
    const to = "0x0000000000000000000000000000000000000def";
    expect(await run(["chain", "fund", to, "--eth", "1"], { KPARTY_DEPLOYER_KEY: UNFUNDED_KEY })).toEqual({
      code: 7,
      stdout: "",
      stderr: `kparty: insufficient_funds: send ETH: the sending account cannot pay for gas ${FUNDS_HINT}\n`,
    });
  });

  it(
    "an issuance whose anchoring fails (exit 7) leaves the credential signed, not exportable",
    async () => {
      orgC = (await as("org-c", ["did", "create", "--alias", "Org C"])).stdout.trim();
      orgCAccount = computeAddress(`0x${orgC.split(":").at(-1)?.slice(2)}`);
      const id = (await as("org-a", ["member", "propose", "add", orgC, "--name", "Org C"])).stdout.trim();
      expect((await as("org-a", ["member", "execute", id])).code).toBe(0);
      // Org C is a member, but its account has no ETH: the credential is signed, the anchoring refused
      const issue = ["credential", "issue", "--subject", orgA, "--models", "fl-demo", "--out", "carol.json"];
      expect(await as("org-c", issue)).toEqual({
        code: 7,
        stdout: "",
        stderr:
          "1 credential(s) are signed but not anchored: `kparty credential resume` anchors them, then `kparty credential export` writes their bundles\n" +
          `kparty: insufficient_funds: anchor credential: the sending account cannot pay for gas ${FUNDS_HINT}\n`,
      });
      const listed = json<{ credentials: { credentialId: string }[] }>(
        await as("org-c", ["credential", "list", "--json"]),
      ).credentials;
      expect(listed).toEqual([
        expect.objectContaining({ subject: orgA, issuer: orgC, statusIndex: 0, anchoredBlock: null }),
      ]);
      credentialId = listed[0]?.credentialId as string;
      expect(await as("org-c", ["credential", "export", credentialId, "--out", "carol.json"])).toEqual({
        code: 8,
        stdout: "",
        stderr: `kparty: not_anchored: ${credentialId} is signed but not anchored yet (hint: anchor it with \`kparty credential resume\`)\n`,
      });
    },
    SLOW,
  );

  it(
    "credential resume anchors it once funded (again: nothing to do); its bundle then reads valid",
    async () => {
      expect((await run(["chain", "fund", orgC, "--eth", "5"])).code).toBe(0);
      expect(json(await as("org-c", ["credential", "resume", "--json"]))).toEqual({
        credentials: 1,
        batches: 0,
      });
      expect(await as("org-c", ["credential", "resume"])).toEqual({
        code: 0,
        stdout: "anchored 0 credential(s) and 0 batch root(s)\n",
        stderr: "",
      });
      expect((await as("org-c", ["credential", "export", credentialId, "--out", "carol.json"])).code).toBe(0);
      const bundle = JSON.parse(readFileSync(join(dir, "carol.json"), "utf8"));
      expect(bundle).toMatchObject({
        credentialId,
        issuer: orgC,
        issuerAccount: orgCAccount,
        statusIndex: 0,
      });
      const status = json(await run(["credential", "status", "carol.json", "--json"]));
      expect(status).toMatchObject({
        verdict: "valid",
        anchoredAt: bundle.anchor.blockNumber,
        revoked: false,
      });
    },
    SLOW,
  );

  it(
    "a second kparty process on a data dir in use is exit 3 data_dir_in_use, naming the first",
    async () => {
      expect((await as("org-c", ["issuer", "clients", "add", "holder-of-the-lock"])).code).toBe(0);
      const service = await startKparty<{ url: string }>(
        ["issuer", "serve", "--port", "0", "--data-dir", ".kparty/org-c"],
        { cwd: dir, env },
      );
      try {
        expect(await as("org-c", ["credential", "list"])).toEqual({
          code: 3,
          stdout: "",
          stderr: `kparty: data_dir_in_use: ${join(dir, ".kparty/org-c/agent.sqlite")} is in use by process ${service.child.pid} (hint: one kparty process per data dir: stop the other one, or use another --data-dir)\n`,
        });
      } finally {
        expect(await service.stop()).toBe(0);
      }
      expect((await as("org-c", ["credential", "list"])).code).toBe(0);
    },
    SLOW,
  );

  it(
    "member propose revoke: once executed, the consortium's revocation is the credential's status",
    async () => {
      const proposed = await as("org-a", ["member", "propose", "revoke", orgC, "--indexes", "0"]);
      const id = proposed.stdout.trim();
      expect(proposed).toEqual({
        code: 0,
        stdout: `${id}\n`,
        stderr: expect.stringMatching(new RegExp(`^proposal #${id} created in block \\d+\\n$`)),
      });
      expect(await as("org-a", ["member", "execute", id])).toEqual({
        code: 0,
        stdout: expect.stringMatching(new RegExp(`^proposal #${id} executed in block \\d+\\n$`)),
        stderr: "",
      });
      const listed = json<{ proposals: unknown[] }>(await run(["member", "list", "--json"]));
      expect(listed.proposals.at(-1)).toMatchObject({
        id: Number(id),
        kind: "revoke-credentials",
        account: orgCAccount,
        indexes: [0],
        executed: true,
      });
      const status = json(await run(["credential", "status", "carol.json", "--json"]));
      expect(status).toMatchObject({ verdict: "revoked", revoked: true, suspended: false });
    },
    SLOW,
  );

  it(
    "member propose remove: once executed, the member is gone and may issue no more (exit 8)",
    async () => {
      const proposed = await as("org-a", ["member", "propose", "remove", orgC, "--json"]);
      const { proposalId } = json<{ proposalId: number }>(proposed);
      expect(proposed.stderr).toMatch(new RegExp(`^proposal #${proposalId} created in block \\d+\\n$`));
      expect((await as("org-a", ["member", "execute", String(proposalId)])).code).toBe(0);
      const listed = json<{ members: { did: string }[]; proposals: unknown[] }>(
        await run(["member", "list", "--json"]),
      );
      expect(listed.members.map((m) => m.did)).not.toContain(orgC);
      expect(listed.proposals.at(-1)).toMatchObject({
        id: proposalId,
        kind: "remove-member",
        account: orgCAccount,
        executed: true,
      });
      const issue = ["credential", "issue", "--subject", orgA, "--models", "fl-demo", "--out", "none.json"];
      expect(await as("org-c", issue)).toEqual({
        code: 8,
        stdout: "",
        stderr: `kparty: issuer_not_member: issuer ${orgC} (${orgCAccount}) is not a consortium member (hint: only consortium members issue; see \`kparty member list\`)\n`,
      });
    },
    SLOW,
  );
});
