import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildProgram } from "../src/cli/main.ts";
import { freePort } from "../src/devnet/index.ts";
import {
  codeBlocks,
  DOCS,
  documentedCommands,
  documentedImports,
  ROOT as REPO,
  resolveCommand,
} from "./fixtures/docs.ts";

/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepack`), then
 * `npm install ./kparty-x.y.z.tgz` in an empty folder, on the project's Node 22 (this test's
 * own Node, first on PATH, so npm runs on it too, as it does on a user's Node 22 or 24), then
 * the commands and imports a user would run. Skipped, with the reason printed, when the
 * registry cannot be reached for the install.
 */
const ROOT = join(import.meta.dirname, "..");
const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const PASSPHRASE = "package test passphrase";
const OFFLINE = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network request/;

let work = "";
let app = "";
let bin = "";
let skipReason = "";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** This process's environment without KPARTY_* settings, this Node first on PATH, plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("KPARTY_")));
  const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`;
  return { ...base, PATH, FORCE_COLOR: "0", KPARTY_PASSPHRASE: PASSPHRASE, ...extra };
}

/** Runs a program to completion (bounded by `timeout` ms). */
function run(file: string, args: string[], cwd: string, timeout: number, extra = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd, env: env(extra), timeout, maxBuffer: 64 << 20, shell: process.platform === "win32" },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout: stdout.toString(), stderr: stderr.toString() });
      },
    );
  });
}

/** A long-running `kparty` of the installed package; `lines` collects its stdout. */
function start(args: string[], extra: Record<string, string>): { child: ChildProcess; out: () => string } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: app, env: env(extra), stdio: "pipe" });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.resume();
  return { child, out: () => out };
}

