#!/usr/bin/env node
// Makes sure Hardhat's EDR has its native binding for this platform: `npm run setup`, and the
// first step of `npm run build:contracts`, which `npm test`, the demo and the benchmarks run.
//
// The bindings (@nomicfoundation/edr-<os>-<cpu>) are optional dependencies of EDR, so `npm ci`
// works on every platform. But they declare `engines: node >= 22`, and npm running on an older
// Node (this machine's system Node 20) silently skips them. This script runs on the project's own
// Node 22 (npm scripts put node_modules/.bin first on PATH): if the binding does not load, it runs
// npm once more on this Node, which installs exactly what package-lock.json lists for this
// platform, without changing the lockfile. On Node >= 22 the binding is there and this is a no-op.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Whether EDR loads in a fresh process on this Node; its error message otherwise. */
function edrLoads() {
  const probe = spawnSync(process.execPath, ["-e", 'require("@nomicfoundation/edr")'], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
  });
  if (probe.status === 0) return { ok: true };
  return { ok: false, reason: (probe.stderr || probe.error?.message || "").trim().split("\n")[0] };
}

/** npm on this Node: the npm-cli.js that runs this script if known, else `npm` from PATH. */
function npmCommand(args) {
  const cli = process.env.npm_execpath; // npm-cli.js under npm run and npx; absent if run directly
  if (cli?.endsWith("npm-cli.js") && existsSync(cli)) return { file: process.execPath, args: [cli, ...args] };
  const PATH = `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`;
  return { file: "npm", args, env: { ...process.env, PATH }, shell: process.platform === "win32" };
}

const before = edrLoads();
if (before.ok) process.exit(0);
if (!existsSync(join(root, "package-lock.json"))) {
  process.stderr.write(
    `kparty setup: Hardhat's EDR does not load (${before.reason}) and there is no lockfile\n`,
  );
  process.exit(1);
}
process.stderr.write(
  `kparty setup: Hardhat's EDR binding is missing (npm on Node < 22 skips it); installing it with npm on Node ${process.version}\n`,
);
const npm = npmCommand([
  "install",
  "--no-save",
  "--ignore-scripts",
  "--no-audit",
  "--no-fund",
  "--prefer-offline",
]);
const run = spawnSync(npm.file, npm.args, {
  cwd: root,
  stdio: ["ignore", "inherit", "inherit"],
  env: npm.env ?? process.env,
  shell: npm.shell ?? false,
  timeout: 300_000,
});
const after = edrLoads();
if (run.status !== 0 || !after.ok) {
  process.stderr.write(
    `kparty setup: EDR still does not load (npm exit ${run.status ?? run.error?.message}): ${after.reason ?? ""}\n` +
      "Supported: Linux x64/arm64 (glibc or musl), macOS x64/arm64, Windows x64, on Node 22 or 24.\n",
  );
  process.exit(1);
}
