#!/usr/bin/env node
// The `kparty` command. It runs the TypeScript sources directly on Node ≥ 22.18 (type
// stripping); started by an older Node (e.g. the system's), it re-runs itself on the Node
// 22 that `npm ci` installs with the project, forwarding signals and the exit code.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

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
  const { sizeThreadPool } = await import("../src/util/thread-pool.ts");
  sizeThreadPool();
  const { main } = await import("../src/cli/main.ts");
  const code = await main(process.argv);
  // Leave once output is flushed, even if a library keeps a handle open.
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}