/** Polls `check` every 250 ms until it returns a value, or fails after `limitMs`. */
async function until<T>(what: string, limitMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: nothing within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Stops a child with SIGTERM (SIGKILL after 10 s) and waits for it to exit. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "kparty-pack-"));
  const packed = await run("npm", ["pack", "--silent", "--pack-destination", work], ROOT, 300_000);
  const tgz = readdirSync(work).find((f) => f.endsWith(".tgz"));
  if (packed.code !== 0 || !tgz)
    throw new Error(`npm pack failed (${packed.code}): ${packed.stderr.slice(-2000)}`);
  app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), '{"name": "kparty-user", "private": true, "type": "module"}\n');
  const args = ["install", "--prefer-offline", "--no-audit", "--no-fund", join(work, tgz)];
  const installed = await run("npm", args, app, 540_000);
  if (installed.code !== 0 && OFFLINE.test(installed.stderr)) {
    skipReason = `the npm registry is unreachable: ${installed.stderr.match(OFFLINE)?.[0]}`;
    console.warn(`test/package.test.ts: skipped, ${skipReason}`);
    return;
  }
  if (installed.code !== 0) throw new Error(`npm install of ${tgz} failed: ${installed.stderr.slice(-2000)}`);
  bin = join(app, "node_modules", "kparty", "bin", "kparty.js");
}, 900_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the packed package, installed in an empty folder", () => {
  it("holds compiled JavaScript with types, the contract artifacts, and no TypeScript source", (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const root = join(app, "node_modules", "kparty");
    const installed = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
    expect(installed.private).toBeUndefined();
    expect(installed.version).toBe(PKG.version);
    for (const [entry, target] of Object.entries(PKG.exports as Record<string, unknown>)) {
      if (typeof target === "string") continue;
      const { types, default: js } = target as { types: string; default: string };
      expect([entry, existsSync(join(root, types)), existsSync(join(root, js))]).toEqual([entry, true, true]);
    }
    for (const name of ["ConsortiumRegistry", "CredentialRegistry"]) {
      const artifact = JSON.parse(
        readFileSync(join(root, `dist/artifacts/contracts/${name}.sol/${name}.json`), "utf8"),
      );
      expect([artifact.contractName, artifact.bytecode.startsWith("0x60")]).toEqual([name, true]);
    }
    const files = readdirSync(root, { recursive: true }).map(String);
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]);
    expect(files.filter((f) => f.endsWith(".test.js"))).toEqual([]);
  });

  it("runs `npx --no-install kparty --help` and `--version`", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const help = await run("npx", ["--no-install", "kparty", "--help"], app, 60_000);
    expect([help.code, help.stderr]).toEqual([0, ""]);
    expect(help.stdout).toMatch(/^Usage: kparty \[options\] \[command\]/);
    for (const command of ["init", "chain", "gateway", "credential", "present", "audit"]) {
      expect(help.stdout).toMatch(new RegExp(`\\n  ${command} `));
    }
    const version = await run("npx", ["--no-install", "kparty", "--version"], app, 60_000);
    expect([version.code, version.stdout]).toEqual([0, `${PKG.version}\n`]);
  });

  it("imports kparty, kparty/gateway, kparty/agent, … from a .mjs file", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    writeFileSync(
      join(app, "imports.mjs"),
      [
        'import { KPartyError, credentialIdOf } from "kparty";',
        'import { buildGateway, createKPartyProtection } from "kparty/gateway";',
        'import { createKPartyAgent } from "kparty/agent";',
        'import { deployKParty } from "kparty/chain";',
        'import * as state from "kparty/state";',
        'import { startHardhatNode } from "kparty/devnet";',
        'import artifact from "kparty/artifacts/CredentialRegistry.sol/CredentialRegistry.json" with { type: "json" };',
        "const fns = { KPartyError, credentialIdOf, buildGateway, createKPartyProtection, createKPartyAgent,",
        "  deployKParty, startHardhatNode };",
        "console.log(JSON.stringify({ types: Object.values(fns).map((f) => typeof f),",
        "  state: Object.keys(state).length > 0, artifact: artifact.contractName }));",
      ].join("\n"),
    );
    const imported = await run(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", "imports.mjs"],
      app,
      60_000,
    );
    expect([imported.code, imported.stderr]).toEqual([0, ""]);
    expect(JSON.parse(imported.stdout)).toEqual({
      types: Array(7).fill("function"),
      state: true,
      artifact: "CredentialRegistry",
    });
  });

  it("answers `--help` for every command the docs show", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const program = buildProgram();
    const paths = [
      ...new Set(
        DOCS.flatMap((file) => documentedCommands(file))
          .map((line) => resolveCommand(program, line).path.join(" "))
          .filter((path) => path !== ""),
      ),
    ].sort();
    expect(paths.length).toBeGreaterThan(20);
    const answers: [string, number, string, string][] = [];
    // two at a time: each is a Node process loading the CLI
    const queue = [...paths];
    await Promise.all(
      [0, 1].map(async () => {
        for (let path = queue.shift(); path !== undefined; path = queue.shift()) {
          const help = await run(process.execPath, [bin, ...path.split(" "), "--help"], app, 60_000);
          answers.push([path, help.code, help.stderr, help.stdout.split("\n")[0] ?? ""]);
        }
      }),
    );
    expect(answers.sort((a, b) => a[0].localeCompare(b[0]))).toEqual(
      paths.map((path) => [path, 0, "", expect.stringMatching(new RegExp(`^Usage: kparty ${path} `))]),
    );
  }, 300_000);

  it("exports every name the docs' code imports from it", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const imports = documentedImports();
    expect(imports.length).toBeGreaterThan(0);
    const lines = imports.map(({ specifier, name }, i) =>
      name === "*"
        ? `import * as i${i} from "${specifier}";`
        : name === "default"
          ? `import i${i} from "${specifier}";`
          : `import { ${name} as i${i} } from "${specifier}";`,
    );
    const values = imports.map((_, i) => `i${i}`).join(", ");
    writeFileSync(
      join(app, "doc-imports.mjs"),
      [...lines, `console.log(JSON.stringify([${values}].map((v) => typeof v)));`].join("\n"),
    );
    const imported = await run(
      process.execPath,
      ["--disable-warning=ExperimentalWarning", "doc-imports.mjs"],
      app,
      60_000,
    );
    // a name the package does not export fails the import itself (a SyntaxError, exit 1)
    expect([imported.code, imported.stderr]).toEqual([0, ""]);
    const types = JSON.parse(imported.stdout) as string[];
    expect(imports.map((m, i) => [m.file, m.specifier, m.name, types[i] === "undefined"])).toEqual(
      imports.map((m) => [m.file, m.specifier, m.name, false]),
    );
  });

  it("type-checks the docs' TypeScript blocks that import kparty against its declarations", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const blocks = DOCS.filter((f) => f.endsWith(".md")).flatMap((file) =>
      codeBlocks(readFileSync(join(REPO, file), "utf8"), ["ts", "typescript"])
        .filter((code) => /from\s+["']kparty[/"']/.test(code))
        .map((code, i) => ({ name: `${file.replace(/[/.]/g, "-")}-${i}.ts`, code })),
    );
    expect(blocks.length).toBeGreaterThan(0);
    for (const { name, code } of blocks) writeFileSync(join(app, name), code);
    const compilerOptions = {
      target: "es2022",
      module: "nodenext",
      moduleResolution: "nodenext",
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      typeRoots: [join(REPO, "node_modules", "@types")],
      types: ["node"],
    };
    const files = blocks.map((b) => b.name);
    writeFileSync(join(app, "tsconfig.docs.json"), JSON.stringify({ compilerOptions, files }));
    const tsc = join(REPO, "node_modules", "typescript", "bin", "tsc");
    const checked = await run(process.execPath, [tsc, "-p", "tsconfig.docs.json"], app, 120_000);
    // a block leaves some names to the reader (RPC_URL, deployment, runModel): not found is
    // expected (TS2304, TS18004); any other error is the doc's code not fitting the package
    const errors = checked.stdout
      .split("\n")
      .filter((l) => / error TS/.test(l) && !/ error TS(2304|18004):/.test(l));
    expect(errors).toEqual([]);
  }, 180_000);

  it("runs `kparty init`, then `kparty chain up` and `kparty gateway serve` on loopback", async (ctx) => {
    if (skipReason) ctx.skip(skipReason);
    const [rpcPort, gatewayPort] = [await freePort(), await freePort()];
    const rpc = `http://127.0.0.1:${rpcPort}`;
    const settings = { KPARTY_RPC_URL: rpc, KPARTY_GATEWAY_PORT: String(gatewayPort) };
    const init = await run(process.execPath, [bin, "init"], app, 60_000, settings);
    expect(init.code).toBe(0);
    expect(JSON.parse(readFileSync(join(app, "kparty.json"), "utf8")).rpcUrl).toBe("http://127.0.0.1:8545");
    const did = await run(
      process.execPath,
      [bin, "did", "create", "--alias", "Org A", "--data-dir", ".kparty/a"],
      app,
      60_000,
      settings,
    );
    expect([did.code, did.stdout], did.stderr).toEqual([
      0,
      expect.stringMatching(/^did:ethr:0x7a69:0x[0-9a-f]{66}\n$/),
    ]);
    const chain = start(
      ["chain", "up", "--founder", `Org A=${did.stdout.trim()}`, "--quorum", "1", "--json"],
      settings,
    );
    let gateway: ReturnType<typeof start> | undefined;
    try {
      const up = await until("chain up", 90_000, async () =>
        chain.out().includes("\n") ? JSON.parse(chain.out().split("\n")[0] ?? "") : undefined,
      );
      expect([up.rpcUrl, up.chainId, up.quorum, Object.keys(up.contracts)]).toEqual([
        rpc,
        31337,
        1,
        ["EthereumDIDRegistry", "ConsortiumRegistry", "CredentialRegistry", "AuditAnchors"],
      ]);
      gateway = start(
        ["gateway", "serve", "--data-dir", ".kparty/gateway", "--model", "fl-demo:101"],
        settings,
      );
      const health = await until("gateway serve", 90_000, async () => {
        const res = await fetch(`http://127.0.0.1:${gatewayPort}/healthz`);
        return res.status === 200 ? ((await res.json()) as { status: string; chainId: number }) : undefined;
      });
      expect([health.status, health.chainId]).toEqual(["ok", 31337]);
    } finally {
      if (gateway) await stop(gateway.child);
      await stop(chain.child);
    }
  }, 240_000);
});
