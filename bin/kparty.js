#!/usr/bin/env node
// The `kparty` command. In a checkout it runs the TypeScript sources directly on Node ≥ 22.18
// (type stripping); in the installed package (no src/ beside it) the compiled JavaScript of
// dist/ (`npm run build`; the package also holds this file as dist/bin/kparty.js, which the
// gateway re-executes). Started by an older Node (e.g. the system's), it re-runs itself on the
// Node 22 that `npm ci` installs with the project, forwarding signals and the exit code.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The module `path` (e.g. "cli/main") of src: the checkout's .ts, else the compiled .js. */
function source(path) {
  const ts = new URL(`../src/${path}.ts`, import.meta.url);
  if (existsSync(ts)) return ts.href;
  const beside = new URL(`../src/${path}.js`, import.meta.url); // this file is dist/bin/kparty.js
  return existsSync(beside) ? beside.href : new URL(`../dist/src/${path}.js`, import.meta.url).href;
}

const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  const node = fileURLToPath(new URL("../node_modules/.bin/node", import.meta.url));
  if (!existsSync(node)) {
    process.stderr.write(
      `kparty: config_invalid: needs Node >= 22.18, this is ${process.version} (hint: run \`npm ci\` in the kparty folder)\n`,
    );
    process.exit(3);
  }
  const child = spawn(node, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : 1)));
} else {
  // node:sqlite is still flagged experimental on Node 22: keep that notice off the terminal.
  process.removeAllListeners("warning");
  process.on("warning", (w) => {
    if (w.name !== "ExperimentalWarning") process.stderr.write(`${w.name}: ${w.message}\n`);
  });
  // libuv's thread pool, where the gateway checks signatures: one thread per core unless
  // UV_THREADPOOL_SIZE says otherwise; set before anything runs on the pool, which reads it then
  const { sizeThreadPool } = await import(source("util/thread-pool"));
  sizeThreadPool();
  const { main } = await import(source("cli/main"));
  const code = await main(process.argv);
  // Leave once output is flushed, even if a library keeps a handle open.
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}
